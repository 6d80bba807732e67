package optim

import (
	"math"

	"github.com/gorch/gorch/pkg/errs"
)

// Scheduler sets an optimizer's learning rate as training progresses.
type Scheduler interface {
	// Step advances the schedule by one step and sets the optimizer's LR.
	Step()
	// LR returns the learning rate for the current step.
	LR() float64
	// LRAt returns the learning rate the schedule gives at step, without
	// changing any state.
	LRAt(step int) float64
	// StateDict returns the scheduler's serialisable state.
	StateDict() SchedulerState
	// LoadStateDict restores a state returned by StateDict and sets the
	// optimizer's LR to the restored step's value.
	LoadStateDict(SchedulerState) error
}

// SchedulerState is a scheduler's serialisable state.
type SchedulerState struct {
	Type   string          // "step_lr", "cosine_annealing_lr" or "linear_warmup"
	Step   int             // steps taken (PyTorch's last_epoch)
	BaseLR float64         // the optimizer's LR when the scheduler was built
	Inner  *SchedulerState `json:",omitempty"` // the wrapped schedule of a LinearWarmup
}

// sched holds what every scheduler shares; lrAt is the closed form.
type sched struct {
	typ  string
	opt  Optimizer
	base float64
	step int
	lrAt func(step int) float64
}

func newSched(op, typ string, opt Optimizer) (sched, error) {
	if opt == nil {
		return sched{}, errs.New(errs.Argument, op, "nil optimizer")
	}
	return sched{typ: typ, opt: opt, base: opt.LR()}, nil
}

func (s *sched) apply()                { s.opt.SetLR(s.lrAt(s.step)) }
func (s *sched) Step()                 { s.step++; s.apply() }
func (s *sched) LR() float64           { return s.lrAt(s.step) }
func (s *sched) LRAt(step int) float64 { return s.lrAt(step) }
func (s *sched) BaseLR() float64       { return s.base }
func (s *sched) StateDict() SchedulerState {
	return SchedulerState{Type: s.typ, Step: s.step, BaseLR: s.base}
}

func (s *sched) load(op string, st SchedulerState) error {
	if st.Type != s.typ {
		return errs.New(errs.Argument, op, "state of a %q scheduler cannot be loaded into a %q scheduler", st.Type, s.typ)
	}
	if st.Step < 0 || !(st.BaseLR >= 0) || math.IsInf(st.BaseLR, 0) {
		return errs.New(errs.Argument, op, "invalid scheduler state: step %d, base LR %v", st.Step, st.BaseLR)
	}
	s.step, s.base = st.Step, st.BaseLR
	return nil
}

func (s *sched) LoadStateDict(st SchedulerState) error {
	if err := s.load("optim."+s.typ+".LoadStateDict", st); err != nil {
		return err
	}
	s.apply()
	return nil
}

// StepLR multiplies the learning rate by Gamma every StepSize steps:
// lr(t) = base·γ^⌊t/stepSize⌋ (torch.optim.lr_scheduler.StepLR's closed form).
type StepLR struct {
	sched
	StepSize int
	Gamma    float64
}

// NewStepLR returns a StepLR for opt, whose current LR becomes the base LR.
func NewStepLR(opt Optimizer, stepSize int, gamma float64) (*StepLR, error) {
	const op = "optim.StepLR"
	if stepSize <= 0 {
		return nil, errs.New(errs.Argument, op, "step size %d must be positive", stepSize)
	}
	if !(gamma >= 0) || math.IsInf(gamma, 0) {
		return nil, errs.New(errs.Argument, op, "invalid gamma %v", gamma)
	}
	s, err := newSched(op, "step_lr", opt)
	if err != nil {
		return nil, err
	}
	l := &StepLR{sched: s, StepSize: stepSize, Gamma: gamma}
	l.lrAt = func(t int) float64 { return l.base * math.Pow(l.Gamma, float64(t/l.StepSize)) }
	l.apply()
	return l, nil
}

