package data

import (
	"os"
	"slices"
	"testing"
	"time"
)

// requireFashionMNIST fails (never skips) when the real dataset is absent.
func requireFashionMNIST(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(FashionMNISTDir); err != nil {
		t.Fatalf("Fashion-MNIST not found at %s (%v); install it with: apt-get install -y dataset-fashion-mnist", FashionMNISTDir, err)
	}
}

func TestLoadFashionMNIST(t *testing.T) {
	requireFashionMNIST(t)
	for _, c := range []struct {
		split          string
		n              int
		meanLo, meanHi float64
	}{
		{"train", 60000, 0.28, 0.29},
		{"test", 10000, 0.28, 0.29},
	} {
		start := time.Now()
		ds, err := LoadMNIST(FashionMNISTDir, c.split)
		if err != nil {
			t.Fatalf("%s: %v", c.split, err)
		}
		t.Logf("%s: loaded %d samples in %v", c.split, ds.Len(), time.Since(start))
		if ds.Len() != c.n || !slices.Equal(ds.X().Shape(), []int{c.n, 1, 28, 28}) || !slices.Equal(ds.Y().Shape(), []int{c.n}) {
			t.Fatalf("%s: len %d shapes %v %v", c.split, ds.Len(), ds.X().Shape(), ds.Y().Shape())
		}
		counts := make([]int, 10)
		for _, v := range ds.Y().Data() {
			if v < 0 || v > 9 || float32(int(v)) != v {
				t.Fatalf("%s: label %v", c.split, v)
			}
			counts[int(v)]++
		}
		for k, cnt := range counts {
			if cnt != c.n/10 { // Fashion-MNIST is exactly balanced
				t.Fatalf("%s: class %d has %d samples", c.split, k, cnt)
			}
		}
		lo, hi := float32(1), float32(0)
		for _, v := range ds.X().Data() {
			lo, hi = min(lo, v), max(hi, v)
		}
		if lo != 0 || hi != 1 {
			t.Fatalf("%s: pixels in [%v, %v], want [0, 1]", c.split, lo, hi)
		}
		mean, std := ds.MeanStd()
		t.Logf("%s: pixel mean %.4f std %.4f", c.split, mean, std)
		if mean < c.meanLo || mean > c.meanHi || std < 0.34 || std > 0.36 {
			t.Fatalf("%s: pixel mean %v std %v", c.split, mean, std)
		}
		if c.split == "train" {
			f, err := ds.Flatten()
			if err != nil || !slices.Equal(f.X().Shape(), []int{60000, 784}) {
				t.Fatalf("flatten: %v %v", f, err)
			}
			nd, err := f.Normalize(float32(mean), float32(std))
			if err != nil {
				t.Fatal(err)
			}
			if m, s := nd.MeanStd(); m > 1e-4 || m < -1e-4 || s < 0.999 || s > 1.001 {
				t.Fatalf("normalised mean %v std %v", m, s)
			}
		}
	}
}

func BenchmarkLoadMNIST(b *testing.B) {
	requireFashionMNIST(b)
	for b.Loop() {
		if _, err := LoadMNIST(FashionMNISTDir, "train"); err != nil {
			b.Fatal(err)
		}
	}
}
