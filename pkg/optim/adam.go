package optim

import (
	"math"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/nn"
)

// AdamConfig configures Adam and AdamW; the fields mean what
// torch.optim.Adam's lr, betas, eps and weight_decay do. Start from
// DefaultAdamConfig or DefaultAdamWConfig: zero betas and eps are valid
// values, not "use the default".
type AdamConfig struct {
	LR          float64
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64
}

// DefaultAdamConfig returns PyTorch's Adam defaults with learning rate lr:
// betas (0.9, 0.999), eps 1e-8, no weight decay.
func DefaultAdamConfig(lr float64) AdamConfig {
	return AdamConfig{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// DefaultAdamWConfig returns PyTorch's AdamW defaults with learning rate
// lr: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
func DefaultAdamWConfig(lr float64) AdamConfig {
	c := DefaultAdamConfig(lr)
	c.WeightDecay = 0.01
	return c
}

func (c AdamConfig) validate(op string) error {
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	switch {
	case !(c.LR >= 0) || bad(c.LR):
		return errs.New(errs.Argument, op, "invalid learning rate %v", c.LR)
	case !(c.Eps >= 0) || bad(c.Eps):
		return errs.New(errs.Argument, op, "invalid epsilon %v", c.Eps)
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return errs.New(errs.Argument, op, "invalid beta1 %v, want [0, 1)", c.Beta1)
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return errs.New(errs.Argument, op, "invalid beta2 %v, want [0, 1)", c.Beta2)
	case !(c.WeightDecay >= 0) || bad(c.WeightDecay):
		return errs.New(errs.Argument, op, "invalid weight decay %v", c.WeightDecay)
	}
	return nil
}

// Adam is torch.optim.Adam (amsgrad=false) or, with decoupled weight
// decay, torch.optim.AdamW. For step t:
//
//	Adam:  g ← grad + wd·p          AdamW: p ← p·(1 - lr·wd)
//	m ← m + (1-β₁)·(g - m)
//	v ← β₂·v + (1-β₂)·g²
//	p ← p - lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + eps)
type Adam struct {
	paramSet
	cfg       AdamConfig
	decoupled bool
	st        map[string]*adamState
}

type adamState struct {
	step int64
	m, v []float32
}

// NewAdam returns torch.optim.Adam over params (weight decay as L2 added to the gradient).
func NewAdam(params []nn.NamedParameter, cfg AdamConfig) (*Adam, error) {
	return newAdam("optim.Adam", params, cfg, false)
}

// NewAdamW returns torch.optim.AdamW over params (decoupled weight decay).
func NewAdamW(params []nn.NamedParameter, cfg AdamConfig) (*Adam, error) {
	return newAdam("optim.AdamW", params, cfg, true)
}

func newAdam(op string, params []nn.NamedParameter, cfg AdamConfig, decoupled bool) (*Adam, error) {
	if err := cfg.validate(op); err != nil {
		return nil, err
	}
	ps, err := newParamSet(op, params)
	if err != nil {
		return nil, err
	}
	return &Adam{paramSet: ps, cfg: cfg, decoupled: decoupled, st: map[string]*adamState{}}, nil
}

func (o *Adam) typ() string {
	if o.decoupled {
		return "adamw"
	}
	return "adam"
}

// Config returns the optimizer's current configuration.
func (o *Adam) Config() AdamConfig { return o.cfg }

// LR returns the learning rate.
func (o *Adam) LR() float64 { return o.cfg.LR }

// SetLR sets the learning rate.
func (o *Adam) SetLR(lr float64) { o.cfg.LR = lr }

// Step applies one Adam (or AdamW) update.
func (o *Adam) Step() error {
	c := o.cfg
	b2 := float32(c.Beta2)
	w1, w2 := float32(1-c.Beta1), float32(1-c.Beta2)
	eps := float32(c.Eps)
	wd := float32(c.WeightDecay)
	decay := float32(1 - c.LR*c.WeightDecay)
	return o.update("optim."+o.typ()+".Step", func(_ int, name string, p, g []float32) {
		s := o.st[name]
		if s == nil {
			s = &adamState{m: make([]float32, len(p)), v: make([]float32, len(p))}
			o.st[name] = s
		}
		s.step++
		t := float64(s.step)
		bc1 := 1 - math.Pow(c.Beta1, t)
		bc2 := 1 - math.Pow(c.Beta2, t)
		stepSize := float32(c.LR / bc1)
		bc2Sqrt := float32(math.Sqrt(bc2))
		// Explicit float32 conversions keep the compiler from fusing
		// multiply-adds, so results are identical on every architecture.
		// The branches on the configuration are hoisted out of the
		// element loop and the slices re-sliced to len(p), so the loop
		// runs without bounds checks.
		m, v, g := s.m[:len(p)], s.v[:len(p)], g[:len(p)]
		switch {
		case c.WeightDecay != 0 && o.decoupled:
			for i := range p {
				p[i] *= decay
			}
		case c.WeightDecay != 0:
			// L2 penalty: the gradient gains wd·p (on a copy; g is the
			// parameter's Grad and must not change).
			gd := make([]float32, len(g))
			for i := range gd {
				gd[i] = kernels.FMA32(p[i], wd, g[i]) // grad.add(param, alpha=wd)
			}
			g = gd
		}
		// m, v and p in one pass (AVX2 where available), with the same
		// operation order and float32 rounding as the scalar loop it replaced
		// (kept as adamReference in vec_test.go; see
		// kernels.AdamUpdate).
		kernels.AdamUpdate(p, g, m, v, kernels.AdamParams{W1: w1, B2: b2, W2: w2, Eps: eps, BC2Sqrt: bc2Sqrt, StepSize: stepSize})
	})
}

// StateDict returns a deep copy of the optimizer's state.
func (o *Adam) StateDict() (State, error) {
	c := o.cfg
	s := State{Type: o.typ(), LR: c.LR, Params: map[string]ParamState{},
		Hyper: map[string]float64{"beta1": c.Beta1, "beta2": c.Beta2, "eps": c.Eps, "weight_decay": c.WeightDecay}}
	for name, st := range o.st {
		s.Params[name] = ParamState{Step: st.step,
			Buffers: map[string][]float32{"exp_avg": cloneBuf(st.m), "exp_avg_sq": cloneBuf(st.v)}}
	}
	return s, nil
}

// LoadStateDict restores the learning rate, hyperparameters, moments and step counts.
func (o *Adam) LoadStateDict(s State) error {
	op := "optim." + o.typ() + ".LoadStateDict"
	if err := o.checkState(op, o.typ(), s, []string{"exp_avg", "exp_avg_sq"}); err != nil {
		return err
	}
	cfg := AdamConfig{LR: s.LR}
	var err error
	for _, h := range []struct {
		key string
		dst *float64
	}{{"beta1", &cfg.Beta1}, {"beta2", &cfg.Beta2}, {"eps", &cfg.Eps}, {"weight_decay", &cfg.WeightDecay}} {
		if *h.dst, err = hyper(op, s.Hyper, h.key); err != nil {
			return err
		}
	}
	if err := cfg.validate(op); err != nil {
		return err
	}
	st := map[string]*adamState{}
	for name, ps := range s.Params {
		m, okM := ps.Buffers["exp_avg"]
		v, okV := ps.Buffers["exp_avg_sq"]
		if !okM || !okV {
			return errs.New(errs.Argument, op, "parameter %q lacks exp_avg or exp_avg_sq", name)
		}
		st[name] = &adamState{step: ps.Step, m: cloneBuf(m), v: cloneBuf(v)}
	}
	o.cfg, o.st = cfg, st
	return nil
}
