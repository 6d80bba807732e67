package autograd

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

func tn(t testing.TB, data []float32, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.New(data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func ok[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func randn(seed uint64, shape ...int) *tensor.Tensor {
	return ok(tensor.Randn(tensor.NewRNG(seed), shape...))
}

func TestBackwardSimple(t *testing.T) {
	// y = sum(x*x + 3x) → dy/dx = 2x + 3; x used twice accumulates.
	x := Param(tn(t, []float32{1, -2, 0.5}, 3))
	sq := ok(Mul(x, x))
	lin := ok(MulScalar(x, 3))
	y := ok(Sum(ok(Add(sq, lin)), nil, false))
	if err := y.Backward(); err != nil {
		t.Fatal(err)
	}
	want := []float32{5, -1, 4}
	if got := x.Grad.Data(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("grad = %v, want %v", got, want)
	}
	// A second backward accumulates.
	y2 := ok(Sum(x, nil, false))
	if err := y2.Backward(); err != nil {
		t.Fatal(err)
	}
	if got := x.Grad.Data(); fmt.Sprint(got) != fmt.Sprint([]float32{6, 0, 5}) {
		t.Errorf("accumulated grad = %v", got)
	}
	if y.GradFn() != "sum" || !x.IsLeaf() || y.IsLeaf() {
		t.Errorf("GradFn = %q, leaf flags wrong", y.GradFn())
	}
}

func TestBackwardErrors(t *testing.T) {
	x := Param(tn(t, []float32{1, 2}, 2))
	y := ok(MulScalar(x, 2))
	if err := y.Backward(); !errors.Is(err, errs.Shape) {
		t.Errorf("Backward on 2 elements err = %v, want shape error", err)
	}
	if err := y.BackwardWith(BackwardOptions{Grad: tn(t, []float32{1, 2, 3}, 3)}); !errors.Is(err, errs.Shape) {
		t.Errorf("Backward with wrong grad shape err = %v", err)
	}
	c := Const(tn(t, []float32{1}, 1))
	if err := c.Backward(); !errors.Is(err, errs.Argument) {
		t.Errorf("Backward on const err = %v", err)
	}
	if _, err := Add(nil, x); !errors.Is(err, errs.Argument) || errs.OpOf(err) != "add" {
		t.Errorf("Add(nil) err = %v", err)
	}
	if err := y.SetRequiresGrad(false); !errors.Is(err, errs.Argument) {
		t.Errorf("SetRequiresGrad on non-leaf err = %v", err)
	}
	// Upstream gradient.
	if err := y.BackwardWith(BackwardOptions{Grad: tn(t, []float32{1, 10}, 2)}); err != nil {
		t.Fatal(err)
	}
	if got := x.Grad.Data(); got[0] != 2 || got[1] != 20 {
		t.Errorf("grad with upstream = %v", got)
	}
}

func TestNoGradAndDetach(t *testing.T) {
	run, other := tensor.NewScope(), tensor.NewScope()
	x, w := Param(tn(t, []float32{1, 2}, 2)), Param(tn(t, []float32{3, 4}, 2))
	run.Adopt(x.Data)
	other.Adopt(w.Data)
	var y *Variable
	if err := run.NoGrad(func() error {
		var err error
		y, err = MulScalar(x, 2)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if y.RequiresGrad() || !y.IsLeaf() {
		t.Errorf("op under NoGrad recorded a graph")
	}
	// While another goroutine holds run in NoGrad, ops in run record
	// nothing from any goroutine, and ops in other scopes (or none) record.
	inside, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- run.NoGrad(func() error { close(inside); <-release; return nil })
	}()
	<-inside
	inRun, inOther := ok(Mul(x, w)), ok(Mul(w, x))
	free := ok(MulScalar(Param(tn(t, []float32{1}, 1)), 2))
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		v    *Variable
		want bool
	}{{"Mul(x in run, w)", inRun, false}, {"Mul(w in other, x)", inOther, true}, {"op in no scope", free, true}} {
		if got := tc.v.RequiresGrad(); got != tc.want {
			t.Errorf("%s: RequiresGrad() = %v; want %v", tc.name, got, tc.want)
		}
	}
	d := inOther.Detach()
	if d.RequiresGrad() || d.Data != inOther.Data {
		t.Errorf("Detach kept history or copied data")
	}
	if !run.GradEnabled() {
		t.Errorf("GradEnabled() = false after NoGrad")
	}
}

// deepGraph builds a wide graph with many shared uses so that scheduling
// order varies between runs with several workers.
func deepGraph(_ testing.TB, w1, w2 *Variable, x *tensor.Tensor) *Variable {
	h := ok(Linear(Const(x), w1, nil))
	var parts []*Variable
	for i := 0; i < 16; i++ {
		a := ok(Tanh(ok(MulScalar(h, float32(i+1)/8))))
		b := ok(Sigmoid(ok(Add(a, h))))
		parts = append(parts, ok(Mul(a, b)))
	}
	s := parts[0]
	for _, p := range parts[1:] {
		s = ok(Add(s, p))
	}
	o := ok(Linear(s, w2, nil))
	return ok(Mean(ok(Mul(o, o)), nil, false))
}

func TestBackwardWorkersBitIdentical(t *testing.T) {
	x := randn(1, 32, 64)
	var ref [][]float32
	for _, workers := range []int{1, 2, 4, 8} {
		for rep := 0; rep < 3; rep++ {
			w1 := Param(randn(2, 48, 64))
			w2 := Param(randn(3, 8, 48))
			loss := deepGraph(t, w1, w2, x)
			if err := loss.BackwardWith(BackwardOptions{Workers: workers}); err != nil {
				t.Fatal(err)
			}
			got := [][]float32{w1.Grad.Data(), w2.Grad.Data()}
			if ref == nil {
				ref = got
				continue
			}
			for k := range got {
				for i := range got[k] {
					if math.Float32bits(got[k][i]) != math.Float32bits(ref[k][i]) {
						t.Fatalf("workers=%d rep=%d: grad %d[%d] = %v, want %v (bit-identical)", workers, rep, k, i, got[k][i], ref[k][i])
					}
				}
			}
		}
	}
}

func TestBackwardErrorStopsPass(t *testing.T) {
	x := Param(tn(t, []float32{1, 2}, 2))
	bad := record("explode", tn(t, []float32{0}, 1), []*Variable{x}, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		return nil, errs.New(errs.Training, "explode", "boom")
	})
	for _, w := range []int{1, 3} {
		err := bad.BackwardWith(BackwardOptions{Workers: w})
		if !errors.Is(err, errs.Training) {
			t.Errorf("workers=%d: err = %v, want the node's training error", w, err)
		}
	}
	wrong := record("wrong", tn(t, []float32{0}, 1), []*Variable{x}, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
		return []*tensor.Tensor{tensor.Scalar(1)}, nil
	})
	if err := wrong.Backward(); !errors.Is(err, errs.Internal) {
		t.Errorf("wrong-shaped gradient err = %v, want internal error", err)
	}
}

// TestFusedReLUMatchesUnfused checks that LinearReLU and Conv2dReLU give
// bit for bit the values and gradients of the op followed by Relu.
func TestFusedReLUMatchesUnfused(t *testing.T) {
	conv := tensor.Conv2dOptions{}
	for _, tc := range []struct {
		name         string
		x, w, b      *tensor.Tensor
		fused, plain func(x, w, b *Variable) (*Variable, error)
	}{
		{"linear", randn(1, 5, 7), randn(2, 4, 7), randn(3, 4), LinearReLU, Linear},
		{"conv2d", randn(4, 2, 3, 12, 12), randn(5, 8, 3, 5, 5), randn(6, 8),
			func(x, w, b *Variable) (*Variable, error) { return Conv2dReLU(x, w, b, conv) },
			func(x, w, b *Variable) (*Variable, error) { return Conv2d(x, w, b, conv) }},
	} {
		var got [2][4]*tensor.Tensor
		for i, fused := range []bool{true, false} {
			x, w, b := Param(tc.x), Param(tc.w), Param(tc.b)
			var y *Variable
			var err error
			if fused {
				y, err = tc.fused(x, w, b)
			} else if y, err = tc.plain(x, w, b); err == nil {
				y, err = Relu(y)
			}
			if err != nil {
				t.Fatal(err)
			}
			s := ok(Sum(ok(Mul(y, y)), nil, false))
			if err := s.Backward(); err != nil {
				t.Fatal(err)
			}
			got[i] = [4]*tensor.Tensor{y.Data, x.Grad, w.Grad, b.Grad}
		}
		for k, what := range []string{"output", "x grad", "w grad", "b grad"} {
			a, b := got[0][k].Data(), got[1][k].Data()
			for i := range a {
				if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
					t.Fatalf("%s: %s element %d: fused %v; want %v", tc.name, what, i, a[i], b[i])
				}
			}
		}
	}
}

