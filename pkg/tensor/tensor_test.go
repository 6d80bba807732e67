package tensor

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

// coreMk builds a contiguous tensor or fails the test.
func coreMk(t testing.TB, data []float32, shape ...int) *Tensor {
	t.Helper()
	x, err := New(data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func coreSeq(n int) []float32 {
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(i)
	}
	return d
}

// coreMust unwraps a (tensor, error) pair, panicking (and so failing the
// test) on error.
func coreMust(x *Tensor, err error) *Tensor {
	if err != nil {
		panic(err)
	}
	return x
}

func coreEq(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(math.IsNaN(float64(a[i])) && math.IsNaN(float64(b[i]))) {
			return false
		}
	}
	return true
}

func coreWantKind(t *testing.T, err error, kind errs.Kind, op string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v error from %s", kind, op)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %q is not of kind %v", err, kind)
	}
	if got := errs.OpOf(err); got != op {
		t.Errorf("error %q names op %q, want %q", err, got, op)
	}
}

func TestNewAndAccessors(t *testing.T) {
	x := coreMk(t, coreSeq(6), 2, 3)
	if got := x.Shape(); !EqualShape(got, []int{2, 3}) {
		t.Errorf("Shape() = %v", got)
	}
	if got := x.Strides(); !EqualShape(got, []int{3, 1}) {
		t.Errorf("Strides() = %v", got)
	}
	if v, _ := x.At(1, 2); v != 5 {
		t.Errorf("At(1,2) = %v, want 5", v)
	}
	if v, _ := x.At(-1, -1); v != 5 {
		t.Errorf("At(-1,-1) = %v, want 5", v)
	}
	if _, err := x.At(2, 0); !errors.Is(err, errs.Argument) {
		t.Errorf("At(2,0) err = %v, want argument error", err)
	}
	if _, err := New(coreSeq(5), 2, 3); !errors.Is(err, errs.Shape) {
		t.Errorf("New(5 elems, [2 3]) err = %v", err)
	}
	if _, err := Zeros(2, -1); !errors.Is(err, errs.Argument) {
		t.Errorf("Zeros(2,-1) err = %v", err)
	}
	if _, err := Zeros(1, 1, 1, 1, 1, 1, 1, 1, 1); !errors.Is(err, errs.Argument) {
		t.Errorf("Zeros(rank 9) err = %v", err)
	}
	s := Scalar(3)
	if v, err := s.Item(); v != 3 || err != nil || s.Dim() != 0 || s.Numel() != 1 {
		t.Errorf("Scalar(3) = %v, %v", v, err)
	}
	if _, err := x.Item(); !errors.Is(err, errs.Shape) {
		t.Errorf("Item on 6 elements err = %v", err)
	}
	if err := x.SetAt(9, 0, 1); err != nil {
		t.Fatal(err)
	}
	if got := x.Data(); !coreEq(got, []float32{0, 9, 2, 3, 4, 5}) {
		t.Errorf("after SetAt, Data() = %v", got)
	}
}

