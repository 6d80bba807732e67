package autograd

import (
	"testing"

	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/tensor"
)

func errOf(_ any, err error) error     { return err }
func errOf2(_, _ any, err error) error { return err }

// TestNoPanicWalk calls every public op with nil inputs, wrong shapes and
// bad dims and checks for a typed error naming the op (never a panic). A
// public function without an entry fails the test.
func TestNoPanicWalk(t *testing.T) {
	v := Param(randn(1, 2, 3))
	v4 := Param(randn(1, 1, 1, 4, 4))
	w4 := Param(randn(2, 2, 1, 3, 3))
	tg := ok(tensor.New([]float32{0, 5}, 2))
	pool := tensor.Pool2dOptions{Kernel: [2]int{2, 2}}
	f := func(in []*Variable) (*Variable, error) { return Add(in[0], in[0]) }
	walk := map[string][]testutil.BadCall{
		"Add":                      {{Op: "add", Call: func() error { return errOf(Add(nil, v)) }}, {Op: "add", Call: func() error { return errOf(Add(v, Param(randn(1, 4)))) }}},
		"Sub":                      {{Op: "sub", Call: func() error { return errOf(Sub(v, nil)) }}},
		"Mul":                      {{Op: "mul", Call: func() error { return errOf(Mul(v, Param(randn(1, 3, 3)))) }}},
		"Div":                      {{Op: "div", Call: func() error { return errOf(Div(nil, nil)) }}},
		"Pow":                      {{Op: "pow", Call: func() error { return errOf(Pow(v, nil)) }}},
		"Maximum":                  {{Op: "maximum", Call: func() error { return errOf(Maximum(nil, v)) }}},
		"Neg":                      {{Op: "neg", Call: func() error { return errOf(Neg(nil)) }}},
		"Exp":                      {{Op: "exp", Call: func() error { return errOf(Exp(nil)) }}},
		"Log":                      {{Op: "log", Call: func() error { return errOf(Log(&Variable{})) }}},
		"Sqrt":                     {{Op: "sqrt", Call: func() error { return errOf(Sqrt(nil)) }}},
		"Relu":                     {{Op: "relu", Call: func() error { return errOf(Relu(nil)) }}},
		"Gelu":                     {{Op: "gelu", Call: func() error { return errOf(Gelu(nil)) }}},
		"Tanh":                     {{Op: "tanh", Call: func() error { return errOf(Tanh(nil)) }}},
		"Sigmoid":                  {{Op: "sigmoid", Call: func() error { return errOf(Sigmoid(nil)) }}},
		"PowScalar":                {{Op: "pow_scalar", Call: func() error { return errOf(PowScalar(nil, 2)) }}},
		"AddScalar":                {{Op: "add_scalar", Call: func() error { return errOf(AddScalar(nil, 2)) }}},
		"MulScalar":                {{Op: "mul_scalar", Call: func() error { return errOf(MulScalar(nil, 2)) }}},
		"Where":                    {{Op: "where", Call: func() error { return errOf(Where(nil, v, v)) }}, {Op: "where", Call: func() error { return errOf(Where(v.Data, nil, v)) }}},
		"Sum":                      {{Op: "sum", Call: func() error { return errOf(Sum(v, []int{5}, false)) }}, {Op: "sum", Call: func() error { return errOf(Sum(nil, nil, false)) }}},
		"Mean":                     {{Op: "mean", Call: func() error { return errOf(Mean(v, []int{-3}, false)) }}},
		"Max":                      {{Op: "max", Call: func() error { return errOf2(Max(v, 2, false)) }}, {Op: "max", Call: func() error { return errOf2(Max(nil, 0, false)) }}},
		"Reshape":                  {{Op: "reshape", Call: func() error { return errOf(Reshape(v, 5)) }}},
		"View":                     {{Op: "view", Call: func() error { return errOf(View(nil, 6)) }}},
		"Flatten":                  {{Op: "flatten", Call: func() error { return errOf(Flatten(v, 1, 0)) }}},
		"Squeeze":                  {{Op: "squeeze", Call: func() error { return errOf(Squeeze(v, 3)) }}},
		"Unsqueeze":                {{Op: "unsqueeze", Call: func() error { return errOf(Unsqueeze(v, 4)) }}},
		"Transpose":                {{Op: "transpose", Call: func() error { return errOf(Transpose(v, 0, 2)) }}},
		"Permute":                  {{Op: "permute", Call: func() error { return errOf(Permute(v, 0, 0)) }}},
		"Expand":                   {{Op: "expand", Call: func() error { return errOf(Expand(v, 4, 3)) }}},
		"Slice":                    {{Op: "slice", Call: func() error { return errOf(Slice(v, 0, 0, 1, 0)) }}},
		"Narrow":                   {{Op: "narrow", Call: func() error { return errOf(Narrow(v, 1, 2, 5)) }}},
		"Select":                   {{Op: "select", Call: func() error { return errOf(Select(v, 0, 9)) }}},
		"IndexSelect":              {{Op: "index_select", Call: func() error { return errOf(IndexSelect(v, 0, tg)) }}},
		"Gather":                   {{Op: "gather", Call: func() error { return errOf(Gather(v, 0, tg)) }}},
		"Concat":                   {{Op: "concat", Call: func() error { return errOf(Concat(nil, 0)) }}, {Op: "concat", Call: func() error { return errOf(Concat([]*Variable{v, Param(randn(1, 3))}, 0)) }}},
		"Stack":                    {{Op: "stack", Call: func() error { return errOf(Stack([]*Variable{v, nil}, 0)) }}},
		"Matmul":                   {{Op: "matmul", Call: func() error { return errOf(Matmul(v, v)) }}},
		"Linear":                   {{Op: "linear", Call: func() error { return errOf(Linear(v, Param(randn(1, 4, 2)), nil)) }}, {Op: "linear", Call: func() error { return errOf(Linear(nil, v, nil)) }}},
		"LinearReLU":               {{Op: "linear", Call: func() error { return errOf(LinearReLU(v, Param(randn(1, 4, 2)), nil)) }}},
		"Conv2dReLU":               {{Op: "conv2d", Call: func() error { return errOf(Conv2dReLU(v, w4, nil, tensor.Conv2dOptions{})) }}},
		"Conv2d":                   {{Op: "conv2d", Call: func() error { return errOf(Conv2d(v, w4, nil, tensor.Conv2dOptions{})) }}, {Op: "conv2d", Call: func() error { return errOf(Conv2d(v4, Param(randn(2, 2, 3, 3, 3)), nil, tensor.Conv2dOptions{})) }}},
		"MaxPool2d":                {{Op: "max_pool2d", Call: func() error { return errOf(MaxPool2d(v, pool)) }}},
		"AvgPool2d":                {{Op: "avg_pool2d", Call: func() error { return errOf(AvgPool2d(nil, pool)) }}},
		"Softmax":                  {{Op: "softmax", Call: func() error { return errOf(Softmax(v, 3)) }}},
		"LogSoftmax":               {{Op: "log_softmax", Call: func() error { return errOf(LogSoftmax(v, -4)) }}},
		"CrossEntropy":             {{Op: "cross_entropy", Call: func() error { return errOf(CrossEntropy(v, tg)) }}, {Op: "cross_entropy", Call: func() error { return errOf(CrossEntropy(v4, tg)) }}, {Op: "cross_entropy", Call: func() error { return errOf(CrossEntropy(v, nil)) }}},
		"NLLLoss":                  {{Op: "nll_loss", Call: func() error { return errOf(NLLLoss(v, tg)) }}},
		"MSE":                      {{Op: "mse_loss", Call: func() error { return errOf(MSE(v, Param(randn(1, 3, 2)))) }}},
		"Dropout":                  {{Op: "dropout", Call: func() error { return errOf(Dropout(v, 1.5, tensor.NewRNG(1), true)) }}, {Op: "dropout", Call: func() error { return errOf(Dropout(v, 0.5, nil, true)) }}},
		"GradCheck":                {{Op: "gradcheck", Call: func() error { return GradCheck(f, []*tensor.Tensor{nil}, GradCheckOptions{}) }}},
		"Variable.Backward":        {{Op: "backward", Call: func() error { return (&Variable{}).Backward() }}},
		"Variable.BackwardWith":    {{Op: "backward", Call: func() error { return v.BackwardWith(BackwardOptions{Grad: randn(1, 3)}) }}},
		"Variable.SetRequiresGrad": {{Op: "set_requires_grad", Call: func() error { return ok(Neg(v)).SetRequiresGrad(false) }}},
		"Variable.Item":            {{Op: "item", Call: func() error { return errOf(v.Item()) }}},
		"LayerNorm": {
			{Op: "layer_norm", Call: func() error { return errOf(LayerNorm(nil, []int{3}, nil, nil, 1e-5)) }},
			{Op: "layer_norm", Call: func() error { return errOf(LayerNorm(v, []int{3}, &Variable{}, nil, 1e-5)) }},
			{Op: "layer_norm", Call: func() error { return errOf(LayerNorm(v, []int{2}, nil, v, 1e-5)) }},
		},
		"GeluTanh": {{Op: "gelu_tanh", Call: func() error { return errOf(GeluTanh(nil)) }}},
		"Rsqrt":    {{Op: "rsqrt", Call: func() error { return errOf(Rsqrt(&Variable{})) }}},
		"Embedding": {
			{Op: "embedding", Call: func() error { return errOf(Embedding(nil, tg, -1)) }},
			{Op: "embedding", Call: func() error { return errOf(Embedding(v, tg, -1)) }},
			{Op: "embedding", Call: func() error { return errOf(Embedding(Param(randn(1, 2)), tg, -1)) }},
		},
		"MaskedFill": {{Op: "masked_fill", Call: func() error { return errOf(MaskedFill(v, randn(1, 4), 0)) }}},
		"Tril":       {{Op: "tril", Call: func() error { return errOf(Tril(Param(randn(1, 3)), 0)) }}},
		"AttentionQKV": {
			{Op: "attention_qkv", Call: func() error { return errOf(AttentionQKV(nil, 2, tensor.AttentionOptions{})) }},
			{Op: "attention_qkv", Call: func() error { return errOf(AttentionQKV(Param(randn(1, 2, 4)), 2, tensor.AttentionOptions{})) }},
			{Op: "attention_qkv", Call: func() error { return errOf(AttentionQKV(Param(randn(1, 2, 6)), 4, tensor.AttentionOptions{})) }},
		},
		"ScaledDotProductAttention": {
			{Op: "scaled_dot_product_attention", Call: func() error { return errOf(ScaledDotProductAttention(v, v, nil, tensor.AttentionOptions{})) }},
			{Op: "scaled_dot_product_attention", Call: func() error {
				return errOf(ScaledDotProductAttention(v, Param(randn(1, 2, 4)), v, tensor.AttentionOptions{}))
			}},
		},
	}
	testutil.CheckBadCalls(t, walk)
	testutil.RequireWalked(t, ".", walk, 40)
}
