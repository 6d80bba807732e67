package nn

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

func names(ps []NamedParameter) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func shapes(ps []NamedParameter) [][]int {
	var out [][]int
	for _, p := range ps {
		out = append(out, p.Param.Data.Shape())
	}
	return out
}

func TestParametersNamesShapesCounts(t *testing.T) {
	rng := tensor.NewRNG(1)
	lin, err := NewLinear(3, 4, true, rng)
	if err != nil {
		t.Fatal(err)
	}
	linNB, err := NewLinear(3, 4, false, rng)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := NewConv2d(2, 5, 3, 1, 1, true, rng)
	if err != nil {
		t.Fatal(err)
	}
	mlp, err := MLP([]int{4, 16, 8, 3}, rng)
	if err != nil {
		t.Fatal(err)
	}
	lenet, err := LeNet(rng)
	if err != nil {
		t.Fatal(err)
	}
	inner, _ := NewSequential(lin, &ReLU{})
	nested, _ := NewSequential(inner, &Tanh{}, linNB)
	tests := []struct {
		name   string
		m      Module
		names  []string
		shapes [][]int
		count  int
	}{
		{"linear", lin, []string{"weight", "bias"}, [][]int{{4, 3}, {4}}, 16},
		{"linear-nobias", linNB, []string{"weight"}, [][]int{{4, 3}}, 12},
		{"conv", conv, []string{"weight", "bias"}, [][]int{{5, 2, 3, 3}, {5}}, 95},
		{"relu", &ReLU{}, nil, nil, 0},
		{"mlp", mlp, []string{"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"},
			[][]int{{16, 4}, {16}, {8, 16}, {8}, {3, 8}, {3}}, 16*4 + 16 + 8*16 + 8 + 3*8 + 3},
		{"lenet", lenet, []string{"0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "9.weight", "9.bias"},
			[][]int{{16, 1, 5, 5}, {16}, {32, 16, 5, 5}, {32}, {128, 512}, {128}, {10, 128}, {10}},
			16*25 + 16 + 32*16*25 + 32 + 128*512 + 128 + 10*128 + 10},
		{"nested", nested, []string{"0.0.weight", "0.0.bias", "2.weight"}, [][]int{{4, 3}, {4}, {4, 3}}, 28},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := tc.m.Parameters()
			if got := names(ps); !reflect.DeepEqual(got, tc.names) {
				t.Errorf("names %v, want %v", got, tc.names)
			}
			if got := shapes(ps); !reflect.DeepEqual(got, tc.shapes) {
				t.Errorf("shapes %v, want %v", got, tc.shapes)
			}
			if got := NumParameters(tc.m); got != tc.count {
				t.Errorf("NumParameters %d, want %d", got, tc.count)
			}
			for _, p := range ps {
				if !p.Param.RequiresGrad() || !p.Param.IsLeaf() {
					t.Errorf("%s: not a trainable leaf", p.Name)
				}
			}
		})
	}
}

func TestConstructorErrors(t *testing.T) {
	rng := tensor.NewRNG(1)
	tests := []struct {
		name string
		err  func() error
	}{
		{"linear in=0", func() error { _, err := NewLinear(0, 3, true, rng); return err }},
		{"linear out<0", func() error { _, err := NewLinear(3, -1, true, rng); return err }},
		{"linear nil rng", func() error { _, err := NewLinear(3, 3, true, nil); return err }},
		{"conv kernel 0", func() error { _, err := NewConv2d(1, 1, 0, 1, 0, true, rng); return err }},
		{"conv stride 0", func() error { _, err := NewConv2d(1, 1, 3, 0, 0, true, rng); return err }},
		{"conv padding<0", func() error { _, err := NewConv2d(1, 1, 3, 1, -1, true, rng); return err }},
		{"conv channels", func() error { _, err := NewConv2d(0, 1, 3, 1, 0, true, rng); return err }},
		{"maxpool kernel", func() error { _, err := NewMaxPool2d(0, 0); return err }},
		{"avgpool stride", func() error { _, err := NewAvgPool2d(2, -1); return err }},
		{"dropout p>1", func() error { _, err := NewDropout(1.5, rng); return err }},
		{"dropout p<0", func() error { _, err := NewDropout(-0.1, rng); return err }},
		{"dropout nil rng", func() error { _, err := NewDropout(0.5, nil); return err }},
		{"mlp short", func() error { _, err := MLP([]int{3}, rng); return err }},
		{"mlp zero", func() error { _, err := MLP([]int{3, 0, 2}, rng); return err }},
		{"sequential nil", func() error { _, err := NewSequential(&ReLU{}, nil); return err }},
	}
	for _, tc := range tests {
		if err := tc.err(); !errors.Is(err, errs.Argument) {
			t.Errorf("%s: err %v, want errs.Argument", tc.name, err)
		}
	}
}

