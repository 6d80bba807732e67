package tensor

import (
	"fmt"
	"math"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

// refSoftmax computes (log-)softmax of vals (row-major, shape) along d in float64.
func refSoftmax(vals []float64, shape []int, d int, logOut bool) []float64 {
	out := make([]float64, len(vals))
	n := shape[d]
	stride := prod(shape[d+1:])
	for i := range vals {
		idx := unravel(i, shape)
		if idx[d] != 0 {
			continue
		}
		m := math.Inf(-1)
		for j := 0; j < n; j++ {
			m = math.Max(m, vals[i+j*stride])
		}
		var s float64
		for j := 0; j < n; j++ {
			s += math.Exp(vals[i+j*stride] - m)
		}
		for j := 0; j < n; j++ {
			p := i + j*stride
			if logOut {
				out[p] = vals[p] - m - math.Log(s)
			} else {
				out[p] = math.Exp(vals[p]-m) / s
			}
		}
	}
	return out
}

func TestSoftmaxLayouts(t *testing.T) {
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
				got, err := Softmax(x, dim)
				if err != nil {
					t.Fatalf("Softmax(%s %v, dim=%d): %v", name, shape, dim, err)
				}
				expectTensor(t, fmt.Sprintf("Softmax(%s %v, dim=%d)", name, shape, dim), got, shape, refSoftmax(vals, shape, d, false), 1e-6)
				got, err = LogSoftmax(x, dim)
				if err != nil {
					t.Fatalf("LogSoftmax(%s %v, dim=%d): %v", name, shape, dim, err)
				}
				expectTensor(t, fmt.Sprintf("LogSoftmax(%s %v, dim=%d)", name, shape, dim), got, shape, refSoftmax(vals, shape, d, true), 1e-6)
			}
		}
	}
}

func TestSoftmaxByHand(t *testing.T) {
	l2 := math.Log(2)
	tests := []struct {
		name   string
		data   []float32
		shape  []int
		dim    int
		soft   []float64
		logsmx []float64
	}{
		{"equal", []float32{0, 0}, []int{2}, 0, []float64{0.5, 0.5}, []float64{-l2, -l2}},
		{"large stable", []float32{1000, 1000, 1e4, 1e4}, []int{2, 2}, 1, []float64{0.5, 0.5, 0.5, 0.5}, []float64{-l2, -l2, -l2, -l2}},
		{"very negative", []float32{-1e4, -1e4 + 1}, []int{2}, -1, []float64{1 / (1 + math.E), math.E / (1 + math.E)}, []float64{-math.Log(1 + math.E), 1 - math.Log(1+math.E)}},
		{"with -inf", []float32{float32(math.Inf(-1)), 0}, []int{2}, 0, []float64{0, 1}, []float64{math.Inf(-1), 0}},
		{"nan row", []float32{1, float32(math.NaN()), 0, 0}, []int{2, 2}, 1, []float64{math.NaN(), math.NaN(), 0.5, 0.5}, []float64{math.NaN(), math.NaN(), -l2, -l2}},
		{"scalar", []float32{7}, []int{}, 0, []float64{1}, []float64{0}},
		{"scalar dim -1", []float32{7}, []int{}, -1, []float64{1}, []float64{0}},
	}
	for _, tc := range tests {
		x := mustT(t, tc.data, tc.shape...)
		sh := x.Shape()
		got, err := Softmax(x, tc.dim)
		if err != nil {
			t.Fatalf("Softmax(%s): %v", tc.name, err)
		}
		expectTensor(t, fmt.Sprintf("Softmax(%s %v, dim=%d)", tc.name, tc.data, tc.dim), got, sh, tc.soft, 1e-6)
		got, err = LogSoftmax(x, tc.dim)
		if err != nil {
			t.Fatalf("LogSoftmax(%s): %v", tc.name, err)
		}
		expectTensor(t, fmt.Sprintf("LogSoftmax(%s %v, dim=%d)", tc.name, tc.data, tc.dim), got, sh, tc.logsmx, 1e-6)
	}
}

func TestSoftmaxExpandedEmpty(t *testing.T) {
	row := mustT(t, []float32{0, float32(math.Log(3))}, 1, 2)
	e, _ := row.Expand(3, 2)
	got, err := Softmax(e, 1)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Softmax(expanded [3 2], dim=1)", got, []int{3, 2}, []float64{0.25, 0.75, 0.25, 0.75, 0.25, 0.75}, 1e-6)
	got, err = LogSoftmax(e, 0)
	if err != nil {
		t.Fatal(err)
	}
	l3 := -math.Log(3)
	expectTensor(t, "LogSoftmax(expanded [3 2], dim=0)", got, []int{3, 2}, []float64{l3, l3, l3, l3, l3, l3}, 1e-6)
	z, _ := Zeros(0, 4)
	got, err = Softmax(z, 1)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Softmax(zeros[0 4], dim=1)", got, []int{0, 4}, []float64{}, 0)
}

func TestSoftmaxErrors(t *testing.T) {
	x := mustT(t, seq(6), 2, 3)
	for _, tc := range []struct {
		name string
		t    *Tensor
		dim  int
		kind errs.Kind
	}{
		{"nil", nil, 0, errs.Argument},
		{"dim 2", x, 2, errs.Argument},
		{"dim -3", x, -3, errs.Argument},
		{"scalar dim 1", Scalar(1), 1, errs.Argument},
	} {
		_, err := Softmax(tc.t, tc.dim)
		expectErr(t, fmt.Sprintf("Softmax(%s, dim=%d)", tc.name, tc.dim), err, tc.kind, "softmax")
		_, err = LogSoftmax(tc.t, tc.dim)
		expectErr(t, fmt.Sprintf("LogSoftmax(%s, dim=%d)", tc.name, tc.dim), err, tc.kind, "log_softmax")
	}
}

func BenchmarkLogSoftmax(b *testing.B) {
	for _, sh := range [][2]int{{256, 10}, {64, 1000}} {
		x := mustT(b, seq(sh[0]*sh[1]), sh[0], sh[1])
		b.Run(fmt.Sprintf("%dx%d", sh[0], sh[1]), func(b *testing.B) {
			for b.Loop() {
				if _, err := LogSoftmax(x, -1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSoftmax(b *testing.B) {
	for _, sh := range [][2]int{{256, 10}, {64, 1000}} {
		x := mustT(b, seq(sh[0]*sh[1]), sh[0], sh[1])
		b.Run(fmt.Sprintf("%dx%d", sh[0], sh[1]), func(b *testing.B) {
			for b.Loop() {
				if _, err := Softmax(x, -1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
