package tensor

import (
	"math"
	"testing"

	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/errs"
)

type badCall = testutil.BadCall

func e1(_ any, err error) error       { return err }
func e2(_, _ any, err error) error    { return err }
func e3(_, _, _ any, err error) error { return err }

// TestNoPanicWalk calls every exported function and method of the package
// that returns an error with nil tensors, invalid layouts, wrong shapes and
// bad dimensions, and checks that each returns a typed error naming the op.
// It also parses the package source so that a new public function without
// an entry here fails the test.
func TestNoPanicWalk(t *testing.T) {
	// An invalid layout that no constructor would produce.
	bad := &Tensor{storage: WrapStorage(make([]float32, 3)), shape: []int{2, 3}, strides: []int{3, 1}}
	neg := &Tensor{storage: WrapStorage(make([]float32, 3)), shape: []int{-1, 3}, strides: []int{3, 1}}
	var nilT *Tensor
	v := coreMust(New(coreSeq(6), 2, 3))
	v4 := coreMust(Zeros(1, 1, 4, 4))
	w4 := coreMust(Zeros(2, 1, 3, 3))
	idx := coreMust(New([]float32{0, 7}, 2))
	frac := coreMust(New([]float32{0.5}, 1))
	r := NewRNG(1)
	conv := Conv2dOptions{}
	pool := Pool2dOptions{Kernel: [2]int{2, 2}}

	walk := map[string][]badCall{
		"NewStorage":         {{Op: "NewStorage", Call: func() error { return e1(NewStorage(-1)) }}},
		"Zeros":              {{Op: "Zeros", Call: func() error { return e1(Zeros(2, -3)) }}, {Op: "Zeros", Call: func() error { return e1(Zeros(1, 1, 1, 1, 1, 1, 1, 1, 1)) }}, {Op: "Zeros", Call: func() error { return e1(Zeros(math.MaxInt, math.MaxInt)) }}},
		"Full":               {{Op: "Full", Call: func() error { return e1(Full(1, -1)) }}},
		"Ones":               {{Op: "Full", Call: func() error { return e1(Ones(-1)) }}},
		"New":                {{Op: "New", Call: func() error { return e1(New(coreSeq(5), 2, 3)) }}, {Op: "New", Call: func() error { return e1(New(nil, -1)) }}},
		"Arange":             {{Op: "Arange", Call: func() error { return e1(Arange(-1)) }}},
		"FromStorage":        {{Op: "from_storage", Call: func() error { return e1(FromStorage(nil, nil, nil, 0)) }}, {Op: "from_storage", Call: func() error { return e1(FromStorage(WrapStorage(nil), []int{2}, []int{1}, 0)) }}, {Op: "from_storage", Call: func() error { return e1(FromStorage(WrapStorage(nil), []int{2}, nil, 0)) }}},
		"Tensor.Size":        {{Op: "size", Call: func() error { return e1(v.Size(2)) }}, {Op: "size", Call: func() error { return e1(v.Size(-3)) }}},
		"Tensor.Item":        {{Op: "item", Call: func() error { return e1(bad.Item()) }}, {Op: "item", Call: func() error { return e1(v.Item()) }}, {Op: "item", Call: func() error { return e1(nilT.Item()) }}},
		"Tensor.At":          {{Op: "at", Call: func() error { return e1(bad.At(0, 0)) }}, {Op: "at", Call: func() error { return e1(v.At(0)) }}, {Op: "at", Call: func() error { return e1(v.At(5, 0)) }}},
		"Tensor.SetAt":       {{Op: "at", Call: func() error { return neg.SetAt(1, 0, 0) }}, {Op: "set_at", Call: func() error { return v.SetAt(1, 0, 9) }}},
		"Tensor.View":        {{Op: "view", Call: func() error { return e1(bad.View(6)) }}, {Op: "view", Call: func() error { return e1(v.View(4)) }}, {Op: "view", Call: func() error { return e1(v.View(-1, -1)) }}, {Op: "view", Call: func() error { return e1(coreMust(v.T()).View(6)) }}},
		"Tensor.Reshape":     {{Op: "reshape", Call: func() error { return e1(bad.Reshape(6)) }}, {Op: "reshape", Call: func() error { return e1(v.Reshape(7)) }}, {Op: "reshape", Call: func() error { return e1(v.Reshape(-2, 3)) }}},
		"Tensor.Transpose":   {{Op: "transpose", Call: func() error { return e1(bad.Transpose(0, 1)) }}, {Op: "transpose", Call: func() error { return e1(v.Transpose(0, 2)) }}},
		"Tensor.T":           {{Op: "t", Call: func() error { return e1(coreMust(Zeros(1, 2, 3)).T()) }}, {Op: "transpose", Call: func() error { return e1(nilT.T()) }}},
		"Tensor.Permute":     {{Op: "permute", Call: func() error { return e1(v.Permute(0)) }}, {Op: "permute", Call: func() error { return e1(v.Permute(1, 1)) }}, {Op: "permute", Call: func() error { return e1(v.Permute(0, 5)) }}},
		"Tensor.Narrow":      {{Op: "narrow", Call: func() error { return e1(v.Narrow(1, 2, 2)) }}, {Op: "narrow", Call: func() error { return e1(v.Narrow(1, 1, math.MaxInt)) }}, {Op: "narrow", Call: func() error { return e1(v.Narrow(3, 0, 1)) }}},
		"Tensor.Slice":       {{Op: "slice", Call: func() error { return e1(v.Slice(0, 0, 1, -1)) }}, {Op: "slice", Call: func() error { return e1(v.Slice(9, 0, 1, 1)) }}},
		"Tensor.Select":      {{Op: "select", Call: func() error { return e1(v.Select(0, 2)) }}, {Op: "select", Call: func() error { return e1(v.Select(2, 0)) }}},
		"Tensor.Expand":      {{Op: "expand", Call: func() error { return e1(v.Expand(3)) }}, {Op: "expand", Call: func() error { return e1(v.Expand(4, 3)) }}, {Op: "expand", Call: func() error { return e1(v.Expand(-1, 2, 3)) }}},
		"Tensor.BroadcastTo": {{Op: "expand", Call: func() error { return e1(v.BroadcastTo(2, 4)) }}},
		"Scope.NoGrad":       {{Op: "inner", Call: func() error { return NewScope().NoGrad(func() error { return errs.New(errs.Argument, "inner", "x") }) }}},
		"Tensor.Squeeze":     {{Op: "squeeze", Call: func() error { return e1(v.Squeeze(4)) }}, {Op: "squeeze", Call: func() error { return e1(bad.Squeeze()) }}},
		"Tensor.Unsqueeze":   {{Op: "unsqueeze", Call: func() error { return e1(v.Unsqueeze(4)) }}, {Op: "unsqueeze", Call: func() error { return e1(coreMust(Zeros(1, 1, 1, 1, 1, 1, 1, 1)).Unsqueeze(0)) }}},
		"Tensor.Flatten":     {{Op: "flatten", Call: func() error { return e1(v.Flatten(1, 0)) }}, {Op: "flatten", Call: func() error { return e1(v.Flatten(0, 5)) }}},
		"Tensor.Contiguous":  {{Op: "contiguous", Call: func() error { return e1(bad.Contiguous()) }}},
		"Tensor.Clone":       {{Op: "clone", Call: func() error { return e1(neg.Clone()) }}},
		"PowScalar":          {{Op: "pow_scalar", Call: func() error { return e1(PowScalar(bad, 2)) }}},
		"AddScalar":          {{Op: "add_scalar", Call: func() error { return e1(AddScalar(nil, 2)) }}},
		"MulScalar":          {{Op: "mul_scalar", Call: func() error { return e1(MulScalar(bad, 2)) }}},
		"Clamp":              {{Op: "clamp", Call: func() error { return e1(Clamp(v, 1, 0)) }}, {Op: "clamp", Call: func() error { return e1(Clamp(bad, 0, 1)) }}},
		"ReluBackward":       {{Op: "relu_backward", Call: func() error { return e1(ReluBackward(nil, v)) }}, {Op: "relu_backward", Call: func() error { return e1(ReluBackward(v, bad)) }}, {Op: "relu_backward", Call: func() error { return e1(ReluBackward(v, coreMust(Zeros(3, 2)))) }}},
		"CopyInto":           {{Op: "copy_", Call: func() error { return CopyInto(v, coreMust(Zeros(4))) }}, {Op: "copy_", Call: func() error { return CopyInto(nil, v) }}},
		"BroadcastShapes":    {{Op: "broadcast_shapes", Call: func() error { return e1(BroadcastShapes([]int{2}, []int{3})) }}},
		"ValidateLayout":     {{Op: "custom", Call: func() error { return ValidateLayout("custom", bad) }}},
		"RNG.SetState":       {{Op: "RNG.SetState", Call: func() error { return r.SetState(nil) }}},
		"Uniform":            {{Op: "uniform", Call: func() error { return e1(Uniform(nil, 0, 1, 2)) }}, {Op: "uniform", Call: func() error { return e1(Uniform(r, 1, 0, 2)) }}, {Op: "uniform", Call: func() error { return e1(Uniform(r, 0, 1, -2)) }}},
		"Rand":               {{Op: "uniform", Call: func() error { return e1(Rand(r, -1)) }}},
		"Normal":             {{Op: "normal", Call: func() error { return e1(Normal(r, 0, -1, 2)) }}, {Op: "normal", Call: func() error { return e1(Normal(nil, 0, 1, 2)) }}},
		"Randn":              {{Op: "normal", Call: func() error { return e1(Randn(r, 1, -1)) }}},
		"Bernoulli":          {{Op: "bernoulli", Call: func() error { return e1(Bernoulli(r, 2, 3)) }}, {Op: "bernoulli", Call: func() error { return e1(Bernoulli(nil, 0.5, 3)) }}},
		"Sum":                {{Op: "sum", Call: func() error { return e1(Sum(v, []int{2}, false)) }}, {Op: "sum", Call: func() error { return e1(Sum(bad, nil, false)) }}},
		"Mean":               {{Op: "mean", Call: func() error { return e1(Mean(v, []int{0, 0}, false)) }}, {Op: "mean", Call: func() error { return e1(Mean(nil, nil, false)) }}},
		"Max":                {{Op: "max", Call: func() error { return e2(Max(v, 3, false)) }}, {Op: "max", Call: func() error { return e2(Max(bad, 0, false)) }}},
		"MaxAll":             {{Op: "max", Call: func() error { return e1(MaxAll(coreMust(Zeros(0)))) }}, {Op: "max", Call: func() error { return e1(MaxAll(bad)) }}},
		"Argmax":             {{Op: "argmax", Call: func() error { return e1(Argmax(v, -3, false)) }}},
		"SumTo":              {{Op: "sum_to", Call: func() error { return e1(SumTo(v, []int{4})) }}, {Op: "sum_to", Call: func() error { return e1(SumTo(bad, []int{3})) }}},
		"Softmax":            {{Op: "softmax", Call: func() error { return e1(Softmax(v, 2)) }}, {Op: "softmax", Call: func() error { return e1(Softmax(bad, 0)) }}},
		"LogSoftmax":         {{Op: "log_softmax", Call: func() error { return e1(LogSoftmax(v, -3)) }}},
		"Concat":             {{Op: "concat", Call: func() error { return e1(Concat(nil, 0)) }}, {Op: "concat", Call: func() error { return e1(Concat([]*Tensor{v, coreMust(Zeros(2, 2))}, 0)) }}, {Op: "concat", Call: func() error { return e1(Concat([]*Tensor{v, bad}, 0)) }}},
		"Stack":              {{Op: "stack", Call: func() error { return e1(Stack([]*Tensor{v, coreMust(Zeros(3, 2))}, 0)) }}, {Op: "stack", Call: func() error { return e1(Stack([]*Tensor{v}, 3)) }}},
		"Where":              {{Op: "where", Call: func() error { return e1(Where(coreMust(Zeros(4)), v, v)) }}, {Op: "where", Call: func() error { return e1(Where(nil, v, v)) }}},
		"IndexSelect":        {{Op: "index_select", Call: func() error { return e1(IndexSelect(v, 1, idx)) }}, {Op: "index_select", Call: func() error { return e1(IndexSelect(v, 0, frac)) }}, {Op: "index_select", Call: func() error { return e1(IndexSelect(v, 2, idx)) }}},
		"IndexAdd":           {{Op: "index_add", Call: func() error { return e1(IndexAdd(v, 1, idx, v)) }}},
		"Gather":             {{Op: "gather", Call: func() error { return e1(Gather(v, 1, idx)) }}, {Op: "gather", Call: func() error { return e1(Gather(v, 1, coreMust(New([]float32{9, 0}, 2, 1)))) }}},
		"ScatterAdd":         {{Op: "scatter_add", Call: func() error { return e1(ScatterAdd(v, 1, coreMust(New([]float32{9}, 1, 1)), v)) }}},
		"Matmul":             {{Op: "matmul", Call: func() error { return e1(Matmul(v, v)) }}, {Op: "matmul", Call: func() error { return e1(Matmul(Scalar(1), v)) }}, {Op: "matmul", Call: func() error { return e1(Matmul(bad, v)) }}},
		"Linear":             {{Op: "linear", Call: func() error { return e1(Linear(v, coreMust(Zeros(4, 2)), nil)) }}, {Op: "linear", Call: func() error { return e1(Linear(v, coreMust(Zeros(4, 3)), coreMust(Zeros(3)))) }}},
		"LinearReLU":         {{Op: "linear", Call: func() error { return e1(LinearReLU(v, coreMust(Zeros(4, 2)), nil)) }}},
		"Conv2dReLU":         {{Op: "conv2d", Call: func() error { return e1(Conv2dReLU(v, w4, nil, conv)) }}},
		"Conv2d":             {{Op: "conv2d", Call: func() error { return e1(Conv2d(v, w4, nil, conv)) }}, {Op: "conv2d", Call: func() error { return e1(Conv2d(v4, coreMust(Zeros(2, 3, 3, 3)), nil, conv)) }}, {Op: "conv2d", Call: func() error { return e1(Conv2d(v4, w4, nil, Conv2dOptions{Stride: [2]int{-1, 1}})) }}, {Op: "conv2d", Call: func() error { return e1(Conv2d(v4, coreMust(Zeros(2, 1, 9, 9)), nil, conv)) }}},
		"Conv2dBackward":     {{Op: "conv2d_backward", Call: func() error { return e3(Conv2dBackward(v4, w4, v4, conv, [3]bool{true, true, true})) }}},
		"MaxPool2d":          {{Op: "max_pool2d", Call: func() error { return e2(MaxPool2d(v, pool)) }}, {Op: "max_pool2d", Call: func() error { return e2(MaxPool2d(v4, Pool2dOptions{})) }}, {Op: "max_pool2d", Call: func() error { return e2(MaxPool2d(v4, Pool2dOptions{Kernel: [2]int{2, 2}, Padding: [2]int{2, 2}})) }}},
		"MaxPool2dBackward":  {{Op: "max_pool2d_backward", Call: func() error { return e1(MaxPool2dBackward(v4, v, []int{1, 1, 4, 4})) }}},
		"AvgPool2d":          {{Op: "avg_pool2d", Call: func() error { return e1(AvgPool2d(v4, Pool2dOptions{Kernel: [2]int{5, 5}})) }}},
		"AvgPool2dBackward":  {{Op: "avg_pool2d_backward", Call: func() error { return e1(AvgPool2dBackward(v, []int{1, 1, 4, 4}, pool)) }}},
	}
	// Every unary and binary op: nil, invalid layout, and (binary) unbroadcastable shapes.
	for name, op := range map[string]*unaryOp{"Neg": opNeg, "Exp": opExp, "Log": opLog, "Sqrt": opSqrt, "Abs": opAbs, "Relu": opRelu,
		"Tanh": opTanh, "Sigmoid": opSigmoid, "Gelu": opGelu, "GeluTanh": opGeluTanh, "Rsqrt": opRsqrt, "Sign": opSign, "Reciprocal": opReciprocal, "Square": opSquare} {
		walk[name] = []badCall{{Op: op.stat.name, Call: func() error { return e1(op.apply(nil)) }}, {Op: op.stat.name, Call: func() error { return e1(op.apply(bad)) }}}
	}
	for name, op := range map[string]*binaryOp{"Add": opAdd, "Sub": opSub, "Mul": opMul, "Div": opDiv, "Pow": opPow, "Maximum": opMaximum,
		"Minimum": opMinimum, "Eq": opEq, "Gt": opGt, "Ge": opGe, "Lt": opLt, "Le": opLe} {
		walk[name] = []badCall{
			{Op: op.stat.name, Call: func() error { return e1(op.apply(v, nil)) }},
			{Op: op.stat.name, Call: func() error { return e1(op.apply(bad, v)) }},
			{Op: op.stat.name, Call: func() error { return e1(op.apply(v, coreMust(Zeros(3, 2)))) }},
		}
	}

	for name, calls := range transformerBadCalls(v, bad) {
		walk[name] = calls
	}
	testutil.CheckBadCalls(t, walk)
	// Every exported function or method that returns an error must be walked.
	testutil.RequireWalked(t, ".", walk, 50)
}

// TestNilTensorMethods checks that the accessors without an error result
// are safe on a nil tensor.
func TestNilTensorMethods(t *testing.T) {
	var x *Tensor
	if x.Shape() != nil || x.Strides() != nil || x.Dim() != 0 || x.Numel() != 0 || x.Offset() != 0 ||
		x.Storage() != nil || x.Data() != nil || x.ToSlice() != nil || !x.IsContiguous() || x.String() != "tensor(nil)" {
		t.Errorf("nil tensor accessors returned non-zero values")
	}
}
