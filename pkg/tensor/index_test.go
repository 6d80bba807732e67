package tensor

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

// flat returns the row-major position of idx in shape.
func flat(idx, shape []int) int {
	p := 0
	for d, x := range idx {
		p = p*shape[d] + x
	}
	return p
}

// ---- Concat / Stack ----

func TestConcatLayouts(t *testing.T) {
	tests := []struct {
		a, b []int
		dim  int
	}{
		{[]int{2, 3}, []int{4, 3}, 0},
		{[]int{2, 3}, []int{2, 5}, 1},
		{[]int{2, 3}, []int{2, 1}, -1},
		{[]int{2, 3, 4}, []int{2, 2, 4}, 1},
		{[]int{3}, []int{2}, 0},
	}
	for _, tc := range tests {
		da, db := seq(prod(tc.a)), seq(prod(tc.b))
		for i := range db {
			db[i] += 100
		}
		for na, a := range layouts(t, da, tc.a...) {
			for nb, b := range layouts(t, db, tc.b...) {
				d := tc.dim
				if d < 0 {
					d += len(tc.a)
				}
				shape := append([]int(nil), tc.a...)
				shape[d] += tc.b[d]
				va, vb := logical(t, a), logical(t, b)
				want := make([]float64, prod(shape))
				for i := range want {
					idx := unravel(i, shape)
					if idx[d] < tc.a[d] {
						want[i] = va[flat(idx, tc.a)]
					} else {
						idx[d] -= tc.a[d]
						want[i] = vb[flat(idx, tc.b)]
					}
				}
				what := fmt.Sprintf("Concat([%s %v, %s %v], dim=%d)", na, tc.a, nb, tc.b, tc.dim)
				got, err := Concat([]*Tensor{a, b}, tc.dim)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				expectTensor(t, what, got, shape, want, 0)
			}
		}
	}
}

func TestConcatByHand(t *testing.T) {
	a := mustT(t, []float32{1, 2}, 1, 2)
	b := mustT(t, []float32{3, 4, 5, 6}, 2, 2)
	got, err := Concat([]*Tensor{a, b, a}, 0)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Concat([a b a], dim=0)", got, []int{4, 2}, []float64{1, 2, 3, 4, 5, 6, 1, 2}, 0)
	// Legacy empty 1-D tensors are skipped; size-0 parts along dim are fine.
	empty, _ := Zeros(0)
	z, _ := Zeros(0, 2)
	got, err = Concat([]*Tensor{empty, a, z}, 0)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Concat([[0] a [0 2]], dim=0)", got, []int{1, 2}, []float64{1, 2}, 0)
	got, err = Concat([]*Tensor{empty, empty}, 0)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Concat([[0] [0]], dim=0)", got, []int{0}, []float64{}, 0)
	// Single element list copies.
	got, err = Concat([]*Tensor{a}, 1)
	if err != nil {
		t.Fatal(err)
	}
	got.Data()[0] = 9
	if v, _ := a.At(0, 0); v != 1 {
		t.Fatal("Concat([a]) aliases a")
	}
	// Expanded input.
	e, _ := a.Expand(3, 2)
	got, err = Concat([]*Tensor{e, b}, 0)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Concat([expanded a, b], dim=0)", got, []int{5, 2}, []float64{1, 2, 1, 2, 1, 2, 3, 4, 5, 6}, 0)
}

func TestConcatErrors(t *testing.T) {
	a := mustT(t, seq(6), 2, 3)
	b := mustT(t, seq(8), 2, 4)
	c := mustT(t, seq(6), 6)
	tests := []struct {
		name string
		ts   []*Tensor
		dim  int
		kind errs.Kind
	}{
		{"empty list", nil, 0, errs.Argument},
		{"nil entry", []*Tensor{a, nil}, 0, errs.Argument},
		{"mismatch", []*Tensor{a, b}, 0, errs.Shape},
		{"rank", []*Tensor{a, c}, 0, errs.Shape},
		{"dim", []*Tensor{a, a}, 2, errs.Argument},
		{"scalars", []*Tensor{Scalar(1), Scalar(2)}, 0, errs.Shape},
	}
	for _, tc := range tests {
		_, err := Concat(tc.ts, tc.dim)
		expectErr(t, fmt.Sprintf("Concat(%s, dim=%d)", tc.name, tc.dim), err, tc.kind, "concat")
	}
}

