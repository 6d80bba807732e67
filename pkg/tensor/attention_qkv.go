package tensor

import (
	"math"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
)

var (
	statAttentionQKV         = stat("attention_qkv")
	statAttentionQKVBackward = stat("attention_qkv_backward")
)

// qkvAttention is the validated geometry of an AttentionQKV call: batch b,
// sequence length t, model width d split into h heads of e features.
type qkvAttention struct {
	b, t, d, h, e int
	scale         float64
	causal        bool
}

func qkvGeometry(op string, qkv *Tensor, heads int, opt AttentionOptions) (qkvAttention, error) {
	if len(qkv.shape) != 3 || qkv.shape[2]%3 != 0 {
		return qkvAttention{}, errs.New(errs.Shape, op, "input must be [B, T, 3·D], got %v", qkv.shape)
	}
	d := qkv.shape[2] / 3
	if heads <= 0 || d%heads != 0 {
		return qkvAttention{}, errs.New(errs.Argument, op, "width %d is not a positive multiple of %d heads", d, heads)
	}
	if math.IsNaN(float64(opt.Scale)) || math.IsInf(float64(opt.Scale), 0) {
		return qkvAttention{}, errs.New(errs.Argument, op, "scale %v is not finite", opt.Scale)
	}
	a := qkvAttention{b: qkv.shape[0], t: qkv.shape[1], d: d, h: heads, e: d / heads, scale: float64(opt.Scale), causal: opt.Causal}
	if a.scale == 0 {
		a.scale = 1 / math.Sqrt(float64(max(a.e, 1)))
	}
	return a, nil
}

// width returns how many keys row r of a score matrix attends to.
func (a qkvAttention) width(r int) int {
	if a.causal {
		return r + 1
	}
	return a.t
}

// AttentionQKV is multi-head self-attention on the packed projections qkv
// [B, T, 3·D] of a transformer block: queries in columns [0, D), keys in
// [D, 2·D), values in [2·D, 3·D), each split into heads of E = D/heads
// columns. It returns the heads' outputs side by side, [B, T, D], which is
// torch's
//
//	q, k, v = qkv.split(D, dim=2)  # each viewed [B, T, heads, E].transpose(1, 2)
//	y = scaled_dot_product_attention(q, k, v, is_causal=opt.Causal, scale=opt.Scale)
//	y.transpose(1, 2).reshape(B, T, D)
//
// computed per (batch, head) on the strided slices of qkv, with no copies
// of q, k, v or y. It also returns the attention probabilities [B, heads,
// T, T] (zero where masked), which AttentionQKVBackward takes. The softmax
// is computed as ScaledDotProductAttention's: exponentials in float32,
// their sum in float64.
func AttentionQKV(qkv *Tensor, heads int, opt AttentionOptions) (out, probs *Tensor, err error) {
	s := statAttentionQKV
	if err := checkIn(s, qkv); err != nil {
		return nil, nil, err
	}
	a, err := qkvGeometry(s.name, qkv, heads, opt)
	if err != nil {
		return nil, nil, err
	}
	sc := scopeOf(qkv)
	out = newUninit(sc, []int{a.b, a.t, a.d})
	probs = newUninit(sc, []int{a.b, a.h, a.t, a.t})
	if a.b*a.t*a.d == 0 {
		return out, probs, nil
	}
	x, od, pd := qkv.Data(), out.storage.data, probs.storage.data
	t, d3 := a.t, 3*a.d
	if kernels.SmallGemmOK(t) && kernels.SmallGemmOK(a.e) {
		kt := newUninit(sc, []int{a.b * a.h, a.e, t}).storage.data // each head's Kᵀ
		parallelFor(a.b*a.h, func(i int) {
			bi, hi := i/a.h, i%a.h
			base := bi*t*d3 + hi*a.e
			q, k, v := x[base:], x[base+a.d:], x[base+2*a.d:]
			p, kth := pd[i*t*t:(i+1)*t*t], kt[i*a.e*t:(i+1)*a.e*t]
			transposeInto(kth, k, t, a.e, d3)
			o := od[bi*t*a.d+hi*a.e:]
			for i0 := 0; i0 < t; i0 += attnBlock {
				rows, nc := min(attnBlock, t-i0), a.keys(i0)
				kernels.SmallGemm(false, rows, nc, a.e, q[i0*d3:], d3, kth, t, p[i0*t:], t)
				for r := i0; r < i0+rows; r++ {
					softmaxScaledRow(p[r*t:(r+1)*t], a.width(r), a.scale)
				}
				kernels.SmallGemm(false, rows, a.e, nc, p[i0*t:], t, v, d3, o[i0*a.d:], a.d)
			}
		})
		return out, probs, nil
	}
	be := kernels.WithThreads(kernels.Default(), 1)
	parallelFor(a.b*a.h, func(i int) {
		bi, hi := i/a.h, i%a.h
		base := bi*t*d3 + hi*a.e
		p := pd[i*t*t : (i+1)*t*t]
		be.Sgemm(false, true, t, t, a.e, 1, x[base:], d3, x[base+a.d:], d3, 0, p, t)
		for r := range t {
			softmaxScaledRow(p[r*t:(r+1)*t], a.width(r), a.scale)
		}
		be.Sgemm(false, false, t, a.e, t, 1, p, t, x[base+2*a.d:], d3, 0, od[bi*t*a.d+hi*a.e:], a.d)
	})
	return out, probs, nil
}

