package autograd

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
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
	walk := map[string][]struct {
		op   string
		call func() error
	}{
		"Add":                      {{"add", func() error { return errOf(Add(nil, v)) }}, {"add", func() error { return errOf(Add(v, Param(randn(1, 4)))) }}},
		"Sub":                      {{"sub", func() error { return errOf(Sub(v, nil)) }}},
		"Mul":                      {{"mul", func() error { return errOf(Mul(v, Param(randn(1, 3, 3)))) }}},
		"Div":                      {{"div", func() error { return errOf(Div(nil, nil)) }}},
		"Pow":                      {{"pow", func() error { return errOf(Pow(v, nil)) }}},
		"Maximum":                  {{"maximum", func() error { return errOf(Maximum(nil, v)) }}},
		"Neg":                      {{"neg", func() error { return errOf(Neg(nil)) }}},
		"Exp":                      {{"exp", func() error { return errOf(Exp(nil)) }}},
		"Log":                      {{"log", func() error { return errOf(Log(&Variable{})) }}},
		"Sqrt":                     {{"sqrt", func() error { return errOf(Sqrt(nil)) }}},
		"Relu":                     {{"relu", func() error { return errOf(Relu(nil)) }}},
		"Gelu":                     {{"gelu", func() error { return errOf(Gelu(nil)) }}},
		"Tanh":                     {{"tanh", func() error { return errOf(Tanh(nil)) }}},
		"Sigmoid":                  {{"sigmoid", func() error { return errOf(Sigmoid(nil)) }}},
		"PowScalar":                {{"pow_scalar", func() error { return errOf(PowScalar(nil, 2)) }}},
		"AddScalar":                {{"add_scalar", func() error { return errOf(AddScalar(nil, 2)) }}},
		"MulScalar":                {{"mul_scalar", func() error { return errOf(MulScalar(nil, 2)) }}},
		"Where":                    {{"where", func() error { return errOf(Where(nil, v, v)) }}, {"where", func() error { return errOf(Where(v.Data, nil, v)) }}},
		"Sum":                      {{"sum", func() error { return errOf(Sum(v, []int{5}, false)) }}, {"sum", func() error { return errOf(Sum(nil, nil, false)) }}},
		"Mean":                     {{"mean", func() error { return errOf(Mean(v, []int{-3}, false)) }}},
		"Max":                      {{"max", func() error { return errOf2(Max(v, 2, false)) }}, {"max", func() error { return errOf2(Max(nil, 0, false)) }}},
		"Reshape":                  {{"reshape", func() error { return errOf(Reshape(v, 5)) }}},
		"View":                     {{"view", func() error { return errOf(View(nil, 6)) }}},
		"Flatten":                  {{"flatten", func() error { return errOf(Flatten(v, 1, 0)) }}},
		"Squeeze":                  {{"squeeze", func() error { return errOf(Squeeze(v, 3)) }}},
		"Unsqueeze":                {{"unsqueeze", func() error { return errOf(Unsqueeze(v, 4)) }}},
		"Transpose":                {{"transpose", func() error { return errOf(Transpose(v, 0, 2)) }}},
		"Permute":                  {{"permute", func() error { return errOf(Permute(v, 0, 0)) }}},
		"Expand":                   {{"expand", func() error { return errOf(Expand(v, 4, 3)) }}},
		"Slice":                    {{"slice", func() error { return errOf(Slice(v, 0, 0, 1, 0)) }}},
		"Narrow":                   {{"narrow", func() error { return errOf(Narrow(v, 1, 2, 5)) }}},
		"Select":                   {{"select", func() error { return errOf(Select(v, 0, 9)) }}},
		"IndexSelect":              {{"index_select", func() error { return errOf(IndexSelect(v, 0, tg)) }}},
		"Gather":                   {{"gather", func() error { return errOf(Gather(v, 0, tg)) }}},
		"Concat":                   {{"concat", func() error { return errOf(Concat(nil, 0)) }}, {"concat", func() error { return errOf(Concat([]*Variable{v, Param(randn(1, 3))}, 0)) }}},
		"Stack":                    {{"stack", func() error { return errOf(Stack([]*Variable{v, nil}, 0)) }}},
		"Matmul":                   {{"matmul", func() error { return errOf(Matmul(v, v)) }}},
		"Linear":                   {{"linear", func() error { return errOf(Linear(v, Param(randn(1, 4, 2)), nil)) }}, {"linear", func() error { return errOf(Linear(nil, v, nil)) }}},
		"Conv2d":                   {{"conv2d", func() error { return errOf(Conv2d(v, w4, nil, tensor.Conv2dOptions{})) }}, {"conv2d", func() error { return errOf(Conv2d(v4, Param(randn(2, 2, 3, 3, 3)), nil, tensor.Conv2dOptions{})) }}},
		"MaxPool2d":                {{"max_pool2d", func() error { return errOf(MaxPool2d(v, pool)) }}},
		"AvgPool2d":                {{"avg_pool2d", func() error { return errOf(AvgPool2d(nil, pool)) }}},
		"Softmax":                  {{"softmax", func() error { return errOf(Softmax(v, 3)) }}},
		"LogSoftmax":               {{"log_softmax", func() error { return errOf(LogSoftmax(v, -4)) }}},
		"CrossEntropy":             {{"cross_entropy", func() error { return errOf(CrossEntropy(v, tg)) }}, {"cross_entropy", func() error { return errOf(CrossEntropy(v4, tg)) }}, {"cross_entropy", func() error { return errOf(CrossEntropy(v, nil)) }}},
		"NLLLoss":                  {{"nll_loss", func() error { return errOf(NLLLoss(v, tg)) }}},
		"MSE":                      {{"mse_loss", func() error { return errOf(MSE(v, Param(randn(1, 3, 2)))) }}},
		"Dropout":                  {{"dropout", func() error { return errOf(Dropout(v, 1.5, tensor.NewRNG(1), true)) }}, {"dropout", func() error { return errOf(Dropout(v, 0.5, nil, true)) }}},
		"NoGrad":                   {{"inner", func() error { return NoGrad(func() error { return errs.New(errs.Argument, "inner", "x") }) }}},
		"GradCheck":                {{"gradcheck", func() error { return GradCheck(f, []*tensor.Tensor{nil}, GradCheckOptions{}) }}},
		"Variable.Backward":        {{"backward", func() error { return (&Variable{}).Backward() }}},
		"Variable.BackwardWith":    {{"backward", func() error { return v.BackwardWith(BackwardOptions{Grad: randn(1, 3)}) }}},
		"Variable.SetRequiresGrad": {{"set_requires_grad", func() error { return ok(Neg(v)).SetRequiresGrad(false) }}},
		"Variable.Item":            {{"item", func() error { return errOf(v.Item()) }}},
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
			case !errors.As(err, &te):
				t.Errorf("%s call %d: %q is not a *errs.TorchError", name, i, err)
			case te.Kind == errs.Other || te.Kind == errs.Internal:
				t.Errorf("%s call %d: %q has kind %v", name, i, err, te.Kind)
			case te.Op != c.op:
				t.Errorf("%s call %d: %q names op %q, want %q", name, i, err, te.Op, c.op)
			}
		}
	}
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	n := 0
	for _, fn := range files {
		if strings.HasSuffix(fn, "_test.go") {
			continue
		}
		src, err := os.ReadFile(fn)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, fn, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fd, isFn := d.(*ast.FuncDecl)
			if !isFn || !fd.Name.IsExported() || fd.Type.Results == nil {
				continue
			}
			res := fd.Type.Results.List
			if id, isID := res[len(res)-1].Type.(*ast.Ident); !isID || id.Name != "error" {
				continue
			}
			name := fd.Name.Name
			if fd.Recv != nil {
				typ := fd.Recv.List[0].Type
				if st, isStar := typ.(*ast.StarExpr); isStar {
					typ = st.X
				}
				name = typ.(*ast.Ident).Name + "." + name
			}
			n++
			if _, found := walk[name]; !found {
				t.Errorf("public function %s returns an error but is not in the no-panic walk", name)
			}
		}
	}
	if n < 40 {
		t.Fatalf("source walk found only %d functions", n)
	}
}
