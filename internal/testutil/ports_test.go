package testutil

import "testing"

// TestFreePortNeverRepeats: the ports FreePort hands out in one process
// are all different (the kernel may offer a just-closed port again).
func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for range 300 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("FreePort returned %d twice", p)
		}
		if p <= 0 || p > 65535 {
			t.Fatalf("FreePort returned %d", p)
		}
		seen[p] = true
	}
}
