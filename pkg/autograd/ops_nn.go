package autograd

import (
	"math"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// Matmul is torch.matmul on variables.
func Matmul(a, b *Variable) (*Variable, error) {
	const op = "matmul"
	ts, err := datas(op, a, b)
	if err != nil {
		return nil, err
	}
	out, err := tensor.Matmul(ts[0], ts[1])
	if err != nil {
		return nil, err
	}
	inputs := []*Variable{a, b}
	return record(op, out, inputs, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		c := &calc{}
		x, y := ts[0], ts[1]
		// Promote 1-D operands as matmul does, so the 2-D rules apply.
		if x.Dim() == 1 {
			x = c.do(x.Unsqueeze(0))
		}
		if y.Dim() == 1 {
			y = c.do(y.Unsqueeze(-1))
		}
		if c.err != nil {
			return nil, c.err
		}
		outShape := append(broadcastBatch(x.Shape(), y.Shape()), x.Shape()[x.Dim()-2], y.Shape()[y.Dim()-1])
		g2 := c.do(g.Reshape(outShape...))
		var ga, gb *tensor.Tensor
		if needs(inputs, 0) {
			ga = c.do(tensor.Matmul(g2, c.do(y.Transpose(-1, -2))))
			ga = c.do(c.do(tensor.SumTo(ga, x.Shape())).Reshape(ts[0].Shape()...))
		}
		if needs(inputs, 1) {
			gb = c.do(tensor.Matmul(c.do(x.Transpose(-1, -2)), g2))
			gb = c.do(c.do(tensor.SumTo(gb, y.Shape())).Reshape(ts[1].Shape()...))
		}
		return []*tensor.Tensor{ga, gb}, c.err
	}), nil
}

// broadcastBatch broadcasts the batch dims (all but the last two) of two
// matmul operands; the forward pass already checked they are compatible.
func broadcastBatch(a, b []int) []int {
	s, _ := tensor.BroadcastShapes(a[:len(a)-2], b[:len(b)-2])
	return s
}

// Linear returns x·wᵀ + b for x [..., in], w [out, in] and b [out] (b may be nil).
func Linear(x, w, b *Variable) (*Variable, error) { return linear(x, w, b, false) }

// LinearReLU is Relu(Linear(x, w, b)) as one op, with the same result: the
// ReLU runs on the GEMM's output in cache, and its backward (the gradient
// where the output is positive) feeds the linear backward directly.
func LinearReLU(x, w, b *Variable) (*Variable, error) { return linear(x, w, b, true) }

func linear(x, w, b *Variable, relu bool) (*Variable, error) {
	op, f := "linear", tensor.Linear
	if relu {
		op, f = "linear_relu", tensor.LinearReLU
	}
	vs := []*Variable{x, w}
	if b != nil {
		vs = append(vs, b)
	}
	ts, err := datas(op, vs...)
	if err != nil {
		return nil, err
	}
	var bt *tensor.Tensor
	if b != nil {
		bt = ts[2]
	}
	out, err := f(ts[0], ts[1], bt)
	if err != nil {
		return nil, err
	}
	// The gradients are new products and a new sum: fresh.
	return freshGrads(record(op, out, vs, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		c := &calc{}
		if relu {
			g = c.do(tensor.ReluBackward(g, out))
		}
		grads := make([]*tensor.Tensor, len(vs))
		xs, ws := ts[0].Shape(), ts[1].Shape()
		outF, inF := ws[0], ws[1]
		g2 := c.do(g.Reshape(-1, outF))
		if needs(vs, 0) { // g·w
			grads[0] = c.do(c.do(tensor.Matmul(g2, ts[1])).Reshape(xs...))
		}
		if needs(vs, 1) { // gᵀ·x
			x2 := c.do(ts[0].Reshape(-1, inF))
			grads[1] = c.do(tensor.Matmul(c.do(g2.T()), x2))
		}
		if len(vs) == 3 && needs(vs, 2) {
			grads[2] = c.do(tensor.Sum(g2, []int{0}, false))
		}
		return grads, c.err
	})), nil
}

// Conv2d convolves x [N, C, H, W] with w [O, C, KH, KW] and adds b [O] (b may be nil).
func Conv2d(x, w, b *Variable, opt tensor.Conv2dOptions) (*Variable, error) {
	return conv2d(x, w, b, opt, false)
}

// Conv2dReLU is Relu(Conv2d(x, w, b, opt)) as one op (see LinearReLU).
func Conv2dReLU(x, w, b *Variable, opt tensor.Conv2dOptions) (*Variable, error) {
	return conv2d(x, w, b, opt, true)
}

