package autograd

import (
	"sync/atomic"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// Variable is a tensor in an autograd graph.
type Variable struct {
	// Data is the value. Replacing it (as optimizers do in place) does not
	// change recorded history.
	Data *tensor.Tensor
	// Grad is the accumulated gradient of a leaf that requires grad, nil
	// until a backward pass reaches it. Optimizers read it; ZeroGrad sets
	// it to nil.
	Grad *tensor.Tensor

	requiresGrad bool
	node         *node // the op that produced this variable; nil for leaves
}

// node records one operation for the backward pass.
type node struct {
	op       string
	seq      uint64
	inputs   []*Variable // inputs that require grad, or nil in that position
	backward func(g *tensor.Tensor) ([]*tensor.Tensor, error)
	// fresh: every gradient backward returns is a new tensor that nothing
	// else (another returned gradient, a saved tensor, g) shares, so a leaf
	// can keep it as its Grad without a copy (see freshGrads).
	fresh bool
}

var seqCounter atomic.Uint64

// NewVariable wraps t; requiresGrad makes it a leaf whose gradient is kept.
func NewVariable(t *tensor.Tensor, requiresGrad bool) *Variable {
	return &Variable{Data: t, requiresGrad: requiresGrad}
}

// Param wraps t as a leaf that requires grad (a trainable parameter).
func Param(t *tensor.Tensor) *Variable { return NewVariable(t, true) }

// Const wraps t as a variable that does not require grad.
func Const(t *tensor.Tensor) *Variable { return NewVariable(t, false) }

// RequiresGrad reports whether gradients flow to this variable.
func (v *Variable) RequiresGrad() bool { return v.requiresGrad }

// SetRequiresGrad marks a leaf as requiring (or not) a gradient. It fails
// for a non-leaf.
func (v *Variable) SetRequiresGrad(b bool) error {
	if v.node != nil {
		return errs.New(errs.Argument, "set_requires_grad", "only leaves can change requires_grad (variable is the output of %s)", v.node.op)
	}
	v.requiresGrad = b
	return nil
}

// IsLeaf reports whether v was created by the user rather than by an op.
func (v *Variable) IsLeaf() bool { return v.node == nil }

// GradFn names the op that produced v, or "" for a leaf.
func (v *Variable) GradFn() string {
	if v.node == nil {
		return ""
	}
	return v.node.op
}

// Detach returns a variable sharing v's data with no history.
func (v *Variable) Detach() *Variable { return &Variable{Data: v.Data} }

// Shape returns the shape of v's data.
func (v *Variable) Shape() []int { return v.Data.Shape() }

// ZeroGrad drops the accumulated gradient.
func (v *Variable) ZeroGrad() { v.Grad = nil }

// Item returns the value of a one-element variable.
func (v *Variable) Item() (float32, error) { return v.Data.Item() }

// ---- recording ----

// datas returns the tensors of vs, or an error naming op if any is nil.
func datas(op string, vs ...*Variable) ([]*tensor.Tensor, error) {
	ts := make([]*tensor.Tensor, len(vs))
	for i, v := range vs {
		if v == nil || v.Data == nil {
			return nil, errs.New(errs.Argument, op, "input %d is nil", i)
		}
		ts[i] = v.Data
	}
	return ts, nil
}

// record wraps out as the result of op on inputs, recording backward when
// any input requires grad and the inputs' scope is not in NoGrad. An output
// the op built from scratch joins the inputs' scope.
func record(op string, out *tensor.Tensor, inputs []*Variable, backward func(g *tensor.Tensor) ([]*tensor.Tensor, error)) *Variable {
	v := &Variable{Data: out}
	need := false
	var scope *tensor.Scope
	for _, in := range inputs {
		need = need || in.requiresGrad
		if scope == nil {
			scope = in.Data.Scope()
		}
	}
	if out.Scope() == nil {
		scope.Adopt(out)
	}
	if !need || !scope.GradEnabled() {
		return v
	}
	ins := make([]*Variable, len(inputs))
	for i, in := range inputs {
		if in.requiresGrad {
			ins[i] = in
		}
	}
	v.requiresGrad = true
	v.node = &node{op: op, seq: seqCounter.Add(1), inputs: ins, backward: backward}
	return v
}

// freshGrads declares that v's backward returns only new, unshared
// tensors (as PyTorch's AccumulateGrad steals a gradient nothing else
// references): a leaf reached by one of them alone takes it as its Grad
// instead of a copy. v is returned.
func freshGrads(v *Variable) *Variable {
	if v.node != nil {
		v.node.fresh = true
	}
	return v
}

// needs reports whether input i of the op being differentiated needs a gradient.
func needs(inputs []*Variable, i int) bool { return inputs[i].requiresGrad }

// calc threads the first error through a chain of tensor calls:
// c.do(tensor.Mul(a, c.do(tensor.Exp(b)))) yields nil after any failure and
// keeps the first error in c.err.
type calc struct{ err error }

func (c *calc) do(t *tensor.Tensor, err error) *tensor.Tensor {
	if c.err != nil {
		return nil
	}
	if err != nil {
		c.err = err
		return nil
	}
	return t
}