// TestFreshGradKept checks when a leaf keeps the gradient it is handed
// instead of copying it: the weight and bias gradients of a linear op
// (new products nothing else shares) are kept; a gradient passed through
// a view op, or the caller's output gradient, is copied, so changing the
// caller's tensor or another leaf's Grad leaves a Grad alone. Values are
// checked against the products written out.
func TestFreshGradKept(t *testing.T) {
	x := Param(tn(t, []float32{1, 2, 3, 4, 5, 6}, 2, 3))
	w := Param(tn(t, []float32{1, 0, -1, 2, 1, 0}, 2, 3))
	b := Param(tn(t, []float32{0.5, -0.5}, 2))
	y := ok(Linear(x, w, b))
	g := tn(t, []float32{1, 2, 3, 4}, 2, 2)
	if err := y.BackwardWith(BackwardOptions{Grad: g}); err != nil {
		t.Fatal(err)
	}
	// dW = gᵀ·x, db = Σ_rows g, dx = g·w.
	want := map[string][]float32{
		"w": {13, 17, 21, 18, 24, 30},
		"b": {4, 6},
		"x": {5, 2, -1, 11, 4, -3},
	}
	for name, v := range map[string]*Variable{"w": w, "b": b, "x": x} {
		if got := v.Grad.ToSlice(); !slices.Equal(got, want[name]) {
			t.Errorf("%s.Grad = %v; want %v", name, got, want[name])
		}
	}

	// A root that is a leaf's view: its gradient is the caller's tensor,
	// which must be copied.
	p := Param(tn(t, []float32{1, 2, 3, 4}, 4))
	r := ok(Reshape(p, 2, 2))
	if err := r.BackwardWith(BackwardOptions{Grad: g}); err != nil {
		t.Fatal(err)
	}
	g.Data()[0] = 100
	if got := p.Grad.ToSlice(); !slices.Equal(got, []float32{1, 2, 3, 4}) {
		t.Errorf("p.Grad = %v after the caller changed its output gradient; want [1 2 3 4] (a copy)", got)
	}
}
