package plan

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

func f32(shape ...int) string {
	return fmt.Sprintf(`{"dtype":"float32","shape":%s}`, ints(shape))
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(s, ",") + "]"
}

func mustParse(t *testing.T, src string) *Graph {
	t.Helper()
	g, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return g
}

func randn(t *testing.T, seed uint64, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.Randn(tensor.NewRNG(seed), shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// mlpForward is the forward graph AOTAutograd gives for Linear-ReLU-Linear
// (inputs w1, b1, x, w2, b2).
var mlpForward = `{"inputs":[` + f32(8, 6) + `,` + f32(8) + `,` + f32(4, 6) + `,` + f32(3, 8) + `,` + f32(3) + `],
 "nodes":[
  {"op":"aten.t.default","args":[{"ref":0}],"out":[` + f32(6, 8) + `]},
  {"op":"aten.addmm.default","args":[{"ref":1},{"ref":2},{"ref":5},1,1],"out":[` + f32(4, 8) + `]},
  {"op":"aten.relu.default","args":[{"ref":6}],"out":[` + f32(4, 8) + `]},
  {"op":"aten.t.default","args":[{"ref":3}],"out":[` + f32(8, 3) + `]},
  {"op":"aten.addmm.default","args":[{"ref":4},{"ref":7},{"ref":8},1,1],"out":[` + f32(4, 3) + `]}],
 "outputs":[{"ref":9},{"ref":7}]}`

func TestRunMatchesTheEngine(t *testing.T) {
	p, err := Compile(mustParse(t, mlpForward))
	if err != nil {
		t.Fatal(err)
	}
	w1, b1, x, w2, b2 := randn(t, 1, 8, 6), randn(t, 2, 8), randn(t, 3, 4, 6), randn(t, 4, 3, 8), randn(t, 5, 3)
	outs, err := p.Run([]*tensor.Tensor{w1, b1, x, w2, b2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := tensor.Linear(x, w1, b1)
	h, _ = tensor.Relu(h)
	y, _ := tensor.Linear(h, w2, b2)
	for i, want := range []*tensor.Tensor{y, h} {
		if got := outs[i].ToSlice(); !slices.Equal(got, want.ToSlice()) {
			t.Errorf("output %d = %v; want %v", i, got, want.ToSlice())
		}
	}
	if p.Random() {
		t.Error("Random() = true for a graph without dropout")
	}
}

func TestTupleResultsAndLists(t *testing.T) {
	// layer norm's (out, mean, rstd) and split's list, picked by index.
	src := `{"inputs":[` + f32(2, 6) + `],
	 "nodes":[
	  {"op":"aten.native_layer_norm.default","args":[{"ref":0},[6],null,null,1e-5],"out":[` + f32(2, 6) + `,` + f32(2, 1) + `,` + f32(2, 1) + `]},
	  {"op":"aten.split.Tensor","args":[{"ref":1,"i":0},4,1],"out":[` + f32(2, 4) + `,` + f32(2, 2) + `]},
	  {"op":"aten.cat.default","args":[[{"ref":2,"i":1},{"ref":2,"i":0}],1],"out":[` + f32(2, 6) + `]}],
	 "outputs":[{"ref":3},{"ref":1,"i":2}]}`
	p, err := Compile(mustParse(t, src))
	if err != nil {
		t.Fatal(err)
	}
	x := randn(t, 7, 2, 6)
	outs, err := p.Run([]*tensor.Tensor{x}, 0)
	if err != nil {
		t.Fatal(err)
	}
	y, _, rstd, _ := tensor.LayerNorm(x, []int{6}, nil, nil, 1e-5)
	a, _ := y.Narrow(1, 0, 4)
	b, _ := y.Narrow(1, 4, 2)
	want, _ := tensor.Concat([]*tensor.Tensor{b, a}, 1)
	if !slices.Equal(outs[0].ToSlice(), want.ToSlice()) || !slices.Equal(outs[1].ToSlice(), rstd.ToSlice()) {
		t.Errorf("outputs %v, %v; want %v, %v", outs[0].ToSlice(), outs[1].ToSlice(), want.ToSlice(), rstd.ToSlice())
	}
}

func TestNonFiniteLiteral(t *testing.T) {
	src := `{"inputs":[` + f32(2, 2) + `,{"dtype":"bool","shape":[2,2]}],
	 "nodes":[{"op":"aten.masked_fill.Scalar","args":[{"ref":0},{"ref":1},{"float":"-inf"}],"out":[` + f32(2, 2) + `]}],
	 "outputs":[{"ref":2}]}`
	p, err := Compile(mustParse(t, src))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := tensor.New([]float32{1, 2, 3, 4}, 2, 2)
	m, _ := tensor.New([]float32{0, 1, 1, 0}, 2, 2)
	outs, err := p.Run([]*tensor.Tensor{x, m}, 0)
	if err != nil {
		t.Fatal(err)
	}
	inf := float32(math.Inf(-1))
	if got, want := outs[0].ToSlice(), []float32{1, inf, inf, 4}; !slices.Equal(got, want) {
		t.Errorf("masked_fill = %v; want %v", got, want)
	}
}

func TestDropoutFollowsTheSeed(t *testing.T) {
	src := `{"inputs":[` + f32(64) + `],
	 "nodes":[{"op":"aten.native_dropout.default","args":[{"ref":0},0.5,true],"out":[` + f32(64) + `,{"dtype":"bool","shape":[64]}]}],
	 "outputs":[{"ref":1,"i":0},{"ref":1,"i":1}]}`
	p, err := Compile(mustParse(t, src))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Random() {
		t.Fatal("Random() = false for dropout")
	}
	x, _ := tensor.Ones(64)
	run := func(seed uint64) []float32 {
		outs, err := p.Run([]*tensor.Tensor{x}, seed)
		if err != nil {
			t.Fatal(err)
		}
		return outs[0].ToSlice()
	}
	a, b, c := run(1), run(1), run(2)
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Errorf("seed 1 twice equal: %v, seeds 1 and 2 differ: %v; want true, true", slices.Equal(a, b), !slices.Equal(a, c))
	}
}

func TestCheckReasons(t *testing.T) {
	x4 := f32(1, 1, 5, 5)
	tests := []struct {
		name, node, input, want string
	}{
		{"supported", `{"op":"aten.relu.default","args":[{"ref":0}],"out":[` + f32(2) + `]}`, f32(2), ""},
		{"symbolic sizes", `{"op":"aten.view.default","args":[{"ref":0},[-1]],"out":[` + f32(-1) + `]}`, f32(-1, 2), ""},
		{"unknown operator", `{"op":"aten.cumsum.default","args":[{"ref":0},0,null],"out":[` + f32(2) + `]}`, f32(2), "operator aten.cumsum.default is not implemented by gorch"},
		{"float64", `{"op":"aten.relu.default","args":[{"ref":0}],"out":[{"dtype":"float64","shape":[2]}]}`, `{"dtype":"float64","shape":[2]}`, "float64 tensors are not supported"},
		{"int data", `{"op":"aten.relu.default","args":[{"ref":0}],"out":[{"dtype":"int64","shape":[2]}]}`, `{"dtype":"int64","shape":[2]}`, "int64 tensor where gorch takes float32"},
		{"dilation", `{"op":"aten.convolution.default","args":[{"ref":0},{"ref":0},null,[1,1],[0,0],[2,2],false,[0,0],1],"out":[` + x4 + `]}`, x4, "dilation [2 2]"},
		{"groups", `{"op":"aten.convolution.default","args":[{"ref":0},{"ref":0},null,[1,1],[0,0],[1,1],false,[0,0],2],"out":[` + x4 + `]}`, x4, "groups 2"},
		{"threshold", `{"op":"aten.threshold_backward.default","args":[{"ref":0},{"ref":0},0.5],"out":[` + f32(2) + `]}`, f32(2), "threshold 0.5"},
		{"bad argument", `{"op":"aten.transpose.int","args":[{"ref":0},"a",1],"out":[` + f32(2) + `]}`, f32(2), "argument 1: want a number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := mustParse(t, `{"inputs":[`+tc.input+`],"nodes":[`+tc.node+`],"outputs":[]}`)
			got := Check(g)[0]
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("Check = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestBadGraphs(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"not json", `{`, "bad graph"},
		{"forward reference", `{"inputs":[` + f32(2) + `],"nodes":[{"op":"aten.relu.default","args":[{"ref":1}],"out":[` + f32(2) + `]}],"outputs":[]}`, "not an earlier value"},
		{"output out of range", `{"inputs":[` + f32(2) + `],"nodes":[],"outputs":[{"ref":3}]}`, "not a value of the graph"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src))
			if !errors.Is(err, errs.Argument) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse error = %v; want an argument error containing %q", err, tc.want)
			}
		})
	}
	_, err := Compile(mustParse(t, `{"inputs":[{"dtype":"float32","shape":[2],"strides":[1,1]}],"nodes":[],"outputs":[{"ref":0}]}`))
	if !errors.Is(err, errs.Argument) || !strings.Contains(err.Error(), "2 strides for shape [2]") {
		t.Errorf("Compile with bad strides: %v; want an argument error naming the strides", err)
	}
	_, err = Compile(mustParse(t, `{"inputs":[`+f32(2)+`],"nodes":[{"op":"aten.cumsum.default","args":[{"ref":0},0,null],"out":[`+f32(2)+`]}],"outputs":[{"ref":1}]}`))
	if !errors.Is(err, errs.Unsupported) {
		t.Errorf("Compile with an unknown operator: %v; want an unsupported error", err)
	}
}

func TestRunRefusesWrongInputs(t *testing.T) {
	p, err := Compile(mustParse(t, mlpForward))
	if err != nil {
		t.Fatal(err)
	}
	w1, b1, x, w2, b2 := randn(t, 1, 8, 6), randn(t, 2, 8), randn(t, 3, 5, 6), randn(t, 4, 3, 8), randn(t, 5, 3)
	if _, err := p.Run([]*tensor.Tensor{w1, b1}, 0); !errors.Is(err, errs.Argument) {
		t.Errorf("Run with 2 inputs: %v; want an argument error", err)
	}
	if _, err := p.Run([]*tensor.Tensor{w1, b1, x, w2, b2}, 0); !errors.Is(err, errs.Shape) || !strings.Contains(err.Error(), "input 2") {
		t.Errorf("Run with x [5 6]: %v; want a shape error naming input 2", err)
	}
}

func TestOpsListsTheTransformerOperators(t *testing.T) {
	ops := Ops()
	for _, want := range []string{"aten.addmm.default", "aten.convolution_backward.default", "aten.native_layer_norm_backward.default",
		"aten._scaled_dot_product_flash_attention_for_cpu_backward.default", "aten.embedding_dense_backward.default", "aten.nll_loss_backward.default"} {
		if !slices.Contains(ops, want) {
			t.Errorf("Ops() lacks %s", want)
		}
	}
	if !slices.IsSorted(ops) {
		t.Error("Ops() is not sorted")
	}
}
