package tensor

import (
	"math"
	"sort"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
)

// unaryOp is an elementwise function of one tensor.
type unaryOp struct {
	stat *opStat
	f    func(x float32) float32
	// fast, if set, computes dst[i] = f(src[i]) over whole contiguous
	// slices (a vectorised kernel with the same results).
	fast func(dst, src []float32)
}

func (u *unaryOp) apply(t *Tensor) (*Tensor, error) {
	if err := check(u.stat, t); err != nil {
		return nil, err
	}
	out := newUninit(t.Scope(), t.shape)
	dst, src, f := out.storage.data, t.storage.data, u.f
	if u.fast != nil && t.IsContiguous() {
		u.fast(dst, src[t.offset:t.offset+len(dst)])
		return out, nil
	}
	p := newRowPlan(t.shape, out.strides, t.strides)
	p.each([]int{0, t.offset}, func(offs []int) {
		d := dst[offs[0] : offs[0]+p.n]
		s, step := offs[1], p.inner[1]
		if step == 1 && u.fast != nil {
			u.fast(d, src[s:s+p.n])
			return
		}
		if step == 1 {
			s := src[s : s+p.n]
			for i := range d {
				d[i] = f(s[i])
			}
			return
		}
		for i := range d {
			d[i] = f(src[s])
			s += step
		}
	})
	return out, nil
}

func newUnary(name string, f func(float32) float32) *unaryOp {
	return &unaryOp{stat: stat(name), f: f}
}

func f32(f func(float64) float64) func(float32) float32 {
	return func(x float32) float32 { return float32(f(float64(x))) }
}

var (
	opNeg        = newUnary("neg", func(x float32) float32 { return -x })
	opExp        = newUnary("exp", f32(math.Exp))
	opLog        = newUnary("log", f32(math.Log))
	opSqrt       = newUnary("sqrt", f32(math.Sqrt))
	opAbs        = newUnary("abs", func(x float32) float32 { return float32(math.Abs(float64(x))) })
	opRelu       = &unaryOp{stat: stat("relu"), f: func(x float32) float32 { return max(x, 0) }, fast: kernels.VecRelu}
	opTanh       = newUnary("tanh", f32(math.Tanh))
	opSigmoid    = newUnary("sigmoid", sigmoid)
	opGelu       = &unaryOp{stat: stat("gelu"), f: kernels.Gelu, fast: kernels.VecGelu}
	opSign       = newUnary("sign", sign)
	opReciprocal = newUnary("reciprocal", func(x float32) float32 { return 1 / x })
	opSquare     = newUnary("square", func(x float32) float32 { return x * x })
)

func sigmoid(x float32) float32 {
	if x >= 0 {
		return float32(1 / (1 + math.Exp(-float64(x))))
	}
	e := math.Exp(float64(x))
	return float32(e / (1 + e))
}

func sign(x float32) float32 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// Neg returns -t elementwise.
func Neg(t *Tensor) (*Tensor, error) { return opNeg.apply(t) }

// Exp returns e^t elementwise.
func Exp(t *Tensor) (*Tensor, error) { return opExp.apply(t) }

// Log returns the natural logarithm of t elementwise.
func Log(t *Tensor) (*Tensor, error) { return opLog.apply(t) }

// Sqrt returns the square root of t elementwise.
func Sqrt(t *Tensor) (*Tensor, error) { return opSqrt.apply(t) }

// Abs returns |t| elementwise.
func Abs(t *Tensor) (*Tensor, error) { return opAbs.apply(t) }

// Relu returns max(t, 0) elementwise.
func Relu(t *Tensor) (*Tensor, error) { return opRelu.apply(t) }

// Tanh returns tanh(t) elementwise.
func Tanh(t *Tensor) (*Tensor, error) { return opTanh.apply(t) }

// Sigmoid returns 1/(1+e^-t) elementwise.
func Sigmoid(t *Tensor) (*Tensor, error) { return opSigmoid.apply(t) }

// Gelu returns the exact GELU of t elementwise.
func Gelu(t *Tensor) (*Tensor, error) { return opGelu.apply(t) }

// Sign returns -1, 0 or 1 elementwise.
func Sign(t *Tensor) (*Tensor, error) { return opSign.apply(t) }

