package optim

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/tensor"
)

func param(t *testing.T, name string, vals ...float32) nn.NamedParameter {
	t.Helper()
	x, err := tensor.New(vals)
	if err != nil {
		t.Fatal(err)
	}
	return nn.NamedParameter{Name: name, Param: autograd.Param(x)}
}

func setGrad(t *testing.T, p nn.NamedParameter, vals ...float32) {
	t.Helper()
	g, err := tensor.New(vals, p.Param.Data.Shape()...)
	if err != nil {
		t.Fatal(err)
	}
	p.Param.Grad = g
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

// TestSGDHandComputed checks SGD against values worked out by hand for a
// parameter p0 = 1 with a constant gradient 0.5 and lr 0.1.
func TestSGDHandComputed(t *testing.T) {
	tests := []struct {
		name string
		cfg  SGDConfig
		want []float64 // p after steps 1, 2, 3
	}{
		// p ← p - 0.1·0.5
		{"plain", SGDConfig{LR: 0.1}, []float64{0.95, 0.9, 0.85}},
		// buf: 0.5, 0.95, 1.355 → p: 0.95, 0.855, 0.7195
		{"momentum", SGDConfig{LR: 0.1, Momentum: 0.9}, []float64{0.95, 0.855, 0.7195}},
		// buf: 0.5 (no dampening on the first step), 0.9·0.5+0.5·0.5 = 0.7, 0.9·0.7+0.25 = 0.88
		{"dampening", SGDConfig{LR: 0.1, Momentum: 0.9, Dampening: 0.5}, []float64{0.95, 0.88, 0.792}},
		// d = g + 0.9·buf: 0.95, 1.355, 1.7195 → p: 0.905, 0.7695, 0.59755
		{"nesterov", SGDConfig{LR: 0.1, Momentum: 0.9, Nesterov: true}, []float64{0.905, 0.7695, 0.59755}},
		// d = 0.5 + 0.1·p: 0.6 → 0.94; 0.594 → 0.8806; 0.58806 → 0.821794
		{"weight decay", SGDConfig{LR: 0.1, WeightDecay: 0.1}, []float64{0.94, 0.8806, 0.821794}},
		// d = 0.5+0.1p = 0.6; buf 0.6 → p 0.94; d 0.594, buf 0.54+0.594 = 1.134 → p 0.8266
		{"momentum+decay", SGDConfig{LR: 0.1, Momentum: 0.9, WeightDecay: 0.1}, []float64{0.94, 0.8266}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := param(t, "w", 1)
			o, err := NewSGD([]nn.NamedParameter{p}, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.want {
				setGrad(t, p, 0.5)
				if err := o.Step(); err != nil {
					t.Fatal(err)
				}
				if got := float64(p.Param.Data.Data()[0]); !near(got, want, 1e-6) {
					t.Fatalf("step %d: p = %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

// refAdam is a float64 transcription of torch.optim.Adam/AdamW (amsgrad=false).
type refAdam struct {
	cfg       AdamConfig
	decoupled bool
	m, v      []float64
	step      int
}

func (r *refAdam) step1(p, g []float64) {
	if r.m == nil {
		r.m, r.v = make([]float64, len(p)), make([]float64, len(p))
	}
	r.step++
	c := r.cfg
	for i := range p {
		gi := g[i]
		if c.WeightDecay != 0 {
			if r.decoupled {
				p[i] *= 1 - c.LR*c.WeightDecay
			} else {
				gi += c.WeightDecay * p[i]
			}
		}
		r.m[i] = c.Beta1*r.m[i] + (1-c.Beta1)*gi
		r.v[i] = c.Beta2*r.v[i] + (1-c.Beta2)*gi*gi
		mhat := r.m[i] / (1 - math.Pow(c.Beta1, float64(r.step)))
		vhat := r.v[i] / (1 - math.Pow(c.Beta2, float64(r.step)))
		p[i] -= c.LR * mhat / (math.Sqrt(vhat) + c.Eps)
	}
}

// gradOf is the gradient used by the Adam tests: that of Σ (p²/2 - 0.3p)·k.
func gradOf(p []float64) []float64 {
	g := make([]float64, len(p))
	for i, x := range p {
		g[i] = (x - 0.3) * float64(i+1)
	}
	return g
}

func TestAdamAgainstReference(t *testing.T) {
	tests := []struct {
		name      string
		cfg       AdamConfig
		decoupled bool
	}{
		{"adam", DefaultAdamConfig(0.1), false},
		{"adam L2", AdamConfig{LR: 0.05, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.1}, false},
		{"adamw", DefaultAdamWConfig(0.1), true},
		{"adamw strong decay", AdamConfig{LR: 0.05, Beta1: 0.5, Beta2: 0.9, Eps: 1e-8, WeightDecay: 0.5}, true},
	}
	init := []float32{1, -2, 0.25, 3}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := param(t, "w", init...)
			var o *Adam
			var err error
			if tc.decoupled {
				o, err = NewAdamW([]nn.NamedParameter{p}, tc.cfg)
			} else {
				o, err = NewAdam([]nn.NamedParameter{p}, tc.cfg)
			}
			if err != nil {
				t.Fatal(err)
			}
			ref := &refAdam{cfg: tc.cfg, decoupled: tc.decoupled}
			rp := make([]float64, len(init))
			for i, v := range init {
				rp[i] = float64(v)
			}
			for step := 1; step <= 3; step++ {
				// Both see the gradient of the float32 parameter, as PyTorch would.
				cur := make([]float64, len(rp))
				for i, v := range p.Param.Data.Data() {
					cur[i] = float64(v)
				}
				g := gradOf(cur)
				g32 := make([]float32, len(g))
				for i := range g {
					g32[i] = float32(g[i])
				}
				setGrad(t, p, g32...)
				if err := o.Step(); err != nil {
					t.Fatal(err)
				}
				ref.step1(rp, gradOf(rp))
				for i, v := range p.Param.Data.Data() {
					if !near(float64(v), rp[i], 2e-6) {
						t.Fatalf("step %d, element %d: %v, want %v", step, i, v, rp[i])
					}
				}
				if step == 1 && tc.cfg.WeightDecay == 0 {
					// Adam's first step moves each element by lr·sign(g) (up to eps).
					for i, v := range p.Param.Data.Data() {
						want := float64(init[i]) - tc.cfg.LR*math.Copysign(1, g[i])
						if !near(float64(v), want, 1e-6) {
							t.Fatalf("first step element %d: %v, want %v", i, v, want)
						}
					}
				}
			}
		})
	}
}

func TestSkipsNilGradAndNonContiguous(t *testing.T) {
	a := param(t, "a", 1, 2)
	b := param(t, "b", 3, 4)
	base, _ := tensor.New([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	tr, _ := base.T() // [3, 2], not contiguous
	c := nn.NamedParameter{Name: "c", Param: autograd.Param(tr)}
	for _, mk := range []func(ps []nn.NamedParameter) (Optimizer, error){
		func(ps []nn.NamedParameter) (Optimizer, error) { return NewSGD(ps, SGDConfig{LR: 1, Momentum: 0.5}) },
		func(ps []nn.NamedParameter) (Optimizer, error) { return NewAdam(ps, DefaultAdamConfig(1)) },
	} {
		for i, v := range []float32{1, 2} {
			_ = a.Param.Data.SetAt(v, i)
		}
		o, err := mk([]nn.NamedParameter{a, b, c})
		if err != nil {
			t.Fatal(err)
		}
		setGrad(t, a, 1, 1)
		b.Param.Grad = nil
		gc, _ := tensor.Ones(3, 2)
		c.Param.Grad = gc
		before := append([]float32(nil), base.Data()...)
		if err := o.Step(); err != nil {
			t.Fatal(err)
		}
		if got := b.Param.Data.Data(); got[0] != 3 || got[1] != 4 {
			t.Errorf("%T changed a parameter without a gradient: %v", o, got)
		}
		if got := a.Param.Data.Data(); !near(float64(got[0]), 0, 1e-6) || !near(float64(got[1]), 1, 1e-6) {
			t.Errorf("%T: a = %v, want [0 1]", o, got)
		}
		for i, v := range base.Data() {
			if !near(float64(v), float64(before[i]-1), 1e-6) {
				t.Errorf("%T: non-contiguous parameter storage %v not updated in place (was %v)", o, base.Data(), before)
				break
			}
		}
		s, _ := o.StateDict()
		if _, ok := s.Params["b"]; ok {
			t.Errorf("%T keeps state for a parameter that never had a gradient", o)
		}
		o.ZeroGrad()
		if a.Param.Grad != nil || c.Param.Grad != nil {
			t.Errorf("%T: ZeroGrad left gradients", o)
		}
		for i, v := range []float32{1, 2, 3, 4, 5, 6} {
			_ = base.SetAt(v, i/3, i%3)
		}
	}
}

func TestConstructorErrors(t *testing.T) {
	ps := []nn.NamedParameter{param(t, "w", 1)}
	tests := []struct {
		name string
		err  func() error
	}{
		{"sgd negative lr", func() error { _, err := NewSGD(ps, SGDConfig{LR: -1}); return err }},
		{"sgd negative momentum", func() error { _, err := NewSGD(ps, SGDConfig{LR: 1, Momentum: -0.1}); return err }},
		{"sgd negative decay", func() error { _, err := NewSGD(ps, SGDConfig{LR: 1, WeightDecay: -1}); return err }},
		{"nesterov no momentum", func() error { _, err := NewSGD(ps, SGDConfig{LR: 1, Nesterov: true}); return err }},
		{"nesterov dampening", func() error {
			_, err := NewSGD(ps, SGDConfig{LR: 1, Momentum: 0.9, Dampening: 0.1, Nesterov: true})
			return err
		}},
		{"adam beta1=1", func() error { c := DefaultAdamConfig(1); c.Beta1 = 1; _, err := NewAdam(ps, c); return err }},
		{"adam beta2<0", func() error { c := DefaultAdamConfig(1); c.Beta2 = -0.5; _, err := NewAdam(ps, c); return err }},
		{"adam eps<0", func() error { c := DefaultAdamConfig(1); c.Eps = -1; _, err := NewAdamW(ps, c); return err }},
		{"adam NaN lr", func() error { _, err := NewAdam(ps, DefaultAdamConfig(math.NaN())); return err }},
		{"no params", func() error { _, err := NewSGD(nil, SGDConfig{LR: 1}); return err }},
		{"duplicate names", func() error {
			_, err := NewSGD([]nn.NamedParameter{ps[0], ps[0]}, SGDConfig{LR: 1})
			return err
		}},
		{"nil param", func() error { _, err := NewAdam([]nn.NamedParameter{{Name: "x"}}, DefaultAdamConfig(1)); return err }},
	}
	for _, tc := range tests {
		if err := tc.err(); !errors.Is(err, errs.Argument) {
			t.Errorf("%s: err %v, want errs.Argument", tc.name, err)
		}
	}
}

func TestGradShapeMismatch(t *testing.T) {
	p := param(t, "w", 1, 2)
	o, _ := NewSGD([]nn.NamedParameter{p}, SGDConfig{LR: 1})
	p.Param.Grad, _ = tensor.Ones(3)
	if err := o.Step(); !errors.Is(err, errs.Shape) {
		t.Fatalf("err %v, want errs.Shape", err)
	}
}

// TestStateDictJSONRoundTrip runs two optimizers side by side: one
// uninterrupted, one rebuilt from a JSON checkpoint after two steps. Their
// subsequent steps must agree bit for bit.
func TestStateDictJSONRoundTrip(t *testing.T) {
	mk := map[string]func(ps []nn.NamedParameter) (Optimizer, error){
		"sgd": func(ps []nn.NamedParameter) (Optimizer, error) {
			return NewSGD(ps, SGDConfig{LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 0.01})
		},
		"adam":  func(ps []nn.NamedParameter) (Optimizer, error) { return NewAdam(ps, DefaultAdamConfig(0.01)) },
		"adamw": func(ps []nn.NamedParameter) (Optimizer, error) { return NewAdamW(ps, DefaultAdamWConfig(0.01)) },
	}
	for name, build := range mk {
		t.Run(name, func(t *testing.T) {
			model := func() []nn.NamedParameter {
				m, err := nn.MLP([]int{3, 4, 2}, tensor.NewRNG(11))
				if err != nil {
					t.Fatal(err)
				}
				return m.Parameters()
			}
			grads := tensor.NewRNG(5)
			gradsFor := func(ps ...[]nn.NamedParameter) {
				for i := range ps[0] {
					g, _ := tensor.Randn(grads, ps[0][i].Param.Data.Shape()...)
					for _, set := range ps {
						set[i].Param.Grad = g
					}
				}
			}
			a, b := model(), model()
			oa, err := build(a)
			if err != nil {
				t.Fatal(err)
			}
			ob, _ := build(b)
			for range 2 {
				gradsFor(a, b)
				if err := oa.Step(); err != nil {
					t.Fatal(err)
				}
				_ = ob.Step()
			}
			st, err := ob.StateDict()
			if err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			var back State
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(st, back) {
				t.Fatalf("state changed through JSON:\n%+v\n%+v", st, back)
			}
			// Rebuild b's optimizer from the checkpoint, with a different LR to be overwritten.
			ob2, _ := build(b)
			ob2.SetLR(123)
			if err := ob2.LoadStateDict(back); err != nil {
				t.Fatal(err)
			}
			if ob2.LR() != oa.LR() {
				t.Fatalf("LR %v after load, want %v", ob2.LR(), oa.LR())
			}
			for range 3 {
				gradsFor(a, b)
				_ = oa.Step()
				if err := ob2.Step(); err != nil {
					t.Fatal(err)
				}
			}
			for i := range a {
				if !reflect.DeepEqual(a[i].Param.Data.Data(), b[i].Param.Data.Data()) {
					t.Fatalf("%s: resumed run differs from the uninterrupted one", a[i].Name)
				}
			}
		})
	}
}

func TestLoadStateDictErrors(t *testing.T) {
	p := param(t, "w", 1, 2)
	sgd, _ := NewSGD([]nn.NamedParameter{p}, SGDConfig{LR: 0.1, Momentum: 0.9})
	adam, _ := NewAdam([]nn.NamedParameter{p}, DefaultAdamConfig(0.1))
	setGrad(t, p, 1, 1)
	_ = sgd.Step()
	_ = adam.Step()
	sgdState, _ := sgd.StateDict()
	adamState, _ := adam.StateDict()
	edit := func(s State, f func(*State)) State {
		raw, _ := json.Marshal(s)
		var c State
		_ = json.Unmarshal(raw, &c)
		f(&c)
		return c
	}
	tests := []struct {
		name string
		o    Optimizer
		s    State
		kind errs.Kind
	}{
		{"wrong type", sgd, adamState, errs.Argument},
		{"adam into adamw", func() Optimizer { o, _ := NewAdamW([]nn.NamedParameter{p}, DefaultAdamWConfig(1)); return o }(), adamState, errs.Argument},
		{"unknown param", sgd, edit(sgdState, func(s *State) { s.Params["nope"] = s.Params["w"] }), errs.Argument},
		{"short buffer", sgd, edit(sgdState, func(s *State) { s.Params["w"].Buffers["momentum_buffer"] = []float32{1} }), errs.Shape},
		{"short moment", adam, edit(adamState, func(s *State) { s.Params["w"].Buffers["exp_avg_sq"] = []float32{1, 2, 3} }), errs.Shape},
		{"missing hyper", adam, edit(adamState, func(s *State) { delete(s.Hyper, "beta2") }), errs.Argument},
		{"bad hyper", adam, edit(adamState, func(s *State) { s.Hyper["beta1"] = 2 }), errs.Argument},
		{"bad buffer name", sgd, edit(sgdState, func(s *State) { s.Params["w"].Buffers["exp_avg"] = []float32{1, 2} }), errs.Argument},
	}
	for _, tc := range tests {
		if err := tc.o.LoadStateDict(tc.s); !errors.Is(err, tc.kind) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.kind)
		}
	}
}

func collect(t *testing.T, s Scheduler, o Optimizer, n int) []float64 {
	t.Helper()
	out := []float64{o.LR()}
	if s.LR() != o.LR() {
		t.Fatalf("scheduler LR %v, optimizer LR %v", s.LR(), o.LR())
	}
	for range n {
		_ = o.Step()
		s.Step()
		if s.LR() != o.LR() {
			t.Fatalf("scheduler LR %v, optimizer LR %v", s.LR(), o.LR())
		}
		out = append(out, o.LR())
	}
	return out
}

func TestSchedulers(t *testing.T) {
	newOpt := func(lr float64) *SGD {
		o, err := NewSGD([]nn.NamedParameter{param(t, "w", 1)}, SGDConfig{LR: lr})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	cosine := func(base, eta float64, tmax, t int) float64 {
		return eta + (base-eta)*(1+math.Cos(math.Pi*float64(t)/float64(tmax)))/2
	}
	tests := []struct {
		name  string
		build func(o Optimizer) (Scheduler, error)
		base  float64
		want  []float64
	}{
		{"step", func(o Optimizer) (Scheduler, error) { return NewStepLR(o, 2, 0.5) }, 1,
			[]float64{1, 1, 0.5, 0.5, 0.25, 0.25, 0.125}},
		{"step gamma 0.1", func(o Optimizer) (Scheduler, error) { return NewStepLR(o, 3, 0.1) }, 0.2,
			[]float64{0.2, 0.2, 0.2, 0.02, 0.02, 0.02, 0.002}},
		{"cosine", func(o Optimizer) (Scheduler, error) { return NewCosineAnnealingLR(o, 4, 0) }, 1,
			[]float64{1, 0.8535533905932737, 0.5, 0.14644660940672627, 0, 0.14644660940672627}},
		{"cosine eta", func(o Optimizer) (Scheduler, error) { return NewCosineAnnealingLR(o, 10, 0.01) }, 0.1,
			[]float64{cosine(0.1, 0.01, 10, 0), cosine(0.1, 0.01, 10, 1), cosine(0.1, 0.01, 10, 2), cosine(0.1, 0.01, 10, 3),
				cosine(0.1, 0.01, 10, 4), cosine(0.1, 0.01, 10, 5), cosine(0.1, 0.01, 10, 6)}},
		{"warmup constant", func(o Optimizer) (Scheduler, error) { return NewLinearWarmup(o, 4, 0.25, nil) }, 1,
			[]float64{0.25, 0.4375, 0.625, 0.8125, 1, 1, 1}},
		{"warmup from zero", func(o Optimizer) (Scheduler, error) { return NewLinearWarmup(o, 2, 0, nil) }, 0.4,
			[]float64{0, 0.2, 0.4, 0.4}},
		{"warmup then cosine", func(o Optimizer) (Scheduler, error) {
			c, err := NewCosineAnnealingLR(o, 4, 0)
			if err != nil {
				return nil, err
			}
			return NewLinearWarmup(o, 2, 0.5, c)
		}, 1, []float64{0.5, 0.75, 1, 0.8535533905932737, 0.5, 0.14644660940672627, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newOpt(tc.base)
			s, err := tc.build(o)
			if err != nil {
				t.Fatal(err)
			}
			got := collect(t, s, o, len(tc.want)-1)
			for i := range got {
				if !near(got[i], tc.want[i], 1e-12) {
					t.Fatalf("LRs %v, want %v", got, tc.want)
				}
			}
			// Resume from a JSON checkpoint taken at step 3: same LRs onwards.
			o2 := newOpt(tc.base)
			s2, _ := tc.build(o2)
			o3 := newOpt(tc.base)
			s3, _ := tc.build(o3)
			for range 3 {
				s2.Step()
			}
			raw, _ := json.Marshal(s2.StateDict())
			var st SchedulerState
			if err := json.Unmarshal(raw, &st); err != nil {
				t.Fatal(err)
			}
			if err := s3.LoadStateDict(st); err != nil {
				t.Fatal(err)
			}
			if o3.LR() != o2.LR() {
				t.Fatalf("LR %v after load, want %v", o3.LR(), o2.LR())
			}
			s2.Step()
			s3.Step()
			if o3.LR() != o2.LR() || s3.LR() != s2.LR() {
				t.Fatalf("resumed LR %v, want %v", o3.LR(), o2.LR())
			}
		})
	}
}

func TestSchedulerErrors(t *testing.T) {
	o, _ := NewSGD([]nn.NamedParameter{param(t, "w", 1)}, SGDConfig{LR: 1})
	tests := []struct {
		name string
		err  func() error
	}{
		{"step size 0", func() error { _, err := NewStepLR(o, 0, 0.5); return err }},
		{"gamma NaN", func() error { _, err := NewStepLR(o, 1, math.NaN()); return err }},
		{"tmax 0", func() error { _, err := NewCosineAnnealingLR(o, 0, 0); return err }},
		{"eta <0", func() error { _, err := NewCosineAnnealingLR(o, 5, -1); return err }},
		{"warmup 0", func() error { _, err := NewLinearWarmup(o, 0, 0.1, nil); return err }},
		{"factor 2", func() error { _, err := NewLinearWarmup(o, 3, 2, nil); return err }},
		{"nil optimizer", func() error { _, err := NewStepLR(nil, 1, 0.5); return err }},
		{"wrong state", func() error {
			s, _ := NewStepLR(o, 1, 0.5)
			return s.LoadStateDict(SchedulerState{Type: "cosine_annealing_lr", BaseLR: 1})
		}},
	}
	for _, tc := range tests {
		if err := tc.err(); !errors.Is(err, errs.Argument) {
			t.Errorf("%s: err %v, want errs.Argument", tc.name, err)
		}
	}
}

func TestClipGradNorm(t *testing.T) {
	tests := []struct {
		name    string
		maxNorm float64
		scaled  bool
	}{
		{"clips", 6.5, true},
		{"unchanged", 20, false},
		{"exactly at norm", 13, false}, // 13/(13+1e-6) < 1 scales by ~1, like PyTorch
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := param(t, "a", 0, 0)
			b := param(t, "b", 0)
			c := param(t, "c", 0) // no gradient
			setGrad(t, a, 3, 4)
			setGrad(t, b, 12)
			total, err := ClipGradNorm([]nn.NamedParameter{a, b, c}, tc.maxNorm)
			if err != nil {
				t.Fatal(err)
			}
			if total != 13 {
				t.Fatalf("total norm %v, want 13", total)
			}
			coef := 1.0
			if tc.maxNorm/(13+1e-6) < 1 {
				coef = tc.maxNorm / (13 + 1e-6)
			}
			want := []float64{3 * coef, 4 * coef, 12 * coef}
			got := append(append([]float32(nil), a.Param.Grad.Data()...), b.Param.Grad.Data()...)
			for i := range want {
				if !near(float64(got[i]), want[i], 1e-6) {
					t.Fatalf("grads %v, want %v", got, want)
				}
			}
			if tc.scaled {
				var sq float64
				for _, g := range got {
					sq += float64(g) * float64(g)
				}
				if !near(math.Sqrt(sq), tc.maxNorm, 1e-6) {
					t.Errorf("clipped norm %v, want %v", math.Sqrt(sq), tc.maxNorm)
				}
			}
		})
	}
	if _, err := ClipGradNorm(nil, -1); !errors.Is(err, errs.Argument) {
		t.Errorf("negative max norm: %v, want errs.Argument", err)
	}
	if n, err := ClipGradNorm(nil, 1); err != nil || n != 0 {
		t.Errorf("no params: %v, %v", n, err)
	}
}
