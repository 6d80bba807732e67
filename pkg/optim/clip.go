package optim

import (
	"math"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/tensor"
)

// ClipGradNorm rescales the gradients of params so that their joint L2
// norm is at most maxNorm, like torch.nn.utils.clip_grad_norm_: it computes
// the norm over all gradients (in float64) and, when maxNorm/(norm+1e-6) < 1,
// multiplies every gradient by that factor in place. It returns the norm
// before clipping. Parameters without gradients are ignored. A non-finite
// norm is returned without changing any gradient.
func ClipGradNorm(params []nn.NamedParameter, maxNorm float64) (float64, error) {
	const op = "optim.ClipGradNorm"
	if !(maxNorm >= 0) || math.IsInf(maxNorm, 0) {
		return 0, errs.New(errs.Argument, op, "invalid max norm %v", maxNorm)
	}
	var sq float64
	for _, p := range params {
		if p.Param == nil || p.Param.Grad == nil {
			continue
		}
		if err := tensor.ValidateLayout(op, p.Param.Grad); err != nil {
			return 0, err
		}
		for _, g := range p.Param.Grad.Data() {
			sq += float64(g) * float64(g)
		}
	}
	total := math.Sqrt(sq)
	coef := maxNorm / (total + 1e-6)
	if !(coef < 1) || math.IsNaN(total) || math.IsInf(total, 0) {
		return total, nil
	}
	c := float32(coef)
	for _, p := range params {
		if p.Param == nil || p.Param.Grad == nil {
			continue
		}
		g := p.Param.Grad
		if g.IsContiguous() {
			d := g.Data()
			for i := range d {
				d[i] *= c
			}
			continue
		}
		scaled, err := tensor.MulScalar(g, c)
		if err != nil {
			return total, errs.Wrap(errs.KindOf(err), op, err, "parameter %q", p.Name)
		}
		p.Param.Grad = scaled
	}
	return total, nil
}