// Reciprocal returns 1/t elementwise.
func Reciprocal(t *Tensor) (*Tensor, error) { return opReciprocal.apply(t) }

// Square returns t² elementwise.
func Square(t *Tensor) (*Tensor, error) { return opSquare.apply(t) }

var (
	statPowScalar = stat("pow_scalar")
	statAddScalar = stat("add_scalar")
	statMulScalar = stat("mul_scalar")
	statClamp     = stat("clamp")
)

func (t *Tensor) mapWith(s *opStat, f func(float32) float32) (*Tensor, error) {
	u := unaryOp{stat: s, f: f}
	return u.apply(t)
}

// mapFast is mapWith with a whole-slice kernel for contiguous rows.
func (t *Tensor) mapFast(s *opStat, f func(float32) float32, fast func(dst, src []float32)) (*Tensor, error) {
	u := unaryOp{stat: s, f: f, fast: fast}
	return u.apply(t)
}

// PowScalar returns t^p elementwise.
func PowScalar(t *Tensor, p float32) (*Tensor, error) {
	switch p {
	case 2:
		return t.mapWith(statPowScalar, func(x float32) float32 { return x * x })
	case 1:
		return t.mapWith(statPowScalar, func(x float32) float32 { return x })
	}
	return t.mapWith(statPowScalar, func(x float32) float32 { return float32(math.Pow(float64(x), float64(p))) })
}

// AddScalar returns t + c elementwise.
func AddScalar(t *Tensor, c float32) (*Tensor, error) {
	return t.mapFast(statAddScalar, func(x float32) float32 { return x + c },
		func(d, s []float32) { kernels.VecAddScalar(d, s, c) })
}

// MulScalar returns t · c elementwise.
func MulScalar(t *Tensor, c float32) (*Tensor, error) {
	return t.mapFast(statMulScalar, func(x float32) float32 { return x * c },
		func(d, s []float32) { kernels.VecMulScalar(d, s, c) })
}

// Clamp limits t to [lo, hi] elementwise. NaN in t stays NaN.
func Clamp(t *Tensor, lo, hi float32) (*Tensor, error) {
	if !(lo <= hi) {
		return nil, errs.New(errs.Argument, "clamp", "min %v is not at most max %v", lo, hi)
	}
	return t.mapWith(statClamp, func(x float32) float32 {
		if x < lo {
			return lo
		}
		if x > hi {
			return hi
		}
		return x
	})
}

// binaryOp is an elementwise function of two broadcast tensors.
type binaryOp struct {
	stat *opStat
	f    func(x, y float32) float32
	// fast, if set, computes dst[i] = f(x[i], y[i]) over whole slices;
	// fastXC computes dst[i] = f(x[i], c) and fastCY dst[i] = f(c, y[i])
	// (a row against a broadcast scalar).
	fast           func(dst, x, y []float32)
	fastXC, fastCY func(dst, x []float32, c float32)
}

func (b *binaryOp) apply(x, y *Tensor) (*Tensor, error) {
	if err := check(b.stat, x, y); err != nil {
		return nil, err
	}
	shape, err := broadcastShape(b.stat.name, x.shape, y.shape)
	if err != nil {
		return nil, err
	}
	if _, err := checkShape(b.stat.name, shape); err != nil {
		return nil, err
	}
	out := newUninit(scopeOf(x, y), shape)
	b.into(out, x, y)
	return out, nil
}

// into writes f(x, y) into out, which is contiguous with the broadcast shape.
func (b *binaryOp) into(out, x, y *Tensor) {
	dst, xs, ys, f := out.storage.data, x.storage.data, y.storage.data, b.f
	p := newRowPlan(out.shape, out.strides,
		broadcastStrides(x.shape, x.strides, out.shape),
		broadcastStrides(y.shape, y.strides, out.shape))
	p.each([]int{out.offset, x.offset, y.offset}, func(offs []int) {
		n := p.n
		d := dst[offs[0] : offs[0]+n]
		xo, yo, sx, sy := offs[1], offs[2], p.inner[1], p.inner[2]
		switch {
		case sx == 1 && sy == 1 && b.fast != nil:
			b.fast(d, xs[xo:xo+n], ys[yo:yo+n])
		case sx == 1 && sy == 1:
			xr, yr := xs[xo:xo+n], ys[yo:yo+n]
			for i := range d {
				d[i] = f(xr[i], yr[i])
			}
		case sx == 1 && sy == 0 && b.fastXC != nil:
			b.fastXC(d, xs[xo:xo+n], ys[yo])
		case sx == 0 && sy == 1 && b.fastCY != nil:
			b.fastCY(d, ys[yo:yo+n], xs[xo])
		case sx == 1 && sy == 0:
			xr, c := xs[xo:xo+n], ys[yo]
			for i := range d {
				d[i] = f(xr[i], c)
			}
		case sx == 0 && sy == 1:
			c, yr := xs[xo], ys[yo:yo+n]
			for i := range d {
				d[i] = f(c, yr[i])
			}
		default:
			for i := range d {
				d[i] = f(xs[xo], ys[yo])
				xo += sx
				yo += sy
			}
		}
	})
}