func TestInitBounds(t *testing.T) {
	tests := []struct {
		name  string
		build func(*tensor.RNG) (Module, error)
		fanIn int
	}{
		{"linear 100->200", func(r *tensor.RNG) (Module, error) { return NewLinear(100, 200, true, r) }, 100},
		{"linear 7->300", func(r *tensor.RNG) (Module, error) { return NewLinear(7, 300, true, r) }, 7},
		{"conv 16->32 k5", func(r *tensor.RNG) (Module, error) { return NewConv2d(16, 32, 5, 1, 0, true, r) }, 400},
		{"conv 3->64 k3", func(r *tensor.RNG) (Module, error) { return NewConv2d(3, 64, 3, 1, 1, true, r) }, 27},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.build(tensor.NewRNG(42))
			if err != nil {
				t.Fatal(err)
			}
			bound := 1 / math.Sqrt(float64(tc.fanIn))
			for _, p := range m.Parameters() {
				d := p.Param.Data.Data()
				var sum, sq float64
				for _, v := range d {
					if math.Abs(float64(v)) > bound {
						t.Fatalf("%s: %v outside ±%v", p.Name, v, bound)
					}
					sum += float64(v)
					sq += float64(v) * float64(v)
				}
				n := float64(len(d))
				if n < 1000 { // too few samples for moment checks (biases)
					continue
				}
				mean := sum / n
				std := math.Sqrt(sq/n - mean*mean)
				want := bound / math.Sqrt(3) // std of U(-b, b)
				if math.Abs(mean) > 4*want/math.Sqrt(n) {
					t.Errorf("%s: mean %v, want ≈0", p.Name, mean)
				}
				if math.Abs(std-want)/want > 0.05 {
					t.Errorf("%s: std %v, want ≈%v", p.Name, std, want)
				}
			}
		})
	}
}

func TestSeedReproducible(t *testing.T) {
	a, _ := MLP([]int{5, 7, 2}, tensor.NewRNG(9))
	b, _ := MLP([]int{5, 7, 2}, tensor.NewRNG(9))
	c, _ := MLP([]int{5, 7, 2}, tensor.NewRNG(10))
	pa, pb, pc := a.Parameters(), b.Parameters(), c.Parameters()
	same := true
	for i := range pa {
		if !reflect.DeepEqual(pa[i].Param.Data.Data(), pb[i].Param.Data.Data()) {
			t.Errorf("%s differs between equal seeds", pa[i].Name)
		}
		if !reflect.DeepEqual(pa[i].Param.Data.Data(), pc[i].Param.Data.Data()) {
			same = false
		}
	}
	if same {
		t.Error("different seeds gave identical parameters")
	}
}

