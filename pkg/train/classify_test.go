package train

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/gorch/gorch/internal/cputime"
	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/optim"
	"github.com/gorch/gorch/pkg/tensor"
)

func requireFashionMNIST(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(data.FashionMNISTDir + "/train-images-idx3-ubyte.gz"); err != nil {
		t.Fatalf("Fashion-MNIST is missing (%v): run apt-get install -y dataset-fashion-mnist", err)
	}
}

// TestFashionMNISTAccuracy trains the two reference models for two epochs
// on the real dataset, through the full recording loop, and checks their
// test accuracy and the run record.
func TestFashionMNISTAccuracy(t *testing.T) {
	testutil.Long(t, "trains on Fashion-MNIST for a minute")
	requireFashionMNIST(t)
	cases := []struct {
		model string
		batch int
		want  float64
	}{
		{"mlp", 64, 0.85},
		{"cnn", 32, 0.88},
	}
	for _, c := range cases {
		t.Run(c.model, func(t *testing.T) {
			spec := &Spec{Model: ModelSpec{Name: c.model}, Dataset: DatasetSpec{Name: "fashion-mnist"},
				Optimizer: OptimizerSpec{Name: "adam", LR: 1e-3}, Epochs: 2, BatchSize: c.batch, Seed: 1, LogEvery: 1000}
			store, sink := newSink(t, spec)
			res, err := Run(context.Background(), spec, sink, Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: test accuracy %.4f, test loss %.4f, %d steps, %.1f steps/s", c.model, res.TestAccuracy, res.TestLoss, res.Steps, res.StepsPerSec)
			if res.TestAccuracy < c.want {
				t.Errorf("%s test accuracy after 2 epochs = %.4f, want >= %.2f", c.model, res.TestAccuracy, c.want)
			}
			if wantSteps := 2 * ((60000 + c.batch - 1) / c.batch); res.Steps != wantSteps {
				t.Errorf("steps = %d, want %d", res.Steps, wantSteps)
			}
			sum := summary(t, store, res.RunID)
			if sum.Status != experiment.StatusSucceeded || !sum.Complete {
				t.Errorf("summary status %v complete %v", sum.Status, sum.Complete)
			}
			if acc := sum.Metrics["eval/accuracy"]; acc.Last != res.TestAccuracy || acc.Count != 2 {
				t.Errorf("eval/accuracy summary = %+v, want last %v over 2 evaluations", acc, res.TestAccuracy)
			}
		})
	}
}

// BenchmarkMLPStep measures training steps per second of the 784-256-10
// MLP with Adam (forward, cross-entropy, backward, step), without records.
func BenchmarkMLPStep(b *testing.B) {
	for _, batch := range []int{64, 256} {
		for _, mode := range []string{"legacy", "fast"} {
			b.Run(fmt.Sprintf("batch=%d/gemm=%s", batch, mode), func(b *testing.B) {
				prev := kernels.SetLegacyGemm(mode == "legacy")
				defer kernels.SetLegacyGemm(prev)
				rng := tensor.NewRNG(1)
				model, err := nn.MLP([]int{784, 256, 10}, rng)
				if err != nil {
					b.Fatal(err)
				}
				opt, err := optim.NewAdam(model.Parameters(), optim.DefaultAdamConfig(1e-3))
				if err != nil {
					b.Fatal(err)
				}
				x, _ := tensor.Randn(rng, batch, 784)
				y, _ := tensor.Zeros(batch)
				for i, yd := 0, y.Data(); i < batch; i++ {
					yd[i] = float32(i % 10)
				}
				benchSteps(b, model, opt, x, y)
			})
		}
	}
}

// BenchmarkCNNStep measures training steps per second of nn.LeNet with Adam
// at batch 64 (the bench harness's CNN figure), legacy vs fast GEMM paths.
func BenchmarkCNNStep(b *testing.B) {
	for _, mode := range []string{"legacy", "fast"} {
		b.Run("batch=64/gemm="+mode, func(b *testing.B) {
			prev := kernels.SetLegacyGemm(mode == "legacy")
			defer kernels.SetLegacyGemm(prev)
			rng := tensor.NewRNG(1)
			model, err := nn.LeNet(rng)
			if err != nil {
				b.Fatal(err)
			}
			opt, err := optim.NewAdam(model.Parameters(), optim.DefaultAdamConfig(1e-3))
			if err != nil {
				b.Fatal(err)
			}
			const batch = 64
			x, _ := tensor.Randn(rng, batch, 1, 28, 28)
			y, _ := tensor.Zeros(batch)
			for i, yd := 0, y.Data(); i < batch; i++ {
				yd[i] = float32(i % 10)
			}
			benchSteps(b, model, opt, x, y)
		})
	}
}

// benchSteps times full training steps (forward, cross-entropy, backward,
// optimizer) of model on one batch and reports steps/s and steps/cpu-s.
func benchSteps(b *testing.B, model nn.Module, opt optim.Optimizer, x, y *tensor.Tensor) {
	// A scope with an arena, as Run's steps have.
	scope, arena := tensor.NewScope(), tensor.NewArena()
	nn.SetScope(model, scope)
	scope.Adopt(x, y)
	scope.SetArena(arena)
	c0 := cputime.Process()
	for b.Loop() {
		opt.ZeroGrad()
		arena.Reset()
		out, err := model.Forward(autograd.Const(x))
		if err != nil {
			b.Fatal(err)
		}
		loss, err := crossEntropy(out, y)
		if err != nil {
			b.Fatal(err)
		}
		if err := loss.Backward(); err != nil {
			b.Fatal(err)
		}
		if err := opt.Step(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
	// Steps per CPU second: on the shared VM steadier than wall clock.
	if c := cputime.Process() - c0; c > 0 && c0 > 0 {
		b.ReportMetric(float64(b.N)/c.Seconds(), "steps/cpu-s")
	}
}