var (
	opAdd = &binaryOp{stat: stat("add"), f: func(x, y float32) float32 { return x + y },
		fast: kernels.VecAdd, fastXC: kernels.VecAddScalar, fastCY: kernels.VecAddScalar}
	opSub = &binaryOp{stat: stat("sub"), f: func(x, y float32) float32 { return x - y },
		fast: kernels.VecSub, fastXC: kernels.VecSubScalar, fastCY: kernels.VecScalarSub}
	opMul = &binaryOp{stat: stat("mul"), f: func(x, y float32) float32 { return x * y },
		fast: kernels.VecMul, fastXC: kernels.VecMulScalar, fastCY: kernels.VecMulScalar}
	opDiv     = &binaryOp{stat: stat("div"), f: func(x, y float32) float32 { return x / y }}
	opPow     = &binaryOp{stat: stat("pow"), f: func(x, y float32) float32 { return float32(math.Pow(float64(x), float64(y))) }}
	opMaximum = &binaryOp{stat: stat("maximum"), f: func(x, y float32) float32 { return max(x, y) }}
	opMinimum = &binaryOp{stat: stat("minimum"), f: func(x, y float32) float32 { return min(x, y) }}
	opEq      = &binaryOp{stat: stat("eq"), f: func(x, y float32) float32 { return b2f(x == y) }}
	opGt      = &binaryOp{stat: stat("gt"), f: func(x, y float32) float32 { return b2f(x > y) }}
	opGe      = &binaryOp{stat: stat("ge"), f: func(x, y float32) float32 { return b2f(x >= y) }}
	opLt      = &binaryOp{stat: stat("lt"), f: func(x, y float32) float32 { return b2f(x < y) }}
	opLe      = &binaryOp{stat: stat("le"), f: func(x, y float32) float32 { return b2f(x <= y) }}
)

func b2f(b bool) float32 {
	if b {
		return 1
	}
	return 0
}

// Add returns a + b with broadcasting.
func Add(a, b *Tensor) (*Tensor, error) { return opAdd.apply(a, b) }

// Sub returns a - b with broadcasting.
func Sub(a, b *Tensor) (*Tensor, error) { return opSub.apply(a, b) }

// Mul returns a · b elementwise with broadcasting.
func Mul(a, b *Tensor) (*Tensor, error) { return opMul.apply(a, b) }

// Div returns a / b elementwise with broadcasting.
func Div(a, b *Tensor) (*Tensor, error) { return opDiv.apply(a, b) }

// Pow returns a^b elementwise with broadcasting.
func Pow(a, b *Tensor) (*Tensor, error) { return opPow.apply(a, b) }

// Maximum returns the elementwise maximum of a and b with broadcasting.
func Maximum(a, b *Tensor) (*Tensor, error) { return opMaximum.apply(a, b) }

// Minimum returns the elementwise minimum of a and b with broadcasting.
func Minimum(a, b *Tensor) (*Tensor, error) { return opMinimum.apply(a, b) }

// Eq returns 1 where a == b and 0 elsewhere, with broadcasting.
func Eq(a, b *Tensor) (*Tensor, error) { return opEq.apply(a, b) }

// Gt returns 1 where a > b and 0 elsewhere, with broadcasting.
func Gt(a, b *Tensor) (*Tensor, error) { return opGt.apply(a, b) }

// Ge returns 1 where a >= b and 0 elsewhere, with broadcasting.
func Ge(a, b *Tensor) (*Tensor, error) { return opGe.apply(a, b) }

