package tensor

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
)

func randn(t testing.TB, r *RNG, shape ...int) *Tensor {
	t.Helper()
	x, err := Randn(r, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// must returns a function that unwraps (tensor, error), failing t on error.
func must(t testing.TB) func(*Tensor, error) *Tensor {
	return func(v *Tensor, err error) *Tensor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// ref64 is a float64 row-major copy of a tensor.
func ref64(t *Tensor) []float64 {
	d := t.ToSlice()
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v)
	}
	return out
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// unravel (in reduce_test.go) and ravelBroadcast serve the reference implementations.
func ravelBroadcast(idx, shape []int) int {
	// idx aligned to the right of shape; broadcast dims read index 0.
	off := len(idx) - len(shape)
	p := 0
	for d := range shape {
		x := idx[off+d]
		if shape[d] == 1 {
			x = 0
		}
		p = p*shape[d] + x
	}
	return p
}

// refMatmul implements torch.matmul in float64, independently of Matmul.
func refMatmul(a, b *Tensor) ([]float64, []int) {
	as, bs := a.Shape(), b.Shape()
	ad, bd := ref64(a), ref64(b)
	ra, rb := len(as), len(bs)
	if ra == 1 {
		as = []int{1, as[0]}
	}
	if rb == 1 {
		bs = []int{bs[0], 1}
	}
	m, k, n := as[len(as)-2], as[len(as)-1], bs[len(bs)-1]
	ab, bb := as[:len(as)-2], bs[:len(bs)-2]
	nbd := max(len(ab), len(bb))
	batch := make([]int, nbd)
	for i := range batch {
		da, db := 1, 1
		if j := len(ab) - nbd + i; j >= 0 {
			da = ab[j]
		}
		if j := len(bb) - nbd + i; j >= 0 {
			db = bb[j]
		}
		batch[i] = da
		if da == 1 {
			batch[i] = db
		}
	}
	nb := numel(batch)
	out := make([]float64, nb*m*n)
	for bi := 0; bi < nb; bi++ {
		idx := unravel(bi, batch)
		pa := ravelBroadcast(idx, ab) * m * k
		pb := ravelBroadcast(idx, bb) * k * n
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				var s float64
				for p := 0; p < k; p++ {
					s += ad[pa+i*k+p] * bd[pb+p*n+j]
				}
				out[bi*m*n+i*n+j] = s
			}
		}
	}
	shape := append([]int(nil), batch...)
	if ra > 1 {
		shape = append(shape, m)
	}
	if rb > 1 {
		shape = append(shape, n)
	}
	return out, shape
}

func assertClose(t *testing.T, what string, got *Tensor, want []float64, wantShape []int, tol float64) {
	t.Helper()
	if !EqualShape(got.Shape(), wantShape) {
		t.Fatalf("%s: shape %v, want %v", what, got.Shape(), wantShape)
	}
	g := got.ToSlice()
	if len(g) != len(want) {
		t.Fatalf("%s: %d elements, want %d", what, len(g), len(want))
	}
	for i := range g {
		if d := math.Abs(float64(g[i]) - want[i]); d > tol*(1+math.Abs(want[i])) || math.IsNaN(float64(g[i])) {
			t.Fatalf("%s: element %d = %v, want %v", what, i, g[i], want[i])
		}
	}
}

