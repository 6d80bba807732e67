package autograd

import (
	"testing"

	"github.com/gorch/gorch/pkg/tensor"
)

// positive returns values in [0.5, 1.5) for ops defined on positive inputs.
func positive(seed uint64, shape ...int) *tensor.Tensor {
	return ok(tensor.Uniform(tensor.NewRNG(seed), 0.5, 1.5, shape...))
}

// awayFromZero returns values with |x| in [0.2, 1.2), for ops with a kink at 0.
func awayFromZero(seed uint64, shape ...int) *tensor.Tensor {
	x := ok(tensor.Uniform(tensor.NewRNG(seed), 0.2, 1.2, shape...))
	s := ok(tensor.Sign(ok(tensor.Randn(tensor.NewRNG(seed+100), shape...))))
	return ok(tensor.Mul(x, s))
}

func transposed(t *tensor.Tensor) *tensor.Tensor { return ok(t.Transpose(0, 1)) }

type gcase struct {
	name   string
	f      func(in []*Variable) (*Variable, error)
	inputs []*tensor.Tensor
}

func TestGradCheckEveryOp(t *testing.T) {
	idx := ok(tensor.New([]float32{2, 0, 2}, 3))
	gidx := ok(tensor.New([]float32{0, 2, 1, 1, 0, 0}, 2, 3))
	cond := ok(tensor.New([]float32{1, 0, 0, 1, 1, 0}, 2, 3))
	targets := ok(tensor.New([]float32{1, 0, 3, 2}, 4))
	conv := tensor.Conv2dOptions{Stride: [2]int{2, 1}, Padding: [2]int{1, 1}}
	pool := tensor.Pool2dOptions{Kernel: [2]int{2, 2}}
	cases := []gcase{
		{"add broadcast", func(v []*Variable) (*Variable, error) { return Add(v[0], v[1]) }, []*tensor.Tensor{randn(1, 2, 3), randn(2, 3)}},
		{"sub broadcast", func(v []*Variable) (*Variable, error) { return Sub(v[0], v[1]) }, []*tensor.Tensor{randn(1, 2, 1), randn(2, 1, 3)}},
		{"mul non-contiguous", func(v []*Variable) (*Variable, error) { return Mul(v[0], v[1]) }, []*tensor.Tensor{transposed(randn(1, 3, 2)), randn(2, 2, 3)}},
		{"div", func(v []*Variable) (*Variable, error) { return Div(v[0], v[1]) }, []*tensor.Tensor{randn(1, 2, 3), positive(2, 3)}},
		{"neg", func(v []*Variable) (*Variable, error) { return Neg(v[0]) }, []*tensor.Tensor{randn(1, 4)}},
		{"pow", func(v []*Variable) (*Variable, error) { return Pow(v[0], v[1]) }, []*tensor.Tensor{positive(1, 2, 3), randn(2, 3)}},
		{"pow scalar", func(v []*Variable) (*Variable, error) { return PowScalar(v[0], 3) }, []*tensor.Tensor{randn(1, 5)}},
		{"exp", func(v []*Variable) (*Variable, error) { return Exp(v[0]) }, []*tensor.Tensor{randn(1, 5)}},
		{"log", func(v []*Variable) (*Variable, error) { return Log(v[0]) }, []*tensor.Tensor{positive(1, 5)}},
		{"sqrt", func(v []*Variable) (*Variable, error) { return Sqrt(v[0]) }, []*tensor.Tensor{positive(1, 5)}},
		{"relu", func(v []*Variable) (*Variable, error) { return Relu(v[0]) }, []*tensor.Tensor{awayFromZero(1, 6)}},
		{"gelu", func(v []*Variable) (*Variable, error) { return Gelu(v[0]) }, []*tensor.Tensor{randn(1, 6)}},
		{"tanh", func(v []*Variable) (*Variable, error) { return Tanh(v[0]) }, []*tensor.Tensor{randn(1, 6)}},
		{"sigmoid", func(v []*Variable) (*Variable, error) { return Sigmoid(v[0]) }, []*tensor.Tensor{randn(1, 6)}},
		{"maximum", func(v []*Variable) (*Variable, error) { return Maximum(v[0], v[1]) }, []*tensor.Tensor{randn(1, 6), randn(2, 6)}},
		{"add scalar", func(v []*Variable) (*Variable, error) { return AddScalar(v[0], 2) }, []*tensor.Tensor{randn(1, 3)}},
		{"where", func(v []*Variable) (*Variable, error) { return Where(cond, v[0], v[1]) }, []*tensor.Tensor{randn(1, 2, 3), randn(2, 3)}},
		{"sum dims", func(v []*Variable) (*Variable, error) { return Sum(v[0], []int{0, 2}, false) }, []*tensor.Tensor{randn(1, 2, 3, 4)}},
		{"sum all", func(v []*Variable) (*Variable, error) { return Sum(v[0], nil, false) }, []*tensor.Tensor{transposed(randn(1, 3, 4))}},
		{"mean keepdim", func(v []*Variable) (*Variable, error) { return Mean(v[0], []int{-1}, true) }, []*tensor.Tensor{randn(1, 3, 4)}},
		{"max dim", func(v []*Variable) (*Variable, error) {
			m, _, err := Max(v[0], 1, false)
			return m, err
		}, []*tensor.Tensor{randn(1, 3, 4)}},
		{"matmul 2-D", func(v []*Variable) (*Variable, error) { return Matmul(v[0], v[1]) }, []*tensor.Tensor{randn(1, 3, 4), randn(2, 4, 5)}},
		{"matmul transposed", func(v []*Variable) (*Variable, error) { return Matmul(v[0], v[1]) }, []*tensor.Tensor{transposed(randn(1, 4, 3)), transposed(randn(2, 5, 4))}},
		{"matmul batched broadcast", func(v []*Variable) (*Variable, error) { return Matmul(v[0], v[1]) }, []*tensor.Tensor{randn(1, 2, 3, 4), randn(2, 4, 2)}},
		{"matmul vector", func(v []*Variable) (*Variable, error) { return Matmul(v[0], v[1]) }, []*tensor.Tensor{randn(1, 4), randn(2, 4, 3)}},
		{"linear", func(v []*Variable) (*Variable, error) { return Linear(v[0], v[1], v[2]) }, []*tensor.Tensor{randn(1, 5, 4), randn(2, 3, 4), randn(3, 3)}},
		{"linear 3-D input", func(v []*Variable) (*Variable, error) { return Linear(v[0], v[1], nil) }, []*tensor.Tensor{randn(1, 2, 3, 4), randn(2, 3, 4)}},
		{"conv2d", func(v []*Variable) (*Variable, error) { return Conv2d(v[0], v[1], v[2], conv) }, []*tensor.Tensor{randn(1, 2, 2, 5, 4), randn(2, 3, 2, 3, 2), randn(3, 3)}},
		{"max pool", func(v []*Variable) (*Variable, error) { return MaxPool2d(v[0], pool) }, []*tensor.Tensor{randn(1, 2, 2, 4, 4)}},
		{"avg pool padded", func(v []*Variable) (*Variable, error) {
			return AvgPool2d(v[0], tensor.Pool2dOptions{Kernel: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}})
		}, []*tensor.Tensor{randn(1, 1, 2, 5, 5)}},
		{"softmax", func(v []*Variable) (*Variable, error) { return Softmax(v[0], 1) }, []*tensor.Tensor{randn(1, 3, 4)}},
		{"log softmax", func(v []*Variable) (*Variable, error) { return LogSoftmax(v[0], -1) }, []*tensor.Tensor{randn(1, 3, 4)}},
		{"cross entropy", func(v []*Variable) (*Variable, error) { return CrossEntropy(v[0], targets) }, []*tensor.Tensor{randn(1, 4, 5)}},
		{"cross entropy transposed", func(v []*Variable) (*Variable, error) { return CrossEntropy(v[0], targets) }, []*tensor.Tensor{transposed(randn(1, 5, 4))}},
		{"nll", func(v []*Variable) (*Variable, error) { return NLLLoss(v[0], targets) }, []*tensor.Tensor{randn(1, 4, 5)}},
		{"mse", func(v []*Variable) (*Variable, error) { return MSE(v[0], v[1]) }, []*tensor.Tensor{randn(1, 3, 2), randn(2, 3, 2)}},
		{"dropout", func(v []*Variable) (*Variable, error) { return Dropout(v[0], 0.5, tensor.NewRNG(9), true) }, []*tensor.Tensor{randn(1, 20)}},
		{"reshape", func(v []*Variable) (*Variable, error) { return Reshape(v[0], 3, -1) }, []*tensor.Tensor{transposed(randn(1, 2, 3))}},
		{"view", func(v []*Variable) (*Variable, error) { return View(v[0], 6) }, []*tensor.Tensor{randn(1, 2, 3)}},
		{"flatten", func(v []*Variable) (*Variable, error) { return Flatten(v[0], 1, 2) }, []*tensor.Tensor{randn(1, 2, 3, 2)}},
		{"transpose", func(v []*Variable) (*Variable, error) { return Transpose(v[0], 0, 2) }, []*tensor.Tensor{randn(1, 2, 3, 4)}},
		{"permute", func(v []*Variable) (*Variable, error) { return Permute(v[0], 2, 0, 1) }, []*tensor.Tensor{randn(1, 2, 3, 4)}},
		{"expand", func(v []*Variable) (*Variable, error) { return Expand(v[0], 2, 3, 4) }, []*tensor.Tensor{randn(1, 3, 1)}},
		{"squeeze", func(v []*Variable) (*Variable, error) { return Squeeze(v[0]) }, []*tensor.Tensor{randn(1, 3, 1)}},
		{"unsqueeze", func(v []*Variable) (*Variable, error) { return Unsqueeze(v[0], 1) }, []*tensor.Tensor{randn(1, 3)}},
		{"slice step", func(v []*Variable) (*Variable, error) { return Slice(v[0], 1, 1, 6, 2) }, []*tensor.Tensor{randn(1, 2, 7)}},
		{"narrow", func(v []*Variable) (*Variable, error) { return Narrow(v[0], 0, 1, 2) }, []*tensor.Tensor{randn(1, 4, 2)}},
		{"select", func(v []*Variable) (*Variable, error) { return Select(v[0], 1, -1) }, []*tensor.Tensor{randn(1, 2, 3)}},
		{"concat", func(v []*Variable) (*Variable, error) { return Concat(v, 1) }, []*tensor.Tensor{randn(1, 2, 3), randn(2, 2, 1)}},
		{"stack", func(v []*Variable) (*Variable, error) { return Stack(v, 0) }, []*tensor.Tensor{randn(1, 2, 3), randn(2, 2, 3)}},
		{"index select repeated", func(v []*Variable) (*Variable, error) { return IndexSelect(v[0], 1, idx) }, []*tensor.Tensor{randn(1, 2, 3)}},
		{"gather", func(v []*Variable) (*Variable, error) { return Gather(v[0], 1, gidx) }, []*tensor.Tensor{randn(1, 2, 3)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := GradCheck(c.f, c.inputs, GradCheckOptions{Seed: 3}); err != nil {
				t.Errorf("GradCheck(%s): %v", c.name, err)
			}
		})
	}
}

// TestGradCheckDetectsWrongGradient makes sure the checker can fail.
func TestGradCheckDetectsWrongGradient(t *testing.T) {
	wrong := func(v []*Variable) (*Variable, error) {
		out := ok(tensor.Exp(v[0].Data))
		return record("bad_exp", out, v, func(g *tensor.Tensor) ([]*tensor.Tensor, error) {
			return []*tensor.Tensor{g}, nil // should be g·eˣ
		}), nil
	}
	if err := GradCheck(wrong, []*tensor.Tensor{randn(1, 4)}, GradCheckOptions{}); err == nil {
		t.Errorf("GradCheck accepted a wrong gradient")
	}
}
