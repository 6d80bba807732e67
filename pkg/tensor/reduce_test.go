package tensor

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

// ---- shared test helpers (also used by softmax_test.go and index_test.go) ----

func mustT(tb testing.TB, data []float32, shape ...int) *Tensor {
	tb.Helper()
	t, err := New(data, shape...)
	if err != nil {
		tb.Fatalf("New(%v, %v): %v", data, shape, err)
	}
	return t
}

// seq returns n distinct, irregular values.
func seq(n int) []float32 {
	d := make([]float32, n)
	for i := range d {
		d[i] = float32((i*7)%11) - 4.5 + float32(i)*0.125
	}
	return d
}

func prod(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// unravel returns the multi-index of flat row-major position i.
func unravel(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] > 0 {
			idx[d] = i % shape[d]
			i /= shape[d]
		}
	}
	return idx
}

// logical reads t element by element through At (independent of the kernels).
func logical(tb testing.TB, t *Tensor) []float64 {
	tb.Helper()
	sh := t.Shape()
	out := make([]float64, prod(sh))
	for i := range out {
		v, err := t.At(unravel(i, sh)...)
		if err != nil {
			tb.Fatalf("At: %v", err)
		}
		out[i] = float64(v)
	}
	return out
}

// layouts returns views holding the same logical values data/shape with
// different memory layouts: contiguous, transposed, stride-2 with an
// offset, and sliced with a step.
func layouts(tb testing.TB, data []float32, shape ...int) map[string]*Tensor {
	tb.Helper()
	c := mustT(tb, data, shape...)
	out := map[string]*Tensor{"contiguous": c}
	n := len(data)
	// Every stride doubled, offset 1.
	st := NewStorageMust(tb, 2*n+2)
	strides := contiguousStrides(shape)
	for i := range strides {
		strides[i] *= 2
	}
	for i, v := range data {
		idx := unravel(i, shape)
		p := 1
		for d, x := range idx {
			p += x * strides[d]
		}
		st.Data()[p] = v
	}
	s2, err := FromStorage(st, shape, strides, 1)
	if err != nil {
		tb.Fatal(err)
	}
	out["strided"] = s2
	if len(shape) >= 2 {
		tr, _ := c.Transpose(-1, -2)
		cc, _ := tr.Contiguous()
		back, err := cc.Transpose(-1, -2)
		if err != nil {
			tb.Fatal(err)
		}
		out["transposed"] = back
	}
	if len(shape) >= 1 {
		// Interleave with junk along the last dim and slice with step 2.
		big := append([]int(nil), shape...)
		big[len(big)-1] *= 2
		bd := make([]float32, prod(big))
		for i := range bd {
			bd[i] = 1e6
		}
		for i, v := range data {
			idx := unravel(i, shape)
			idx[len(idx)-1] *= 2
			p := 0
			for d, x := range idx {
				p = p*big[d] + x
			}
			bd[p] = v
		}
		b := mustT(tb, bd, big...)
		sl, err := b.Slice(-1, 0, big[len(big)-1], 2)
		if err != nil {
			tb.Fatal(err)
		}
		out["sliced"] = sl
	}
	return out
}

func NewStorageMust(tb testing.TB, n int) *Storage {
	tb.Helper()
	s, err := NewStorage(n)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func near(got, want float64, tol float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	if math.IsInf(want, 0) {
		return got == want
	}
	return math.Abs(got-want) <= tol*(1+math.Abs(want))
}

// expectTensor checks t's shape and values against want (float64 reference).
func expectTensor(tb testing.TB, what string, t *Tensor, shape []int, want []float64, tol float64) {
	tb.Helper()
	if t == nil {
		tb.Fatalf("%s = nil tensor", what)
	}
	if !EqualShape(t.Shape(), shape) {
		tb.Fatalf("%s has shape %v, want %v", what, t.Shape(), shape)
	}
	if !t.IsContiguous() {
		tb.Errorf("%s is not contiguous (strides %v)", what, t.Strides())
	}
	got := logical(tb, t)
	if len(got) != len(want) {
		tb.Fatalf("%s has %d elements, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !near(got[i], want[i], tol) {
			tb.Fatalf("%s = %v, want %v (element %d)", what, got, want, i)
		}
	}
}

// expectErr checks err has the kind and names op.
func expectErr(tb testing.TB, what string, err error, kind errs.Kind, op string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("%s: no error, want %v", what, kind)
	}
	if !errors.Is(err, kind) {
		tb.Fatalf("%s: error %q is %v, want %v", what, err, errs.KindOf(err), kind)
	}
	if got := errs.OpOf(err); got != op {
		tb.Fatalf("%s: error %q names op %q, want %q", what, err, got, op)
	}
}

