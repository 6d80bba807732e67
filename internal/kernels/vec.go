package kernels

import (
	"math"
	"os"
	"sync/atomic"
)

// Vectorised elementwise, reduction and optimizer kernels on contiguous
// float32 slices. Each function has a pure-Go reference (the ...Go
// functions below); on amd64 with AVX2 an assembly version (vec_amd64.s)
// processes the bulk 8 lanes at a time and the Go reference does the tail.
// The assembly uses separate multiply and add instructions (no FMA) and
// correctly rounded VDIVPS/VSQRTPS, so it computes exactly what the Go
// reference computes, bit for bit, except possibly the payload or sign of
// a NaN produced from two NaN operands.
//
// The vector path is chosen at start-up: AVX2 when the CPU (and OS)
// support it, unless GORCH_KERNEL=go, which forces the pure-Go path here as
// it does for GEMM. SetVecAccel switches it at run time (benchmarks, tests).

var vecOn atomic.Bool

func init() { vecOn.Store(vecCPU() && os.Getenv(EnvKernel) != "go") }

// VecAccel reports whether the vector (assembly) path is in use.
func VecAccel() bool { return vecOn.Load() }

// SetVecAccel turns the vector path on (if the CPU supports it) or off and
// returns the previous setting. Results do not change (see above); only
// speed does.
func SetVecAccel(on bool) bool { return vecOn.Swap(on && vecCPU()) }

// VecAdd sets dst[i] = x[i] + y[i] for i < len(dst); x and y must be at
// least as long as dst.
func VecAdd(dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	n := 0
	if vecOn.Load() && len(dst) >= 8 {
		n = len(dst) &^ 7
		vaddAVX2(&dst[0], &x[0], &y[0], n)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = x[i] + y[i]
	}
}

// VecSub sets dst[i] = x[i] - y[i].
func VecSub(dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	n := 0
	if vecOn.Load() && len(dst) >= 8 {
		n = len(dst) &^ 7
		vsubAVX2(&dst[0], &x[0], &y[0], n)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = x[i] - y[i]
	}
}

// VecMul sets dst[i] = x[i] · y[i].
func VecMul(dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	n := 0
	if vecOn.Load() && len(dst) >= 8 {
		n = len(dst) &^ 7
		vmulAVX2(&dst[0], &x[0], &y[0], n)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = x[i] * y[i]
	}
}

// VecAddScalar sets dst[i] = x[i] + c.
func VecAddScalar(dst, x []float32, c float32) {
	x = x[:len(dst)]
	n := 0
	if vecOn.Load() && len(dst) >= 8 {
		n = len(dst) &^ 7
		vaddsAVX2(&dst[0], &x[0], c, n)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = x[i] + c
	}
}

// VecSubScalar sets dst[i] = x[i] - c.
func VecSubScalar(dst, x []float32, c float32) {
	x = x[:len(dst)]
	n := 0
	if vecOn.Load() && len(dst) >= 8 {
		n = len(dst) &^ 7
		vsubsAVX2(&dst[0], &x[0], c, n)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = x[i] - c
	}
}

// VecScalarSub sets dst[i] = c - x[i].
func VecScalarSub(dst, x []float32, c float32) {
	x = x[:len(dst)]
	n := 0
	if vecOn.Load() && len(dst) >= 8 {
		n = len(dst) &^ 7
		vrsubsAVX2(&dst[0], &x[0], c, n)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = c - x[i]
	}
}

// VecMulScalar sets dst[i] = x[i] · c.
func VecMulScalar(dst, x []float32, c float32) {
	x = x[:len(dst)]
	n := 0
	if vecOn.Load() && len(dst) >= 8 {
		n = len(dst) &^ 7
		vmulsAVX2(&dst[0], &x[0], c, n)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = x[i] * c
	}
}

// VecRelu sets dst[i] = max(x[i], 0) (Go's max: NaN stays NaN, -0 gives +0).
func VecRelu(dst, x []float32) {
	x = x[:len(dst)]
	n := 0
	if vecOn.Load() && len(dst) >= 8 {
		n = len(dst) &^ 7
		vreluAVX2(&dst[0], &x[0], n)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = max(x[i], 0)
	}
}

// VecReluBackward sets dst[i] = g[i] where x[i] > 0 and +0 elsewhere
// (including where x[i] is NaN).
func VecReluBackward(dst, g, x []float32) {
	g, x = g[:len(dst)], x[:len(dst)]
	n := 0
	if vecOn.Load() && len(dst) >= 8 {
		n = len(dst) &^ 7
		vreluBackAVX2(&dst[0], &g[0], &x[0], n)
	}
	for i := n; i < len(dst); i++ {
		if x[i] > 0 {
			dst[i] = g[i]
		} else {
			dst[i] = 0
		}
	}
}

// VecAccumF64 adds float64(x[i]) to acc[i] for i < len(acc). Each element
// is one separately rounded float64 addition, so the result does not depend
// on the path.
func VecAccumF64(acc []float64, x []float32) {
	x = x[:len(acc)]
	n := 0
	if vecOn.Load() && len(acc) >= 4 {
		n = len(acc) &^ 3
		vaccF64AVX2(&acc[0], &x[0], n)
	}
	for i := n; i < len(acc); i++ {
		acc[i] += float64(x[i])
	}
}