// attnBlock is how many query rows the blocked attention handles at a
// time: causal products skip the key columns after the block's last row.
const attnBlock = 16

// keys returns how many key columns the query rows from i0 to
// i0+attnBlock attend to (a multiple of 16 when t is).
func (a qkvAttention) keys(i0 int) int {
	if a.causal {
		return min(a.t, i0+attnBlock)
	}
	return a.t
}

// transposeInto writes the transpose of the rows×cols matrix src (row
// stride ld) into dst (cols×rows, contiguous), four source rows at a time.
func transposeInto(dst, src []float32, rows, cols, ld int) {
	r := 0
	for ; r+4 <= rows; r += 4 {
		s0, s1 := src[r*ld:r*ld+cols], src[(r+1)*ld:(r+1)*ld+cols]
		s2, s3 := src[(r+2)*ld:(r+2)*ld+cols], src[(r+3)*ld:(r+3)*ld+cols]
		s1, s2, s3 = s1[:len(s0)], s2[:len(s0)], s3[:len(s0)]
		for c, v := range s0 {
			d := dst[c*rows+r : c*rows+r+4 : c*rows+r+4]
			d[0], d[1], d[2], d[3] = v, s1[c], s2[c], s3[c]
		}
	}
	for ; r < rows; r++ {
		for c, v := range src[r*ld : r*ld+cols] {
			dst[c*rows+r] = v
		}
	}
}

// softmaxScaledRow replaces the first w scores of row by softmax(scale·s)
// and zeroes the rest, in float32 as PyTorch's CPU flash attention does
// (scale, subtract the maximum, exponentiate, normalise), with the sum of
// the exponentials in float64. It returns the row's log-sum-exp, m +
// log(sum) for the maximum m of scale·s (-Inf when w is 0), which
// ScaledDotProductAttention hands to its backward pass. The vector
// kernels run over w rounded up to the vector width (within the row), so
// that short causal rows do not fall to scalar tails: the padding's values
// are cleared at the end.
func softmaxScaledRow(row []float32, w int, scale float64) float32 {
	if lse, ok := kernels.AttnSoftmaxRowLSE(row, w, float32(scale)); ok {
		return lse
	}
	wr := min(len(row), (w+15)&^15)
	// The maximum skips NaN scores; they still make the row NaN through
	// the sum of the exponentials.
	if scale <= 0 {
		kernels.VecMulScalar(row[:wr], row[:wr], float32(scale))
	}
	m := float32(math.Inf(-1))
	for _, x := range row[:w] {
		if x > m {
			m = x
		}
	}
	if scale > 0 { // max(scale·s) = scale·max(s)
		kernels.VecMulScalar(row[:wr], row[:wr], float32(scale))
		m *= float32(scale)
	}
	kernels.VecSubScalar(row[:wr], row[:wr], m)
	clear(row[w:wr])
	kernels.VecExp(row[:wr], row[:wr])
	sum := kernels.VecSumF64(row[:w])
	kernels.VecMulScalar(row[:w], row[:w], float32(1/sum))
	clear(row[w:])
	return float32(float64(m) + math.Log(sum))
}

// softmaxGradRow turns row drow of dP into row of dS = P ⊙ (dP - Σ dP·P)·scale
// for the matching row prow of P, w of whose entries are unmasked; tmp
// holds at least w values of scratch.
func softmaxGradRow(prow, drow, tmp []float32, w int, scale float64) {
	if kernels.AttnSoftmaxGradRow(prow, drow, w, float32(scale)) {
		return
	}
	wr := min(len(prow), (w+15)&^15)
	kernels.VecMul(tmp[:w], prow[:w], drow[:w])
	delta := float32(kernels.VecSumF64(tmp[:w]))
	kernels.VecSubScalar(drow[:wr], drow[:wr], delta)
	kernels.VecMul(drow[:wr], drow[:wr], prow[:wr])
	kernels.VecMulScalar(drow[:wr], drow[:wr], float32(scale))
	clear(drow[w:])
}

