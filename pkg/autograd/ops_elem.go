package autograd

import (
	"github.com/gorch/gorch/pkg/tensor"
)

// binary applies a broadcasting tensor op and records its backward; grads
// computes the full-shape gradients, which are then summed back to each
// input's shape.
func binary(op string, a, b *Variable, f func(x, y *tensor.Tensor) (*tensor.Tensor, error),
	grads func(c *calc, g, x, y, out *tensor.Tensor, needA, needB bool) (ga, gb *tensor.Tensor)) (*Variable, error) {
	ts, err := datas(op, a, b)
	if err != nil {
		return nil, err
	}
	out, err := f(ts[0], ts[1])
	if err != nil {
		return nil, err
	}
	inputs := []*Variable{a, b}
	return record(op, out, inputs, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		c := &calc{}
		ga, gb := grads(c, g, ts[0], ts[1], out, needs(inputs, 0), needs(inputs, 1))
		// Gradients already of the input's shape pass as they are (Add's
		// is g itself, for both inputs): backward functions never write to
		// the gradients they get, and the engine copies any it did not
		// make before keeping it as a leaf's Grad.
		if needs(inputs, 0) && ga != nil && !tensor.EqualShape(ga.Shape(), ts[0].Shape()) {
			ga = c.do(tensor.SumTo(ga, ts[0].Shape()))
		}
		if needs(inputs, 1) && gb != nil && !tensor.EqualShape(gb.Shape(), ts[1].Shape()) {
			gb = c.do(tensor.SumTo(gb, ts[1].Shape()))
		}
		return []*tensor.Tensor{ga, gb}, c.err
	}), nil
}

// Add returns a + b with broadcasting.
func Add(a, b *Variable) (*Variable, error) {
	return binary("add", a, b, tensor.Add, func(c *calc, g, x, y, out *tensor.Tensor, na, nb bool) (*tensor.Tensor, *tensor.Tensor) {
		return g, g
	})
}

// Sub returns a - b with broadcasting.
func Sub(a, b *Variable) (*Variable, error) {
	return binary("sub", a, b, tensor.Sub, func(c *calc, g, x, y, out *tensor.Tensor, na, nb bool) (ga, gb *tensor.Tensor) {
		if nb {
			gb = c.do(tensor.Neg(g))
		}
		return g, gb
	})
}

// Mul returns a · b elementwise with broadcasting.
func Mul(a, b *Variable) (*Variable, error) {
	return binary("mul", a, b, tensor.Mul, func(c *calc, g, x, y, out *tensor.Tensor, na, nb bool) (ga, gb *tensor.Tensor) {
		if na {
			ga = c.do(tensor.Mul(g, y))
		}
		if nb {
			gb = c.do(tensor.Mul(g, x))
		}
		return ga, gb
	})
}

// Div returns a / b elementwise with broadcasting.
func Div(a, b *Variable) (*Variable, error) {
	return binary("div", a, b, tensor.Div, func(c *calc, g, x, y, out *tensor.Tensor, na, nb bool) (ga, gb *tensor.Tensor) {
		if na {
			ga = c.do(tensor.Div(g, y))
		}
		if nb { // -g·a/b² = -g·out/b
			gb = c.do(tensor.Neg(c.do(tensor.Div(c.do(tensor.Mul(g, out)), y))))
		}
		return ga, gb
	})
}

// Pow returns a^b elementwise with broadcasting.
func Pow(a, b *Variable) (*Variable, error) {
	return binary("pow", a, b, tensor.Pow, func(c *calc, g, x, y, out *tensor.Tensor, na, nb bool) (ga, gb *tensor.Tensor) {
		if na { // g·b·a^(b-1)
			ym1 := c.do(tensor.AddScalar(y, -1))
			ga = c.do(tensor.Mul(g, c.do(tensor.Mul(y, c.do(tensor.Pow(x, ym1))))))
		}
		if nb { // g·out·ln a
			gb = c.do(tensor.Mul(g, c.do(tensor.Mul(out, c.do(tensor.Log(x))))))
		}
		return ga, gb
	})
}

// Maximum returns the elementwise maximum; the gradient goes to a where a >= b.
func Maximum(a, b *Variable) (*Variable, error) {
	return binary("maximum", a, b, tensor.Maximum, func(c *calc, g, x, y, out *tensor.Tensor, na, nb bool) (ga, gb *tensor.Tensor) {
		mask := c.do(tensor.Ge(x, y))
		if na {
			ga = c.do(tensor.Mul(g, mask))
		}
		if nb {
			gb = c.do(tensor.Mul(g, c.do(tensor.AddScalar(c.do(tensor.Neg(mask)), 1))))
		}
		return ga, gb
	})
}

