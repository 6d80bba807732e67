package tensor

import (
	"math"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
)

// geluTanhK is √(2/π), the scale inside GELU's tanh approximation.
var geluTanhK = math.Sqrt(2 / math.Pi)

// geluTanh is GELU's tanh approximation, torch's approximate="tanh":
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
func geluTanh(x float32) float32 {
	v := float64(x)
	return float32(0.5 * v * (1 + math.Tanh(geluTanhK*(v+0.044715*v*v*v))))
}

// geluTanhGrad is the derivative of geluTanh at x.
func geluTanhGrad(x float32) float32 {
	v := float64(x)
	t := math.Tanh(geluTanhK * (v + 0.044715*v*v*v))
	return float32(0.5*(1+t) + 0.5*v*(1-t*t)*geluTanhK*(1+3*0.044715*v*v))
}

var (
	opGeluTanh = newUnary("gelu_tanh", geluTanh)
	opRsqrt    = newUnary("rsqrt", func(x float32) float32 { return float32(1 / math.Sqrt(float64(x))) })

	statGeluBackward    = stat("gelu_backward")
	opGeluBackward      = &binaryOp{stat: statGeluBackward, f: func(g, x float32) float32 { return g * kernels.GeluGrad(x) }, fast: kernels.VecGeluBackward}
	opGeluTanhBackward  = &binaryOp{stat: statGeluBackward, f: func(g, x float32) float32 { return g * geluTanhGrad(x) }}
	statDropout         = stat("dropout")
	statDropoutBackward = stat("dropout_backward")
)

// GeluTanh returns GELU's tanh approximation of t elementwise, as
// torch.nn.functional.gelu(t, approximate="tanh").
func GeluTanh(t *Tensor) (*Tensor, error) { return opGeluTanh.apply(t) }

// GeluBackward returns g·GELU'(x) in one pass, as torch's gelu_backward;
// tanh selects the derivative of the tanh approximation instead of the
// exact (erf) GELU. g and x broadcast together.
func GeluBackward(g, x *Tensor, tanh bool) (*Tensor, error) {
	op, rows := opGeluBackward, kernels.VecGeluBackward
	if tanh {
		op, rows = opGeluTanhBackward, func(dst, g, x []float32) {
			for i := range dst {
				dst[i] = g[i] * geluTanhGrad(x[i])
			}
		}
	}
	if g == nil || x == nil || !g.IsContiguous() || !x.IsContiguous() || !EqualShape(g.shape, x.shape) {
		return op.apply(g, x)
	}
	// The common case (a [tokens, hidden] activation), in chunks over the
	// cores, each through the vector kernel.
	if err := check(op.stat, g, x); err != nil {
		return nil, err
	}
	out := newUninit(scopeOf(g, x), x.shape) // the kernel writes every element
	n := len(out.storage.data)
	dst, gd, xd := out.storage.data, g.storage.data[g.offset:g.offset+n], x.storage.data[x.offset:x.offset+n]
	const chunk = 1 << 14
	parallelRows((n+chunk-1)/chunk, chunk, func(c int) {
		lo, hi := c*chunk, min(n, (c+1)*chunk)
		rows(dst[lo:hi], gd[lo:hi], xd[lo:hi])
	})
	return out, nil
}

// Rsqrt returns 1/√t elementwise.
func Rsqrt(t *Tensor) (*Tensor, error) { return opRsqrt.apply(t) }

// Dropout zeroes each element of x with probability p and scales the
// others by 1/(1-p), as torch.native_dropout in training mode. It returns
// the output and the keep mask (1 where kept, 0 where dropped), drawn from
// rng as Bernoulli(rng, 1-p, x's shape) would draw it. p = 1 drops all.
func Dropout(x *Tensor, p float32, rng *RNG) (out, mask *Tensor, err error) {
	s := statDropout
	if err := checkIn(s, x); err != nil {
		return nil, nil, err
	}
	if !(p >= 0 && p <= 1) {
		return nil, nil, errs.New(errs.Argument, s.name, "probability %v is outside [0, 1]", p)
	}
	if rng == nil {
		return nil, nil, errs.New(errs.Argument, s.name, "nil RNG")
	}
	if mask, err = Bernoulli(rng, 1-p, x.shape...); err != nil {
		return nil, nil, err
	}
	var scale float32
	if p < 1 {
		scale = 1 / (1 - p)
	}
	out, err = DropoutBackward(x, mask, scale)
	return out, mask, err
}

// DropoutBackward returns g·mask·scale in one pass, as torch's
// native_dropout_backward (scale is 1/(1-p)); g and mask broadcast.
func DropoutBackward(g, mask *Tensor, scale float32) (*Tensor, error) {
	op := binaryOp{stat: statDropoutBackward, f: func(x, m float32) float32 { return x * m * scale }}
	return op.apply(g, mask)
}
