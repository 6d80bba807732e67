package data

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// seqDataset returns a dataset of n samples whose inputs are [n, 2, 3] with
// x[i] filled with 10*i + k and labels y[i] = i.
func seqDataset(t testing.TB, n int) *TensorDataset {
	t.Helper()
	xd := make([]float32, n*6)
	for i := range xd {
		xd[i] = float32(10*(i/6) + i%6)
	}
	yd := make([]float32, n)
	for i := range yd {
		yd[i] = float32(i)
	}
	x, err := tensor.New(xd, n, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	y, err := tensor.New(yd, n)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := NewTensorDataset(x, y)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestNewTensorDatasetValidates(t *testing.T) {
	x, _ := tensor.Zeros(4, 3)
	y, _ := tensor.Zeros(5)
	if _, err := NewTensorDataset(x, y); !errors.Is(err, errs.Shape) {
		t.Fatalf("mismatched first dims: got %v, want a shape error", err)
	}
	s := tensor.Scalar(1)
	if _, err := NewTensorDataset(s, s); !errors.Is(err, errs.Shape) {
		t.Fatalf("scalars: got %v, want a shape error", err)
	}
	if _, err := NewTensorDataset(nil, y); !errors.Is(err, errs.Argument) {
		t.Fatalf("nil: got %v, want an argument error", err)
	}
}

func TestTensorDatasetNonContiguous(t *testing.T) {
	x, _ := tensor.Arange(6)
	x2, _ := x.Reshape(2, 3)
	xt, _ := x2.T() // [3, 2], non-contiguous
	y, _ := tensor.New([]float32{7, 8, 9})
	ds, err := NewTensorDataset(xt, y)
	if err != nil {
		t.Fatal(err)
	}
	gx, gy, err := ds.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gx.Data(), []float32{1, 4}) || !slices.Equal(gy.Data(), []float32{8}) {
		t.Fatalf("Get(1) = %v, %v", gx, gy)
	}
}

func TestTensorDatasetGetGather(t *testing.T) {
	ds := seqDataset(t, 5)
	if ds.Len() != 5 {
		t.Fatalf("Len = %d", ds.Len())
	}
	x, y, err := ds.Get(-1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x.Shape(), []int{2, 3}) || !slices.Equal(x.Data(), []float32{40, 41, 42, 43, 44, 45}) {
		t.Fatalf("Get(-1) x = %v", x)
	}
	if y.Dim() != 0 || y.Data()[0] != 4 {
		t.Fatalf("Get(-1) y = %v", y)
	}
	if _, _, err := ds.Get(5); !errors.Is(err, errs.Argument) {
		t.Fatalf("Get(5): %v", err)
	}
	bx, by, err := ds.Gather([]int{3, 0, 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bx.Shape(), []int{3, 2, 3}) || !slices.Equal(by.Shape(), []int{3}) {
		t.Fatalf("shapes %v %v", bx.Shape(), by.Shape())
	}
	if !slices.Equal(by.Data(), []float32{3, 0, 3}) || bx.Data()[6] != 0 || bx.Data()[17] != 35 {
		t.Fatalf("gathered %v %v", bx, by)
	}
	// Batches are copies: writing to them leaves the dataset alone.
	bx.Data()[0] = -1
	if ds.X().Data()[18] != 30 {
		t.Fatal("Gather aliases the dataset")
	}
	if _, _, err := ds.Gather([]int{0, 5}); !errors.Is(err, errs.Argument) {
		t.Fatalf("Gather out of range: %v", err)
	}
	empty, _, err := ds.Gather(nil)
	if err != nil || !slices.Equal(empty.Shape(), []int{0, 2, 3}) {
		t.Fatalf("empty gather: %v %v", empty, err)
	}
}

func TestTensorDatasetHelpers(t *testing.T) {
	ds := seqDataset(t, 5)
	f, err := ds.Flatten()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.X().Shape(), []int{5, 6}) {
		t.Fatalf("Flatten shape %v", f.X().Shape())
	}
	h, err := ds.Head(2)
	if err != nil || h.Len() != 2 || h.X().Data()[11] != 15 {
		t.Fatalf("Head: %v %v", h, err)
	}
	if h, _ := ds.Head(99); h.Len() != 5 {
		t.Fatalf("Head(99).Len = %d", h.Len())
	}
	if _, err := ds.Head(-1); !errors.Is(err, errs.Argument) {
		t.Fatalf("Head(-1): %v", err)
	}
	sub, err := ds.Subset([]int{4, 1})
	if err != nil || !slices.Equal(sub.Y().Data(), []float32{4, 1}) {
		t.Fatalf("Subset: %v %v", sub, err)
	}
	m, s := ds.MeanStd()
	nd, err := ds.Normalize(float32(m), float32(s))
	if err != nil {
		t.Fatal(err)
	}
	m2, s2 := nd.MeanStd()
	if math.Abs(m2) > 1e-5 || math.Abs(s2-1) > 1e-5 {
		t.Fatalf("normalised mean %v std %v", m2, s2)
	}
	if ds.X().Data()[7] != 11 {
		t.Fatal("Normalize modified the source dataset")
	}
	for _, bad := range []float32{0, -1, float32(math.NaN()), float32(math.Inf(1))} {
		if _, err := ds.Normalize(0, bad); !errors.Is(err, errs.Argument) {
			t.Fatalf("Normalize std %v: %v", bad, err)
		}
	}
}