func TestStack(t *testing.T) {
	shape := []int{2, 3}
	da, db := seq(6), seq(6)
	for i := range db {
		db[i] = -db[i] * 3
	}
	for na, a := range layouts(t, da, shape...) {
		for nb, b := range layouts(t, db, shape...) {
			va, vb := logical(t, a), logical(t, b)
			for dim := -3; dim <= 2; dim++ {
				d := dim
				if d < 0 {
					d += 3
				}
				out := append(append(append([]int(nil), shape[:d]...), 2), shape[d:]...)
				want := make([]float64, prod(out))
				for i := range want {
					idx := unravel(i, out)
					k := idx[d]
					src := append(append([]int(nil), idx[:d]...), idx[d+1:]...)
					if k == 0 {
						want[i] = va[flat(src, shape)]
					} else {
						want[i] = vb[flat(src, shape)]
					}
				}
				what := fmt.Sprintf("Stack([%s, %s], dim=%d)", na, nb, dim)
				got, err := Stack([]*Tensor{a, b}, dim)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				expectTensor(t, what, got, out, want, 0)
			}
		}
	}
	got, err := Stack([]*Tensor{Scalar(1), Scalar(2), Scalar(3)}, -1)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Stack(3 scalars, dim=-1)", got, []int{3}, []float64{1, 2, 3}, 0)

	a := mustT(t, seq(6), 2, 3)
	b := mustT(t, seq(6), 3, 2)
	big := mustT(t, []float32{1}, 1, 1, 1, 1, 1, 1, 1, 1)
	for _, tc := range []struct {
		name string
		ts   []*Tensor
		dim  int
		kind errs.Kind
	}{
		{"empty list", []*Tensor{}, 0, errs.Argument},
		{"nil", []*Tensor{nil}, 0, errs.Argument},
		{"shapes", []*Tensor{a, b}, 0, errs.Shape},
		{"dim 3", []*Tensor{a, a}, 3, errs.Argument},
		{"dim -4", []*Tensor{a, a}, -4, errs.Argument},
		{"rank", []*Tensor{big, big}, 0, errs.Argument},
	} {
		_, err := Stack(tc.ts, tc.dim)
		expectErr(t, fmt.Sprintf("Stack(%s, dim=%d)", tc.name, tc.dim), err, tc.kind, "stack")
	}
}

// ---- Where ----

func TestWhere(t *testing.T) {
	nan := float32(math.NaN())
	cond := mustT(t, []float32{1, 0, nan, 0, -2, 0}, 2, 3)
	a := mustT(t, []float32{10, 20, 30}, 3)
	b := mustT(t, []float32{-1, -2}, 2, 1)
	got, err := Where(cond, a, b)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Where(cond [2 3], a [3], b [2 1])", got, []int{2, 3}, []float64{10, -1, 30, -2, 20, -2}, 0)

	// Non-contiguous and scalar operands, against a reference.
	cd := []float32{0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0}
	for nc, c := range layouts(t, cd, 3, 4) {
		for na, x := range layouts(t, seq(12), 3, 4) {
			vc, vx := logical(t, c), logical(t, x)
			want := make([]float64, 12)
			for i := range want {
				want[i] = -7
				if vc[i] != 0 {
					want[i] = vx[i]
				}
			}
			got, err := Where(c, x, Scalar(-7))
			if err != nil {
				t.Fatal(err)
			}
			expectTensor(t, fmt.Sprintf("Where(%s cond, %s a, -7)", nc, na), got, []int{3, 4}, want, 0)
		}
	}
	got, err = Where(Scalar(0), Scalar(1), Scalar(2))
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Where(0, 1, 2)", got, []int{}, []float64{2}, 0)

	_, err = Where(cond, mustT(t, seq(2), 2), a)
	expectErr(t, "Where(broadcast mismatch)", err, errs.Shape, "where")
	_, err = Where(cond, nil, a)
	expectErr(t, "Where(nil)", err, errs.Argument, "where")
}