// refReduce reduces vals (row-major, shape) over mask with f, in float64.
// It returns the keepDim shape's values.
func refReduce(vals []float64, shape []int, mask []bool, init float64, f func(acc, v float64) float64) []float64 {
	ks := make([]int, len(shape))
	for i, d := range shape {
		ks[i] = d
		if mask[i] {
			ks[i] = 1
		}
	}
	out := make([]float64, prod(ks))
	for i := range out {
		out[i] = init
	}
	for i, v := range vals {
		idx := unravel(i, shape)
		p := 0
		for d, x := range idx {
			if mask[d] {
				x = 0
			}
			p = p*ks[d] + x
		}
		out[p] = f(out[p], v)
	}
	return out
}

func outShape(shape []int, mask []bool, keep bool) []int {
	out := []int{}
	for i, d := range shape {
		switch {
		case !mask[i]:
			out = append(out, d)
		case keep:
			out = append(out, 1)
		}
	}
	return out
}

// ---- Sum / Mean ----

func TestSumMeanLayouts(t *testing.T) {
	cases := []struct {
		shape []int
		dims  []int
	}{
		{[]int{2, 3}, nil},
		{[]int{2, 3}, []int{0}},
		{[]int{2, 3}, []int{1}},
		{[]int{2, 3}, []int{-1}},
		{[]int{2, 3}, []int{-2, -1}},
		{[]int{4, 10}, []int{0}},
		{[]int{4, 10}, []int{1}},
		{[]int{2, 3, 4}, []int{1}},
		{[]int{2, 3, 4}, []int{0, 2}},
		{[]int{2, 3, 4}, []int{2, 0}},
		{[]int{2, 3, 4}, []int{}},
		{[]int{3, 1, 5}, []int{1}},
		{[]int{5}, []int{0}},
	}
	for _, c := range cases {
		data := seq(prod(c.shape))
		for name, x := range layouts(t, data, c.shape...) {
			vals := logical(t, x)
			mask := make([]bool, len(c.shape))
			if len(c.dims) == 0 {
				for i := range mask {
					mask[i] = true
				}
			}
			count := 1
			for _, d := range c.dims {
				if d < 0 {
					d += len(c.shape)
				}
				mask[d] = true
			}
			for i, m := range mask {
				if m {
					count *= c.shape[i]
				}
			}
			sum := refReduce(vals, c.shape, mask, 0, func(a, v float64) float64 { return a + v })
			mean := make([]float64, len(sum))
			for i, v := range sum {
				mean[i] = v / float64(count)
			}
			for _, keep := range []bool{false, true} {
				got, err := Sum(x, c.dims, keep)
				if err != nil {
					t.Fatalf("Sum(%s %v, dims=%v, keep=%v): %v", name, c.shape, c.dims, keep, err)
				}
				expectTensor(t, fmt.Sprintf("Sum(%s %v, dims=%v, keep=%v)", name, c.shape, c.dims, keep), got, outShape(c.shape, mask, keep), sum, 1e-6)
				got, err = Mean(x, c.dims, keep)
				if err != nil {
					t.Fatalf("Mean(%s %v, dims=%v): %v", name, c.shape, c.dims, err)
				}
				expectTensor(t, fmt.Sprintf("Mean(%s %v, dims=%v, keep=%v)", name, c.shape, c.dims, keep), got, outShape(c.shape, mask, keep), mean, 1e-6)
			}
		}
	}
}

func TestSumByHand(t *testing.T) {
	x := mustT(t, []float32{1, 2, 3, 4, 5, 6}, 2, 3)
	tests := []struct {
		dims  []int
		keep  bool
		shape []int
		want  []float64
	}{
		{nil, false, []int{}, []float64{21}},
		{nil, true, []int{1, 1}, []float64{21}},
		{[]int{0}, false, []int{3}, []float64{5, 7, 9}},
		{[]int{1}, true, []int{2, 1}, []float64{6, 15}},
		{[]int{-1}, false, []int{2}, []float64{6, 15}},
	}
	for _, tc := range tests {
		got, err := Sum(x, tc.dims, tc.keep)
		if err != nil {
			t.Fatalf("Sum(%v, dims=%v): %v", x, tc.dims, err)
		}
		expectTensor(t, fmt.Sprintf("Sum(%v, dims=%v, keep=%v)", x, tc.dims, tc.keep), got, tc.shape, tc.want, 0)
	}
	m, err := Mean(x, []int{0}, false)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Mean([[1 2 3] [4 5 6]], dims=[0])", m, []int{3}, []float64{2.5, 3.5, 4.5}, 0)
}

