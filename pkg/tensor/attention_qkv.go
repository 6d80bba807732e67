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
	be := kernels.WithThreads(kernels.Default(), 1)
	t, d3 := a.t, 3*a.d
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

// softmaxScaledRow replaces the first w scores of row by softmax(scale·s)
// and zeroes the rest, computing what ScaledDotProductAttention's rows
// compute. The exponentials run over w rounded up to the vector width
// (the padding holds zeros, whose exponentials are then dropped), so that
// short causal rows do not fall to the scalar Expf for their tails.
func softmaxScaledRow(row []float32, w int, scale float64) {
	m := math.Inf(-1)
	if scale > 0 { // max(scale·s) = scale·max(s); NaN compares false and is caught below
		mx := float32(math.Inf(-1))
		for _, x := range row[:w] {
			if x > mx {
				mx = x
			}
		}
		m = float64(mx) * scale
	} else {
		for _, x := range row[:w] {
			if v := float64(x) * scale; v > m {
				m = v
			}
		}
	}
	for j, x := range row[:w] {
		if x != x {
			m = math.NaN() // as ScaledDotProductAttention: a NaN score makes the row NaN
		}
		row[j] = float32(float64(x)*scale - m)
	}
	wr := min(len(row), (w+15)&^15)
	clear(row[w:wr])
	kernels.VecExp(row[:wr], row[:wr])
	var sum float64
	for _, e := range row[:w] {
		sum += float64(e)
	}
	inv := 1 / sum
	for j, e := range row[:w] {
		row[j] = float32(float64(e) * inv)
	}
	clear(row[w:])
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
	be := kernels.WithThreads(kernels.Default(), 1)
	t, d3 := a.t, 3*a.d
	parallelFor(a.b*a.h, func(i int) {
		bi, hi := i/a.h, i%a.h
		base := bi*t*d3 + hi*a.e
		gh := gd[bi*t*a.d+hi*a.e:] // this head's dO, row stride D
		p, ds := pd[i*t*t:(i+1)*t*t], dd[i*t*t:(i+1)*t*t]
		be.Sgemm(true, false, t, a.e, t, 1, p, t, gh, a.d, 0, gxd[base+2*a.d:], d3) // dV = Pᵀ·dO
		be.Sgemm(false, true, t, t, a.e, 1, gh, a.d, x[base+2*a.d:], d3, 0, ds, t)  // dP = dO·Vᵀ
		for r := range t {
			prow, drow := p[r*t:(r+1)*t], ds[r*t:(r+1)*t]
			w := a.width(r)
			var delta float64 // Σ dP·P over the row
			for j, pv := range prow[:w] {
				delta += float64(pv) * float64(drow[j])
			}
			for j, pv := range prow[:w] {
				drow[j] = float32(float64(pv) * (float64(drow[j]) - delta) * a.scale)
			}
			clear(drow[w:])
		}
		be.Sgemm(false, false, t, a.e, t, 1, ds, t, x[base+a.d:], d3, 0, gxd[base:], d3) // dQ = dS·K
		be.Sgemm(true, false, t, a.e, t, 1, ds, t, x[base:], d3, 0, gxd[base+a.d:], d3)  // dK = dSᵀ·Q
	})
	return gx, nil
}
