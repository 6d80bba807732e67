package optim

import (
	"math"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/nn"
)

// SGDConfig configures SGD; its fields mean what torch.optim.SGD's
// arguments of the same names do. The zero value (apart from LR) is plain
// gradient descent.
type SGDConfig struct {
	LR          float64
	Momentum    float64
	Dampening   float64
	WeightDecay float64
	Nesterov    bool
}

func (c SGDConfig) validate(op string) error {
	switch {
	case !(c.LR >= 0) || math.IsInf(c.LR, 0):
		return errs.New(errs.Argument, op, "invalid learning rate %v", c.LR)
	case !(c.Momentum >= 0) || math.IsInf(c.Momentum, 0):
		return errs.New(errs.Argument, op, "invalid momentum %v", c.Momentum)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return errs.New(errs.Argument, op, "invalid weight decay %v", c.WeightDecay)
	case math.IsNaN(c.Dampening) || math.IsInf(c.Dampening, 0):
		return errs.New(errs.Argument, op, "invalid dampening %v", c.Dampening)
	case c.Nesterov && (c.Momentum <= 0 || c.Dampening != 0):
		return errs.New(errs.Argument, op, "nesterov momentum requires a momentum > 0 and zero dampening (momentum %v, dampening %v)", c.Momentum, c.Dampening)
	}
	return nil
}

// SGD is stochastic gradient descent with optional momentum, dampening,
// Nesterov momentum and L2 weight decay, exactly as torch.optim.SGD:
//
//	g ← grad + wd·p
//	buf ← g (first step) or momentum·buf + (1-dampening)·g
//	g ← g + momentum·buf (nesterov) or buf
//	p ← p - lr·g
type SGD struct {
	paramSet
	cfg SGDConfig
	buf map[string][]float32 // momentum buffers by parameter name
}

// NewSGD returns an SGD optimizer over params.
func NewSGD(params []nn.NamedParameter, cfg SGDConfig) (*SGD, error) {
	const op = "optim.SGD"
	if err := cfg.validate(op); err != nil {
		return nil, err
	}
	ps, err := newParamSet(op, params)
	if err != nil {
		return nil, err
	}
	return &SGD{paramSet: ps, cfg: cfg, buf: map[string][]float32{}}, nil
}

// Config returns the optimizer's current configuration.
func (o *SGD) Config() SGDConfig { return o.cfg }

// LR returns the learning rate.
func (o *SGD) LR() float64 { return o.cfg.LR }

// SetLR sets the learning rate.
func (o *SGD) SetLR(lr float64) { o.cfg.LR = lr }

// Step applies one SGD update.
func (o *SGD) Step() error {
	lr := float32(o.cfg.LR)
	wd := float32(o.cfg.WeightDecay)
	mom := float32(o.cfg.Momentum)
	damp := float32(1 - o.cfg.Dampening)
	return o.update("optim.SGD.Step", func(_ int, name string, p, g []float32) {
		var buf []float32
		if o.cfg.Momentum != 0 {
			buf = o.buf[name]
		}
		first := buf == nil && o.cfg.Momentum != 0
		if first {
			buf = make([]float32, len(p))
			o.buf[name] = buf
		}
		if !first {
			// Every step after a momentum buffer's first (AVX2 where
			// available, same arithmetic as the loop below).
			kernels.SGDUpdate(p, g, buf, kernels.SGDParams{LR: lr, WeightDecay: wd, Momentum: mom, Damp: damp, Nesterov: o.cfg.Nesterov})
			return
		}
		// The buffer's first step: buf = d (torch.clone), then as SGDUpdate.
		for i := range p {
			d := g[i]
			if wd != 0 {
				d = kernels.FMA32(p[i], wd, d)
			}
			buf[i] = d
			if o.cfg.Nesterov {
				d = kernels.FMA32(buf[i], mom, d)
			}
			p[i] = kernels.FMA32(d, -lr, p[i])
		}
	})
}

// StateDict returns a deep copy of the optimizer's state.
func (o *SGD) StateDict() (State, error) {
	s := State{Type: "sgd", LR: o.cfg.LR, Params: map[string]ParamState{},
		Hyper: map[string]float64{"momentum": o.cfg.Momentum, "dampening": o.cfg.Dampening,
			"weight_decay": o.cfg.WeightDecay, "nesterov": b2f(o.cfg.Nesterov)}}
	for name, b := range o.buf {
		s.Params[name] = ParamState{Buffers: map[string][]float32{"momentum_buffer": cloneBuf(b)}}
	}
	return s, nil
}

// LoadStateDict restores the learning rate, hyperparameters and momentum buffers.
func (o *SGD) LoadStateDict(s State) error {
	const op = "optim.SGD.LoadStateDict"
	if err := o.checkState(op, "sgd", s, []string{"momentum_buffer"}); err != nil {
		return err
	}
	cfg := SGDConfig{LR: s.LR}
	var err error
	var nest float64
	for _, h := range []struct {
		key string
		dst *float64
	}{{"momentum", &cfg.Momentum}, {"dampening", &cfg.Dampening}, {"weight_decay", &cfg.WeightDecay}, {"nesterov", &nest}} {
		if *h.dst, err = hyper(op, s.Hyper, h.key); err != nil {
			return err
		}
	}
	cfg.Nesterov = nest != 0
	if err := cfg.validate(op); err != nil {
		return err
	}
	buf := map[string][]float32{}
	for name, st := range s.Params {
		if b, ok := st.Buffers["momentum_buffer"]; ok {
			buf[name] = cloneBuf(b)
		}
	}
	o.cfg, o.buf = cfg, buf
	return nil
}
