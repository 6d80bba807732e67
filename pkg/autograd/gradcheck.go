package autograd

import (
	"math"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// GradCheckOptions configures GradCheck. Zero values pick the defaults.
type GradCheckOptions struct {
	Eps  float64 // finite-difference step (default 1e-2)
	ATol float64 // absolute tolerance (default 1e-2)
	RTol float64 // relative tolerance (default 1e-2)
	Seed uint64  // seed of the random output weighting
}

// GradCheck compares the analytic gradients of f at inputs with central
// finite differences. The output is reduced to a scalar as Σ wᵢ·outᵢ with
// random weights w (so every output element matters), and the difference
// quotients are formed in float64. It returns an error naming the first
// input element whose gradients disagree.
func GradCheck(f func(in []*Variable) (*Variable, error), inputs []*tensor.Tensor, opt GradCheckOptions) error {
	const op = "gradcheck"
	if opt.Eps == 0 {
		opt.Eps = 1e-2
	}
	if opt.ATol == 0 {
		opt.ATol = 1e-2
	}
	if opt.RTol == 0 {
		opt.RTol = 1e-2
	}
	// Own contiguous copies that we can perturb in place.
	xs := make([]*tensor.Tensor, len(inputs))
	for i, t := range inputs {
		if t == nil {
			return errs.New(errs.Argument, op, "input %d is nil", i)
		}
		c, err := t.Clone()
		if err != nil {
			return err
		}
		xs[i] = c
	}
	// A scope of our own, so the evaluations below record nothing.
	scope := tensor.NewScope()
	scope.Adopt(xs...)
	vars := make([]*Variable, len(xs))
	for i, x := range xs {
		vars[i] = Param(x)
	}
	out, err := f(vars)
	if err != nil {
		return err
	}
	w, err := tensor.Uniform(tensor.NewRNG(opt.Seed+1), 0.5, 1.5, out.Data.Shape()...)
	if err != nil {
		return err
	}
	if err := out.BackwardWith(BackwardOptions{Grad: w}); err != nil {
		return err
	}
	wd := w.Data()
	eval := func() (float64, error) {
		var o *Variable
		err := scope.NoGrad(func() error {
			var err error
			o, err = f(consts(xs))
			return err
		})
		if err != nil {
			return 0, err
		}
		var s float64
		for i, v := range o.Data.Data() {
			s += float64(v) * float64(wd[i])
		}
		return s, nil
	}
	for i, x := range xs {
		d := x.Data()
		var analytic []float32
		if vars[i].Grad != nil {
			analytic = vars[i].Grad.Data()
		}
		for j := range d {
			orig := d[j]
			d[j] = orig + float32(opt.Eps)
			fp, err := eval()
			if err != nil {
				return err
			}
			d[j] = orig - float32(opt.Eps)
			fm, err := eval()
			if err != nil {
				return err
			}
			d[j] = orig
			// Use the step actually taken in float32.
			h := float64(orig+float32(opt.Eps)) - float64(orig-float32(opt.Eps))
			num := (fp - fm) / h
			var an float64
			if analytic != nil {
				an = float64(analytic[j])
			}
			if math.IsNaN(an) || math.Abs(an-num) > opt.ATol+opt.RTol*math.Abs(num) {
				return errs.New(errs.Internal, op, "input %d element %d: analytic gradient %.6g, numerical %.6g", i, j, an, num)
			}
		}
	}
	return nil
}

// consts wraps each tensor as a constant variable.
func consts(ts []*tensor.Tensor) []*Variable {
	vs := make([]*Variable, len(ts))
	for i, t := range ts {
		vs[i] = Const(t)
	}
	return vs
}