// Lt returns 1 where a < b and 0 elsewhere, with broadcasting.
func Lt(a, b *Tensor) (*Tensor, error) { return opLt.apply(a, b) }

// Le returns 1 where a <= b and 0 elsewhere, with broadcasting.
func Le(a, b *Tensor) (*Tensor, error) { return opLe.apply(a, b) }

var statReluBackward = stat("relu_backward")

// ReluBackward returns the gradient of Relu: g where x > 0 and 0 elsewhere
// (also where x is NaN), in one pass. g and x must have the same shape.
func ReluBackward(g, x *Tensor) (*Tensor, error) {
	s := statReluBackward
	if err := check(s, g, x); err != nil {
		return nil, err
	}
	if !EqualShape(g.shape, x.shape) {
		return nil, errs.New(errs.Shape, s.name, "gradient of shape %v does not match input of shape %v", g.shape, x.shape)
	}
	out := newUninit(scopeOf(g, x), x.shape)
	dst, gs, xs := out.storage.data, g.storage.data, x.storage.data
	if g.IsContiguous() && x.IsContiguous() {
		kernels.VecReluBackward(dst, gs[g.offset:g.offset+len(dst)], xs[x.offset:x.offset+len(dst)])
		return out, nil
	}
	p := newRowPlan(out.shape, out.strides, g.strides, x.strides)
	p.each([]int{0, g.offset, x.offset}, func(offs []int) {
		n := p.n
		d := dst[offs[0] : offs[0]+n]
		gi, xo, sg, sx := offs[1], offs[2], p.inner[1], p.inner[2]
		if sg == 1 && sx == 1 {
			kernels.VecReluBackward(d, gs[gi:gi+n], xs[xo:xo+n])
			return
		}
		for i := range d {
			d[i] = 0 // the storage may be recycled (newUninit)
			if xs[xo] > 0 {
				d[i] = gs[gi]
			}
			gi += sg
			xo += sx
		}
	})
	return out, nil
}

var statCopyInto = stat("copy_")

// CopyInto copies src into dst in place, broadcasting src to dst's shape.
// dst may be any valid view; its storage is written.
func CopyInto(dst, src *Tensor) error {
	if err := check(statCopyInto, dst, src); err != nil {
		return err
	}
	shape, err := broadcastShape("copy_", dst.shape, src.shape)
	if err != nil || !EqualShape(shape, dst.shape) {
		return errs.New(errs.Shape, "copy_", "source shape %v cannot be broadcast to destination shape %v", src.shape, dst.shape)
	}
	for i, s := range dst.strides {
		if s == 0 && dst.shape[i] > 1 {
			return errs.New(errs.Layout, "copy_", "destination of shape %v has overlapping (expanded) elements", dst.shape)
		}
	}
	d, s := dst.storage.data, src.storage.data
	// Elements are copied in any order: visit dst's dims by decreasing
	// stride, so that a view of a transposed layout (a transformer's heads,
	// [B, H, T, E] over [B, T, H, E] memory) copies in long rows.
	shape, ds, ss := dst.Shape(), dst.Strides(), broadcastStrides(src.shape, src.strides, dst.shape)
	sort.Stable(byStride{shape, ds, ss})
	p := newRowPlan(shape, ds, ss)
	p.each([]int{dst.offset, src.offset}, func(offs []int) {
		do, so := offs[0], offs[1]
		if p.inner[0] == 1 && p.inner[1] == 1 {
			copy(d[do:do+p.n], s[so:so+p.n])
			return
		}
		for i := 0; i < p.n; i++ {
			d[do] = s[so]
			do += p.inner[0]
			so += p.inner[1]
		}
	})
	return nil
}

// byStride sorts dims by decreasing first stride, keeping their shape and
// second strides alongside.
type byStride struct{ shape, a, b []int }

func (x byStride) Len() int           { return len(x.shape) }
func (x byStride) Less(i, j int) bool { return x.a[i] > x.a[j] }
func (x byStride) Swap(i, j int) {
	x.shape[i], x.shape[j] = x.shape[j], x.shape[i]
	x.a[i], x.a[j] = x.a[j], x.a[i]
	x.b[i], x.b[j] = x.b[j], x.b[i]
}