// ---- IndexSelect / IndexAdd ----

func TestIndexSelect(t *testing.T) {
	shape := []int{3, 4}
	for name, x := range layouts(t, seq(12), shape...) {
		vx := logical(t, x)
		for _, tc := range []struct {
			dim int
			idx []float32
		}{
			{0, []float32{2, 0, 2}},
			{1, []float32{3, 1}},
			{-1, []float32{0}},
			{-2, []float32{}},
		} {
			d := tc.dim
			if d < 0 {
				d += 2
			}
			out := append([]int(nil), shape...)
			out[d] = len(tc.idx)
			want := make([]float64, prod(out))
			for i := range want {
				idx := unravel(i, out)
				idx[d] = int(tc.idx[idx[d]])
				want[i] = vx[flat(idx, shape)]
			}
			what := fmt.Sprintf("IndexSelect(%s %v, dim=%d, %v)", name, shape, tc.dim, tc.idx)
			got, err := IndexSelect(x, tc.dim, mustT(t, tc.idx, len(tc.idx)))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			expectTensor(t, what, got, out, want, 0)
		}
	}
	// A strided index tensor.
	x := mustT(t, []float32{10, 11, 12, 13}, 4)
	ix := mustT(t, []float32{3, 9, 0, 9, 1}, 5)
	six, _ := ix.Slice(0, 0, 5, 2)
	got, err := IndexSelect(x, 0, six)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "IndexSelect([10 11 12 13], 0, [3 0 1])", got, []int{3}, []float64{13, 10, 11}, 0)
}

func TestIndexErrors(t *testing.T) {
	x := mustT(t, seq(6), 2, 3)
	src2 := mustT(t, seq(4), 2, 2)
	tests := []struct {
		name  string
		dim   int
		index *Tensor
		kind  errs.Kind
	}{
		{"nil index", 1, nil, errs.Argument},
		{"2-D index", 1, mustT(t, []float32{0, 1}, 1, 2), errs.Shape},
		{"0-d index", 1, Scalar(0), errs.Shape},
		{"fractional", 1, mustT(t, []float32{0, 1.5}), errs.Argument},
		{"negative", 1, mustT(t, []float32{-1, 0}), errs.Argument},
		{"too large", 1, mustT(t, []float32{0, 3}), errs.Argument},
		{"NaN", 1, mustT(t, []float32{float32(math.NaN()), 0}), errs.Argument},
		{"Inf", 1, mustT(t, []float32{float32(math.Inf(1)), 0}), errs.Argument},
		{"dim", 2, mustT(t, []float32{0, 0}), errs.Argument},
	}
	for _, tc := range tests {
		_, err := IndexSelect(x, tc.dim, tc.index)
		expectErr(t, "IndexSelect("+tc.name+")", err, tc.kind, "index_select")
		_, err = IndexAdd(x, tc.dim, tc.index, src2)
		expectErr(t, "IndexAdd("+tc.name+")", err, tc.kind, "index_add")
	}
	_, err := IndexSelect(nil, 0, mustT(t, []float32{0}))
	expectErr(t, "IndexSelect(nil tensor)", err, errs.Argument, "index_select")
	_, err = IndexSelect(Scalar(1), 0, mustT(t, []float32{0}))
	expectErr(t, "IndexSelect(scalar)", err, errs.Argument, "index_select")
	_, err = IndexAdd(x, 1, mustT(t, []float32{0, 1}), mustT(t, seq(6), 2, 3))
	expectErr(t, "IndexAdd(src shape)", err, errs.Shape, "index_add")
	_, err = IndexAdd(x, 1, mustT(t, []float32{0, 1}), nil)
	expectErr(t, "IndexAdd(nil src)", err, errs.Argument, "index_add")
}