func TestStateDictRoundTrip(t *testing.T) {
	src, _ := MLP([]int{3, 5, 2}, tensor.NewRNG(1))
	dst, _ := MLP([]int{3, 5, 2}, tensor.NewRNG(2))
	sd, err := StateDict(src)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0.weight", "0.bias", "2.weight", "2.bias"}; !reflect.DeepEqual(sd.Keys, want) {
		t.Fatalf("keys %v, want %v", sd.Keys, want)
	}
	// The snapshot is a copy: changing the model does not change it.
	w0 := src.Parameters()[0].Param.Data
	old, _ := w0.At(0, 0)
	_ = w0.SetAt(old+1, 0, 0)
	if v, _ := sd.Tensors["0.weight"].At(0, 0); v != old {
		t.Errorf("state dict aliases the parameter: %v != %v", v, old)
	}
	_ = w0.SetAt(old, 0, 0)

	before := dst.Parameters()
	if err := LoadStateDict(dst, sd, true); err != nil {
		t.Fatal(err)
	}
	after := dst.Parameters()
	for i := range after {
		if after[i].Param != before[i].Param || after[i].Param.Data != before[i].Param.Data {
			t.Errorf("%s: Variable or tensor replaced by LoadStateDict", after[i].Name)
		}
		if !reflect.DeepEqual(after[i].Param.Data.Data(), src.Parameters()[i].Param.Data.Data()) {
			t.Errorf("%s: values not loaded", after[i].Name)
		}
	}
}

func TestLoadStateDictErrors(t *testing.T) {
	m, _ := MLP([]int{3, 5, 2}, tensor.NewRNG(1))
	good, _ := StateDict(m)
	bad := func(edit func(d *TensorDict)) *TensorDict {
		d := NewTensorDict()
		for _, k := range good.Keys {
			d.Set(k, good.Tensors[k])
		}
		edit(d)
		return d
	}
	z := func(shape ...int) *tensor.Tensor { x, _ := tensor.Zeros(shape...); return x }
	tests := []struct {
		name    string
		sd      *TensorDict
		strict  bool
		kind    errs.Kind
		mention []string
	}{
		{"shape strict", bad(func(d *TensorDict) { d.Set("0.weight", z(5, 4)) }), true, errs.Shape, []string{"0.weight", "[5 4]", "[5 3]"}},
		{"shape non-strict", bad(func(d *TensorDict) { d.Set("2.bias", z(3)) }), false, errs.Shape, []string{"2.bias", "[3]", "[2]"}},
		{"missing", bad(func(d *TensorDict) { delete(d.Tensors, "2.bias"); d.Keys = d.Keys[:3] }), true, errs.Argument, []string{"missing", "2.bias"}},
		{"unexpected", bad(func(d *TensorDict) { d.Set("4.weight", z(1)) }), true, errs.Argument, []string{"unexpected", "4.weight"}},
		{"nil", nil, true, errs.Argument, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, _ := StateDict(m)
			err := LoadStateDict(m, tc.sd, tc.strict)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err %v, want kind %v", err, tc.kind)
			}
			for _, s := range tc.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			now, _ := StateDict(m)
			for _, k := range snap.Keys {
				if !reflect.DeepEqual(snap.Tensors[k].Data(), now.Tensors[k].Data()) {
					t.Errorf("%s changed by a failed load", k)
				}
			}
		})
	}
	// Non-strict tolerates missing and unexpected keys and loads the rest.
	other, _ := MLP([]int{3, 5, 2}, tensor.NewRNG(7))
	osd, _ := StateDict(other)
	partial := NewTensorDict()
	partial.Set("0.weight", osd.Tensors["0.weight"])
	partial.Set("extra", z(2))
	if err := LoadStateDict(m, partial, false); err != nil {
		t.Fatalf("non-strict load: %v", err)
	}
	if !reflect.DeepEqual(m.Parameters()[0].Param.Data.Data(), osd.Tensors["0.weight"].Data()) {
		t.Error("0.weight not loaded")
	}
	if !reflect.DeepEqual(m.Parameters()[1].Param.Data.Data(), good.Tensors["0.bias"].Data()) {
		t.Error("0.bias changed though absent from the state dict")
	}
}

func TestTrainModePropagates(t *testing.T) {
	rng := tensor.NewRNG(1)
	d, _ := NewDropout(0.5, rng)
	inner, _ := NewSequential(d)
	s, _ := NewSequential(&ReLU{}, inner)
	if !s.Training() || !d.Training() {
		t.Fatal("modules must start in training mode")
	}
	s.Train(false)
	if s.Training() || inner.Training() || d.Training() || s.Modules[0].Training() {
		t.Fatal("Train(false) did not reach every child")
	}
	s.Train(true)
	if !d.Training() {
		t.Fatal("Train(true) did not reach the dropout")
	}
}

