package autograd

import (
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// keepShape returns shape with the reduced dims set to 1.
func keepShape(op string, shape []int, dims []int) ([]int, error) {
	out := append([]int(nil), shape...)
	if len(dims) == 0 {
		for i := range out {
			out[i] = 1
		}
		return out, nil
	}
	r := len(shape)
	for _, d := range dims {
		if d < -r || d >= r {
			return nil, errs.New(errs.Argument, op, "dimension %d out of range for shape %v", d, shape)
		}
		if d < 0 {
			d += r
		}
		out[d] = 1
	}
	return out, nil
}

// expandBack broadcasts a reduced gradient g back to shape.
func expandBack(c *calc, op string, g *tensor.Tensor, shape, dims []int) *tensor.Tensor {
	ks, err := keepShape(op, shape, dims)
	if err != nil {
		c.err = err
		return nil
	}
	return c.do(c.do(g.Reshape(ks...)).Expand(shape...))
}

// Sum reduces a over dims (all dims if empty).
func Sum(a *Variable, dims []int, keepDim bool) (*Variable, error) {
	const op = "sum"
	ts, err := datas(op, a)
	if err != nil {
		return nil, err
	}
	out, err := tensor.Sum(ts[0], dims, keepDim)
	if err != nil {
		return nil, err
	}
	shape := ts[0].Shape()
	dims = append([]int(nil), dims...)
	return record(op, out, []*Variable{a}, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		c := &calc{}
		return []*tensor.Tensor{expandBack(c, op, g, shape, dims)}, c.err
	}), nil
}

// Mean averages a over dims (all dims if empty).
func Mean(a *Variable, dims []int, keepDim bool) (*Variable, error) {
	const op = "mean"
	ts, err := datas(op, a)
	if err != nil {
		return nil, err
	}
	out, err := tensor.Mean(ts[0], dims, keepDim)
	if err != nil {
		return nil, err
	}
	shape := ts[0].Shape()
	dims = append([]int(nil), dims...)
	n := ts[0].Numel() / max(out.Numel(), 1)
	return record(op, out, []*Variable{a}, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		c := &calc{}
		gs := c.do(tensor.MulScalar(g, 1/float32(max(n, 1))))
		return []*tensor.Tensor{expandBack(c, op, gs, shape, dims)}, c.err
	}), nil
}

// Max returns the maxima of a along dim; the gradient flows to the first
// maximal element of each slice. The indices carry no gradient.
func Max(a *Variable, dim int, keepDim bool) (values *Variable, indices *tensor.Tensor, err error) {
	const op = "max"
	ts, err := datas(op, a)
	if err != nil {
		return nil, nil, err
	}
	vals, idx, err := tensor.Max(ts[0], dim, keepDim)
	if err != nil {
		return nil, nil, err
	}
	shape := ts[0].Shape()
	v := record(op, vals, []*Variable{a}, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		c := &calc{}
		ks, err := keepShape(op, shape, []int{dim})
		if err != nil {
			return nil, err
		}
		gk := c.do(g.Reshape(ks...))
		ik := c.do(idx.Reshape(ks...))
		zeros := c.do(tensor.Zeros(shape...))
		return []*tensor.Tensor{c.do(tensor.ScatterAdd(zeros, dim, ik, gk))}, c.err
	})
	return v, idx, nil
}