func TestMatmulShapes(t *testing.T) {
	r := NewRNG(1)
	cases := []struct{ a, b []int }{
		{[]int{5}, []int{5}},
		{[]int{1}, []int{1}},
		{[]int{3, 4}, []int{4}},
		{[]int{4}, []int{4, 3}},
		{[]int{3, 4}, []int{4, 5}},
		{[]int{17, 65}, []int{65, 3}},
		{[]int{130, 17}, []int{17, 65}},
		{[]int{2, 3, 4}, []int{4, 5}},
		{[]int{2, 3, 4}, []int{4}},
		{[]int{4}, []int{2, 4, 5}},
		{[]int{2, 1, 3, 4}, []int{5, 4, 6}},
		{[]int{1, 3, 4}, []int{7, 4, 2}},
		{[]int{7, 3, 4}, []int{4, 2}},
		{[]int{0, 3, 4}, []int{4, 2}},
		{[]int{3, 0}, []int{0, 2}},
		{[]int{64, 8, 8}, []int{64, 8, 8}}, // many small products in parallel
	}
	for _, c := range cases {
		a, b := randn(t, r, c.a...), randn(t, r, c.b...)
		got, err := Matmul(a, b)
		if err != nil {
			t.Fatalf("%v x %v: %v", c.a, c.b, err)
		}
		want, ws := refMatmul(a, b)
		assertClose(t, fmt.Sprintf("%v x %v", c.a, c.b), got, want, ws, 1e-4)
	}
}

func TestMatmulStrided(t *testing.T) {
	r := NewRNG(2)
	// Transposed operands (passed as trans flags), slices, expanded batch.
	a := randn(t, r, 6, 9)
	b := randn(t, r, 5, 6)
	at := must(t)(a.T()) // [9, 6] column-major
	bt := must(t)(b.T()) // [6, 5]
	check := func(name string, x, y *Tensor) {
		t.Helper()
		got, err := Matmul(x, y)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, ws := refMatmul(x, y)
		assertClose(t, name, got, want, ws, 1e-4)
	}
	check("aT·bT", at, bt)
	check("transposed lhs", must(t)(randn(t, r, 9, 5).T()), randn(t, r, 9, 4))
	sl := must(t)(a.Slice(1, 1, 9, 2)) // [6, 4] with column stride 2: copied
	check("slice", sl, randn(t, r, 4, 3))
	nr := must(t)(a.Narrow(1, 2, 5)) // [6, 5] rows stride 9 (lda > cols)
	check("narrow", nr, randn(t, r, 5, 7))
	v := randn(t, r, 6)
	vs := must(t)(randn(t, r, 12).Slice(0, 0, 12, 2)) // 1-D stride 2
	check("strided vec", vs, v)
	check("mat·strided vec", at, vs)
	check("strided vec·mat", vs, a)
	e := must(t)(randn(t, r, 1, 4, 3).Expand(5, 4, 3)) // stride-0 batch
	check("expanded batch", e, randn(t, r, 5, 3, 2))
	check("expanded batch, 2-D rhs", e, randn(t, r, 3, 2))
	bb := must(t)(randn(t, r, 3, 2, 4).Transpose(1, 2)) // [3, 4, 2] batch of transposes
	check("batched transpose", randn(t, r, 3, 5, 4), bb)
	p := must(t)(randn(t, r, 4, 2, 3).Permute(1, 0, 2)) // [2, 4, 3] non-foldable batch
	check("permuted batch, 2-D rhs", p, randn(t, r, 3, 6))
	rowExp := must(t)(randn(t, r, 1, 3).Expand(4, 3)) // row stride 0
	check("expanded rows", rowExp, randn(t, r, 3, 2))
}

func TestMatmulDeterministic(t *testing.T) {
	r := NewRNG(3)
	a, b := randn(t, r, 3, 129, 200), randn(t, r, 200, 131)
	prev := runtime.GOMAXPROCS(1)
	x := must(t)(Matmul(a, b)).ToSlice()
	runtime.GOMAXPROCS(3)
	y := must(t)(Matmul(a, b)).ToSlice()
	runtime.GOMAXPROCS(prev)
	for i := range x {
		if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
			t.Fatalf("element %d differs across GOMAXPROCS: %v vs %v", i, x[i], y[i])
		}
	}
}

