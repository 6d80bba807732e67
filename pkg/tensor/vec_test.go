package tensor

import (
	"math"
	"testing"

	"github.com/gorch/gorch/internal/kernels"
)

// withSpecials returns a random [r, c] tensor with NaN, ±Inf, ±0 and
// denormals mixed in.
func withSpecials(t *testing.T, rng *RNG, r, c int) *Tensor {
	t.Helper()
	x, err := Randn(rng, r, c)
	if err != nil {
		t.Fatal(err)
	}
	sp := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e-40, -1e-41}
	d := x.Data()
	for i := 0; i < len(d); i += 5 {
		d[i] = sp[(i/5)%len(sp)]
	}
	return x
}

func sameTensor(t *testing.T, what string, a, b *Tensor) {
	t.Helper()
	if !EqualShape(a.Shape(), b.Shape()) {
		t.Fatalf("%s: shapes %v and %v", what, a.Shape(), b.Shape())
	}
	ad, bd := a.ToSlice(), b.ToSlice()
	for i := range ad {
		if !(ad[i] != ad[i] && bd[i] != bd[i]) && math.Float32bits(ad[i]) != math.Float32bits(bd[i]) {
			t.Fatalf("%s: element %d: %v (%#x) vs %v (%#x)", what, i, ad[i], math.Float32bits(ad[i]), bd[i], math.Float32bits(bd[i]))
		}
	}
}

// TestVecFastPathsMatchScalar runs the ops with vectorised fast paths with
// the vector kernels on and off, and against the generic per-element
// function, on contiguous, transposed and broadcast operands of odd sizes.
func TestVecFastPathsMatchScalar(t *testing.T) {
	rng := NewRNG(7)
	for _, sz := range [][2]int{{1, 1}, {3, 7}, {5, 17}, {4, 33}, {64, 256}, {9, 1001}} {
		r, c := sz[0], sz[1]
		x, y := withSpecials(t, rng, r, c), withSpecials(t, rng, r, c)
		col := withSpecials(t, rng, r, 1) // broadcast scalar per row
		row := withSpecials(t, rng, 1, c)
		xt := coreMust(coreMust(withSpecials(t, rng, c, r).T()).Contiguous()) // a contiguous copy
		xT := coreMust(withSpecials(t, rng, c, r).T())                        // non-contiguous
		type tc struct {
			name string
			f    func() (*Tensor, error)
		}
		cases := []tc{
			{"add", func() (*Tensor, error) { return Add(x, y) }},
			{"sub", func() (*Tensor, error) { return Sub(x, y) }},
			{"mul", func() (*Tensor, error) { return Mul(x, y) }},
			{"add col", func() (*Tensor, error) { return Add(x, col) }},
			{"sub col", func() (*Tensor, error) { return Sub(x, col) }},
			{"col sub", func() (*Tensor, error) { return Sub(col, x) }},
			{"mul col", func() (*Tensor, error) { return Mul(col, x) }},
			{"add row", func() (*Tensor, error) { return Add(x, row) }},
			{"sub scalar", func() (*Tensor, error) { return Sub(Scalar(1.5), x) }},
			{"mul transposed", func() (*Tensor, error) { return Mul(xT, xt) }},
			{"relu", func() (*Tensor, error) { return Relu(x) }},
			{"relu transposed", func() (*Tensor, error) { return Relu(xT) }},
			{"mul_scalar", func() (*Tensor, error) { return MulScalar(x, -0.3) }},
			{"add_scalar", func() (*Tensor, error) { return AddScalar(xT, 2) }},
			{"relu_backward", func() (*Tensor, error) { return ReluBackward(y, x) }},
			{"relu_backward transposed", func() (*Tensor, error) { return ReluBackward(xt, xT) }},
			{"relu_backward expanded", func() (*Tensor, error) { return ReluBackward(coreMust(col.Expand(r, c)), x) }},
			{"sum rows", func() (*Tensor, error) { return Sum(y, []int{1}, false) }},
			{"sum cols", func() (*Tensor, error) { return Sum(y, []int{0}, false) }},
			{"sum all", func() (*Tensor, error) { return Sum(y, nil, false) }},
			{"sum_to bias", func() (*Tensor, error) { return SumTo(y, []int{c}) }},
			{"sum transposed", func() (*Tensor, error) { return Sum(xT, []int{0}, true) }},
		}
		for _, k := range cases {
			prev, _ := kernels.SetVecPath("go")
			want, err := k.f()
			if err != nil {
				t.Fatalf("%s %v on the Go path: %v", k.name, sz, err)
			}
			for _, path := range kernels.VecPaths() {
				kernels.SetVecPath(path)
				got, err := k.f()
				if err != nil {
					t.Fatalf("%s %v on %s: %v", k.name, sz, path, err)
				}
				sameTensor(t, k.name+"/"+path, got, want)
			}
			kernels.SetVecPath(prev)
		}
		// The generic per-element functions agree with the fast paths.
		sameTensor(t, "add generic", coreMust(Add(x, y)), coreMust(x.mapWith(stat("t"), func(v float32) float32 { return v })).mustZip(y, func(a, b float32) float32 { return a + b }))
		sameTensor(t, "relu generic", coreMust(Relu(x)), coreMust(x.mapWith(stat("t"), func(v float32) float32 { return max(v, 0) })))
		sameTensor(t, "mul col generic", coreMust(Mul(x, col)), coreMust(x.mapWith(stat("t"), func(v float32) float32 { return v })).mustZip(coreMust(col.Expand(r, c)), func(a, b float32) float32 { return a * b }))
	}
}

// mustZip applies f to t and u elementwise (same shape) without fast paths.
func (t *Tensor) mustZip(u *Tensor, f func(a, b float32) float32) *Tensor {
	a, b := t.ToSlice(), u.ToSlice()
	out := make([]float32, len(a))
	for i := range a {
		out[i] = f(a[i], b[i])
	}
	return coreMust(New(out, t.Shape()...))
}

func TestReluBackward(t *testing.T) {
	x := coreMust(New([]float32{-1, 0, float32(math.Copysign(0, -1)), 2, float32(math.NaN()), 1e-40, float32(math.Inf(1)), -3, 4}, 3, 3))
	g := coreMust(New([]float32{1, 2, 3, 4, 5, 6, 7, 8, 9}, 3, 3))
	want := []float32{0, 0, 0, 4, 0, 6, 7, 0, 9}
	for _, path := range kernels.VecPaths() {
		prev, _ := kernels.SetVecPath(path)
		got := coreMust(ReluBackward(g, x)).ToSlice()
		// Transposed operands: the same elementwise result, transposed.
		gotT := coreMust(ReluBackward(coreMust(g.T()), coreMust(x.T())))
		kernels.SetVecPath(prev)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Errorf("%s: element %d = %v, want %v", path, i, got[i], want[i])
			}
		}
		for i := range 3 {
			for j := range 3 {
				if v, err := gotT.At(j, i); err != nil || v != want[i*3+j] {
					t.Errorf("%s: transposed (%d,%d) = %v; want %v", path, j, i, v, want[i*3+j])
				}
			}
		}
	}
	if _, err := ReluBackward(g, coreMust(Zeros(9))); err == nil {
		t.Error("ReluBackward with mismatched shapes succeeded")
	}
}
