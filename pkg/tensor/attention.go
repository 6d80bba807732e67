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

// keys returns how many key columns the query rows from i0 to
// i0+attnBlock attend to: causal rows stop at the block's last row.
func (a attention) keys(i0 int) int {
	if a.causal {
		return min(a.s, i0+attnBlock)
	}
	return a.s
}

// headMats locates the matrices of an attention operand [..., R, C] in
// its storage: batch entry i's R×C matrix starts at off[i] of d, its rows
// ld apart and its columns adjacent.
type headMats struct {
	d   []float32
	off []int
	ld  int
}

// headMatsOf returns t's matrices, viewing t in
// place when its last dimension is contiguous (a transposed view of a
// split projection, say) and copying it otherwise.
func headMatsOf(t *Tensor) headMats {
	r := len(t.shape)
	if t.shape[r-1] > 1 && t.strides[r-1] != 1 {
		t = fromData(t.Scope(), t.copyData(), t.shape)
	}
	return headMats{d: t.storage.data, off: batchOffsets(t.shape[:r-2], t.strides, t.offset), ld: t.strides[r-2]}
}

// at returns the matrix of batch entry i from element e on (an empty
// slice past the end: the GEMMs read nothing there).
func (h headMats) at(i, e int) []float32 { return h.d[min(h.off[i]+e, len(h.d)):] }

// newAttentionResult allocates an attention result [batch..., r, c]
// whose every element the caller writes. Rank-4 results [B, H, r, c] are
// laid out [B, r, H, c], as ATen's flash attention lays out its output
// and gradients, so that the transpose(1, 2) and view(B, r, H·c) that
// follow in a transformer are views, not copies.
func newAttentionResult(sc *Scope, batch []int, r, c int) *Tensor {
	if len(batch) == 2 {
		b, h := batch[0], batch[1]
		t := newUninit(sc, []int{b, r, h, c})
		return t.view([]int{b, h, r, c}, []int{r * h * c, c, h * c, 1}, 0)
	}
	return newUninit(sc, append(append([]int(nil), batch...), r, c))
}

// attnGemm sets C = op(A)·B as kernels.SmallGemm does, with its kernel
// where it has one and be's Sgemm otherwise; k = 0 zeroes C.
func attnGemm(be kernels.Backend, transA bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	switch {
	case m == 0 || n == 0:
	case k == 0:
		for r := range m {
			clear(c[r*ldc : r*ldc+n])
		}
	case !kernels.SmallGemm(transA, m, n, k, a, lda, b, ldb, c, ldc):
		be.Sgemm(transA, false, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)
	}
}

// parallelSpans calls fn on one contiguous chunk of the n items per
// worker (for per-worker scratch).
func parallelSpans(n int, fn func(lo, hi int)) {
	w := min(workers(), n)
	if w <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	per := (n + w - 1) / w
	parallelFor((n+per-1)/per, func(c int) { fn(c*per, min(n, (c+1)*per)) })
}

// ScaledDotProductAttention computes softmax(scale·q·kᵀ + mask)·v for q
// [..., L, E], k [..., S, E] and v [..., S, Ev] with equal leading dims,
// as torch's scaled_dot_product_attention (no dropout, no attn_mask). It
// also returns the log-sum-exp of each score row, [..., L], which the
// backward pass takes (ATen's _scaled_dot_product_flash_attention_for_cpu
// returns the same pair; rank-4 results are laid out as ATen's, see
// newAttentionResult).
//
// Each batch entry is computed on q, k and v in place (strided views, such
// as a transformer's transposed heads of a split projection, are not
// copied when their last dimension is contiguous), 16 query rows at a
// time: the scores of a block (causal blocks skip the keys after their
// last row), their softmax, and the block's output, with the small-matrix
// kernels where they apply (kernels.SmallGemm, AVX-512, widths multiple of
// 16) and a single-threaded GEMM otherwise, batch entries in parallel. The
// softmax is computed in float32 with float64 sums, as
// kernels.AttnSoftmaxRow.
func ScaledDotProductAttention(q, k, v *Tensor, opt AttentionOptions) (out, lse *Tensor, err error) {
	s := statAttention
	if err := checkIn(s, q, k, v); err != nil {
		return nil, nil, err
	}
	a, err := attentionGeometry(s.name, q, k, v, opt)
	if err != nil {
		return nil, nil, err
	}
	sc := scopeOf(q, k, v)
	out = newAttentionResult(sc, a.batch, a.l, a.ev)
	lse = newUninit(sc, append(append([]int(nil), a.batch...), a.l))
	if len(a.batch) == 2 { // ATen's layout again: [B, L, H] memory
		b, h := a.batch[0], a.batch[1]
		lse = lse.view([]int{b, h, a.l}, []int{a.l * h, 1, h}, 0)
	}
	if a.nb*a.l == 0 {
		return out, lse, nil
	}
	qm, km, vm, om := headMatsOf(q), headMatsOf(k), headMatsOf(v), headMatsOf(out)
	loff, lst := batchOffsets(a.batch, lse.strides, lse.offset), lse.strides[len(a.batch)]
	ld, be := lse.storage.data, kernels.WithThreads(kernels.Default(), 1)
	parallelSpans(a.nb, func(lo, hi int) {
		kt, p := make([]float32, a.e*a.s), make([]float32, attnBlock*a.s) // Kᵀ, a block of scores
		for i := lo; i < hi; i++ {
			transposeInto(kt, km.at(i, 0), a.s, a.e, km.ld)
			for i0 := 0; i0 < a.l; i0 += attnBlock {
				rows, nc := min(attnBlock, a.l-i0), a.keys(i0)
				attnGemm(be, false, rows, nc, a.e, qm.at(i, i0*qm.ld), qm.ld, kt, a.s, p, a.s)
				for r := range rows {
					ld[loff[i]+(i0+r)*lst] = softmaxScaledRow(p[r*a.s:(r+1)*a.s], a.width(i0+r), a.scale)
				}
				attnGemm(be, false, rows, a.ev, nc, p, a.s, vm.at(i, 0), vm.ld, om.at(i, i0*om.ld), om.ld)
			}
		}
	})
	return out, lse, nil
}

