package tensor

import (
	"math"
	"testing"
)

// TestAddmmEdges covers what the PyTorch fixture does not: beta 0 ignores
// a NaN input, an empty inner dimension leaves beta·input, and a full
// [n, m] input with transposed operands.
func TestAddmmEdges(t *testing.T) {
	r := NewRNG(2)
	nan := mustT(t, []float32{float32(math.NaN())}, 1)
	m1, m2 := randn(t, r, 2, 3), randn(t, r, 3, 4)
	prod := must(t)(Matmul(m1, m2))
	got := must(t)(Addmm(nan, m1, m2, 0, 1))
	expectTensor(t, "Addmm(NaN, beta 0)", got, []int{2, 4}, ref64(prod), 0)

	in := randn(t, r, 2, 4)
	empty := must(t)(Addmm(in, must(t)(Zeros(2, 0)), must(t)(Zeros(0, 4)), 2, 1))
	want := ref64(in)
	for i := range want {
		want[i] *= 2
	}
	expectTensor(t, "Addmm(k = 0)", empty, []int{2, 4}, want, 0)

	m2t := must(t)(randn(t, r, 4, 3).T())
	full := must(t)(Addmm(in, m1, m2t, 1, 1))
	sum := must(t)(Add(must(t)(Matmul(m1, m2t)), in))
	expectTensor(t, "Addmm(full input, transposed m2)", full, []int{2, 4}, ref64(sum), 1e-6)
}

// TestGeluBackwardPaths checks that the contiguous fast path of
// GeluBackward (chunked over cores, large enough to split) gives the same
// bits as the general strided path.
func TestGeluBackwardPaths(t *testing.T) {
	r := NewRNG(3)
	x, g := randn(t, r, 300, 200), randn(t, r, 300, 200)
	xt := must(t)(must(t)(must(t)(x.T()).Contiguous()).T()) // same values, strided
	for _, tanh := range []bool{false, true} {
		fast := must(t)(GeluBackward(g, x, tanh)).Data()
		slow := must(t)(GeluBackward(g, xt, tanh)).Data()
		for i := range fast {
			if math.Float32bits(fast[i]) != math.Float32bits(slow[i]) {
				t.Fatalf("GeluBackward(tanh=%v)[%d]: fast path %v, strided path %v", tanh, i, fast[i], slow[i])
			}
		}
	}
}