func TestIndexAdd(t *testing.T) {
	shape := []int{3, 4}
	for name, x := range layouts(t, seq(12), shape...) {
		vx := logical(t, x)
		for _, tc := range []struct {
			dim int
			idx []float32
		}{
			{0, []float32{2, 0, 2}},
			{1, []float32{3, 1, 3, 3}},
			{-1, []float32{}},
		} {
			d := tc.dim
			if d < 0 {
				d += 2
			}
			sshape := append([]int(nil), shape...)
			sshape[d] = len(tc.idx)
			sd := seq(prod(sshape))
			for i := range sd {
				sd[i] = sd[i]*2 + 1
			}
			for ns, src := range layouts(t, sd, sshape...) {
				vs := logical(t, src)
				want := append([]float64(nil), vx...)
				for i, v := range vs {
					idx := unravel(i, sshape)
					idx[d] = int(tc.idx[idx[d]])
					want[flat(idx, shape)] += v
				}
				what := fmt.Sprintf("IndexAdd(%s %v, dim=%d, %v, %s src)", name, shape, tc.dim, tc.idx, ns)
				got, err := IndexAdd(x, tc.dim, mustT(t, tc.idx, len(tc.idx)), src)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				expectTensor(t, what, got, shape, want, 1e-6)
			}
		}
	}
	// The result is fresh; t is untouched.
	x := mustT(t, []float32{1, 2}, 2)
	got, err := IndexAdd(x, 0, mustT(t, []float32{1, 1}), mustT(t, []float32{5, 6}))
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "IndexAdd([1 2], 0, [1 1], [5 6])", got, []int{2}, []float64{1, 13}, 0)
	expectTensor(t, "x after IndexAdd", x, []int{2}, []float64{1, 2}, 0)
}

// ---- Gather / ScatterAdd ----

