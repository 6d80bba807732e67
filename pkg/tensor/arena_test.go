package tensor

import (
	"math"
	"testing"
)

// TestArenaRecycles checks the arena's contract: after Reset an operation
// gets back a storage of the same length (no new memory); an operation
// that writes every element takes it as is, one that relies on zeroed
// memory gets it cleared; storages not taken again during a step are
// dropped at the next Reset; tensors outside any scope never use it.
func TestArenaRecycles(t *testing.T) {
	t.Setenv(EnvArenaPoison, "1")
	sc, a := NewScope(), NewArena()
	sc.SetArena(a)
	x, _ := New([]float32{1, -2, 3, -4, 5, -6}, 2, 3)
	sc.Adopt(x)

	y, err := Relu(x)
	if err != nil {
		t.Fatal(err)
	}
	first := &y.storage.data[0]
	a.Reset()
	if v := y.storage.data[0]; !math.IsNaN(float64(v)) {
		t.Errorf("poisoned storage after Reset holds %v; want NaN", v)
	}
	y2, _ := Relu(x) // writes every element: the recycled storage as is
	if &y2.storage.data[0] != first {
		t.Errorf("Relu after Reset got fresh memory; want the recycled storage")
	}
	if got, want := y2.ToSlice(), []float32{1, 0, 3, 0, 5, 0}; !equalF32(got, want) {
		t.Errorf("Relu on recycled storage = %v; want %v", got, want)
	}

	a.Reset()
	z := newContiguous(sc, []int{2, 3}) // zeroed memory asked for: cleared
	if &z.storage.data[0] != first {
		t.Errorf("newContiguous after Reset got fresh memory; want the recycled storage")
	}
	for i, v := range z.storage.data {
		if v != 0 {
			t.Fatalf("newContiguous on recycled storage: element %d = %v; want 0", i, v)
		}
	}

	a.Reset() // z's storage is free again ...
	a.Reset() // ... and, not taken during that step, dropped
	w, _ := Relu(x)
	if &w.storage.data[0] == first {
		t.Errorf("a storage unused for a whole step was kept")
	}

	sc.SetArena(nil)
	free, _ := New([]float32{1, 2}, 2)
	if o, _ := Neg(free); o.Scope() != nil {
		t.Errorf("an op on tensors in no scope joined a scope")
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