func TestSumExpanded(t *testing.T) {
	row := mustT(t, []float32{1, 2, 3}, 1, 3)
	x, err := row.Expand(4, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Sum(x, []int{0}, false)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Sum(expand([1 2 3] to [4 3]), dims=[0])", got, []int{3}, []float64{4, 8, 12}, 0)
	got, err = Sum(x, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Sum(expanded, all)", got, []int{}, []float64{24}, 0)
	got, err = Mean(x, []int{1}, true)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Mean(expanded, dims=[1], keep)", got, []int{4, 1}, []float64{2, 2, 2, 2}, 0)
}

func TestSumZeroDAndEmpty(t *testing.T) {
	s := Scalar(2.5)
	for _, dims := range [][]int{nil, {}, {0}, {-1}} {
		for _, keep := range []bool{false, true} {
			got, err := Sum(s, dims, keep)
			if err != nil {
				t.Fatalf("Sum(scalar, dims=%v): %v", dims, err)
			}
			expectTensor(t, fmt.Sprintf("Sum(scalar, dims=%v, keep=%v)", dims, keep), got, []int{}, []float64{2.5}, 0)
		}
	}
	e, err := Zeros(0, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Sum(e, []int{0}, false)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Sum(zeros[0 3], dims=[0])", got, []int{3}, []float64{0, 0, 0}, 0)
	got, err = Sum(e, []int{1}, true)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Sum(zeros[0 3], dims=[1], keep)", got, []int{0, 1}, []float64{}, 0)
	got, err = Mean(e, []int{0}, false)
	if err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	expectTensor(t, "Mean(zeros[0 3], dims=[0])", got, []int{3}, []float64{nan, nan, nan}, 0)
}

func TestSumPrecision(t *testing.T) {
	// 1e6 ones plus one large value: float32 running sums lose the ones.
	n := 1 << 20
	d := make([]float32, n)
	for i := range d {
		d[i] = 1
	}
	d[0] = 1 << 24
	x := mustT(t, d, n)
	got, err := Sum(x, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := got.Item()
	if want := float32(1<<24 + n - 1); v != want {
		t.Fatalf("Sum(2^24 and %d ones) = %v, want %v", n-1, v, want)
	}
}

func TestSumErrors(t *testing.T) {
	x := mustT(t, seq(6), 2, 3)
	bad, _ := FromStorage(WrapStorage(make([]float32, 6)), []int{2, 3}, []int{3, 1}, 0)
	bad.shape[0] = 5 // corrupt the layout after validation
	tests := []struct {
		name string
		t    *Tensor
		dims []int
		kind errs.Kind
	}{
		{"nil", nil, nil, errs.Argument},
		{"dim too large", x, []int{2}, errs.Argument},
		{"dim too small", x, []int{-3}, errs.Argument},
		{"repeated dim", x, []int{1, -1}, errs.Argument},
		{"0-d dim 1", Scalar(1), []int{1}, errs.Argument},
		{"0-d repeated", Scalar(1), []int{0, -1}, errs.Argument},
		{"bad layout", bad, nil, errs.Layout},
	}
	for _, tc := range tests {
		_, err := Sum(tc.t, tc.dims, false)
		expectErr(t, fmt.Sprintf("Sum(%s, dims=%v)", tc.name, tc.dims), err, tc.kind, "sum")
		_, err = Mean(tc.t, tc.dims, true)
		expectErr(t, fmt.Sprintf("Mean(%s, dims=%v)", tc.name, tc.dims), err, tc.kind, "mean")
	}
	// A negative size hidden behind a zero size passes validLayout.
	neg := &Tensor{storage: WrapStorage(nil), shape: []int{0, -2}, strides: []int{1, 1}}
	_, err := Sum(neg, []int{0}, false)
	expectErr(t, "Sum(shape [0 -2])", err, errs.Layout, "sum")
}

// ---- Max / Argmax / MaxAll ----

func TestMaxArgmaxLayouts(t *testing.T) {
	shapes := [][]int{{5}, {2, 3}, {4, 10}, {2, 3, 4}, {3, 1, 2}}
	for _, shape := range shapes {
		data := seq(prod(shape))
		for name, x := range layouts(t, data, shape...) {
			vals := logical(t, x)
			for dim := -len(shape); dim < len(shape); dim++ {
				d := dim
				if d < 0 {
					d += len(shape)
				}
				mask := make([]bool, len(shape))
				mask[d] = true
				// Reference: first index of the maximum.
				ks := outShape(shape, mask, true)
				wantV := make([]float64, prod(ks))
				wantI := make([]float64, prod(ks))
				seen := make([]bool, prod(ks))
				for i, v := range vals {
					idx := unravel(i, shape)
					j := idx[d]
					idx[d] = 0
					p := 0
					for k, xk := range idx {
						p = p*ks[k] + xk
					}
					if !seen[p] || v > wantV[p] {
						wantV[p], wantI[p], seen[p] = v, float64(j), true
					}
				}
				for _, keep := range []bool{false, true} {
					what := fmt.Sprintf("Max(%s %v, dim=%d, keep=%v)", name, shape, dim, keep)
					v, i, err := Max(x, dim, keep)
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					expectTensor(t, what+" values", v, outShape(shape, mask, keep), wantV, 0)
					expectTensor(t, what+" indices", i, outShape(shape, mask, keep), wantI, 0)
					a, err := Argmax(x, dim, keep)
					if err != nil {
						t.Fatalf("Arg%s: %v", what, err)
					}
					expectTensor(t, "Arg"+what, a, outShape(shape, mask, keep), wantI, 0)
				}
			}
			m, err := MaxAll(x)
			if err != nil {
				t.Fatal(err)
			}
			want := math.Inf(-1)
			for _, v := range vals {
				want = math.Max(want, v)
			}
			expectTensor(t, fmt.Sprintf("MaxAll(%s %v)", name, shape), m, []int{}, []float64{want}, 0)
		}
	}
}

func TestMaxTiesNaNExpanded(t *testing.T) {
	nan := float32(math.NaN())
	x := mustT(t, []float32{3, 1, 3, 2, 2, 2, 1, nan, 5, -1, -1, -2}, 4, 3)
	v, i, err := Max(x, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	n := math.NaN()
	expectTensor(t, "Max(ties/NaN, dim=1) values", v, []int{4}, []float64{3, 2, n, -1}, 0)
	expectTensor(t, "Max(ties/NaN, dim=1) indices", i, []int{4}, []float64{0, 0, 1, 0}, 0)
	a, err := Argmax(x, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Argmax(ties/NaN, dim=0, keep)", a, []int{1, 3}, []float64{0, 2, 2}, 0)
	m, err := MaxAll(x)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "MaxAll(with NaN)", m, []int{}, []float64{n}, 0)

	col := mustT(t, []float32{1, 7, 7}, 3, 1)
	e, _ := col.Expand(3, 4)
	v, i, err = Max(e, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Max(expanded, dim=0) values", v, []int{4}, []float64{7, 7, 7, 7}, 0)
	expectTensor(t, "Max(expanded, dim=0) indices", i, []int{4}, []float64{1, 1, 1, 1}, 0)
	i, err = Argmax(e, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Argmax(expanded, dim=1)", i, []int{3}, []float64{0, 0, 0}, 0)
}

func TestMaxZeroDAndEmpty(t *testing.T) {
	s := Scalar(-4)
	for _, keep := range []bool{false, true} {
		v, i, err := Max(s, -1, keep)
		if err != nil {
			t.Fatal(err)
		}
		expectTensor(t, "Max(scalar) values", v, []int{}, []float64{-4}, 0)
		expectTensor(t, "Max(scalar) indices", i, []int{}, []float64{0}, 0)
	}
	m, err := MaxAll(s)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "MaxAll(scalar)", m, []int{}, []float64{-4}, 0)
	e, _ := Zeros(0, 3)
	v, i, err := Max(e, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Max(zeros[0 3], dim=1) values", v, []int{0}, []float64{}, 0)
	expectTensor(t, "Max(zeros[0 3], dim=1) indices", i, []int{0}, []float64{}, 0)
}

func TestMaxErrors(t *testing.T) {
	x := mustT(t, seq(6), 2, 3)
	e, _ := Zeros(0, 3)
	_, _, err := Max(nil, 0, false)
	expectErr(t, "Max(nil)", err, errs.Argument, "max")
	_, _, err = Max(x, 2, false)
	expectErr(t, "Max(dim=2)", err, errs.Argument, "max")
	_, _, err = Max(Scalar(1), 1, false)
	expectErr(t, "Max(scalar, dim=1)", err, errs.Argument, "max")
	_, _, err = Max(e, 0, false)
	expectErr(t, "Max(zeros[0 3], dim=0)", err, errs.Shape, "max")
	_, err = Argmax(x, -3, false)
	expectErr(t, "Argmax(dim=-3)", err, errs.Argument, "argmax")
	_, err = Argmax(e, 0, true)
	expectErr(t, "Argmax(zeros[0 3], dim=0)", err, errs.Shape, "argmax")
	_, err = MaxAll(e)
	expectErr(t, "MaxAll(empty)", err, errs.Shape, "max")
	_, err = MaxAll(nil)
	expectErr(t, "MaxAll(nil)", err, errs.Argument, "max")
}

// ---- SumTo ----

func TestSumTo(t *testing.T) {
	tests := []struct {
		shape, to []int
	}{
		{[]int{2, 3}, []int{2, 3}},
		{[]int{2, 3}, []int{3}},
		{[]int{2, 3}, []int{1, 3}},
		{[]int{2, 3}, []int{2, 1}},
		{[]int{2, 3}, []int{1, 1}},
		{[]int{2, 3}, []int{1}},
		{[]int{2, 3}, []int{}},
		{[]int{2, 3, 4}, []int{3, 1}},
		{[]int{2, 3, 4}, []int{1, 3, 4}},
		{[]int{4, 10}, []int{10}},
	}
	for _, tc := range tests {
		data := seq(prod(tc.shape))
		for name, x := range layouts(t, data, tc.shape...) {
			vals := logical(t, x)
			// Reference: out[j] += x[i] where j aligns x's index to tc.to.
			want := make([]float64, prod(tc.to))
			off := len(tc.shape) - len(tc.to)
			for i, v := range vals {
				idx := unravel(i, tc.shape)
				p := 0
				for k, n := range tc.to {
					xk := idx[off+k]
					if n == 1 {
						xk = 0
					}
					p = p*n + xk
				}
				want[p] += v
			}
			got, err := SumTo(x, tc.to)
			if err != nil {
				t.Fatalf("SumTo(%s %v, %v): %v", name, tc.shape, tc.to, err)
			}
			expectTensor(t, fmt.Sprintf("SumTo(%s %v, %v)", name, tc.shape, tc.to), got, tc.to, want, 1e-6)
		}
	}
	// The result never aliases the input.
	x := mustT(t, []float32{1, 2}, 2)
	y, err := SumTo(x, []int{2})
	if err != nil {
		t.Fatal(err)
	}
	y.Data()[0] = 99
	if v, _ := x.At(0); v != 1 {
		t.Fatalf("SumTo(x, same shape) aliases x")
	}
	// Expanded input: the gradient of a broadcast.
	row := mustT(t, []float32{1, 2, 3}, 3)
	e, _ := row.Expand(5, 3)
	got, err := SumTo(e, []int{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "SumTo(expand([1 2 3] to [5 3]), [1 3])", got, []int{1, 3}, []float64{5, 10, 15}, 0)
}

func TestSumToErrors(t *testing.T) {
	x := mustT(t, seq(6), 2, 3)
	tests := []struct {
		name string
		t    *Tensor
		to   []int
		kind errs.Kind
	}{
		{"nil", nil, []int{3}, errs.Argument},
		{"mismatch", x, []int{2}, errs.Shape},
		{"mismatch 2", x, []int{3, 3}, errs.Shape},
		{"more dims", x, []int{1, 2, 3}, errs.Shape},
		{"negative", x, []int{-3}, errs.Argument},
	}
	for _, tc := range tests {
		_, err := SumTo(tc.t, tc.to)
		expectErr(t, fmt.Sprintf("SumTo(%s, %v)", tc.name, tc.to), err, tc.kind, "sum_to")
	}
}

func TestReduceLayoutStats(t *testing.T) {
	x := mustT(t, seq(6), 2, 3)
	sc := NewScope()
	sc.Adopt(x)
	s, err := Sum(x, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.LayoutStats()["sum"].Checks; got != 1 {
		t.Fatalf("sum checks = %d; want 1", got)
	}
	if s.Scope() != sc {
		t.Errorf("Sum's output left its input's scope")
	}
}

// ---- benchmarks ----

func BenchmarkSumLastDim(b *testing.B) {
	for _, sh := range [][2]int{{256, 10}, {64, 1000}} {
		x := mustT(b, seq(sh[0]*sh[1]), sh[0], sh[1])
		b.Run(fmt.Sprintf("%dx%d", sh[0], sh[1]), func(b *testing.B) {
			for b.Loop() {
				if _, err := Sum(x, []int{-1}, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSumDim0(b *testing.B) {
	for _, sh := range [][2]int{{256, 10}, {64, 1000}} {
		x := mustT(b, seq(sh[0]*sh[1]), sh[0], sh[1])
		b.Run(fmt.Sprintf("%dx%d", sh[0], sh[1]), func(b *testing.B) {
			for b.Loop() {
				if _, err := Sum(x, []int{0}, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
