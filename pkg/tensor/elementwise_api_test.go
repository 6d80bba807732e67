package tensor

import (
	"math"
	"testing"
)

// The exported wrappers of ops that nothing in the module calls, checked
// against PyTorch's results for the same inputs (torch.abs, reciprocal,
// minimum, maximum, eq, lt, le, gt, ge on float32 tensors; comparisons
// give 1 or 0 here where torch gives a bool tensor).
func TestExportedElementwiseWrappers(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	negZero := float32(math.Copysign(0, -1))
	x := coreMk(t, []float32{-2, negZero, 3.5, nan, -inf}, 5)
	a := coreMk(t, []float32{1, nan, 3, -1, 2, 2}, 2, 3)
	b := coreMk(t, []float32{2, 0, -inf}, 3) // broadcast over a's rows
	cases := []struct {
		name string
		f    func() (*Tensor, error)
		want []float32
	}{
		{"abs", func() (*Tensor, error) { return Abs(x) }, []float32{2, 0, 3.5, nan, inf}},
		{"reciprocal", func() (*Tensor, error) { return Reciprocal(x) }, []float32{-0.5, -inf, 1 / 3.5, nan, negZero}},
		// torch.minimum / maximum propagate NaN.
		{"minimum", func() (*Tensor, error) { return Minimum(a, b) }, []float32{1, nan, -inf, -1, 0, -inf}},
		{"maximum", func() (*Tensor, error) { return Maximum(a, b) }, []float32{2, nan, 3, 2, 2, 2}},
		// Every comparison with NaN is false.
		{"eq", func() (*Tensor, error) { return Eq(a, b) }, []float32{0, 0, 0, 0, 0, 0}},
		{"lt", func() (*Tensor, error) { return Lt(a, b) }, []float32{1, 0, 0, 1, 0, 0}},
		{"le", func() (*Tensor, error) { return Le(a, b) }, []float32{1, 0, 0, 1, 0, 0}},
		{"gt", func() (*Tensor, error) { return Gt(a, b) }, []float32{0, 0, 1, 0, 1, 1}},
		{"ge", func() (*Tensor, error) { return Ge(a, b) }, []float32{0, 0, 1, 0, 1, 1}},
		{"eq equal", func() (*Tensor, error) { return Eq(b, b) }, []float32{1, 1, 1}},
	}
	for _, c := range cases {
		got, err := c.f()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		d := got.Data()
		if len(d) != len(c.want) {
			t.Errorf("%s: %d values, want %d", c.name, len(d), len(c.want))
			continue
		}
		for i := range d {
			w := c.want[i]
			same := d[i] == w && math.Signbit(float64(d[i])) == math.Signbit(float64(w)) || d[i] != d[i] && w != w
			if !same {
				t.Errorf("%s[%d] = %v, want %v (all: %v)", c.name, i, d[i], w, d)
			}
		}
	}
	if _, err := Minimum(a, coreMk(t, []float32{1, 2}, 2)); err == nil {
		t.Error("minimum of [2 3] and [2]: no error")
	}
}
