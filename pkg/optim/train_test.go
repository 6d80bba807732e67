package optim

import (
	"testing"

	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/tensor"
)

// TestTrainMLPSeparable trains an MLP with Adam on a linearly separable
// 2-D problem (class = x0 + 2·x1 > 0, with a margin) and expects > 95%
// training accuracy after 200 full-batch steps.
func TestTrainMLPSeparable(t *testing.T) {
	const n = 256
	rng := tensor.NewRNG(2024)
	xs := make([]float32, 0, 2*n)
	ys := make([]float32, 0, n)
	for len(ys) < n {
		a, b := 4*rng.Float32()-2, 4*rng.Float32()-2
		s := a + 2*b
		if s > -0.2 && s < 0.2 {
			continue // keep a margin
		}
		xs = append(xs, a, b)
		if s > 0 {
			ys = append(ys, 1)
		} else {
			ys = append(ys, 0)
		}
	}
	x, _ := tensor.New(xs, n, 2)
	y, _ := tensor.New(ys, n)

	model, err := nn.MLP([]int{2, 16, 2}, tensor.NewRNG(7))
	if err != nil {
		t.Fatal(err)
	}
	opt, err := NewAdam(model.Parameters(), DefaultAdamConfig(0.02))
	if err != nil {
		t.Fatal(err)
	}
	sched, err := NewCosineAnnealingLR(opt, 200, 0.002)
	if err != nil {
		t.Fatal(err)
	}
	input := autograd.Const(x)
	var first, last float32
	for step := range 200 {
		opt.ZeroGrad()
		logits, err := model.Forward(input)
		if err != nil {
			t.Fatal(err)
		}
		loss, err := autograd.CrossEntropy(logits, y)
		if err != nil {
			t.Fatal(err)
		}
		err = loss.Backward()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ClipGradNorm(model.Parameters(), 5); err != nil {
			t.Fatal(err)
		}
		if err := opt.Step(); err != nil {
			t.Fatal(err)
		}
		sched.Step()
		l, _ := loss.Item()
		if step == 0 {
			first = l
		}
		last = l
	}
	model.Train(false)
	var correct int
	scope := tensor.NewScope()
	nn.SetScope(model, scope)
	err = scope.NoGrad(func() error {
		logits, err := model.Forward(input)
		if err != nil {
			return err
		}
		if logits.RequiresGrad() {
			t.Errorf("forward under NoGrad recorded a graph")
		}
		d := logits.Data.Data()
		for i := range n {
			pred := float32(0)
			if d[2*i+1] > d[2*i] {
				pred = 1
			}
			if pred == ys[i] {
				correct++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	acc := float64(correct) / n
	t.Logf("loss %.4f -> %.4f, accuracy %.3f", first, last, acc)
	if !(last < first) {
		t.Errorf("loss did not decrease: %v -> %v", first, last)
	}
	if acc <= 0.95 {
		t.Errorf("accuracy %.3f, want > 0.95", acc)
	}
}
