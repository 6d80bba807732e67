package train

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"

	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/errs"
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

// TestFashionMNISTAccuracy trains the two reference models for two
// epochs on the real dataset and checks their test accuracy.
func TestFashionMNISTAccuracy(t *testing.T) {
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
			res, err := Classify(context.Background(), Config{Model: c.model, Epochs: 2, BatchSize: c.batch, LR: 1e-3, Seed: 1})
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
		})
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		kind errs.Kind
	}{
		{"unknown model", Config{Model: "resnet", Epochs: 1, BatchSize: 1, LR: 1}, errs.Config},
		{"unknown dataset", Config{Dataset: "cifar", Epochs: 1, BatchSize: 1, LR: 1}, errs.Config},
		{"zero epochs", Config{Epochs: 0, BatchSize: 1, LR: 1}, errs.Config},
		{"negative batch", Config{Epochs: 1, BatchSize: -1, LR: 1}, errs.Config},
		{"zero lr", Config{Epochs: 1, BatchSize: 1}, errs.Config},
		{"missing dataset", Config{Epochs: 1, BatchSize: 1, LR: 1, DatasetDir: t.TempDir()}, errs.Data},
	}
	for _, c := range cases {
		_, err := Classify(context.Background(), c.cfg)
		if !errors.Is(err, c.kind) {
			t.Errorf("%s: Classify err = %v, want kind %v", c.name, err, c.kind)
		}
	}
	_, err := Classify(context.Background(), Config{Epochs: 1, BatchSize: 1, LR: 1, DatasetDir: t.TempDir()})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dataset error %v does not wrap fs.ErrNotExist", err)
	}
}

func TestCancelStopsTraining(t *testing.T) {
	requireFashionMNIST(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Classify(ctx, Config{Epochs: 1, BatchSize: 64, LR: 1e-3, TrainLimit: 640})
	if !errors.Is(err, errs.Training) || !errors.Is(err, context.Canceled) || res.Steps != 0 {
		t.Errorf("cancelled Classify = %+v, %v", res, err)
	}
}

// BenchmarkMLPStep measures training steps per second of the 784-256-10
// MLP with Adam at batch 64 (forward, cross-entropy, backward, step).
func BenchmarkMLPStep(b *testing.B) {
	for _, batch := range []int{64, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
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
			for b.Loop() {
				out, err := model.Forward(autograd.Const(x))
				if err != nil {
					b.Fatal(err)
				}
				loss, err := autograd.CrossEntropy(out, y)
				if err != nil {
					b.Fatal(err)
				}
				opt.ZeroGrad()
				if err := loss.Backward(); err != nil {
					b.Fatal(err)
				}
				if err := opt.Step(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
		})
	}
}