// CosineAnnealingLR anneals the learning rate along a cosine from the base
// LR to EtaMin over TMax steps:
// lr(t) = ηmin + (base-ηmin)·(1+cos(πt/TMax))/2
// (torch.optim.lr_scheduler.CosineAnnealingLR's closed form; past TMax the
// cosine continues, rising again, as PyTorch's does).
type CosineAnnealingLR struct {
	sched
	TMax   int
	EtaMin float64
}

// NewCosineAnnealingLR returns a CosineAnnealingLR for opt, whose current LR becomes the base LR.
func NewCosineAnnealingLR(opt Optimizer, tMax int, etaMin float64) (*CosineAnnealingLR, error) {
	const op = "optim.CosineAnnealingLR"
	if tMax <= 0 {
		return nil, errs.New(errs.Argument, op, "T_max %d must be positive", tMax)
	}
	if !(etaMin >= 0) || math.IsInf(etaMin, 0) {
		return nil, errs.New(errs.Argument, op, "invalid eta_min %v", etaMin)
	}
	s, err := newSched(op, "cosine_annealing_lr", opt)
	if err != nil {
		return nil, err
	}
	c := &CosineAnnealingLR{sched: s, TMax: tMax, EtaMin: etaMin}
	c.lrAt = func(t int) float64 {
		return c.EtaMin + (c.base-c.EtaMin)*(1+math.Cos(math.Pi*float64(t)/float64(c.TMax)))/2
	}
	c.apply()
	return c, nil
}

// LinearWarmup ramps the learning rate linearly from StartFactor·base to
// base over Warmup steps, like torch.optim.lr_scheduler.LinearLR(
// start_factor, 1.0, total_iters=Warmup):
//
//	lr(t) = base·(StartFactor + (1-StartFactor)·t/Warmup)   for t < Warmup
//
// and then follows After as SequentialLR does: lr(t) = After.LRAt(t-Warmup),
// or the constant base when After is nil. After is used only as a schedule:
// do not call its Step.
type LinearWarmup struct {
	sched
	Warmup      int
	StartFactor float64
	After       Scheduler
}

// NewLinearWarmup returns a LinearWarmup for opt, whose current LR becomes
// the base LR. startFactor must lie in [0, 1]; after may be nil. Build
// after on the same optimizer before the warmup.
func NewLinearWarmup(opt Optimizer, warmup int, startFactor float64, after Scheduler) (*LinearWarmup, error) {
	const op = "optim.LinearWarmup"
	if warmup <= 0 {
		return nil, errs.New(errs.Argument, op, "warmup steps %d must be positive", warmup)
	}
	if !(startFactor >= 0 && startFactor <= 1) {
		return nil, errs.New(errs.Argument, op, "start factor %v is outside [0, 1]", startFactor)
	}
	s, err := newSched(op, "linear_warmup", opt)
	if err != nil {
		return nil, err
	}
	w := &LinearWarmup{sched: s, Warmup: warmup, StartFactor: startFactor, After: after}
	w.lrAt = func(t int) float64 {
		if t < w.Warmup {
			return w.base * (w.StartFactor + (1-w.StartFactor)*float64(t)/float64(w.Warmup))
		}
		if w.After == nil {
			return w.base
		}
		return w.After.LRAt(t - w.Warmup)
	}
	w.apply()
	return w, nil
}

// StateDict returns the warmup's state, with the wrapped schedule's as Inner.
func (w *LinearWarmup) StateDict() SchedulerState {
	st := w.sched.StateDict()
	if w.After != nil {
		in := w.After.StateDict()
		st.Inner = &in
	}
	return st
}

// LoadStateDict restores the warmup's and the wrapped schedule's state.
func (w *LinearWarmup) LoadStateDict(st SchedulerState) error {
	const op = "optim.linear_warmup.LoadStateDict"
	if (st.Inner == nil) != (w.After == nil) {
		return errs.New(errs.Argument, op, "state and scheduler disagree on whether a schedule follows the warmup")
	}
	if err := w.load(op, st); err != nil {
		return err
	}
	if w.After != nil {
		if err := w.After.LoadStateDict(*st.Inner); err != nil {
			return err
		}
	}
	w.apply()
	return nil
}
