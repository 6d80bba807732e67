package train

import (
	"fmt"
	"math"
	"testing"

	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/optim"
	"github.com/gorch/gorch/pkg/tensor"
)

// TestArenaBitIdentical trains the MLP, LeNet and a GPT with dropout for a
// few Adam steps with their tensors' storages recycled through a
// tensor.Arena, poisoned with NaN at every Reset, and with fresh memory,
// and requires bit-identical parameters: no operation reads memory it did
// not write (a recycled storage that should have been cleared would bring
// NaN in), and no tensor is used past its step. Backward runs on 1 and 3
// workers (the arena is shared by concurrent allocations).
func TestArenaBitIdentical(t *testing.T) {
	t.Setenv(tensor.EnvArenaPoison, "1")
	models := []struct {
		name  string
		build func(rng *tensor.RNG) (nn.Module, *tensor.Tensor, *tensor.Tensor, error)
	}{
		{"mlp", func(rng *tensor.RNG) (nn.Module, *tensor.Tensor, *tensor.Tensor, error) {
			m, err := nn.MLP([]int{20, 16, 10}, rng)
			x, _ := tensor.Randn(rng, 12, 20)
			return m, x, classes(12, 10), err
		}},
		{"lenet", func(rng *tensor.RNG) (nn.Module, *tensor.Tensor, *tensor.Tensor, error) {
			m, err := nn.LeNet(rng)
			x, _ := tensor.Randn(rng, 4, 1, 28, 28)
			return m, x, classes(4, 10), err
		}},
		{"gpt", func(rng *tensor.RNG) (nn.Module, *tensor.Tensor, *tensor.Tensor, error) {
			m, err := nn.NewGPT(nn.GPTConfig{Vocab: 16, Context: 8, Layers: 1, Dim: 16, Heads: 2, Dropout: 0.1}, rng, rng)
			x, _ := tensor.Zeros(3, 8)
			y, _ := tensor.Zeros(3, 8)
			for i, xd, yd := 0, x.Data(), y.Data(); i < len(xd); i++ {
				xd[i], yd[i] = float32(i%16), float32((i+3)%16)
			}
			return m, x, y, err
		}},
	}
	for _, mc := range models {
		for _, workers := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/workers=%d", mc.name, workers), func(t *testing.T) {
				var got [2][][]float32
				for i, useArena := range []bool{false, true} {
					rng := tensor.NewRNG(7)
					m, x, y, err := mc.build(rng)
					if err != nil {
						t.Fatal(err)
					}
					got[i] = arenaSteps(t, m, x, y, useArena, workers)
				}
				for p := range got[0] {
					for j := range got[0][p] {
						if math.Float32bits(got[0][p][j]) != math.Float32bits(got[1][p][j]) {
							t.Fatalf("parameter %d[%d] = %v with the arena, %v without", p, j, got[1][p][j], got[0][p][j])
						}
					}
				}
			})
		}
	}
}

func classes(n, k int) *tensor.Tensor {
	y, _ := tensor.Zeros(n)
	for i, yd := 0, y.Data(); i < n; i++ {
		yd[i] = float32(i % k)
	}
	return y
}

// arenaSteps runs 4 training steps as trainer.trainStep does and returns
// copies of the parameters.
func arenaSteps(t *testing.T, m nn.Module, x, y *tensor.Tensor, useArena bool, workers int) [][]float32 {
	t.Helper()
	opt, err := optim.NewAdam(m.Parameters(), optim.DefaultAdamConfig(1e-2))
	if err != nil {
		t.Fatal(err)
	}
	scope := tensor.NewScope()
	nn.SetScope(m, scope)
	scope.Adopt(x, y)
	arena := tensor.NewArena()
	for range 4 {
		opt.ZeroGrad()
		if useArena {
			arena.Reset()
			scope.SetArena(arena)
		}
		out, err := m.Forward(autograd.Const(x))
		if err != nil {
			t.Fatal(err)
		}
		loss, err := crossEntropy(out, y)
		if err != nil {
			t.Fatal(err)
		}
		if err := loss.BackwardWith(autograd.BackwardOptions{Workers: workers}); err != nil {
			t.Fatal(err)
		}
		if err := opt.Step(); err != nil {
			t.Fatal(err)
		}
		scope.SetArena(nil)
	}
	var ps [][]float32
	for _, p := range m.Parameters() {
		ps = append(ps, p.Param.Data.ToSlice())
	}
	return ps
}