func conv2d(x, w, b *Variable, opt tensor.Conv2dOptions, relu bool) (*Variable, error) {
	op, f := "conv2d", tensor.Conv2d
	if relu {
		op, f = "conv2d_relu", tensor.Conv2dReLU
	}
	vs := []*Variable{x, w}
	if b != nil {
		vs = append(vs, b)
	}
	ts, err := datas(op, vs...)
	if err != nil {
		return nil, err
	}
	var bt *tensor.Tensor
	if b != nil {
		bt = ts[2]
	}
	out, err := f(ts[0], ts[1], bt, opt)
	if err != nil {
		return nil, err
	}
	return record(op, out, vs, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		if relu {
			var err error
			if g, err = tensor.ReluBackward(g, out); err != nil {
				return nil, err
			}
		}
		gx, gw, gb, err := tensor.Conv2dBackward(ts[0], ts[1], g, opt, [3]bool{needs(vs, 0), needs(vs, 1), len(vs) == 3 && needs(vs, 2)})
		if err != nil {
			return nil, err
		}
		grads := []*tensor.Tensor{gx, gw}
		if len(vs) == 3 {
			grads = append(grads, gb)
		}
		return grads, nil
	}), nil
}

// MaxPool2d takes the maximum over windows of x [N, C, H, W].
func MaxPool2d(x *Variable, opt tensor.Pool2dOptions) (*Variable, error) {
	const op = "max_pool2d"
	ts, err := datas(op, x)
	if err != nil {
		return nil, err
	}
	out, idx, err := tensor.MaxPool2d(ts[0], opt)
	if err != nil {
		return nil, err
	}
	shape := ts[0].Shape()
	return record(op, out, []*Variable{x}, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		gx, err := tensor.MaxPool2dBackward(g, idx, shape)
		return []*tensor.Tensor{gx}, err
	}), nil
}

// AvgPool2d averages over windows of x [N, C, H, W].
func AvgPool2d(x *Variable, opt tensor.Pool2dOptions) (*Variable, error) {
	const op = "avg_pool2d"
	ts, err := datas(op, x)
	if err != nil {
		return nil, err
	}
	out, err := tensor.AvgPool2d(ts[0], opt)
	if err != nil {
		return nil, err
	}
	shape := ts[0].Shape()
	return record(op, out, []*Variable{x}, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		gx, err := tensor.AvgPool2dBackward(g, shape, opt)
		return []*tensor.Tensor{gx}, err
	}), nil
}

// Softmax returns softmax(a) along dim.
func Softmax(a *Variable, dim int) (*Variable, error) {
	return unary("softmax", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return tensor.Softmax(t, dim) },
		func(c *calc, g, x, y *tensor.Tensor) *tensor.Tensor { return c.do(tensor.SoftmaxBackward(g, y, dim)) })
}

// LogSoftmax returns log(softmax(a)) along dim.
func LogSoftmax(a *Variable, dim int) (*Variable, error) {
	return unary("log_softmax", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return tensor.LogSoftmax(t, dim) },
		func(c *calc, g, x, y *tensor.Tensor) *tensor.Tensor {
			return c.do(tensor.LogSoftmaxBackward(g, y, dim))
		})
}

// classTargets validates class-index targets for n samples of c classes.
func classTargets(op string, targets *tensor.Tensor, n, c int) ([]int, error) {
	if err := tensor.ValidateLayout(op, targets); err != nil {
		return nil, err
	}
	if targets.Dim() != 1 || targets.Numel() != n {
		return nil, errs.New(errs.Shape, op, "targets of shape %v for %d samples; want [%d]", targets.Shape(), n, n)
	}
	out := make([]int, n)
	for i, t := range targets.Data() {
		k := int(t)
		if float32(k) != t || k < 0 || k >= c {
			return nil, errs.New(errs.Argument, op, "target %v at position %d is not a class index in [0, %d)", t, i, c)
		}
		out[i] = k
	}
	return out, nil
}