func TestLinear(t *testing.T) {
	r := NewRNG(4)
	for _, xs := range [][]int{{7}, {5, 7}, {2, 3, 7}, {0, 7}, {65, 7}} {
		x, w, b := randn(t, r, xs...), randn(t, r, 3, 7), randn(t, r, 3)
		for _, bias := range []*Tensor{nil, b} {
			got, err := Linear(x, w, bias)
			if err != nil {
				t.Fatal(err)
			}
			want, ws := refMatmul(x, must(t)(w.T()))
			if bias != nil {
				bd := ref64(bias)
				for i := range want {
					want[i] += bd[i%3]
				}
			}
			assertClose(t, fmt.Sprintf("linear %v bias=%v", xs, bias != nil), got, want, ws, 1e-4)
		}
	}
	// Transposed weight storage, strided input and bias.
	wt := must(t)(randn(t, r, 7, 3).T())
	x := must(t)(randn(t, r, 4, 14).Slice(1, 0, 14, 2))
	bs := must(t)(randn(t, r, 6).Slice(0, 0, 6, 2))
	got := must(t)(Linear(x, wt, bs))
	want, ws := refMatmul(x, must(t)(wt.T()))
	bd := ref64(bs)
	for i := range want {
		want[i] += bd[i%3]
	}
	assertClose(t, "linear strided", got, want, ws, 1e-4)
}

func wantErr(t *testing.T, err error, kind errs.Kind, op string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: expected a %v error, got nil", op, kind)
	}
	if !errors.Is(err, kind) || errs.OpOf(err) != op {
		t.Fatalf("got %v (kind %v, op %q), want kind %v op %q", err, errs.KindOf(err), errs.OpOf(err), kind, op)
	}
}

func TestMatmulErrors(t *testing.T) {
	r := NewRNG(5)
	_, err := Matmul(randn(t, r, 2, 3), randn(t, r, 4, 5))
	wantErr(t, err, errs.Shape, "matmul")
	if err.Error() != "matmul: shapes [2 3] and [4 5] cannot be multiplied" {
		t.Fatalf("message %q", err)
	}
	_, err = Matmul(Scalar(1), randn(t, r, 3))
	wantErr(t, err, errs.Shape, "matmul")
	_, err = Matmul(randn(t, r, 3), randn(t, r, 4))
	wantErr(t, err, errs.Shape, "matmul")
	_, err = Matmul(randn(t, r, 2, 3, 4), randn(t, r, 3, 4, 5))
	wantErr(t, err, errs.Shape, "matmul")
	_, err = Matmul(nil, randn(t, r, 3))
	wantErr(t, err, errs.Argument, "matmul")
	bad := &Tensor{storage: WrapStorage(make([]float32, 3)), shape: []int{2, 2}, strides: []int{2, 1}}
	_, err = Matmul(bad, bad)
	wantErr(t, err, errs.Layout, "matmul")

	w := randn(t, r, 3, 4)
	_, err = Linear(randn(t, r, 2, 5), w, nil)
	wantErr(t, err, errs.Shape, "linear")
	_, err = Linear(randn(t, r, 2, 4), randn(t, r, 4), nil)
	wantErr(t, err, errs.Shape, "linear")
	_, err = Linear(randn(t, r, 2, 4), w, randn(t, r, 4))
	wantErr(t, err, errs.Shape, "linear")
	_, err = Linear(Scalar(1), w, nil)
	wantErr(t, err, errs.Shape, "linear")
	_, err = Linear(nil, w, nil)
	wantErr(t, err, errs.Argument, "linear")
	_, err = Linear(randn(t, r, 2, 4), nil, nil)
	wantErr(t, err, errs.Argument, "linear")
}

func BenchmarkMatmul(b *testing.B) {
	for _, n := range []int{256, 512, 1024} {
		for _, mode := range []string{"legacy", "fast"} {
			b.Run(fmt.Sprintf("%d/%s", n, mode), func(b *testing.B) {
				prev := kernels.SetLegacyGemm(mode == "legacy")
				defer kernels.SetLegacyGemm(prev)
				r := NewRNG(1)
				x, y := randn(b, r, n, n), randn(b, r, n, n)
				b.ResetTimer()
				for range b.N {
					if _, err := Matmul(x, y); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
