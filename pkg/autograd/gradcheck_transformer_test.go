package autograd

import (
	"math"
	"testing"

	"github.com/gorch/gorch/pkg/tensor"
)

// causalMask is 1 above the diagonal of a [t, t] matrix (the positions a
// causal attention must not see).
func causalMask(t int) *tensor.Tensor {
	return ok(tensor.Triu(ok(tensor.Ones(t, t)), 1))
}

// headsView returns a [b, h, t, e] view of a contiguous [b, t, h·e] tensor,
// as attention code splits heads (non-contiguous).
func headsView(x *tensor.Tensor, h int) *tensor.Tensor {
	s := x.Shape()
	return ok(ok(x.View(s[0], s[1], h, s[2]/h)).Transpose(1, 2))
}

// tensorPair records a tensor-level forward result with a tensor-level
// backward, so the pairs a compiler backend calls directly (Addmm,
// NLLLoss/NLLLossBackward, ...) get gradchecked like the autograd ops.
func tensorPair(op string, out *tensor.Tensor, err error, in []*Variable, bw func(g *tensor.Tensor) ([]*tensor.Tensor, error)) (*Variable, error) {
	if err != nil {
		return nil, err
	}
	return record(op, out, in, bw), nil
}

func nllCase(w *tensor.Tensor, red tensor.Reduction) func(v []*Variable) (*Variable, error) {
	target := ok(tensor.New([]float32{1, -100, 3, 0, 3}, 5))
	return func(v []*Variable) (*Variable, error) {
		loss, tw, err := tensor.NLLLoss(v[0].Data, target, w, red, -100)
		return tensorPair("nll", loss, err, v, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
			gx, err := tensor.NLLLossBackward(g, v[0].Data, target, w, red, -100, tw)
			return []*tensor.Tensor{gx}, err
		})
	}
}

