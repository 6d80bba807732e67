package optim

import (
	"math"
	"sort"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/tensor"
)

// Optimizer updates parameters from their gradients.
type Optimizer interface {
	// Step applies one update to every parameter that has a gradient.
	Step() error
	// ZeroGrad sets every parameter's Grad to nil.
	ZeroGrad()
	// StateDict returns a deep copy of the optimizer's state.
	StateDict() (State, error)
	// LoadStateDict restores a state returned by StateDict (possibly after
	// a JSON round trip); the optimizer must be of the same type and hold
	// parameters of the same names and sizes.
	LoadStateDict(State) error
	// LR returns the current learning rate.
	LR() float64
	// SetLR sets the learning rate (schedulers call this).
	SetLR(lr float64)
}

// State is an optimizer's serialisable state.
type State struct {
	Type   string                // "sgd", "adam" or "adamw"
	LR     float64               // the current learning rate
	Hyper  map[string]float64    // hyperparameters (momentum, beta1, ...); booleans as 0/1
	Params map[string]ParamState // per-parameter state by parameter name
}

// ParamState is the state of one parameter.
type ParamState struct {
	Step    int64                `json:",omitempty"` // number of updates applied (Adam, AdamW)
	Buffers map[string][]float32 `json:",omitempty"` // e.g. "momentum_buffer", "exp_avg", "exp_avg_sq"
}

// paramSet is the validated parameter list shared by the optimizers.
type paramSet struct {
	params []nn.NamedParameter
	index  map[string]int
}

func newParamSet(op string, params []nn.NamedParameter) (paramSet, error) {
	ps := paramSet{params: append([]nn.NamedParameter(nil), params...), index: make(map[string]int, len(params))}
	if len(params) == 0 {
		return ps, errs.New(errs.Argument, op, "empty parameter list")
	}
	for i, p := range params {
		if p.Param == nil || p.Param.Data == nil {
			return ps, errs.New(errs.Argument, op, "parameter %d (%q) is nil", i, p.Name)
		}
		if _, dup := ps.index[p.Name]; dup {
			return ps, errs.New(errs.Argument, op, "duplicate parameter name %q", p.Name)
		}
		ps.index[p.Name] = i
	}
	return ps, nil
}

// ZeroGrad sets every parameter's Grad to nil.
func (ps *paramSet) ZeroGrad() {
	for _, p := range ps.params {
		p.Param.ZeroGrad()
	}
}

// update runs f on the data and gradient of every parameter with a
// gradient, writing the data back when the parameter is not contiguous.
func (ps *paramSet) update(op string, f func(i int, name string, p, g []float32)) error {
	for i, np := range ps.params {
		v := np.Param
		if v.Grad == nil {
			continue
		}
		if v.Grad.Numel() != v.Data.Numel() || !tensor.EqualShape(v.Grad.Shape(), v.Data.Shape()) {
			return errs.New(errs.Shape, op, "parameter %q of shape %v has a gradient of shape %v", np.Name, v.Data.Shape(), v.Grad.Shape())
		}
		if err := tensor.ValidateLayout(op, v.Data); err != nil {
			return err
		}
		if err := tensor.ValidateLayout(op, v.Grad); err != nil {
			return err
		}
		p := v.Data.Data()
		f(i, np.Name, p, v.Grad.Data())
		if !v.Data.IsContiguous() { // Data returned a copy: write it back
			src, err := tensor.New(p, v.Data.Shape()...)
			if err == nil {
				err = tensor.CopyInto(v.Data, src)
			}
			if err != nil {
				return errs.Wrap(errs.KindOf(err), op, err, "parameter %q", np.Name)
			}
		}
	}
	return nil
}

// checkState validates the common parts of a State against this set.
func (ps *paramSet) checkState(op, typ string, s State, buffers []string) error {
	if s.Type != typ {
		return errs.New(errs.Argument, op, "state of a %q optimizer cannot be loaded into a %q optimizer", s.Type, typ)
	}
	if !(s.LR >= 0) || math.IsInf(s.LR, 0) {
		return errs.New(errs.Argument, op, "invalid learning rate %v", s.LR)
	}
	var unknown []string
	for name := range s.Params {
		if _, ok := ps.index[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return errs.New(errs.Argument, op, "state for unknown parameters %q", unknown)
	}
	for name, st := range s.Params {
		n := ps.params[ps.index[name]].Param.Data.Numel()
		if st.Step < 0 {
			return errs.New(errs.Argument, op, "parameter %q has negative step %d", name, st.Step)
		}
		for b, vals := range st.Buffers {
			known := false
			for _, k := range buffers {
				known = known || k == b
			}
			if !known {
				return errs.New(errs.Argument, op, "parameter %q has unknown buffer %q (want one of %q)", name, b, buffers)
			}
			if len(vals) != n {
				return errs.New(errs.Shape, op, "buffer %q of parameter %q has %d elements, parameter has %d", b, name, len(vals), n)
			}
		}
	}
	return nil
}

func hyper(op string, h map[string]float64, key string) (float64, error) {
	v, ok := h[key]
	if !ok {
		return 0, errs.New(errs.Argument, op, "state lacks hyperparameter %q", key)
	}
	return v, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func cloneBuf(b []float32) []float32 { return append([]float32(nil), b...) }
