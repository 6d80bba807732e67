package data

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

func checkClassification(t *testing.T, name string, ds *TensorDataset, n, dim, classes int) {
	t.Helper()
	if !slices.Equal(ds.X().Shape(), []int{n, dim}) || !slices.Equal(ds.Y().Shape(), []int{n}) {
		t.Fatalf("%s: shapes %v %v", name, ds.X().Shape(), ds.Y().Shape())
	}
	counts := make([]int, classes)
	for _, v := range ds.Y().Data() {
		c := int(v)
		if float32(c) != v || c < 0 || c >= classes {
			t.Fatalf("%s: label %v", name, v)
		}
		counts[c]++
	}
	for c, k := range counts {
		if k < n/classes || k > n/classes+1 {
			t.Fatalf("%s: class %d has %d of %d samples", name, c, k, n)
		}
	}
	for _, v := range ds.X().Data() {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("%s: non-finite input %v", name, v)
		}
	}
}

func TestSyntheticFactories(t *testing.T) {
	type factory func(seed uint64) (*TensorDataset, error)
	cases := []struct {
		name            string
		f               factory
		n, dim, classes int
	}{
		{"GaussianBlobs", func(s uint64) (*TensorDataset, error) { return GaussianBlobs(301, 4, 5, 0.5, s) }, 301, 5, 4},
		{"TwoMoons", func(s uint64) (*TensorDataset, error) { return TwoMoons(201, 0.1, s) }, 201, 2, 2},
		{"Spirals", func(s uint64) (*TensorDataset, error) { return Spirals(300, 3, 0.05, s) }, 300, 2, 3},
	}
	for _, c := range cases {
		a, err := c.f(1)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		checkClassification(t, c.name, a, c.n, c.dim, c.classes)
		b, _ := c.f(1)
		d, _ := c.f(2)
		if !slices.Equal(a.X().Data(), b.X().Data()) {
			t.Fatalf("%s: same seed, different data", c.name)
		}
		if slices.Equal(a.X().Data(), d.X().Data()) {
			t.Fatalf("%s: different seeds, same data", c.name)
		}
	}
}

func TestGaussianBlobsClustered(t *testing.T) {
	ds, err := GaussianBlobs(400, 2, 3, 0.1, 5)
	if err != nil {
		t.Fatal(err)
	}
	x := ds.X().Data()
	// Points of one class lie within a few std of each other.
	for i := 2; i < 400; i++ {
		var d2 float64
		for j := range 3 {
			dv := float64(x[i*3+j] - x[(i%2)*3+j])
			d2 += dv * dv
		}
		if math.Sqrt(d2) > 1.5 {
			t.Fatalf("sample %d is %.2f from its class's first sample", i, math.Sqrt(d2))
		}
	}
}

func TestTwoMoonsGeometry(t *testing.T) {
	ds, err := TwoMoons(100, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	x, y := ds.X().Data(), ds.Y().Data()
	for i := range 100 {
		px, py := float64(x[2*i]), float64(x[2*i+1])
		if y[i] == 1 {
			px, py = 1-px, 0.5-py
		}
		if r := math.Hypot(px, py); math.Abs(r-1) > 1e-5 || py < -1e-6 {
			t.Fatalf("noise-free sample %d (class %v) off its half circle", i, y[i])
		}
	}
}

func TestLinearRegression(t *testing.T) {
	const n, dim, noise = 2000, 4, 0.1
	ds, w, b, err := LinearRegression(n, dim, noise, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ds.X().Shape(), []int{n, dim}) || !slices.Equal(ds.Y().Shape(), []int{n, 1}) || !slices.Equal(w.Shape(), []int{dim}) {
		t.Fatalf("shapes %v %v %v", ds.X().Shape(), ds.Y().Shape(), w.Shape())
	}
	if b < -1 || b >= 1 {
		t.Fatalf("bias %v", b)
	}
	x, y, wd := ds.X().Data(), ds.Y().Data(), w.Data()
	var ss float64
	for i := range n {
		p := float64(b)
		for j := range dim {
			p += float64(x[i*dim+j]) * float64(wd[j])
		}
		r := float64(y[i]) - p
		ss += r * r
	}
	if rms := math.Sqrt(ss / n); rms < 0.08 || rms > 0.12 {
		t.Fatalf("residual rms %v, want about %v", rms, noise)
	}
	ds2, w2, b2, _ := LinearRegression(n, dim, noise, 3)
	if !slices.Equal(ds2.Y().Data(), y) || !slices.Equal(w2.Data(), wd) || b2 != b {
		t.Fatal("not deterministic")
	}
}

func TestSyntheticInvalidArguments(t *testing.T) {
	nan := math.NaN()
	errsOf := []error{
		func() error { _, err := GaussianBlobs(0, 2, 2, 1, 0); return err }(),
		func() error { _, err := GaussianBlobs(10, 0, 2, 1, 0); return err }(),
		func() error { _, err := GaussianBlobs(10, 2, 0, 1, 0); return err }(),
		func() error { _, err := GaussianBlobs(10, 2, 2, -1, 0); return err }(),
		func() error { _, err := GaussianBlobs(1<<28, 2, 1<<20, 1, 0); return err }(),
		func() error { _, err := TwoMoons(1, 0.1, 0); return err }(),
		func() error { _, err := TwoMoons(10, nan, 0); return err }(),
		func() error { _, err := Spirals(10, 0, 0.1, 0); return err }(),
		func() error { _, err := Spirals(-3, 2, 0.1, 0); return err }(),
		func() error { _, err := Spirals(10, 2, math.Inf(1), 0); return err }(),
		func() error { _, _, _, err := LinearRegression(0, 2, 0.1, 0); return err }(),
		func() error { _, _, _, err := LinearRegression(10, -1, 0.1, 0); return err }(),
		func() error { _, _, _, err := LinearRegression(10, 2, -0.1, 0); return err }(),
	}
	for i, err := range errsOf {
		if !errors.Is(err, errs.Argument) {
			t.Errorf("case %d: got %v, want an argument error", i, err)
		}
	}
}