// VecSumF64 returns the sum of x in float64 in a fixed order: 16 lane sums
// (lane l sums x[l], x[l+16], …), the tail added to lanes 0…, then the lanes
// combined pairwise. Both paths use this order, so the result depends only
// on x.
func VecSumF64(x []float32) float64 {
	var lanes [16]float64
	n := len(x) &^ 15
	if n > 0 {
		if vecOn.Load() {
			vsumF64AVX2(&x[0], n, &lanes)
		} else {
			for i := 0; i < n; i += 16 {
				c := x[i : i+16 : i+16]
				for l := range lanes {
					lanes[l] += float64(c[l])
				}
			}
		}
	}
	for i, l := n, 0; i < len(x); i, l = i+1, l+1 {
		lanes[l] += float64(x[i])
	}
	for w := 8; w >= 1; w /= 2 {
		for l := range w {
			lanes[l] += lanes[l+w]
		}
	}
	return lanes[0]
}

// AdamParams are the per-step float32 constants of an Adam update (see
// AdamUpdate); they are computed by the caller exactly as pkg/optim does.
type AdamParams struct {
	W1       float32 // 1-β₁
	B2       float32 // β₂
	W2       float32 // 1-β₂
	Eps      float32
	BC2Sqrt  float32 // √(1-β₂ᵗ)
	StepSize float32 // lr/(1-β₁ᵗ)
}

// AdamUpdate applies one Adam step to p with gradient g and moments m, v
// (all at least len(p) long), element by element:
//
//	m ← m + w1·(g-m)          (w1 < 0.5; else g - (g-m)·(1-w1), torch.lerp)
//	v ← v·β₂ + w2·g·g
//	p ← p + (-stepSize)·(m / (√v/bc2Sqrt + eps))
//
// with every operation rounded to float32 separately (no fused
// multiply-add), so both paths give identical results on every machine.
func AdamUpdate(p, g, m, v []float32, a AdamParams) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	n := 0
	if vecOn.Load() && len(p) >= 8 {
		n = len(p) &^ 7
		hi, w := 0, a.W1
		if !(a.W1 < 0.5) {
			hi, w = 1, 1-a.W1
		}
		adamAVX2(&p[0], &g[0], &m[0], &v[0], n, hi, w, a.B2, a.W2, a.Eps, a.BC2Sqrt, -a.StepSize)
	}
	adamGo(p[n:], g[n:], m[n:], v[n:], a)
}

// adamGo is the scalar reference of AdamUpdate. The explicit float32
// conversions keep the compiler from fusing multiply-adds.
func adamGo(p, g, m, v []float32, a AdamParams) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	w1, b2, w2, eps, bc2Sqrt, stepSize := a.W1, a.B2, a.W2, a.Eps, a.BC2Sqrt, a.StepSize
	if w1 < 0.5 {
		for i, gi := range g {
			m[i] += float32(w1 * (gi - m[i]))
		}
	} else {
		for i, gi := range g {
			m[i] = gi - float32((gi-m[i])*(1-w1))
		}
	}
	for i, gi := range g {
		vi := float32(v[i]*b2) + float32(w2*gi*gi)
		v[i] = vi
		denom := float32(math.Sqrt(float64(vi)))/bc2Sqrt + eps
		p[i] += float32(-stepSize * (m[i] / denom))
	}
}

// SGDParams are the float32 constants of an SGD step (see SGDUpdate).
type SGDParams struct {
	LR, WeightDecay, Momentum float32
	Damp                      float32 // 1 - dampening
	Nesterov                  bool
}

const (
	sgdWD = 1 << iota
	sgdMomentum
	sgdNesterov
)

// SGDUpdate applies one SGD step (not the first step of a momentum
// buffer, which pkg/optim handles) to p with gradient g and, when
// s.Momentum != 0, momentum buffer buf, element by element:
//
//	d ← g + wd·p (when wd != 0)
//	buf ← buf·momentum + damp·d; d ← d + momentum·buf (Nesterov) or buf
//	p ← p + (-lr)·d
//
// with every operation rounded to float32 separately.
func SGDUpdate(p, g, buf []float32, s SGDParams) {
	flags := 0
	if s.WeightDecay != 0 {
		flags |= sgdWD
	}
	if s.Momentum != 0 {
		flags |= sgdMomentum
		buf = buf[:len(p)]
		if s.Nesterov {
			flags |= sgdNesterov
		}
	}
	g = g[:len(p)]
	n := 0
	if vecOn.Load() && len(p) >= 8 {
		n = len(p) &^ 7
		var b0 *float32
		if flags&sgdMomentum != 0 {
			b0 = &buf[0]
		}
		sgdAVX2(&p[0], &g[0], b0, n, flags, s.WeightDecay, s.Momentum, s.Damp, -s.LR)
	}
	if flags&sgdMomentum != 0 {
		buf = buf[n:]
	}
	sgdGo(p[n:], g[n:], buf, flags, s)
}

// sgdGo is the scalar reference of SGDUpdate.
func sgdGo(p, g, buf []float32, flags int, s SGDParams) {
	lr, wd, mom, damp := s.LR, s.WeightDecay, s.Momentum, s.Damp
	for i := range p {
		d := g[i]
		if flags&sgdWD != 0 {
			d += float32(wd * p[i])
		}
		if flags&sgdMomentum != 0 {
			buf[i] = float32(buf[i]*mom) + float32(damp*d)
			if flags&sgdNesterov != 0 {
				d += float32(mom * buf[i])
			} else {
				d = buf[i]
			}
		}
		p[i] += float32(-lr * d)
	}
}
