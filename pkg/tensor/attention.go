package tensor

import (
	"math"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
)

var (
	statSoftmaxBackward    = stat("softmax_backward")
	statLogSoftmaxBackward = stat("log_softmax_backward")
	statMaskedFill         = stat("masked_fill")
	statTril               = stat("tril")
	statTriu               = stat("triu")
	statAttention          = stat("scaled_dot_product_attention")
	statAttentionBackward  = stat("scaled_dot_product_attention_backward")
)

// forLines calls fn once per line of a contiguous shape along dimension d:
// base is the index of the line's first element, and its n elements are
// stride apart.
func forLines(shape []int, d int, fn func(base, n, stride int)) {
	outer, n, inner := 1, shape[d], 1
	for i, s := range shape {
		switch {
		case i < d:
			outer *= s
		case i > d:
			inner *= s
		}
	}
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			fn(o*n*inner+i, n, inner)
		}
	}
}

// softmaxGrad runs a softmax backward: it validates g and y, and calls
// line for every line along dim with the sums Σ g·y (gy) and Σ g (gs) of
// the line, to fill in the gradient.
func softmaxGrad(s *opStat, g, y *Tensor, dim int, line func(dst, gd, yd []float32, p int, gy, gs float64)) (*Tensor, error) {
	if err := checkIn(s, g, y); err != nil {
		return nil, err
	}
	if !EqualShape(g.shape, y.shape) {
		return nil, errs.New(errs.Shape, s.name, "gradient of shape %v does not match output of shape %v", g.shape, y.shape)
	}
	d, err := reduceDim(s.name, dim, len(y.shape))
	if err != nil {
		return nil, err
	}
	gd, yd, out := values(g), values(y), newContiguous(scopeOf(g, y), y.shape)
	od := out.storage.data
	forLines(asRank1(out).shape, d, func(base, n, stride int) {
		var gy, gs float64
		for j, p := 0, base; j < n; j, p = j+1, p+stride {
			gy += float64(gd[p]) * float64(yd[p])
			gs += float64(gd[p])
		}
		for j, p := 0, base; j < n; j, p = j+1, p+stride {
			line(od, gd, yd, p, gy, gs)
		}
	})
	return out, nil
}

// SoftmaxBackward returns the gradient of y = Softmax(x, dim) with respect
// to x for the upstream gradient g: y·(g - Σ g·y), the sum along dim, as
// torch._softmax_backward_data. g and y must have the same shape.
func SoftmaxBackward(g, y *Tensor, dim int) (*Tensor, error) {
	return softmaxGrad(statSoftmaxBackward, g, y, dim, func(dst, gd, yd []float32, p int, gy, _ float64) {
		dst[p] = float32(float64(yd[p]) * (float64(gd[p]) - gy))
	})
}

// LogSoftmaxBackward returns the gradient of y = LogSoftmax(x, dim) with
// respect to x: g - exp(y)·Σ g, as torch._log_softmax_backward_data.
func LogSoftmaxBackward(g, y *Tensor, dim int) (*Tensor, error) {
	return softmaxGrad(statLogSoftmaxBackward, g, y, dim, func(dst, gd, yd []float32, p int, _, gs float64) {
		dst[p] = float32(float64(gd[p]) - math.Exp(float64(yd[p]))*gs)
	})
}

// MaskedFill returns a copy of t with value wherever mask is non-zero (NaN
// counts as true), like torch.masked_fill. mask must broadcast to t's shape.
func MaskedFill(t, mask *Tensor, value float32) (*Tensor, error) {
	s := statMaskedFill
	if err := checkIn(s, t, mask); err != nil {
		return nil, err
	}
	if shape, err := broadcastShape(s.name, t.shape, mask.shape); err != nil || !EqualShape(shape, t.shape) {
		return nil, errs.New(errs.Shape, s.name, "mask of shape %v cannot be broadcast to input shape %v", mask.shape, t.shape)
	}
	out := newContiguous(scopeOf(t, mask), t.shape)
	dst, src, ms := out.storage.data, t.storage.data, mask.storage.data
	p := newRowPlan(t.shape, out.strides, t.strides, broadcastStrides(mask.shape, mask.strides, t.shape))
	p.each([]int{0, t.offset, mask.offset}, func(offs []int) {
		o, x, m := offs[0], offs[1], offs[2]
		for range p.n {
			if ms[m] != 0 {
				dst[o] = value
			} else {
				dst[o] = src[x]
			}
			o += p.inner[0]
			x += p.inner[1]
			m += p.inner[2]
		}
	})
	return out, nil
}