// ScaledDotProductAttentionBackward returns the gradients of
// ScaledDotProductAttention with respect to q, k and v, given the upstream
// gradient g, the forward pass's out and lse, and the same options (a
// rank-4 gradient is laid out as ATen's, see newAttentionResult). The
// attention probabilities are recomputed from q, k and lse, P =
// exp(scale·q·kᵀ - lse), and dS = P ⊙ (dP - Σ P·dP)·scale from dP = g·vᵀ
// (Σ P·dP is Σ g·out, which out is not read for); then dQ = dS·k, dK =
// dSᵀ·q and dV = Pᵀ·g, per batch entry on the operands in place, as the
// forward pass.
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
	sc := scopeOf(g, q, k, v, out, lse)
	gq = newAttentionResult(sc, a.batch, a.l, a.e)
	gk = newAttentionResult(sc, a.batch, a.s, a.e)
	gv = newAttentionResult(sc, a.batch, a.s, a.ev)
	if a.nb*a.s == 0 {
		clear(gq.storage.data) // no keys: no gradient for q
		return gq, gk, gv, nil
	}
	if lsh := append(append([]int(nil), a.batch...), a.l); !EqualShape(lse.shape, lsh) {
		lse = fromData(sc, values(lse), lsh)
	}
	loff, lst := batchOffsets(a.batch, lse.strides, lse.offset), lse.strides[len(a.batch)]
	qm, km, vm, gm := headMatsOf(q), headMatsOf(k), headMatsOf(v), headMatsOf(g)
	gqm, gkm, gvm := headMatsOf(gq), headMatsOf(gk), headMatsOf(gv)
	ld, be := lse.storage.data, kernels.WithThreads(kernels.Default(), 1)
	t, sl := a.l, a.s
	parallelSpans(a.nb, func(lo, hi int) {
		kt, vt := make([]float32, a.e*sl), make([]float32, a.ev*sl) // Kᵀ, Vᵀ
		p, ds, tmp := make([]float32, t*sl), make([]float32, t*sl), make([]float32, sl)
		for i := lo; i < hi; i++ {
			transposeInto(kt, km.at(i, 0), sl, a.e, km.ld)
			transposeInto(vt, vm.at(i, 0), sl, a.ev, vm.ld)
			for i0 := 0; i0 < t; i0 += attnBlock {
				rows, nc := min(attnBlock, t-i0), a.keys(i0)
				attnGemm(be, false, rows, nc, a.e, qm.at(i, i0*qm.ld), qm.ld, kt, sl, p[i0*sl:], sl)   // scores
				attnGemm(be, false, rows, nc, a.ev, gm.at(i, i0*gm.ld), gm.ld, vt, sl, ds[i0*sl:], sl) // dP = g·Vᵀ
				for r := i0; r < i0+rows; r++ {
					w, prow, drow := a.width(r), p[r*sl:(r+1)*sl], ds[r*sl:(r+1)*sl]
					probRow(prow, w, float32(a.scale), ld[loff[i]+r*lst])
					softmaxGradRow(prow, drow, tmp, w, a.scale)
				}
				attnGemm(be, false, rows, a.e, nc, ds[i0*sl:], sl, km.at(i, 0), km.ld, gqm.at(i, i0*gqm.ld), gqm.ld) // dQ = dS·K
			}
			// dK = dSᵀ·Q and dV = Pᵀ·g by blocks of keys: causal columns
			// of P and dS are zero above the diagonal.
			for j0 := 0; j0 < sl; j0 += attnBlock {
				rows, from := min(attnBlock, sl-j0), 0
				if a.causal {
					from = min(j0, t)
				}
				n := t - from
				attnGemm(be, true, rows, a.e, n, ds[min(from*sl+j0, len(ds)):], sl, qm.at(i, from*qm.ld), qm.ld, gkm.at(i, j0*gkm.ld), gkm.ld)
				attnGemm(be, true, rows, a.ev, n, p[min(from*sl+j0, len(p)):], sl, gm.at(i, from*gm.ld), gm.ld, gvm.at(i, j0*gvm.ld), gvm.ld)
			}
		}
	})
	return gq, gk, gv, nil
}

// probRow recomputes a row of attention probabilities from its scores and
// the row's log-sum-exp: exp(scale·s - lse) for the first w, zero after
// (over w rounded up to the vector width, as softmaxScaledRow).
func probRow(row []float32, w int, scale, lse float32) {
	wr := min(len(row), (w+15)&^15)
	kernels.VecMulScalar(row[:wr], row[:wr], scale)
	kernels.VecSubScalar(row[:wr], row[:wr], lse)
	kernels.VecExp(row[:wr], row[:wr])
	clear(row[w:])
}