func TestLayoutValidation(t *testing.T) {
	st := WrapStorage(coreSeq(10))
	cases := []struct {
		name    string
		shape   []int
		strides []int
		offset  int
		ok      bool
	}{
		{"contiguous", []int{2, 5}, []int{5, 1}, 0, true},
		{"last element", []int{2, 2}, []int{5, 1}, 3, true},
		{"past end", []int{2, 2}, []int{5, 1}, 5, false},
		{"negative size", []int{-1, 2}, []int{2, 1}, 0, false},
		{"negative stride", []int{2, 2}, []int{-1, 1}, 4, false},
		{"negative offset", []int{2}, []int{1}, -1, false},
		{"empty anywhere", []int{0, 100}, []int{1000, 1000}, 9, true},
		{"zero stride", []int{1000, 10}, []int{0, 1}, 0, true},
		{"rank mismatch", []int{2, 2}, []int{1}, 0, false},
		{"overflow", []int{math.MaxInt64 / 2, 4}, []int{1, math.MaxInt64 / 4}, 0, false},
		{"rank 9", []int{1, 1, 1, 1, 1, 1, 1, 1, 1}, []int{1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, false},
	}
	for _, c := range cases {
		_, err := FromStorage(st, c.shape, c.strides, c.offset)
		if (err == nil) != c.ok {
			t.Errorf("%s: FromStorage(%v, %v, %d) err = %v, want ok=%v", c.name, c.shape, c.strides, c.offset, err, c.ok)
		}
		if err != nil && !errors.Is(err, errs.Layout) {
			t.Errorf("%s: err %v is not a layout error", c.name, err)
		}
	}
}

func TestLayoutStatsCountFailures(t *testing.T) {
	sc := NewScope()
	x := coreMk(t, coreSeq(4), 4)
	sc.Adopt(x)
	bad := &Tensor{storage: WrapStorage(coreSeq(4)), shape: []int{5}, strides: []int{1}}
	if _, err := Add(x, x); err != nil {
		t.Fatal(err)
	}
	_, err := Add(x, bad)
	coreWantKind(t, err, errs.Layout, "add")
	if got, want := sc.LayoutStats()["add"], (OpStats{Checks: 4, Failures: 1}); got != want {
		t.Errorf("add stats = %+v; want %+v", got, want)
	}
}

// TestScopeFollowsData checks that outputs and views join the scope of
// their inputs, so each scope counts only its own operations.
func TestScopeFollowsData(t *testing.T) {
	a, b := NewScope(), NewScope()
	xa, xb := coreMk(t, coreSeq(6), 2, 3), coreMk(t, coreSeq(6), 2, 3)
	a.Adopt(xa)
	b.Adopt(xb)
	free := coreMk(t, coreSeq(6), 2, 3)
	y := coreMust(Add(free, xa)) // first input has no scope: xa's
	if y.Scope() != a {
		t.Fatalf("Add(free, xa) is in scope %p; want a (%p)", y.Scope(), a)
	}
	tr := coreMust(y.Transpose(0, 1))
	if tr.Scope() != a {
		t.Errorf("a view left its storage's scope")
	}
	coreMust(Matmul(xb, tr))
	if _, err := Sum(free, nil, false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		scope *Scope
		want  map[string]OpStats
	}{
		{"a", a, map[string]OpStats{"add": {Checks: 2}, "transpose": {Checks: 1}}},
		{"b", b, map[string]OpStats{"matmul": {Checks: 2}}},
	} {
		if got := tc.scope.LayoutStats(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("scope %s counted %v; want %v", tc.name, got, tc.want)
		}
	}
	if got := (*Scope)(nil).LayoutStats(); len(got) != 0 {
		t.Errorf("nil scope counted %v; want nothing", got)
	}
}

func TestScopeNoGrad(t *testing.T) {
	sc := NewScope()
	if !sc.GradEnabled() {
		t.Fatal("a new scope has recording off")
	}
	err := sc.NoGrad(func() error {
		return sc.NoGrad(func() error {
			if sc.GradEnabled() {
				t.Error("recording on inside nested NoGrad")
			}
			return nil
		})
	})
	if err != nil || !sc.GradEnabled() {
		t.Errorf("after NoGrad: err %v, GradEnabled %v; want nil, true", err, sc.GradEnabled())
	}
}

func TestViews(t *testing.T) {
	x := coreMk(t, coreSeq(24), 2, 3, 4)
	tr := coreMust(x.Transpose(0, 2)) // [4 3 2]
	if tr.IsContiguous() || tr.Storage() != x.Storage() {
		t.Fatalf("transpose should be a non-contiguous view")
	}
	if v, _ := tr.At(3, 2, 1); v != 23 {
		t.Errorf("transpose At(3,2,1) = %v, want 23", v)
	}
	// View fails on the transposed tensor, Reshape copies.
	if _, err := tr.View(24); !errors.Is(err, errs.Layout) {
		t.Errorf("View on transposed err = %v", err)
	}
	r := coreMust(tr.Reshape(-1))
	if r.Storage() == x.Storage() {
		t.Errorf("Reshape of a transposed tensor should copy")
	}
	want := []float32{0, 12, 4, 16, 8, 20, 1, 13, 5, 17, 9, 21, 2, 14, 6, 18, 10, 22, 3, 15, 7, 19, 11, 23}
	if got := r.Data(); !coreEq(got, want) {
		t.Errorf("Reshape(transpose) = %v, want %v", got, want)
	}
	v := coreMust(x.View(6, -1))
	if !EqualShape(v.Shape(), []int{6, 4}) || v.Storage() != x.Storage() {
		t.Errorf("View(6,-1) shape %v", v.Shape())
	}
	if _, err := x.View(5, -1); !errors.Is(err, errs.Shape) {
		t.Errorf("View(5,-1) err = %v", err)
	}
	// A view through a sliced dimension that stays mergeable.
	sl := coreMust(x.Narrow(1, 1, 2)) // [2 2 4], rows 1..2
	fl := coreMust(sl.View(2, 8))
	if fl.Storage() != x.Storage() {
		t.Errorf("View of narrowed tensor should not copy")
	}
	if got := fl.Data(); !coreEq(got, []float32{4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23}) {
		t.Errorf("narrow+view = %v", got)
	}
	// Slice with step and negative bounds.
	s := coreMust(coreMust(Arange(10)).Slice(0, -8, 100, 3))
	if got := s.Data(); !coreEq(got, []float32{2, 5, 8}) {
		t.Errorf("Slice(-8:100:3) = %v", got)
	}
	if _, err := x.Slice(0, 0, 1, 0); !errors.Is(err, errs.Argument) {
		t.Errorf("Slice step 0 err = %v", err)
	}
	// Expand and squeeze/unsqueeze.
	col := coreMk(t, []float32{1, 2, 3}, 3, 1)
	e := coreMust(col.Expand(2, 3, 4))
	if got := e.Strides(); !EqualShape(got, []int{0, 1, 0}) {
		t.Errorf("Expand strides = %v", got)
	}
	if got := coreMust(e.Contiguous()).Data(); !coreEq(got[:8], []float32{1, 1, 1, 1, 2, 2, 2, 2}) {
		t.Errorf("expanded data = %v", got)
	}
	if _, err := col.Expand(3, 2); err != nil {
		t.Errorf("Expand([3 1] -> [3 2]) err = %v", err)
	}
	if _, err := col.Expand(4, 4); !errors.Is(err, errs.Shape) {
		t.Errorf("Expand([3 1] -> [4 4]) err = %v", err)
	}
	u := coreMust(col.Unsqueeze(0))
	if !EqualShape(u.Shape(), []int{1, 3, 1}) {
		t.Errorf("Unsqueeze(0) shape %v", u.Shape())
	}
	if q := coreMust(u.Squeeze()); !EqualShape(q.Shape(), []int{3}) {
		t.Errorf("Squeeze() shape %v", q.Shape())
	}
	if q := coreMust(u.Squeeze(1)); !EqualShape(q.Shape(), []int{1, 3, 1}) {
		t.Errorf("Squeeze(1) of size 3 should keep it: %v", q.Shape())
	}
	p := coreMust(x.Permute(2, 0, 1))
	if v, _ := p.At(3, 1, 2); v != 23 {
		t.Errorf("Permute At = %v", v)
	}
	if _, err := x.Permute(0, 0, 1); !errors.Is(err, errs.Argument) {
		t.Errorf("Permute repeat err = %v", err)
	}
	sel := coreMust(x.Select(1, -1))
	if got := sel.Data(); !coreEq(got, []float32{8, 9, 10, 11, 20, 21, 22, 23}) {
		t.Errorf("Select(1,-1) = %v", got)
	}
	f := coreMust(x.Flatten(1, 2))
	if !EqualShape(f.Shape(), []int{2, 12}) {
		t.Errorf("Flatten(1,2) shape %v", f.Shape())
	}
	// Writes through a view reach the base.
	if err := sel.SetAt(-1, 0, 0); err != nil {
		t.Fatal(err)
	}
	if v, _ := x.At(0, 2, 0); v != -1 {
		t.Errorf("write through view: base = %v", v)
	}
}

func TestElementwiseBroadcast(t *testing.T) {
	a := coreMk(t, coreSeq(6), 2, 3)
	b := coreMk(t, []float32{10, 20, 30}, 3)
	got := coreMust(Add(a, b)).Data()
	if !coreEq(got, []float32{10, 21, 32, 13, 24, 35}) {
		t.Errorf("Add broadcast = %v", got)
	}
	col := coreMk(t, []float32{1, 2}, 2, 1)
	got = coreMust(Mul(a, col)).Data()
	if !coreEq(got, []float32{0, 1, 2, 6, 8, 10}) {
		t.Errorf("Mul column broadcast = %v", got)
	}
	// Non-contiguous operands.
	at := coreMust(a.T()) // [3 2]
	got = coreMust(Sub(at, coreMk(t, []float32{1, 1}, 2))).Data()
	if !coreEq(got, []float32{-1, 2, 0, 3, 1, 4}) {
		t.Errorf("Sub(transposed) = %v", got)
	}
	// Outer product through broadcasting.
	r := coreMk(t, []float32{1, 2, 3}, 1, 3)
	c := coreMk(t, []float32{1, 10}, 2, 1)
	o := coreMust(Mul(r, c))
	if !EqualShape(o.Shape(), []int{2, 3}) || !coreEq(o.Data(), []float32{1, 2, 3, 10, 20, 30}) {
		t.Errorf("outer = %v", o)
	}
	_, err := Add(a, coreMk(t, coreSeq(4), 4))
	coreWantKind(t, err, errs.Shape, "add")
	if err != nil && err.Error() != "add: shapes [2 3] and [4] cannot be broadcast" {
		t.Errorf("message = %q", err.Error())
	}
	// Unary ops on a strided view.
	ex := coreMust(Exp(at))
	want := make([]float32, 6)
	for i, v := range []float32{0, 3, 1, 4, 2, 5} {
		want[i] = float32(math.Exp(float64(v)))
	}
	if !coreEq(ex.Data(), want) {
		t.Errorf("Exp(transposed) = %v, want %v", ex.Data(), want)
	}
	rl := coreMust(Relu(coreMk(t, []float32{-1, 0, 2}, 3)))
	if !coreEq(rl.Data(), []float32{0, 0, 2}) {
		t.Errorf("Relu = %v", rl.Data())
	}
	if g := coreMust(Gelu(coreMk(t, []float32{0, 1}, 2))).Data(); math.Abs(float64(g[1])-0.8413447) > 1e-6 || g[0] != 0 {
		t.Errorf("Gelu = %v", g)
	}
	if s := coreMust(Sigmoid(coreMk(t, []float32{-100, 0, 100}, 3))).Data(); s[0] > 1e-40 || s[1] != 0.5 || s[2] != 1 {
		t.Errorf("Sigmoid = %v", s)
	}
	if cmp := coreMust(Gt(a, Scalar(2))).Data(); !coreEq(cmp, []float32{0, 0, 0, 1, 1, 1}) {
		t.Errorf("Gt = %v", cmp)
	}
	if _, err := Clamp(a, 2, 1); !errors.Is(err, errs.Argument) {
		t.Errorf("Clamp(2,1) err = %v", err)
	}
}

func TestCopyInto(t *testing.T) {
	z := coreMust(Zeros(3, 4))
	region := coreMust(z.Slice(1, 0, 4, 2)) // columns 0 and 2
	if err := CopyInto(region, coreMk(t, []float32{1, 2}, 2)); err != nil {
		t.Fatal(err)
	}
	if got := z.Data(); !coreEq(got, []float32{1, 0, 2, 0, 1, 0, 2, 0, 1, 0, 2, 0}) {
		t.Errorf("CopyInto = %v", got)
	}
	// A transposed destination ([2, 3] over [3, 2] memory) from a
	// contiguous source and from a transposed one: element (i, j) of the
	// source lands at (i, j) of dst whatever order the copy visits.
	buf := coreMust(Zeros(3, 2))
	dst := coreMust(buf.Transpose(0, 1))
	if err := CopyInto(dst, coreMk(t, coreSeq(6), 2, 3)); err != nil {
		t.Fatal(err)
	}
	if got := buf.Data(); !coreEq(got, []float32{0, 3, 1, 4, 2, 5}) {
		t.Errorf("CopyInto(transposed, contiguous) memory = %v; want [0 3 1 4 2 5]", got)
	}
	src := coreMust(coreMk(t, []float32{10, 40, 20, 50, 30, 60}, 3, 2).Transpose(0, 1))
	if err := CopyInto(dst, src); err != nil {
		t.Fatal(err)
	}
	if got := buf.Data(); !coreEq(got, []float32{10, 40, 20, 50, 30, 60}) {
		t.Errorf("CopyInto(transposed, transposed) memory = %v; want [10 40 20 50 30 60]", got)
	}
	e := coreMust(coreMk(t, []float32{1}, 1).Expand(3))
	if err := CopyInto(e, coreMk(t, coreSeq(3), 3)); !errors.Is(err, errs.Layout) {
		t.Errorf("CopyInto expanded dst err = %v", err)
	}
}

func TestRNGStateRoundTrip(t *testing.T) {
	r := NewRNG(42)
	r.Uint64()
	state := r.State()
	a := coreMust(Randn(r, 5))
	if err := r.SetState(state); err != nil {
		t.Fatal(err)
	}
	b := coreMust(Randn(r, 5))
	if !coreEq(a.Data(), b.Data()) {
		t.Errorf("restored RNG drew %v, want %v", b.Data(), a.Data())
	}
	if coreEq(coreMust(Randn(NewRNG(1), 5)).Data(), coreMust(Randn(NewRNG(2), 5)).Data()) {
		t.Errorf("different seeds drew the same values")
	}
	if err := r.SetState([]byte("junk")); !errors.Is(err, errs.Argument) {
		t.Errorf("SetState(junk) err = %v", err)
	}
	// Moments of a large normal sample.
	n := coreMust(Normal(NewRNG(7), 2, 3, 100000)).Data()
	var s, s2 float64
	for _, v := range n {
		s += float64(v)
		s2 += float64(v) * float64(v)
	}
	mean := s / float64(len(n))
	std := math.Sqrt(s2/float64(len(n)) - mean*mean)
	if math.Abs(mean-2) > 0.05 || math.Abs(std-3) > 0.05 {
		t.Errorf("Normal(2,3) sample mean %.3f std %.3f", mean, std)
	}
	u := coreMust(Uniform(NewRNG(7), -1, 1, 10000)).Data()
	for _, v := range u {
		if v < -1 || v >= 1 {
			t.Fatalf("Uniform(-1,1) drew %v", v)
		}
	}
	p := NewRNG(3).Perm(100)
	seen := make([]bool, 100)
	for _, i := range p {
		seen[i] = true
	}
	for i, ok := range seen {
		if !ok {
			t.Fatalf("Perm(100) misses %d", i)
		}
	}
}

func BenchmarkLayoutValidation(b *testing.B) {
	x := newContiguous(nil, []int{64, 3, 32, 32})
	tr, _ := x.Transpose(1, 3)
	b.Run("contiguous", func(b *testing.B) {
		for b.Loop() {
			_ = x.validLayout()
		}
	})
	b.Run("strided", func(b *testing.B) {
		for b.Loop() {
			_ = tr.validLayout()
		}
	})
	b.Run("counted", func(b *testing.B) {
		s := stat("bench")
		for b.Loop() {
			_ = check(s, tr)
		}
	})
}

func BenchmarkAddBroadcast(b *testing.B) {
	x := newContiguous(nil, []int{256, 256})
	y := newContiguous(nil, []int{256})
	for b.Loop() {
		_, _ = Add(x, y)
	}
}