// Tril returns a copy of t with the elements above the diagonal-th
// diagonal of its last two dimensions zeroed (kept where col - row <=
// diagonal), like torch.tril.
func Tril(t *Tensor, diagonal int) (*Tensor, error) {
	return triangle(statTril, t, func(r, c int) bool { return c-r <= diagonal })
}

// Triu returns a copy of t with the elements below the diagonal-th
// diagonal zeroed (kept where col - row >= diagonal), like torch.triu.
func Triu(t *Tensor, diagonal int) (*Tensor, error) {
	return triangle(statTriu, t, func(r, c int) bool { return c-r >= diagonal })
}

func triangle(s *opStat, t *Tensor, keep func(r, c int) bool) (*Tensor, error) {
	if err := checkIn(s, t); err != nil {
		return nil, err
	}
	n := len(t.shape)
	if n < 2 {
		return nil, errs.New(errs.Shape, s.name, "input of shape %v needs at least 2 dimensions", t.shape)
	}
	out := fromData(t.Scope(), values(t), t.shape)
	rows, cols := t.shape[n-2], t.shape[n-1]
	d := out.storage.data
	for base := 0; base < len(d); base += rows * cols {
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				if !keep(r, c) {
					d[base+r*cols+c] = 0
				}
			}
		}
	}
	return out, nil
}

// AttentionOptions configures ScaledDotProductAttention.
type AttentionOptions struct {
	// Causal masks every key position after the query's (col > row of the
	// L×S score matrix, aligned at the top left), as is_causal does.
	Causal bool
	// Scale multiplies q·kᵀ; 0 means 1/√E, E the size of q's last dimension.
	Scale float32
}

// attention holds the validated geometry of an attention call.
type attention struct {
	batch       []int // leading dims, shared by q, k and v
	nb, l, s, e int   // batch count, query and key lengths, head size
	ev          int   // value head size
	scale       float64
	causal      bool
}

func attentionGeometry(op string, q, k, v *Tensor, opt AttentionOptions) (attention, error) {
	r := len(q.shape)
	if r < 2 || len(k.shape) != r || len(v.shape) != r {
		return attention{}, errs.New(errs.Shape, op, "query %v, key %v and value %v need the same rank of at least 2", q.shape, k.shape, v.shape)
	}
	a := attention{batch: q.shape[:r-2], l: q.shape[r-2], e: q.shape[r-1], s: k.shape[r-2], ev: v.shape[r-1], causal: opt.Causal}
	if !EqualShape(k.shape[:r-2], a.batch) || !EqualShape(v.shape[:r-2], a.batch) || k.shape[r-1] != a.e || v.shape[r-2] != a.s {
		return attention{}, errs.New(errs.Shape, op, "query %v, key %v and value %v do not match: want [..., L, E], [..., S, E], [..., S, Ev] with equal leading dims", q.shape, k.shape, v.shape)
	}
	if math.IsNaN(float64(opt.Scale)) || math.IsInf(float64(opt.Scale), 0) {
		return attention{}, errs.New(errs.Argument, op, "scale %v is not finite", opt.Scale)
	}
	a.nb = 1
	for _, d := range a.batch {
		a.nb *= d
	}
	a.scale = float64(opt.Scale)
	if a.scale == 0 {
		a.scale = 1 / math.Sqrt(float64(max(a.e, 1)))
	}
	return a, nil
}

// width returns how many keys row r of the score matrix attends to.
func (a attention) width(r int) int {
	if a.causal {
		return min(r%a.l+1, a.s)
	}
	return a.s
}

// swapLast returns a view of t with its last two dimensions swapped.
func swapLast(t *Tensor) *Tensor {
	r := len(t.shape)
	sh, st := t.Shape(), t.Strides()
	sh[r-2], sh[r-1] = sh[r-1], sh[r-2]
	st[r-2], st[r-1] = st[r-1], st[r-2]
	return t.view(sh, st, t.offset)
}