func TestGradCheckTransformerOps(t *testing.T) {
	idx := ok(tensor.New([]float32{2, 0, 2, 4, 1, 2}, 2, 3))
	causal := tensor.AttentionOptions{Causal: true}
	mask := ok(tensor.Bernoulli(tensor.NewRNG(5), 0.7, 4, 6))
	classW := positive(7, 4)
	cases := []gcase{
		{"layer norm affine", func(v []*Variable) (*Variable, error) { return LayerNorm(v[0], []int{5}, v[1], v[2], 1e-5) },
			[]*tensor.Tensor{randn(1, 2, 3, 5), randn(2, 5), randn(3, 5)}},
		{"layer norm two dims transposed", func(v []*Variable) (*Variable, error) { return LayerNorm(v[0], []int{2, 4}, v[1], nil, 1e-5) },
			[]*tensor.Tensor{ok(randn(1, 3, 4, 2).Transpose(1, 2)), randn(2, 2, 4)}},
		{"layer norm plain", func(v []*Variable) (*Variable, error) { return LayerNorm(v[0], []int{6}, nil, nil, 0.1) },
			[]*tensor.Tensor{transposed(randn(1, 6, 3))}},
		{"gelu tanh", func(v []*Variable) (*Variable, error) { return GeluTanh(v[0]) }, []*tensor.Tensor{transposed(randn(1, 3, 4))}},
		{"gelu exact", func(v []*Variable) (*Variable, error) { return Gelu(v[0]) }, []*tensor.Tensor{transposed(randn(1, 3, 4))}},
		{"rsqrt", func(v []*Variable) (*Variable, error) { return Rsqrt(v[0]) }, []*tensor.Tensor{positive(1, 2, 3)}},
		{"embedding repeated", func(v []*Variable) (*Variable, error) { return Embedding(v[0], idx, -1) }, []*tensor.Tensor{randn(1, 5, 3)}},
		{"embedding unused padding transposed", func(v []*Variable) (*Variable, error) { return Embedding(v[0], idx, 3) }, []*tensor.Tensor{transposed(randn(1, 3, 5))}},
		{"masked fill broadcast", func(v []*Variable) (*Variable, error) { return MaskedFill(v[0], causalMask(3), -2) }, []*tensor.Tensor{randn(1, 2, 2, 3, 3)}},
		{"tril", func(v []*Variable) (*Variable, error) { return Tril(v[0], -1) }, []*tensor.Tensor{transposed(randn(1, 4, 3))}},
		{"masked softmax", func(v []*Variable) (*Variable, error) {
			m, err := MaskedFill(v[0], causalMask(4), float32(math.Inf(-1)))
			if err != nil {
				return nil, err
			}
			return Softmax(m, -1)
		}, []*tensor.Tensor{randn(1, 2, 4, 4)}},
		{"softmax 4-D non-contiguous", func(v []*Variable) (*Variable, error) { return Softmax(v[0], 2) }, []*tensor.Tensor{headsView(randn(1, 2, 3, 4), 2)}},
		{"log softmax dim 0", func(v []*Variable) (*Variable, error) { return LogSoftmax(v[0], 0) }, []*tensor.Tensor{transposed(randn(1, 4, 3))}},
		{"matmul 4-D broadcast batch", func(v []*Variable) (*Variable, error) { return Matmul(v[0], v[1]) }, []*tensor.Tensor{randn(1, 2, 1, 3, 4), randn(2, 1, 3, 4, 2)}},
		{"matmul 4-D q·kᵀ", func(v []*Variable) (*Variable, error) {
			kt, err := Transpose(v[1], -1, -2)
			if err != nil {
				return nil, err
			}
			return Matmul(v[0], kt)
		}, []*tensor.Tensor{headsView(randn(1, 2, 3, 4), 2), headsView(randn(2, 2, 3, 4), 2)}},
		{"attention causal heads", func(v []*Variable) (*Variable, error) { return ScaledDotProductAttention(v[0], v[1], v[2], causal) },
			[]*tensor.Tensor{headsView(randn(1, 2, 4, 6), 2), headsView(randn(2, 2, 4, 6), 2), headsView(randn(3, 2, 4, 6), 2)}},
		{"attention cross lengths scaled", func(v []*Variable) (*Variable, error) {
			return ScaledDotProductAttention(v[0], v[1], v[2], tensor.AttentionOptions{Scale: 0.7})
		}, []*tensor.Tensor{randn(1, 2, 3, 4), randn(2, 2, 5, 4), randn(3, 2, 5, 2)}},
		{"attention causal L > S", func(v []*Variable) (*Variable, error) { return ScaledDotProductAttention(v[0], v[1], v[2], causal) },
			[]*tensor.Tensor{randn(1, 5, 3), randn(2, 3, 3), randn(3, 3, 2)}},
		{"addmm broadcast scaled", func(v []*Variable) (*Variable, error) {
			out, err := tensor.Addmm(v[0].Data, v[1].Data, v[2].Data, 0.5, 2)
			return tensorPair("addmm", out, err, v, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
				c := &calc{}
				gi := c.do(tensor.MulScalar(c.do(tensor.Sum(g, []int{0}, false)), 0.5))
				g2 := c.do(tensor.MulScalar(g, 2))
				gm1 := c.do(tensor.Matmul(g2, c.do(v[2].Data.T())))
				gm2 := c.do(tensor.Matmul(c.do(v[1].Data.T()), g2))
				return []*tensor.Tensor{gi, gm1, gm2}, c.err
			})
		}, []*tensor.Tensor{randn(1, 4), transposed(randn(2, 3, 2)), randn(3, 3, 4)}},
		{"bmm", func(v []*Variable) (*Variable, error) {
			out, err := tensor.Bmm(v[0].Data, v[1].Data)
			return tensorPair("bmm", out, err, v, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
				c := &calc{}
				ga := c.do(tensor.Bmm(g, c.do(v[1].Data.Transpose(1, 2))))
				gb := c.do(tensor.Bmm(c.do(v[0].Data.Transpose(1, 2)), g))
				return []*tensor.Tensor{ga, gb}, c.err
			})
		}, []*tensor.Tensor{randn(1, 2, 3, 4), ok(randn(2, 2, 2, 4).Transpose(1, 2))}},
		{"nll mean weighted ignore", nllCase(classW, tensor.ReduceMean), []*tensor.Tensor{randn(1, 5, 4)}},
		{"nll sum", nllCase(nil, tensor.ReduceSum), []*tensor.Tensor{transposed(randn(1, 4, 5))}},
		{"nll none weighted", nllCase(classW, tensor.ReduceNone), []*tensor.Tensor{randn(1, 5, 4)}},
		{"dropout pair", func(v []*Variable) (*Variable, error) {
			out, err := tensor.DropoutBackward(v[0].Data, mask, 1/0.7)
			return tensorPair("dropout", out, err, v, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
				gx, err := tensor.DropoutBackward(g, mask, 1/0.7)
				return []*tensor.Tensor{gx}, err
			})
		}, []*tensor.Tensor{transposed(randn(1, 6, 4))}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := GradCheck(c.f, c.inputs, GradCheckOptions{Seed: 3}); err != nil {
				t.Errorf("GradCheck(%s): %v", c.name, err)
			}
		})
	}
}
