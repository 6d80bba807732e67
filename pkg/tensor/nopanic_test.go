package tensor

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

// badCall is one call of a public function with bad input. It must return
// a *errs.TorchError naming op, and must not panic.
type badCall struct {
	op   string
	call func() error
}

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
		"NewStorage":         {{"NewStorage", func() error { return e1(NewStorage(-1)) }}},
		"Zeros":              {{"Zeros", func() error { return e1(Zeros(2, -3)) }}, {"Zeros", func() error { return e1(Zeros(1, 1, 1, 1, 1, 1, 1, 1, 1)) }}, {"Zeros", func() error { return e1(Zeros(math.MaxInt, math.MaxInt)) }}},
		"Full":               {{"Full", func() error { return e1(Full(1, -1)) }}},
		"Ones":               {{"Full", func() error { return e1(Ones(-1)) }}},
		"New":                {{"New", func() error { return e1(New(coreSeq(5), 2, 3)) }}, {"New", func() error { return e1(New(nil, -1)) }}},
		"Arange":             {{"Arange", func() error { return e1(Arange(-1)) }}},
		"FromStorage":        {{"from_storage", func() error { return e1(FromStorage(nil, nil, nil, 0)) }}, {"from_storage", func() error { return e1(FromStorage(WrapStorage(nil), []int{2}, []int{1}, 0)) }}, {"from_storage", func() error { return e1(FromStorage(WrapStorage(nil), []int{2}, nil, 0)) }}},
		"Tensor.Size":        {{"size", func() error { return e1(v.Size(2)) }}, {"size", func() error { return e1(v.Size(-3)) }}},
		"Tensor.Item":        {{"item", func() error { return e1(bad.Item()) }}, {"item", func() error { return e1(v.Item()) }}, {"item", func() error { return e1(nilT.Item()) }}},
		"Tensor.At":          {{"at", func() error { return e1(bad.At(0, 0)) }}, {"at", func() error { return e1(v.At(0)) }}, {"at", func() error { return e1(v.At(5, 0)) }}},
		"Tensor.SetAt":       {{"at", func() error { return neg.SetAt(1, 0, 0) }}, {"set_at", func() error { return v.SetAt(1, 0, 9) }}},
		"Tensor.View":        {{"view", func() error { return e1(bad.View(6)) }}, {"view", func() error { return e1(v.View(4)) }}, {"view", func() error { return e1(v.View(-1, -1)) }}, {"view", func() error { return e1(coreMust(v.T()).View(6)) }}},
		"Tensor.Reshape":     {{"reshape", func() error { return e1(bad.Reshape(6)) }}, {"reshape", func() error { return e1(v.Reshape(7)) }}, {"reshape", func() error { return e1(v.Reshape(-2, 3)) }}},
		"Tensor.Transpose":   {{"transpose", func() error { return e1(bad.Transpose(0, 1)) }}, {"transpose", func() error { return e1(v.Transpose(0, 2)) }}},
		"Tensor.T":           {{"t", func() error { return e1(coreMust(Zeros(1, 2, 3)).T()) }}, {"transpose", func() error { return e1(nilT.T()) }}},
		"Tensor.Permute":     {{"permute", func() error { return e1(v.Permute(0)) }}, {"permute", func() error { return e1(v.Permute(1, 1)) }}, {"permute", func() error { return e1(v.Permute(0, 5)) }}},
		"Tensor.Narrow":      {{"narrow", func() error { return e1(v.Narrow(1, 2, 2)) }}, {"narrow", func() error { return e1(v.Narrow(1, 1, math.MaxInt)) }}, {"narrow", func() error { return e1(v.Narrow(3, 0, 1)) }}},
		"Tensor.Slice":       {{"slice", func() error { return e1(v.Slice(0, 0, 1, -1)) }}, {"slice", func() error { return e1(v.Slice(9, 0, 1, 1)) }}},
		"Tensor.Select":      {{"select", func() error { return e1(v.Select(0, 2)) }}, {"select", func() error { return e1(v.Select(2, 0)) }}},
		"Tensor.Expand":      {{"expand", func() error { return e1(v.Expand(3)) }}, {"expand", func() error { return e1(v.Expand(4, 3)) }}, {"expand", func() error { return e1(v.Expand(-1, 2, 3)) }}},
		"Tensor.BroadcastTo": {{"expand", func() error { return e1(v.BroadcastTo(2, 4)) }}},
		"Tensor.Squeeze":     {{"squeeze", func() error { return e1(v.Squeeze(4)) }}, {"squeeze", func() error { return e1(bad.Squeeze()) }}},
		"Tensor.Unsqueeze":   {{"unsqueeze", func() error { return e1(v.Unsqueeze(4)) }}, {"unsqueeze", func() error { return e1(coreMust(Zeros(1, 1, 1, 1, 1, 1, 1, 1)).Unsqueeze(0)) }}},
		"Tensor.Flatten":     {{"flatten", func() error { return e1(v.Flatten(1, 0)) }}, {"flatten", func() error { return e1(v.Flatten(0, 5)) }}},
		"Tensor.Contiguous":  {{"contiguous", func() error { return e1(bad.Contiguous()) }}},
		"Tensor.Clone":       {{"clone", func() error { return e1(neg.Clone()) }}},
		"PowScalar":          {{"pow_scalar", func() error { return e1(PowScalar(bad, 2)) }}},
		"AddScalar":          {{"add_scalar", func() error { return e1(AddScalar(nil, 2)) }}},
		"MulScalar":          {{"mul_scalar", func() error { return e1(MulScalar(bad, 2)) }}},
		"Clamp":              {{"clamp", func() error { return e1(Clamp(v, 1, 0)) }}, {"clamp", func() error { return e1(Clamp(bad, 0, 1)) }}},
		"CopyInto":           {{"copy_", func() error { return CopyInto(v, coreMust(Zeros(4))) }}, {"copy_", func() error { return CopyInto(nil, v) }}},
		"BroadcastShapes":    {{"broadcast_shapes", func() error { return e1(BroadcastShapes([]int{2}, []int{3})) }}},
		"ValidateLayout":     {{"custom", func() error { return ValidateLayout("custom", bad) }}},
		"RNG.SetState":       {{"RNG.SetState", func() error { return r.SetState(nil) }}},
		"Uniform":            {{"uniform", func() error { return e1(Uniform(nil, 0, 1, 2)) }}, {"uniform", func() error { return e1(Uniform(r, 1, 0, 2)) }}, {"uniform", func() error { return e1(Uniform(r, 0, 1, -2)) }}},
		"Rand":               {{"uniform", func() error { return e1(Rand(r, -1)) }}},
		"Normal":             {{"normal", func() error { return e1(Normal(r, 0, -1, 2)) }}, {"normal", func() error { return e1(Normal(nil, 0, 1, 2)) }}},
		"Randn":              {{"normal", func() error { return e1(Randn(r, 1, -1)) }}},
		"Bernoulli":          {{"bernoulli", func() error { return e1(Bernoulli(r, 2, 3)) }}, {"bernoulli", func() error { return e1(Bernoulli(nil, 0.5, 3)) }}},
		"Sum":                {{"sum", func() error { return e1(Sum(v, []int{2}, false)) }}, {"sum", func() error { return e1(Sum(bad, nil, false)) }}},
		"Mean":               {{"mean", func() error { return e1(Mean(v, []int{0, 0}, false)) }}, {"mean", func() error { return e1(Mean(nil, nil, false)) }}},
		"Max":                {{"max", func() error { return e2(Max(v, 3, false)) }}, {"max", func() error { return e2(Max(bad, 0, false)) }}},
		"MaxAll":             {{"max", func() error { return e1(MaxAll(coreMust(Zeros(0)))) }}, {"max", func() error { return e1(MaxAll(bad)) }}},
		"Argmax":             {{"argmax", func() error { return e1(Argmax(v, -3, false)) }}},
		"SumTo":              {{"sum_to", func() error { return e1(SumTo(v, []int{4})) }}, {"sum_to", func() error { return e1(SumTo(bad, []int{3})) }}},
		"Softmax":            {{"softmax", func() error { return e1(Softmax(v, 2)) }}, {"softmax", func() error { return e1(Softmax(bad, 0)) }}},
		"LogSoftmax":         {{"log_softmax", func() error { return e1(LogSoftmax(v, -3)) }}},
		"Concat":             {{"concat", func() error { return e1(Concat(nil, 0)) }}, {"concat", func() error { return e1(Concat([]*Tensor{v, coreMust(Zeros(2, 2))}, 0)) }}, {"concat", func() error { return e1(Concat([]*Tensor{v, bad}, 0)) }}},
		"Stack":              {{"stack", func() error { return e1(Stack([]*Tensor{v, coreMust(Zeros(3, 2))}, 0)) }}, {"stack", func() error { return e1(Stack([]*Tensor{v}, 3)) }}},
		"Where":              {{"where", func() error { return e1(Where(coreMust(Zeros(4)), v, v)) }}, {"where", func() error { return e1(Where(nil, v, v)) }}},
		"IndexSelect":        {{"index_select", func() error { return e1(IndexSelect(v, 1, idx)) }}, {"index_select", func() error { return e1(IndexSelect(v, 0, frac)) }}, {"index_select", func() error { return e1(IndexSelect(v, 2, idx)) }}},
		"IndexAdd":           {{"index_add", func() error { return e1(IndexAdd(v, 1, idx, v)) }}},
		"Gather":             {{"gather", func() error { return e1(Gather(v, 1, idx)) }}, {"gather", func() error { return e1(Gather(v, 1, coreMust(New([]float32{9, 0}, 2, 1)))) }}},
		"ScatterAdd":         {{"scatter_add", func() error { return e1(ScatterAdd(v, 1, coreMust(New([]float32{9}, 1, 1)), v)) }}},
		"Matmul":             {{"matmul", func() error { return e1(Matmul(v, v)) }}, {"matmul", func() error { return e1(Matmul(Scalar(1), v)) }}, {"matmul", func() error { return e1(Matmul(bad, v)) }}},
		"Linear":             {{"linear", func() error { return e1(Linear(v, coreMust(Zeros(4, 2)), nil)) }}, {"linear", func() error { return e1(Linear(v, coreMust(Zeros(4, 3)), coreMust(Zeros(3)))) }}},
		"Conv2d":             {{"conv2d", func() error { return e1(Conv2d(v, w4, nil, conv)) }}, {"conv2d", func() error { return e1(Conv2d(v4, coreMust(Zeros(2, 3, 3, 3)), nil, conv)) }}, {"conv2d", func() error { return e1(Conv2d(v4, w4, nil, Conv2dOptions{Stride: [2]int{-1, 1}})) }}, {"conv2d", func() error { return e1(Conv2d(v4, coreMust(Zeros(2, 1, 9, 9)), nil, conv)) }}},
		"Conv2dBackward":     {{"conv2d_backward", func() error { return e3(Conv2dBackward(v4, w4, v4, conv)) }}},
		"MaxPool2d":          {{"max_pool2d", func() error { return e2(MaxPool2d(v, pool)) }}, {"max_pool2d", func() error { return e2(MaxPool2d(v4, Pool2dOptions{})) }}, {"max_pool2d", func() error { return e2(MaxPool2d(v4, Pool2dOptions{Kernel: [2]int{2, 2}, Padding: [2]int{2, 2}})) }}},
		"MaxPool2dBackward":  {{"max_pool2d_backward", func() error { return e1(MaxPool2dBackward(v4, v, []int{1, 1, 4, 4})) }}},
		"AvgPool2d":          {{"avg_pool2d", func() error { return e1(AvgPool2d(v4, Pool2dOptions{Kernel: [2]int{5, 5}})) }}},
		"AvgPool2dBackward":  {{"avg_pool2d_backward", func() error { return e1(AvgPool2dBackward(v, []int{1, 1, 4, 4}, pool)) }}},
	}
	// Every unary and binary op: nil, invalid layout, and (binary) unbroadcastable shapes.
	for name, op := range map[string]*unaryOp{"Neg": opNeg, "Exp": opExp, "Log": opLog, "Sqrt": opSqrt, "Abs": opAbs, "Relu": opRelu,
		"Tanh": opTanh, "Sigmoid": opSigmoid, "Gelu": opGelu, "GeluGrad": opGeluGrad, "Sign": opSign, "Reciprocal": opReciprocal, "Square": opSquare} {
		walk[name] = []badCall{{op.stat.name, func() error { return e1(op.apply(nil)) }}, {op.stat.name, func() error { return e1(op.apply(bad)) }}}
	}
	for name, op := range map[string]*binaryOp{"Add": opAdd, "Sub": opSub, "Mul": opMul, "Div": opDiv, "Pow": opPow, "Maximum": opMaximum,
		"Minimum": opMinimum, "Eq": opEq, "Gt": opGt, "Ge": opGe, "Lt": opLt, "Le": opLe} {
		walk[name] = []badCall{
			{op.stat.name, func() error { return e1(op.apply(v, nil)) }},
			{op.stat.name, func() error { return e1(op.apply(bad, v)) }},
			{op.stat.name, func() error { return e1(op.apply(v, coreMust(Zeros(3, 2)))) }},
		}
	}

	for name, calls := range walk {
		for i, c := range calls {
			err := func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("PANIC: %v", r)
					}
				}()
				return c.call()
			}()
			var te *errs.TorchError
			switch {
			case err == nil:
				t.Errorf("%s call %d: no error", name, i)
			case strings.HasPrefix(err.Error(), "PANIC"):
				t.Errorf("%s call %d: %v", name, i, err)
			case !errors.As(err, &te):
				t.Errorf("%s call %d: error %q is not a *errs.TorchError", name, i, err)
			case te.Kind == errs.Other || te.Kind == errs.Internal:
				t.Errorf("%s call %d: error %q has kind %v", name, i, err, te.Kind)
			case te.Op != c.op:
				t.Errorf("%s call %d: error %q names op %q, want %q", name, i, err, te.Op, c.op)
			}
		}
	}

	// Every exported function or method that returns an error must be walked.
	for _, fn := range exportedErrorFuncs(t) {
		if _, ok := walk[fn]; !ok {
			t.Errorf("public function %s returns an error but has no entry in the no-panic walk", fn)
		}
	}
}

// exportedErrorFuncs lists the package's exported functions and methods
// (as "Type.Method") whose last result is an error.
func exportedErrorFuncs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || !fd.Name.IsExported() || fd.Type.Results == nil {
				continue
			}
			res := fd.Type.Results.List
			if id, ok := res[len(res)-1].Type.(*ast.Ident); !ok || id.Name != "error" {
				continue
			}
			name := fd.Name.Name
			if fd.Recv != nil {
				typ := fd.Recv.List[0].Type
				if st, ok := typ.(*ast.StarExpr); ok {
					typ = st.X
				}
				id, ok := typ.(*ast.Ident)
				if !ok || !ast.IsExported(id.Name) {
					continue
				}
				name = id.Name + "." + name
			}
			out = append(out, name)
		}
	}
	sort.Strings(out)
	if len(out) < 50 {
		t.Fatalf("found only %d public functions returning errors; the source walk is broken", len(out))
	}
	return out
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