// ScaledDotProductAttention computes softmax(scale·q·kᵀ + mask)·v for q
// [..., L, E], k [..., S, E] and v [..., S, Ev] with equal leading dims,
// as torch's scaled_dot_product_attention (no dropout, no attn_mask). It
// also returns the log-sum-exp of each score row, [..., L], which the
// backward pass takes (ATen's _scaled_dot_product_flash_attention_for_cpu
// returns the same pair). The softmax is computed in float64.
func ScaledDotProductAttention(q, k, v *Tensor, opt AttentionOptions) (out, lse *Tensor, err error) {
	s := statAttention
	if err := checkIn(s, q, k, v); err != nil {
		return nil, nil, err
	}
	a, err := attentionGeometry(s.name, q, k, v, opt)
	if err != nil {
		return nil, nil, err
	}
	p, err := Matmul(q, swapLast(k))
	if err != nil {
		return nil, nil, err
	}
	lse = newContiguous(scopeOf(q, k, v), append(append([]int(nil), a.batch...), a.l))
	pd, ld := p.storage.data, lse.storage.data
	parallelRows(a.nb*a.l, a.s, func(r int) {
		row := pd[r*a.s : (r+1)*a.s]
		w := a.width(r)
		m := math.Inf(-1)
		for _, x := range row[:w] {
			if v := float64(x) * a.scale; v > m || math.IsNaN(v) {
				m = v
			}
		}
		// The exponentials in float32 (kernels.Expf, within about 1 ulp,
		// as PyTorch computes them; VecExp gives Expf's bits),
		// their sum in float64: float64 math.Exp was most of the GPT
		// attention's time outside its GEMMs.
		for j, x := range row[:w] {
			row[j] = float32(float64(x)*a.scale - m)
		}
		kernels.VecExp(row[:w], row[:w])
		var sum float64
		for _, e := range row[:w] {
			sum += float64(e)
		}
		inv := 1 / sum
		for j := range row[:w] {
			row[j] = float32(float64(row[j]) * inv)
		}
		clear(row[w:])
		ld[r] = float32(m + math.Log(sum))
	})
	if out, err = Matmul(p, v); err != nil {
		return nil, nil, err
	}
	return out, lse, nil
}

// ScaledDotProductAttentionBackward returns the gradients of
// ScaledDotProductAttention with respect to q, k and v, given the upstream
// gradient g, the forward pass's out and lse, and the same options. The
// attention probabilities are recomputed from q, k and lse.
func ScaledDotProductAttentionBackward(g, q, k, v, out, lse *Tensor, opt AttentionOptions) (gq, gk, gv *Tensor, err error) {
	s := statAttentionBackward
	if err := checkIn(s, g, q, k, v, out, lse); err != nil {
		return nil, nil, nil, err
	}
	a, err := attentionGeometry(s.name, q, k, v, opt)
	if err != nil {
		return nil, nil, nil, err
	}
	want := append(append([]int(nil), a.batch...), a.l, a.ev)
	if !EqualShape(g.shape, want) || !EqualShape(out.shape, want) || lse.Numel() != a.nb*a.l {
		return nil, nil, nil, errs.New(errs.Shape, s.name, "gradient %v, output %v and lse %v do not match query %v and value %v", g.shape, out.shape, lse.shape, q.shape, v.shape)
	}
	p, err := Matmul(q, swapLast(k))
	if err != nil {
		return nil, nil, nil, err
	}
	dp, err := Matmul(g, swapLast(v))
	if err != nil {
		return nil, nil, nil, err
	}
	gd, od, ld := values(g), values(out), values(lse)
	pd, dd := p.storage.data, dp.storage.data
	parallelRows(a.nb*a.l, a.s, func(r int) {
		var delta float64 // Σ g·out over the row = Σ dP·P
		for e := r * a.ev; e < (r+1)*a.ev; e++ {
			delta += float64(gd[e]) * float64(od[e])
		}
		prow, drow := pd[r*a.s:(r+1)*a.s], dd[r*a.s:(r+1)*a.s]
		w := a.width(r)
		for j := range prow[:w] {
			prow[j] = float32(float64(prow[j])*a.scale - float64(ld[r]))
		}
		kernels.VecExp(prow[:w], prow[:w])
		for j, p := range prow[:w] {
			drow[j] = float32(float64(p) * (float64(drow[j]) - delta) * a.scale)
		}
		clear(prow[w:])
		clear(drow[w:])
	})
	if gq, err = Matmul(dp, k); err != nil {
		return nil, nil, nil, err
	}
	if gk, err = Matmul(swapLast(dp), q); err != nil {
		return nil, nil, nil, err
	}
	if gv, err = Matmul(swapLast(p), g); err != nil {
		return nil, nil, nil, err
	}
	return gq, gk, gv, nil
}
