//go:build unix

package cputime

import "testing"

func TestProcessCountsWork(t *testing.T) {
	c0 := Process()
	x := 0.0
	for i := 0; i < 50_000_000; i++ {
		x += float64(i & 7)
	}
	if c := Process() - c0; c <= 0 || x == 0 {
		t.Fatalf("CPU time went from %v by %v over a busy loop, want it to grow", c0, c)
	}
}