// AttentionQKVBackward returns the gradient of AttentionQKV with respect
// to qkv, [B, T, 3·D], for the upstream gradient g [B, T, D], given the
// forward pass's probabilities and the same heads and options.
func AttentionQKVBackward(g, qkv, probs *Tensor, heads int, opt AttentionOptions) (*Tensor, error) {
	s := statAttentionQKVBackward
	if err := checkIn(s, g, qkv, probs); err != nil {
		return nil, err
	}
	a, err := qkvGeometry(s.name, qkv, heads, opt)
	if err != nil {
		return nil, err
	}
	if !EqualShape(g.shape, []int{a.b, a.t, a.d}) || !EqualShape(probs.shape, []int{a.b, a.h, a.t, a.t}) {
		return nil, errs.New(errs.Shape, s.name, "gradient %v and probabilities %v do not match input %v with %d heads", g.shape, probs.shape, qkv.shape, heads)
	}
	sc := scopeOf(g, qkv, probs)
	gx := newUninit(sc, qkv.shape) // the dQ, dK and dV products cover every element
	if a.b*a.t*a.d == 0 {
		return gx, nil
	}
	scratch := newUninit(sc, probs.shape)
	x, gd, pd, dd, gxd := qkv.Data(), g.Data(), probs.Data(), scratch.storage.data, gx.storage.data
	t, d3 := a.t, 3*a.d
	if kernels.SmallGemmOK(t) && kernels.SmallGemmOK(a.e) {
		vt := newUninit(sc, []int{a.b * a.h, a.e, t}).storage.data // each head's Vᵀ
		parallelFor(a.b*a.h, func(i int) {
			bi, hi := i/a.h, i%a.h
			base := bi*t*d3 + hi*a.e
			q, k, v := x[base:], x[base+a.d:], x[base+2*a.d:]
			gq, gk, gv := gxd[base:], gxd[base+a.d:], gxd[base+2*a.d:]
			gh := gd[bi*t*a.d+hi*a.e:] // this head's dO, row stride D
			p, ds, vth := pd[i*t*t:(i+1)*t*t], dd[i*t*t:(i+1)*t*t], vt[i*a.e*t:(i+1)*a.e*t]
			transposeInto(vth, v, t, a.e, d3)
			tmp := make([]float32, t)
			for i0 := 0; i0 < t; i0 += attnBlock {
				rows, nc := min(attnBlock, t-i0), a.keys(i0)
				kernels.SmallGemm(false, rows, nc, a.e, gh[i0*a.d:], a.d, vth, t, ds[i0*t:], t) // dP = dO·Vᵀ
				for r := i0; r < i0+rows; r++ {
					softmaxGradRow(p[r*t:(r+1)*t], ds[r*t:(r+1)*t], tmp, a.width(r), a.scale)
				}
				kernels.SmallGemm(false, rows, a.e, nc, ds[i0*t:], t, k, d3, gq[i0*d3:], d3) // dQ = dS·K
			}
			// dK = dSᵀ·Q and dV = Pᵀ·dO by key rows: causal rows of Pᵀ
			// and dSᵀ start at the diagonal.
			for j0 := 0; j0 < t; j0 += attnBlock {
				rows, from := min(attnBlock, t-j0), 0
				if a.causal {
					from = j0
				}
				kernels.SmallGemm(true, rows, a.e, t-from, ds[from*t+j0:], t, q[from*d3:], d3, gk[j0*d3:], d3)
				kernels.SmallGemm(true, rows, a.e, t-from, p[from*t+j0:], t, gh[from*a.d:], a.d, gv[j0*d3:], d3)
			}
		})
		return gx, nil
	}
	be := kernels.WithThreads(kernels.Default(), 1)
	parallelFor(a.b*a.h, func(i int) {
		bi, hi := i/a.h, i%a.h
		base := bi*t*d3 + hi*a.e
		gh := gd[bi*t*a.d+hi*a.e:] // this head's dO, row stride D
		p, ds, tmp := pd[i*t*t:(i+1)*t*t], dd[i*t*t:(i+1)*t*t], make([]float32, t)
		be.Sgemm(true, false, t, a.e, t, 1, p, t, gh, a.d, 0, gxd[base+2*a.d:], d3) // dV = Pᵀ·dO
		be.Sgemm(false, true, t, t, a.e, 1, gh, a.d, x[base+2*a.d:], d3, 0, ds, t)  // dP = dO·Vᵀ
		for r := range t {
			softmaxGradRow(p[r*t:(r+1)*t], ds[r*t:(r+1)*t], tmp, a.width(r), a.scale)
		}
		be.Sgemm(false, false, t, a.e, t, 1, ds, t, x[base+a.d:], d3, 0, gxd[base:], d3) // dQ = dS·K
		be.Sgemm(true, false, t, a.e, t, 1, ds, t, x[base:], d3, 0, gxd[base+a.d:], d3)  // dK = dSᵀ·Q
	})
	return gx, nil
}
