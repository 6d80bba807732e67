package data

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// drain returns the label batches of the rest of the loader's epoch.
func drain(t testing.TB, l *Loader) [][]float32 {
	t.Helper()
	var out [][]float32
	for l.Next() {
		x, y := l.Batch()
		if x.Shape()[0] != y.Shape()[0] {
			t.Fatalf("batch shapes %v and %v", x.Shape(), y.Shape())
		}
		out = append(out, append([]float32(nil), y.Data()...))
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func newLoader(t testing.TB, ds Dataset, o LoaderOptions) *Loader {
	t.Helper()
	l, err := NewLoader(ds, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLoaderOptionsValidated(t *testing.T) {
	ds := seqDataset(t, 3)
	for _, bs := range []int{0, -4} {
		if _, err := NewLoader(ds, LoaderOptions{BatchSize: bs}); !errors.Is(err, errs.Argument) {
			t.Fatalf("batch size %d: %v", bs, err)
		}
	}
	if _, err := NewLoader(nil, LoaderOptions{BatchSize: 1}); !errors.Is(err, errs.Argument) {
		t.Fatalf("nil dataset: %v", err)
	}
	l := newLoader(t, ds, LoaderOptions{BatchSize: 2})
	for _, c := range []Cursor{{-1, 0}, {0, -1}, {0, 4}} {
		if err := l.Seek(c); !errors.Is(err, errs.Argument) {
			t.Fatalf("Seek(%+v): %v", c, err)
		}
	}
}

func TestLoaderSequentialBatches(t *testing.T) {
	ds := seqDataset(t, 7)
	l := newLoader(t, ds, LoaderOptions{BatchSize: 3})
	if l.BatchesPerEpoch() != 3 || l.SamplesPerEpoch() != 7 {
		t.Fatalf("BatchesPerEpoch %d SamplesPerEpoch %d", l.BatchesPerEpoch(), l.SamplesPerEpoch())
	}
	got := drain(t, l)
	want := [][]float32{{0, 1, 2}, {3, 4, 5}, {6}}
	if !equalBatches(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if l.Cursor() != (Cursor{0, 7}) || !l.Done() {
		t.Fatalf("cursor %+v at epoch end", l.Cursor())
	}
	if l.Next() {
		t.Fatal("Next moved past the end of the epoch")
	}
	if x, y := l.Batch(); x != nil || y != nil {
		t.Fatal("Batch not nil after Next returned false")
	}
	l.NextEpoch()
	if l.Cursor() != (Cursor{1, 0}) || !equalBatches(drain(t, l), want) {
		t.Fatal("unshuffled epochs differ")
	}
	// Inputs follow their labels.
	l.StartEpoch(0)
	l.Next()
	x, _ := l.Batch()
	if !slices.Equal(x.Shape(), []int{3, 2, 3}) || x.Data()[6] != 10 {
		t.Fatalf("first batch x = %v", x)
	}
}

func TestLoaderDropLast(t *testing.T) {
	ds := seqDataset(t, 10)
	l := newLoader(t, ds, LoaderOptions{BatchSize: 4, DropLast: true, Shuffle: true, Seed: 3})
	if l.BatchesPerEpoch() != 2 || l.SamplesPerEpoch() != 8 {
		t.Fatalf("BatchesPerEpoch %d SamplesPerEpoch %d", l.BatchesPerEpoch(), l.SamplesPerEpoch())
	}
	got := drain(t, l)
	if len(got) != 2 || len(got[0]) != 4 || len(got[1]) != 4 {
		t.Fatalf("drop-last batches %v", got)
	}
	if l.Cursor() != (Cursor{0, 8}) || !l.Done() {
		t.Fatalf("cursor %+v", l.Cursor())
	}
	// Exactly divisible: nothing dropped.
	l = newLoader(t, seqDataset(t, 8), LoaderOptions{BatchSize: 4, DropLast: true})
	if got := drain(t, l); len(got) != 2 {
		t.Fatalf("%d batches", len(got))
	}
	// Fewer samples than a batch: no batch at all.
	l = newLoader(t, seqDataset(t, 3), LoaderOptions{BatchSize: 4, DropLast: true})
	if l.BatchesPerEpoch() != 0 || l.Next() {
		t.Fatal("a batch from a dataset smaller than the batch size with DropLast")
	}
}

func TestLoaderCoversEverySampleOncePerEpoch(t *testing.T) {
	const n = 103
	ds := seqDataset(t, n)
	l := newLoader(t, ds, LoaderOptions{BatchSize: 10, Shuffle: true, Seed: 42})
	var prev []float32
	for e := range 3 {
		if err := l.StartEpoch(e); err != nil {
			t.Fatal(err)
		}
		batches := drain(t, l)
		if len(batches) != l.BatchesPerEpoch() {
			t.Fatalf("epoch %d: %d batches, want %d", e, len(batches), l.BatchesPerEpoch())
		}
		var all []float32
		for _, b := range batches {
			all = append(all, b...)
		}
		if slices.Equal(all, prev) {
			t.Fatalf("epoch %d repeats the previous epoch's order", e)
		}
		prev = all
		sorted := slices.Clone(all)
		slices.Sort(sorted)
		for i, v := range sorted {
			if v != float32(i) {
				t.Fatalf("epoch %d does not visit every sample once: %v", e, sorted)
			}
		}
		if slices.IsSorted(all) {
			t.Fatalf("epoch %d not shuffled", e)
		}
	}
}

func TestLoaderDeterministic(t *testing.T) {
	ds := seqDataset(t, 50)
	run := func(seed uint64) [][]float32 {
		l := newLoader(t, ds, LoaderOptions{BatchSize: 8, Shuffle: true, Seed: seed})
		var out [][]float32
		for e := range 3 {
			l.StartEpoch(e)
			out = append(out, drain(t, l)...)
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	if !equalBatches(a, b) {
		t.Fatal("same seed gave different batches")
	}
	if equalBatches(a, c) {
		t.Fatal("different seeds gave the same batches")
	}
	// The order depends on (seed, epoch) only, not on the path taken.
	l := newLoader(t, ds, LoaderOptions{BatchSize: 8, Shuffle: true, Seed: 7})
	l.StartEpoch(2)
	if got := drain(t, l); !equalBatches(got, a[2*7:]) {
		t.Fatalf("epoch 2 reached directly differs: %v vs %v", got, a[14:])
	}
}

func TestLoaderResume(t *testing.T) {
	ds := seqDataset(t, 61)
	opts := LoaderOptions{BatchSize: 8, Shuffle: true, Seed: 99}
	const epochs = 3
	full := func(l *Loader, from int) [][]float32 {
		var out [][]float32
		for e := from; e < epochs; e++ {
			if e > from {
				l.StartEpoch(e)
			}
			out = append(out, drain(t, l)...)
		}
		return out
	}
	ref := full(newLoader(t, ds, opts), 0)
	for k := 0; k <= len(ref); k++ {
		l := newLoader(t, ds, opts)
		var got [][]float32
		for i := 0; i < k; i++ {
			if !l.Next() {
				l.NextEpoch()
				if !l.Next() {
					t.Fatal("empty epoch")
				}
			}
			_, y := l.Batch()
			got = append(got, append([]float32(nil), y.Data()...))
		}
		blob, err := json.Marshal(l.Cursor())
		if err != nil {
			t.Fatal(err)
		}
		var c Cursor
		if err := json.Unmarshal(blob, &c); err != nil || c != l.Cursor() {
			t.Fatalf("cursor JSON round trip %s: %+v %v", blob, c, err)
		}
		r := newLoader(t, ds, opts)
		if err := r.Seek(c); err != nil {
			t.Fatal(err)
		}
		got = append(got, full(r, c.Epoch)...)
		if !equalBatches(got, ref) {
			t.Fatalf("resumed after %d batches (cursor %s): batches differ", k, blob)
		}
	}
}

func TestLoaderSeekMidBatch(t *testing.T) {
	l := newLoader(t, seqDataset(t, 10), LoaderOptions{BatchSize: 4})
	if err := l.Seek(Cursor{Epoch: 0, Pos: 5}); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, l); !equalBatches(got, [][]float32{{5, 6, 7, 8}, {9}}) {
		t.Fatalf("after Seek to position 5: %v", got)
	}
	l.Seek(Cursor{Epoch: 4, Pos: 10})
	if l.Next() || !l.Done() {
		t.Fatal("a batch after the end of the epoch")
	}
}

func TestCursorJSON(t *testing.T) {
	b, _ := json.Marshal(Cursor{Epoch: 3, Pos: 128})
	if string(b) != `{"epoch":3,"position":128}` {
		t.Fatalf("cursor JSON %s", b)
	}
}

type failingDataset struct{ n int }

func (f failingDataset) Len() int { return f.n }
func (f failingDataset) Gather([]int) (*tensor.Tensor, *tensor.Tensor, error) {
	return nil, nil, errs.New(errs.IO, "failing", "disk on fire")
}

func TestLoaderGatherError(t *testing.T) {
	l := newLoader(t, failingDataset{5}, LoaderOptions{BatchSize: 2})
	if l.Next() {
		t.Fatal("Next succeeded")
	}
	if err := l.Err(); !errors.Is(err, errs.IO) {
		t.Fatalf("Err = %v", err)
	}
	if l.Cursor() != (Cursor{}) {
		t.Fatalf("cursor advanced to %+v on failure", l.Cursor())
	}
	l.StartEpoch(0)
	if l.Err() != nil {
		t.Fatal("StartEpoch did not clear the error")
	}
}

func equalBatches(a, b [][]float32) bool {
	return slices.EqualFunc(a, b, func(x, y []float32) bool { return slices.Equal(x, y) })
}

func BenchmarkLoaderEpochMNISTShape(b *testing.B) {
	const n, d = 60000, 784
	x, err := tensor.Zeros(n, 1, 28, 28)
	if err != nil {
		b.Fatal(err)
	}
	y, _ := tensor.Zeros(n)
	ds, err := NewTensorDataset(x, y)
	if err != nil {
		b.Fatal(err)
	}
	l := newLoader(b, ds, LoaderOptions{BatchSize: 64, Shuffle: true, Seed: 1})
	b.SetBytes(n * d * 4)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		l.StartEpoch(i)
		k := 0
		for l.Next() {
			k++
		}
		if k != 938 {
			b.Fatalf("%d batches", k)
		}
	}
}
