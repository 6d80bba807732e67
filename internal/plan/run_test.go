package plan

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gorch/gorch/pkg/tensor"
)

// The graphs in testdata are the partitions torch.compile(backend="gorch")
// hands to plans for gorchbench's models (python/gorch/compile, PyTorch
// 2.15): the forward and backward graphs of the MLP (784-256-10) at
// batches 64 and 256, LeNet at 64 and the GPT at 16.
func benchPlan(b *testing.B, name string) {
	p := loadPlan(b, name)
	inputs := randomInputs(b, p, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.RunWith(inputs, 1, func([]*tensor.Tensor) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlan(b *testing.B) {
	for _, name := range []string{"mlp64_fwd", "mlp64_bwd", "mlp256_fwd", "mlp256_bwd", "cnn64_fwd", "cnn64_bwd", "gpt16_fwd", "gpt16_bwd"} {
		b.Run(name, func(b *testing.B) { benchPlan(b, name) })
	}
}

// randomInputs returns inputs for p: normal float32 values, and small
// non-negative integers (token ids below 32, class labels) for integer
// inputs.
func randomInputs(tb testing.TB, p *Plan, seed uint64) []*tensor.Tensor {
	tb.Helper()
	rng := tensor.NewRNG(seed)
	inputs := make([]*tensor.Tensor, len(p.Inputs()))
	for i, m := range p.Inputs() {
		var err error
		if IsInteger(m.Dtype) {
			inputs[i], err = tensor.Zeros(m.Shape...)
			for j := range inputs[i].Data() {
				inputs[i].Data()[j] = float32((j*7 + i) % 10)
			}
		} else {
			inputs[i], err = tensor.Randn(rng, m.Shape...)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	return inputs
}

func loadPlan(tb testing.TB, name string) *Plan {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	g, err := Parse(data)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := Compile(g)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestRunWithRecyclesStorages runs the recorded partitions of the benchmark
// models through RunWith three times on new inputs each, with recycled
// storages poisoned (NaN) at every reuse: each run's outputs must equal
// Run's (fresh memory) bit for bit.
func TestRunWithRecyclesStorages(t *testing.T) {
	t.Setenv(tensor.EnvArenaPoison, "1")
	for _, name := range []string{"mlp64_fwd", "mlp64_bwd", "cnn64_fwd", "cnn64_bwd", "gpt16_fwd", "gpt16_bwd"} {
		t.Run(name, func(t *testing.T) {
			p := loadPlan(t, name)
			for run := range 3 {
				inputs := randomInputs(t, p, uint64(run+1))
				want, err := p.Run(inputs, 5)
				if err != nil {
					t.Fatal(err)
				}
				err = p.RunWith(inputs, 5, func(outs []*tensor.Tensor) error {
					for j, o := range outs {
						if got, w := o.ToSlice(), want[j].ToSlice(); !slices.Equal(got, w) {
							t.Errorf("run %d, output %d differs from Run's (first %v; want %v)", run, j, got[:min(4, len(got))], w[:min(4, len(w))])
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
