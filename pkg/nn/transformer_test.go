package nn

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"testing"

	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

type fixtureTensor struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

func (f fixtureTensor) tensor(t *testing.T) *tensor.Tensor {
	d := make([]float32, len(f.Data))
	for i, v := range f.Data {
		d[i] = float32(v)
	}
	x, err := tensor.New(d, f.Shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// closeTo reports the first element of got farther than 1e-5 + 1e-4·|want|
// from want (the torch.compile backend's tolerances), or -1.
func closeTo(got *tensor.Tensor, want fixtureTensor) int {
	for i, v := range got.Data() {
		if w := want.Data[i]; math.IsNaN(float64(v)) || math.Abs(float64(v)-w) > 1e-5+1e-4*math.Abs(w) {
			return i
		}
	}
	return -1
}

// TestGPTAgainstTorch loads the weights of a GPT built by PyTorch with the
// same layout and names (testdata/torch_gpt.json, written by
// scripts/torch_fixtures.py) and compares the logits, the cross-entropy
// and every parameter's gradient with PyTorch's.
func TestGPTAgainstTorch(t *testing.T) {
	b, err := os.ReadFile("testdata/torch_gpt.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Config          GPTConfig                `json:"config"`
		Names           []string                 `json:"names"`
		Weights         map[string]fixtureTensor `json:"weights"`
		Grads           map[string]fixtureTensor `json:"grads"`
		Tokens, Targets fixtureTensor
		Logits          fixtureTensor `json:"logits"`
		Loss            float64       `json:"loss"`
	}
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	m, err := NewGPT(fx.Config, tensor.NewRNG(1), tensor.NewRNG(2))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(m.Parameters()); !reflect.DeepEqual(got, fx.Names) {
		t.Fatalf("parameter names %v; PyTorch's are %v", got, fx.Names)
	}
	sd := NewTensorDict()
	for _, n := range fx.Names {
		sd.Set(n, fx.Weights[n].tensor(t))
	}
	if err := LoadStateDict(m, sd, true); err != nil {
		t.Fatal(err)
	}
	logits, err := m.Forward(autograd.Const(fx.Tokens.tensor(t)))
	if err != nil {
		t.Fatal(err)
	}
	if i := closeTo(logits.Data, fx.Logits); i >= 0 || !tensor.EqualShape(logits.Data.Shape(), fx.Logits.Shape) {
		t.Fatalf("logits %v differ from PyTorch's at element %d", logits.Data.Shape(), i)
	}
	flat, err := autograd.Reshape(logits, -1, fx.Config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := fx.Targets.tensor(t).Reshape(-1)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := autograd.CrossEntropy(flat, tg)
	if err != nil {
		t.Fatal(err)
	}
	if lv, _ := loss.Item(); math.Abs(float64(lv)-fx.Loss) > 1e-5+1e-4*fx.Loss {
		t.Errorf("loss = %v; PyTorch's is %v", lv, fx.Loss)
	}
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Parameters() {
		want := fx.Grads[p.Name]
		if p.Param.Grad == nil {
			t.Errorf("%s has no gradient", p.Name)
		} else if i := closeTo(p.Param.Grad, want); i >= 0 {
			t.Errorf("grad of %s [%d] = %v; PyTorch's is %v", p.Name, i, p.Param.Grad.Data()[i], want.Data[i])
		}
	}
}

func TestGPTNamesAndInit(t *testing.T) {
	m, err := NewGPT(GPTConfig{Vocab: 5, Context: 4, Layers: 1, Dim: 4, Heads: 2, Dropout: 0.1}, tensor.NewRNG(1), tensor.NewRNG(2))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"wte.weight", "wpe.weight",
		"h.0.ln_1.weight", "h.0.ln_1.bias", "h.0.attn.c_attn.weight", "h.0.attn.c_attn.bias", "h.0.attn.c_proj.weight", "h.0.attn.c_proj.bias",
		"h.0.ln_2.weight", "h.0.ln_2.bias", "h.0.mlp.c_fc.weight", "h.0.mlp.c_fc.bias", "h.0.mlp.c_proj.weight", "h.0.mlp.c_proj.bias",
		"ln_f.weight", "ln_f.bias", "lm_head.weight"}
	if got := names(m.Parameters()); !reflect.DeepEqual(got, want) {
		t.Errorf("names = %v; want %v", got, want)
	}
	if got, want := NumParameters(m), 5*4+4*4+2*(4+4)+4*12+12+16+4+4*16+16+16*4+4+8+5*4; got != want {
		t.Errorf("NumParameters = %d; want %d", got, want)
	}
	if b := m.Blocks[0].Attn.QKV.Bias.Data.Data(); b[0] != 0 || b[11] != 0 {
		t.Errorf("c_attn bias = %v; want zeros", b)
	}
	m.Train(false)
	if m.Drop.Training() || m.Blocks[0].Drop.Training() || m.Blocks[0].Attn.Training() {
		t.Errorf("Train(false) did not reach every submodule")
	}
}

// TestBlockGradCheck checks the input gradient of a whole pre-norm block
// (layer norms, attention views, GELU MLP, residuals) by finite differences.
func TestBlockGradCheck(t *testing.T) {
	blk, err := NewBlock(4, 2, 0, tensor.NewRNG(3), nil)
	if err != nil {
		t.Fatal(err)
	}
	x, err := tensor.Randn(tensor.NewRNG(4), 2, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	f := func(in []*autograd.Variable) (*autograd.Variable, error) { return blk.Forward(in[0]) }
	if err := autograd.GradCheck(f, []*tensor.Tensor{x}, autograd.GradCheckOptions{Seed: 1}); err != nil {
		t.Error(err)
	}
}

func TestTransformerErrors(t *testing.T) {
	rng := tensor.NewRNG(1)
	m, err := NewGPT(GPTConfig{Vocab: 5, Context: 4, Layers: 1, Dim: 4, Heads: 2}, rng, rng)
	if err != nil {
		t.Fatal(err)
	}
	long, _ := tensor.Zeros(1, 5)
	bad, _ := tensor.Full(7, 1, 3)
	attn, _ := NewCausalSelfAttention(4, 2, rng)
	cases := []struct {
		name string
		kind errs.Kind
		err  error
	}{
		{"gpt config", errs.Argument, second(NewGPT(GPTConfig{Vocab: 5, Context: 4, Layers: 1, Dim: 5, Heads: 2}, rng, rng))},
		{"gpt nil rng", errs.Argument, second(NewGPT(GPTConfig{Vocab: 5, Context: 4, Layers: 1, Dim: 4, Heads: 2}, nil, nil))},
		{"too long", errs.Shape, second(m.Forward(autograd.Const(long)))},
		{"token out of range", errs.Argument, second(m.Forward(autograd.Const(bad)))},
		{"nil tokens", errs.Shape, second(m.Forward(nil))},
		{"attention input", errs.Shape, second(attn.Forward(autograd.Const(long)))},
		{"layer norm shape", errs.Argument, second(NewLayerNorm(nil, 1e-5, true))},
		{"layer norm eps", errs.Argument, second(NewLayerNorm([]int{2}, -1, true))},
		{"embedding size", errs.Argument, second(NewEmbedding(0, 2, 1, rng))},
		{"embedding nil", errs.Argument, second((&Embedding{}).Forward(nil))},
		{"feed forward", errs.Argument, second(NewFeedForward(0, 2, rng))},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.kind) {
			t.Errorf("%s: error %v; want kind %v", c.name, c.err, c.kind)
		}
	}
}

func second[T any](_ T, err error) error { return err }
