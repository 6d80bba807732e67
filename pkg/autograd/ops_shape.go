package autograd

import (
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// viewOp records a view-like op whose gradient is reshaped/reindexed back.
func viewOp(op string, a *Variable, f func(*tensor.Tensor) (*tensor.Tensor, error),
	grad func(c *calc, g, x *tensor.Tensor) *tensor.Tensor) (*Variable, error) {
	ts, err := datas(op, a)
	if err != nil {
		return nil, err
	}
	out, err := f(ts[0])
	if err != nil {
		return nil, err
	}
	return record(op, out, []*Variable{a}, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		c := &calc{}
		return []*tensor.Tensor{grad(c, g, ts[0])}, c.err
	}), nil
}

func reshapeBack(c *calc, g, x *tensor.Tensor) *tensor.Tensor { return c.do(g.Reshape(x.Shape()...)) }

// Reshape returns a with a new shape (one size may be -1).
func Reshape(a *Variable, shape ...int) (*Variable, error) {
	return viewOp("reshape", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return t.Reshape(shape...) }, reshapeBack)
}

// View returns a view of a with a new shape; it fails if strides forbid it.
func View(a *Variable, shape ...int) (*Variable, error) {
	return viewOp("view", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return t.View(shape...) }, reshapeBack)
}

// Flatten merges dims start..end of a.
func Flatten(a *Variable, start, end int) (*Variable, error) {
	return viewOp("flatten", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return t.Flatten(start, end) }, reshapeBack)
}

// Squeeze removes size-1 dims (all of them when dims is empty).
func Squeeze(a *Variable, dims ...int) (*Variable, error) {
	return viewOp("squeeze", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return t.Squeeze(dims...) }, reshapeBack)
}

// Unsqueeze inserts a size-1 dim at dim.
func Unsqueeze(a *Variable, dim int) (*Variable, error) {
	return viewOp("unsqueeze", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return t.Unsqueeze(dim) }, reshapeBack)
}

// Transpose swaps dims d0 and d1.
func Transpose(a *Variable, d0, d1 int) (*Variable, error) {
	return viewOp("transpose", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return t.Transpose(d0, d1) },
		func(c *calc, g, x *tensor.Tensor) *tensor.Tensor { return c.do(g.Transpose(d0, d1)) })
}

// Permute reorders the dims of a.
func Permute(a *Variable, dims ...int) (*Variable, error) {
	return viewOp("permute", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return t.Permute(dims...) },
		func(c *calc, g, x *tensor.Tensor) *tensor.Tensor {
			r := len(dims)
			inv := make([]int, r)
			for i, d := range dims {
				if d < 0 {
					d += r
				}
				inv[d] = i
			}
			return c.do(g.Permute(inv...))
		})
}

// Expand broadcasts a to shape; the gradient is summed back.
func Expand(a *Variable, shape ...int) (*Variable, error) {
	return viewOp("expand", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return t.Expand(shape...) },
		func(c *calc, g, x *tensor.Tensor) *tensor.Tensor { return c.do(tensor.SumTo(g, x.Shape())) })
}

// scatterBack writes g into the region of a zero tensor shaped like x
// selected by view.
func scatterBack(c *calc, g, x *tensor.Tensor, view func(*tensor.Tensor) (*tensor.Tensor, error)) *tensor.Tensor {
	z := c.do(tensor.Zeros(x.Shape()...))
	if c.err != nil {
		return nil
	}
	region := c.do(view(z))
	if c.err != nil {
		return nil
	}
	if err := tensor.CopyInto(region, g); err != nil {
		c.err = err
		return nil
	}
	return z
}

// Slice returns a[..., start:end:step, ...] along dim.
func Slice(a *Variable, dim, start, end, step int) (*Variable, error) {
	f := func(t *tensor.Tensor) (*tensor.Tensor, error) { return t.Slice(dim, start, end, step) }
	return viewOp("slice", a, f, func(c *calc, g, x *tensor.Tensor) *tensor.Tensor { return scatterBack(c, g, x, f) })
}

// Narrow returns length elements of dim starting at start.
func Narrow(a *Variable, dim, start, length int) (*Variable, error) {
	f := func(t *tensor.Tensor) (*tensor.Tensor, error) { return t.Narrow(dim, start, length) }
	return viewOp("narrow", a, f, func(c *calc, g, x *tensor.Tensor) *tensor.Tensor { return scatterBack(c, g, x, f) })
}

// Select returns a[..., index, ...] along dim, removing dim.
func Select(a *Variable, dim, index int) (*Variable, error) {
	f := func(t *tensor.Tensor) (*tensor.Tensor, error) { return t.Select(dim, index) }
	return viewOp("select", a, f, func(c *calc, g, x *tensor.Tensor) *tensor.Tensor { return scatterBack(c, g, x, f) })
}

// IndexSelect picks entries along dim at the positions in index (1-D).
func IndexSelect(a *Variable, dim int, index *tensor.Tensor) (*Variable, error) {
	return viewOp("index_select", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return tensor.IndexSelect(t, dim, index) },
		func(c *calc, g, x *tensor.Tensor) *tensor.Tensor {
			return c.do(tensor.IndexAdd(c.do(tensor.Zeros(x.Shape()...)), dim, index, g))
		})
}

// Gather picks a[..., index[...], ...] along dim, like torch.gather.
func Gather(a *Variable, dim int, index *tensor.Tensor) (*Variable, error) {
	return viewOp("gather", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return tensor.Gather(t, dim, index) },
		func(c *calc, g, x *tensor.Tensor) *tensor.Tensor {
			return c.do(tensor.ScatterAdd(c.do(tensor.Zeros(x.Shape()...)), dim, index, g))
		})
}

// Concat joins variables along an existing dim.
func Concat(vs []*Variable, dim int) (*Variable, error) {
	const op = "concat"
	if len(vs) == 0 {
		return nil, errs.New(errs.Argument, op, "no inputs")
	}
	ts, err := datas(op, vs...)
	if err != nil {
		return nil, err
	}
	out, err := tensor.Concat(ts, dim)
	if err != nil {
		return nil, err
	}
	return record(op, out, vs, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		c := &calc{}
		grads := make([]*tensor.Tensor, len(vs))
		start := 0
		for i, t := range ts {
			l, err := t.Size(dim)
			if err != nil {
				return nil, err
			}
			if needs(vs, i) {
				grads[i] = c.do(c.do(g.Narrow(dim, start, l)).Contiguous())
			}
			start += l
		}
		return grads, c.err
	}), nil
}

// Stack joins variables along a new dim.
func Stack(vs []*Variable, dim int) (*Variable, error) {
	const op = "stack"
	if len(vs) == 0 {
		return nil, errs.New(errs.Argument, op, "no inputs")
	}
	ts, err := datas(op, vs...)
	if err != nil {
		return nil, err
	}
	out, err := tensor.Stack(ts, dim)
	if err != nil {
		return nil, err
	}
	return record(op, out, vs, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		c := &calc{}
		grads := make([]*tensor.Tensor, len(vs))
		for i := range ts {
			if needs(vs, i) {
				grads[i] = c.do(c.do(g.Select(dim, i)).Contiguous())
			}
		}
		return grads, c.err
	}), nil
}