func TestDropoutTrainEval(t *testing.T) {
	const n = 20000
	x, _ := tensor.Ones(n)
	d, _ := NewDropout(0.25, tensor.NewRNG(3))
	out, err := d.Forward(autograd.Const(x))
	if err != nil {
		t.Fatal(err)
	}
	zeros := 0
	for _, v := range out.Data.Data() {
		switch {
		case v == 0:
			zeros++
		case math.Abs(float64(v)-1/0.75) > 1e-6:
			t.Fatalf("kept element %v, want %v", v, 1/0.75)
		}
	}
	if frac := float64(zeros) / n; math.Abs(frac-0.25) > 0.02 {
		t.Errorf("dropped fraction %v, want ≈0.25", frac)
	}
	d.Train(false)
	in := autograd.Const(x)
	out, err = d.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range out.Data.Data() {
		if v != 1 {
			t.Fatalf("eval dropout changed an element to %v", v)
		}
	}
}

func TestActivations(t *testing.T) {
	x, _ := tensor.New([]float32{-2, 0, 1.5}, 3)
	tests := []struct {
		m    Module
		want []float64
	}{
		{&ReLU{}, []float64{0, 0, 1.5}},
		{&Tanh{}, []float64{math.Tanh(-2), 0, math.Tanh(1.5)}},
		{&Sigmoid{}, []float64{1 / (1 + math.Exp(2)), 0.5, 1 / (1 + math.Exp(-1.5))}},
		{&GELU{}, []float64{-2 * 0.5 * (1 + math.Erf(-2/math.Sqrt2)), 0, 1.5 * 0.5 * (1 + math.Erf(1.5/math.Sqrt2))}},
	}
	for _, tc := range tests {
		y, err := tc.m.Forward(autograd.Const(x))
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range y.Data.Data() {
			if math.Abs(float64(v)-tc.want[i]) > 1e-3 {
				t.Errorf("%T[%d] = %v, want %v", tc.m, i, v, tc.want[i])
			}
		}
	}
}

func TestFlatten(t *testing.T) {
	x, _ := tensor.Zeros(2, 3, 4, 5)
	y, err := (&Flatten{}).Forward(autograd.Const(x))
	if err != nil {
		t.Fatal(err)
	}
	if got := y.Data.Shape(); !reflect.DeepEqual(got, []int{2, 60}) {
		t.Errorf("shape %v, want [2 60]", got)
	}
	v, _ := tensor.Zeros(4)
	if _, err := (&Flatten{}).Forward(autograd.Const(v)); !errors.Is(err, errs.Shape) {
		t.Errorf("1-D flatten: %v, want errs.Shape", err)
	}
}

// Forward shapes through layers that need the linalg kernels.
func TestForwardShapes(t *testing.T) {
	rng := tensor.NewRNG(5)
	mlp, _ := MLP([]int{6, 10, 3}, rng)
	lenet, _ := LeNet(rng)
	conv, _ := NewConv2d(3, 8, 3, 2, 1, true, rng)
	mp, _ := NewMaxPool2d(2, 0)
	ap, _ := NewAvgPool2d(3, 1)
	tests := []struct {
		name    string
		m       Module
		in, out []int
	}{
		{"mlp", mlp, []int{4, 6}, []int{4, 3}},
		{"lenet", lenet, []int{2, 1, 28, 28}, []int{2, 10}},
		{"conv s2 p1", conv, []int{2, 3, 9, 9}, []int{2, 8, 5, 5}},
		{"maxpool", mp, []int{1, 2, 6, 6}, []int{1, 2, 3, 3}},
		{"avgpool", ap, []int{1, 2, 6, 6}, []int{1, 2, 4, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, _ := tensor.Randn(rng, tc.in...)
			y, err := tc.m.Forward(autograd.Const(x))
			if err != nil {
				t.Fatal(err)
			}
			if got := y.Data.Shape(); !reflect.DeepEqual(got, tc.out) {
				t.Errorf("shape %v, want %v", got, tc.out)
			}
		})
	}
}