// unary applies an elementwise op; grad maps (g, x, out) to the input gradient.
func unary(op string, a *Variable, f func(*tensor.Tensor) (*tensor.Tensor, error),
	grad func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor) (*Variable, error) {
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
		gx := grad(c, g, ts[0], out)
		return []*tensor.Tensor{gx}, c.err
	}), nil
}

// Neg returns -a.
func Neg(a *Variable) (*Variable, error) {
	return unary("neg", a, tensor.Neg, func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor {
		return c.do(tensor.Neg(g))
	})
}

// Exp returns e^a.
func Exp(a *Variable) (*Variable, error) {
	return unary("exp", a, tensor.Exp, func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor {
		return c.do(tensor.Mul(g, out))
	})
}

// Log returns ln a.
func Log(a *Variable) (*Variable, error) {
	return unary("log", a, tensor.Log, func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor {
		return c.do(tensor.Div(g, x))
	})
}

// Sqrt returns √a.
func Sqrt(a *Variable) (*Variable, error) {
	return unary("sqrt", a, tensor.Sqrt, func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor {
		return c.do(tensor.Div(g, c.do(tensor.MulScalar(out, 2))))
	})
}

// Relu returns max(a, 0).
func Relu(a *Variable) (*Variable, error) {
	return unary("relu", a, tensor.Relu, func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor {
		return c.do(tensor.ReluBackward(g, x))
	})
}

// Gelu returns the exact GELU of a.
func Gelu(a *Variable) (*Variable, error) {
	return unary("gelu", a, tensor.Gelu, func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor {
		return c.do(tensor.GeluBackward(g, x, false))
	})
}

// Tanh returns tanh a.
func Tanh(a *Variable) (*Variable, error) {
	return unary("tanh", a, tensor.Tanh, func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor {
		one := c.do(tensor.AddScalar(c.do(tensor.Neg(c.do(tensor.Square(out)))), 1))
		return c.do(tensor.Mul(g, one))
	})
}

// Sigmoid returns 1/(1+e^-a).
func Sigmoid(a *Variable) (*Variable, error) {
	return unary("sigmoid", a, tensor.Sigmoid, func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor {
		oneMinus := c.do(tensor.AddScalar(c.do(tensor.Neg(out)), 1))
		return c.do(tensor.Mul(g, c.do(tensor.Mul(out, oneMinus))))
	})
}

// PowScalar returns a^p.
func PowScalar(a *Variable, p float32) (*Variable, error) {
	return unary("pow_scalar", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return tensor.PowScalar(t, p) },
		func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor {
			d := c.do(tensor.MulScalar(c.do(tensor.PowScalar(x, p-1)), p))
			return c.do(tensor.Mul(g, d))
		})
}

// AddScalar returns a + s.
func AddScalar(a *Variable, s float32) (*Variable, error) {
	return unary("add_scalar", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return tensor.AddScalar(t, s) },
		func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor { return g })
}

// MulScalar returns a · s.
func MulScalar(a *Variable, s float32) (*Variable, error) {
	return unary("mul_scalar", a, func(t *tensor.Tensor) (*tensor.Tensor, error) { return tensor.MulScalar(t, s) },
		func(c *calc, g, x, out *tensor.Tensor) *tensor.Tensor { return c.do(tensor.MulScalar(g, s)) })
}

// Where returns a where cond != 0 and b elsewhere; cond carries no gradient.
func Where(cond *tensor.Tensor, a, b *Variable) (*Variable, error) {
	const op = "where"
	ts, err := datas(op, a, b)
	if err != nil {
		return nil, err
	}
	out, err := tensor.Where(cond, ts[0], ts[1])
	if err != nil {
		return nil, err
	}
	inputs := []*Variable{a, b}
	return record(op, out, inputs, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		c := &calc{}
		zero := tensor.Scalar(0)
		var ga, gb *tensor.Tensor
		if needs(inputs, 0) {
			ga = c.do(tensor.SumTo(c.do(tensor.Where(cond, g, zero)), ts[0].Shape()))
		}
		if needs(inputs, 1) {
			gb = c.do(tensor.SumTo(c.do(tensor.Where(cond, zero, g)), ts[1].Shape()))
		}
		return []*tensor.Tensor{ga, gb}, c.err
	}), nil
}