func TestGatherByHand(t *testing.T) {
	x := mustT(t, []float32{1, 2, 3, 4, 5, 6}, 2, 3)
	// Cross-entropy style pick: one target per row.
	got, err := Gather(x, 1, mustT(t, []float32{2, 0}, 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Gather([[1 2 3] [4 5 6]], 1, [[2] [0]])", got, []int{2, 1}, []float64{3, 4}, 0)
	got, err = Gather(x, 0, mustT(t, []float32{1, 0, 1, 0}, 2, 2))
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "Gather(x, 0, [[1 0] [1 0]])", got, []int{2, 2}, []float64{4, 2, 4, 2}, 0)
}

func TestGatherScatterAddLayouts(t *testing.T) {
	shape := []int{3, 4}
	for name, x := range layouts(t, seq(12), shape...) {
		vx := logical(t, x)
		for _, tc := range []struct {
			dim    int
			ishape []int
			idx    []float32
		}{
			{0, []int{2, 4}, []float32{2, 0, 1, 1, 0, 0, 2, 2}},
			{1, []int{3, 2}, []float32{3, 3, 0, 1, 2, 0}},
			{-1, []int{2, 5}, []float32{0, 1, 2, 3, 3, 3, 2, 1, 0, 0}},
			{0, []int{0, 4}, []float32{}},
		} {
			d := tc.dim
			if d < 0 {
				d += 2
			}
			for ni, index := range layouts(t, tc.idx, tc.ishape...) {
				want := make([]float64, len(tc.idx))
				for i := range want {
					idx := unravel(i, tc.ishape)
					idx[d] = int(tc.idx[i])
					want[i] = vx[flat(idx, shape)]
				}
				what := fmt.Sprintf("Gather(%s %v, dim=%d, %s %v)", name, shape, tc.dim, ni, tc.idx)
				got, err := Gather(x, tc.dim, index)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				expectTensor(t, what, got, tc.ishape, want, 0)

				// ScatterAdd with a src larger than index.
				sshape := []int{tc.ishape[0] + 1, tc.ishape[1] + 1}
				sd := seq(prod(sshape))
				for ns, src := range layouts(t, sd, sshape...) {
					vs := logical(t, src)
					wantS := append([]float64(nil), vx...)
					for i := range tc.idx {
						idx := unravel(i, tc.ishape)
						v := vs[flat(idx, sshape)]
						idx[d] = int(tc.idx[i])
						wantS[flat(idx, shape)] += v
					}
					what := fmt.Sprintf("ScatterAdd(%s %v, dim=%d, %s %v, %s src)", name, shape, tc.dim, ni, tc.idx, ns)
					got, err := ScatterAdd(x, tc.dim, index, src)
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					expectTensor(t, what, got, shape, wantS, 1e-6)
				}
			}
		}
	}
	// Expanded index and source.
	x := mustT(t, make([]float32, 3), 3)
	i1 := mustT(t, []float32{1}, 1)
	ie, _ := i1.Expand(4)
	s1 := mustT(t, []float32{2.5}, 1)
	se, _ := s1.Expand(4)
	got, err := ScatterAdd(x, 0, ie, se)
	if err != nil {
		t.Fatal(err)
	}
	expectTensor(t, "ScatterAdd(zeros[3], 0, expand([1]), expand([2.5]))", got, []int{3}, []float64{0, 10, 0}, 0)
}

func TestGatherScatterErrors(t *testing.T) {
	x := mustT(t, seq(6), 2, 3)
	src := mustT(t, seq(6), 2, 3)
	tests := []struct {
		name  string
		t     *Tensor
		dim   int
		index *Tensor
		src   *Tensor
		kind  errs.Kind
	}{
		{"nil t", nil, 0, mustT(t, []float32{0}, 1, 1), src, errs.Argument},
		{"nil index", x, 0, nil, src, errs.Argument},
		{"scalar t", Scalar(1), 0, Scalar(0), src, errs.Shape},
		{"rank", x, 0, mustT(t, []float32{0, 1}, 2), src, errs.Shape},
		{"too big outside dim", x, 0, mustT(t, make([]float32, 4), 1, 4), src, errs.Shape},
		{"dim", x, 2, mustT(t, []float32{0}, 1, 1), src, errs.Argument},
		{"out of range", x, 1, mustT(t, []float32{0, 3}, 2, 1), src, errs.Argument},
		{"negative", x, 0, mustT(t, []float32{-1}, 1, 1), src, errs.Argument},
		{"fractional", x, 0, mustT(t, []float32{0.5}, 1, 1), src, errs.Argument},
	}
	for _, tc := range tests {
		_, err := Gather(tc.t, tc.dim, tc.index)
		expectErr(t, "Gather("+tc.name+")", err, tc.kind, "gather")
		_, err = ScatterAdd(tc.t, tc.dim, tc.index, tc.src)
		expectErr(t, "ScatterAdd("+tc.name+")", err, tc.kind, "scatter_add")
	}
	// ScatterAdd-only checks on src.
	_, err := ScatterAdd(x, 0, mustT(t, []float32{0, 0, 0}, 1, 3), mustT(t, []float32{1, 2}, 1, 2))
	expectErr(t, "ScatterAdd(src smaller than index)", err, errs.Shape, "scatter_add")
	_, err = ScatterAdd(x, 0, mustT(t, []float32{0}, 1, 1), mustT(t, []float32{1}, 1))
	expectErr(t, "ScatterAdd(src rank)", err, errs.Shape, "scatter_add")
	_, err = ScatterAdd(x, 0, mustT(t, []float32{0}, 1, 1), nil)
	expectErr(t, "ScatterAdd(nil src)", err, errs.Argument, "scatter_add")
}

// An empty tensor whose offset lies past its storage is rejected by the
// layout check, so no op can be handed one.
func TestEmptyWithFarOffset(t *testing.T) {
	st := WrapStorage(make([]float32, 2))
	if _, err := FromStorage(st, []int{0, 3}, []int{3, 1}, 50); !errors.Is(err, errs.Layout) {
		t.Fatalf("FromStorage(empty, offset 50 of 2) err = %v, want layout error", err)
	}
	e := &Tensor{storage: st, shape: []int{0, 3}, strides: []int{3, 1}, offset: 50}
	if _, err := Sum(e, nil, false); !errors.Is(err, errs.Layout) {
		t.Fatalf("Sum(empty far offset) err = %v, want layout error", err)
	}
	ok, err := FromStorage(st, []int{0, 3}, []int{3, 1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Sum(ok, []int{0}, false); err != nil || !EqualShape(s.Shape(), []int{3}) {
		t.Fatalf("Sum(empty at end) = %v, %v", s, err)
	}
}
