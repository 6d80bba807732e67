package autograd

import (
	"github.com/gorch/gorch/pkg/tensor"
)

// LayerNorm normalises x over its trailing dims normalized and applies the
// optional affine weight w and bias b (shape normalized, either may be
// nil), as torch.nn.functional.layer_norm.
func LayerNorm(x *Variable, normalized []int, w, b *Variable, eps float32) (*Variable, error) {
	const op = "layer_norm"
	vs := []*Variable{x}
	wi, bi := -1, -1
	if w != nil {
		wi, vs = len(vs), append(vs, w)
	}
	if b != nil {
		bi, vs = len(vs), append(vs, b)
	}
	ts, err := datas(op, vs...)
	if err != nil {
		return nil, err
	}
	var wt, bt *tensor.Tensor
	if wi > 0 {
		wt = ts[wi]
	}
	if bi > 0 {
		bt = ts[bi]
	}
	normalized = append([]int(nil), normalized...)
	out, mean, rstd, err := tensor.LayerNorm(ts[0], normalized, wt, bt, eps)
	if err != nil {
		return nil, err
	}
	return record(op, out, vs, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		want := [3]bool{needs(vs, 0), wi > 0 && needs(vs, wi), bi > 0 && needs(vs, bi)}
		gx, gw, gb, err := tensor.LayerNormBackward(g, ts[0], normalized, mean, rstd, wt, want)
		grads := []*tensor.Tensor{gx}
		if wi > 0 {
			grads = append(grads, gw)
		}
		if bi > 0 {
			grads = append(grads, gb)
		}
		return grads, err
	}), nil
}

// GeluTanh returns GELU's tanh approximation of a (approximate="tanh").
func GeluTanh(a *Variable) (*Variable, error) {
	return unary("gelu_tanh", a, tensor.GeluTanh, func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor {
		return c.do(tensor.GeluBackward(g, x, true))
	})
}

// Rsqrt returns 1/√a.
func Rsqrt(a *Variable) (*Variable, error) {
	return unary("rsqrt", a, tensor.Rsqrt, func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor { // -g·out³/2
		cube := c.do(tensor.Mul(out, c.do(tensor.Square(out))))
		return c.do(tensor.Mul(g, c.do(tensor.MulScalar(cube, -0.5))))
	})
}

// Embedding looks up rows of weight [V, D] at indices (any shape); the
// gradient is scattered back into the table, skipping rows at paddingIdx
// (-1: none), as torch.nn.functional.embedding.
func Embedding(weight *Variable, indices *tensor.Tensor, paddingIdx int) (*Variable, error) {
	const op = "embedding"
	ts, err := datas(op, weight)
	if err != nil {
		return nil, err
	}
	out, err := tensor.Embedding(ts[0], indices)
	if err != nil {
		return nil, err
	}
	rows := ts[0].Shape()[0]
	return record(op, out, []*Variable{weight}, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		gw, err := tensor.EmbeddingBackward(g, indices, rows, paddingIdx)
		return []*tensor.Tensor{gw}, err
	}), nil
}

// MaskedFill returns a with value wherever mask (broadcast to a's shape)
// is non-zero; no gradient flows to the filled positions.
func MaskedFill(a *Variable, mask *tensor.Tensor, value float32) (*Variable, error) {
	return unary("masked_fill", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return tensor.MaskedFill(t, mask, value) },
		func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor { return c.do(tensor.MaskedFill(g, mask, 0)) })
}

// Tril keeps the lower triangle of a's last two dims (col - row <= diagonal).
func Tril(a *Variable, diagonal int) (*Variable, error) {
	return unary("tril", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return tensor.Tril(t, diagonal) },
		func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor { return c.do(tensor.Tril(g, diagonal)) })
}

// ScaledDotProductAttention is softmax(scale·q·kᵀ + mask)·v for q [..., L,
// E], k [..., S, E], v [..., S, Ev], fused: the backward pass recomputes the
// attention probabilities from the saved log-sum-exp instead of keeping
// them.
func ScaledDotProductAttention(q, k, v *Variable, opt tensor.AttentionOptions) (*Variable, error) {
	const op = "scaled_dot_product_attention"
	ts, err := datas(op, q, k, v)
	if err != nil {
		return nil, err
	}
	out, lse, err := tensor.ScaledDotProductAttention(ts[0], ts[1], ts[2], opt)
	if err != nil {
		return nil, err
	}
	return record(op, out, []*Variable{q, k, v}, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		gq, gk, gv, err := tensor.ScaledDotProductAttentionBackward(g, ts[0], ts[1], ts[2], out, lse, opt)
		return []*tensor.Tensor{gq, gk, gv}, err
	}), nil
}

// AttentionQKV is multi-head self-attention on a transformer block's
// packed projections qkv [B, T, 3·D] (queries, keys, values side by side),
// returning the heads' outputs side by side, [B, T, D]: the same as
// splitting qkv into q, k and v, viewing each as [B, heads, T, D/heads],
// ScaledDotProductAttention and transposing back, without the views'
// copies. The backward pass writes the gradient of qkv in one piece.
func AttentionQKV(qkv *Variable, heads int, opt tensor.AttentionOptions) (*Variable, error) {
	const op = "attention_qkv"
	ts, err := datas(op, qkv)
	if err != nil {
		return nil, err
	}
	out, probs, err := tensor.AttentionQKV(ts[0], heads, opt)
	if err != nil {
		return nil, err
	}
	return record(op, out, []*Variable{qkv}, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		gx, err := tensor.AttentionQKVBackward(g, ts[0], probs, heads, opt)
		return []*tensor.Tensor{gx}, err
	}), nil
}