// CrossEntropy returns the mean cross-entropy of logits [N, C] against
// class-index targets [N], computed stably through the log-sum-exp of each
// row.
func CrossEntropy(logits *Variable, targets *tensor.Tensor) (*Variable, error) {
	const op = "cross_entropy"
	ts, err := datas(op, logits)
	if err != nil {
		return nil, err
	}
	x := ts[0]
	if err := tensor.ValidateLayout(op, x); err != nil {
		return nil, err
	}
	if x.Dim() != 2 {
		return nil, errs.New(errs.Shape, op, "logits must be [N, C], got shape %v", x.Shape())
	}
	sh := x.Shape()
	n, nc := sh[0], sh[1]
	if n == 0 || nc == 0 {
		return nil, errs.New(errs.Shape, op, "logits of shape %v are empty", sh)
	}
	cls, err := classTargets(op, targets, n, nc)
	if err != nil {
		return nil, err
	}
	// Per row: lse = max + log Σ exp(x - max), the exponentials in float32
	// (kernels.VecExp, as PyTorch's CPU log_softmax) and their sum in
	// float64; the loss is the mean of lse - x[target] in float64.
	xd := x.Data()
	lse := make([]float64, n)
	tmp := make([]float32, nc)
	var loss float64
	for i, k := range cls {
		row := xd[i*nc : (i+1)*nc]
		m := row[0]
		for _, v := range row[1:] {
			if v > m {
				m = v
			}
		}
		kernels.VecSubScalar(tmp, row, m) // a NaN logit makes the row's sum, and the loss, NaN
		kernels.VecExp(tmp, tmp)
		lse[i] = float64(m) + math.Log(kernels.VecSumF64(tmp))
		loss += lse[i] - float64(row[k])
	}
	out := tensor.Scalar(float32(loss / float64(n)))
	return record(op, out, []*Variable{logits}, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		gv, err := g.Item()
		if err != nil {
			return nil, err
		}
		scale := gv / float32(n)
		// softmax·scale - scale at the target, softmax = exp(x - lse) in
		// float32, in a copy of x from the scope's arena.
		gx, err := x.Clone()
		if err != nil {
			return nil, err
		}
		gd := gx.Data()
		for i, k := range cls {
			row := gd[i*nc : (i+1)*nc]
			kernels.VecSubScalar(row, row, float32(lse[i]))
			kernels.VecExp(row, row)
			kernels.VecMulScalar(row, row, scale)
			row[k] -= scale
		}
		return []*tensor.Tensor{gx}, nil
	}), nil
}

// NLLLoss returns the mean negative log-likelihood of log-probabilities
// [N, C] at class-index targets [N].
func NLLLoss(logProbs *Variable, targets *tensor.Tensor) (*Variable, error) {
	const op = "nll_loss"
	ts, err := datas(op, logProbs)
	if err != nil {
		return nil, err
	}
	if ts[0].Dim() != 2 {
		return nil, errs.New(errs.Shape, op, "log-probabilities must be [N, C], got shape %v", ts[0].Shape())
	}
	sh := ts[0].Shape()
	if _, err := classTargets(op, targets, sh[0], sh[1]); err != nil {
		return nil, err
	}
	idx, err := targets.Reshape(-1, 1)
	if err != nil {
		return nil, err
	}
	picked, err := Gather(logProbs, 1, idx)
	if err != nil {
		return nil, err
	}
	m, err := Mean(picked, nil, false)
	if err != nil {
		return nil, err
	}
	return Neg(m)
}

// MSE returns the mean squared error between pred and target (same shape).
func MSE(pred, target *Variable) (*Variable, error) {
	const op = "mse_loss"
	ts, err := datas(op, pred, target)
	if err != nil {
		return nil, err
	}
	if !tensor.EqualShape(ts[0].Shape(), ts[1].Shape()) {
		return nil, errs.New(errs.Shape, op, "prediction of shape %v and target of shape %v differ", ts[0].Shape(), ts[1].Shape())
	}
	d, err := Sub(pred, target)
	if err != nil {
		return nil, err
	}
	sq, err := Mul(d, d)
	if err != nil {
		return nil, err
	}
	return Mean(sq, nil, false)
}

// Dropout zeroes each element of x with probability p and scales the rest
// by 1/(1-p) when training; otherwise it returns x unchanged.
func Dropout(x *Variable, p float32, rng *tensor.RNG, training bool) (*Variable, error) {
	const op = "dropout"
	if _, err := datas(op, x); err != nil {
		return nil, err
	}
	if !(p >= 0 && p < 1) {
		if p == 1 && training {
			return MulScalar(x, 0)
		}
		if !(p >= 0 && p <= 1) {
			return nil, errs.New(errs.Argument, op, "probability %v is outside [0, 1]", p)
		}
	}
	if !training || p == 0 {
		return x, nil
	}
	mask, err := tensor.Bernoulli(rng, 1-p, x.Data.Shape()...)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	x.Data.Scope().Adopt(mask)
	if mask, err = tensor.MulScalar(mask, 1/(1-p)); err != nil {
		return nil, err
	}
	return Mul(x, Const(mask))
}
