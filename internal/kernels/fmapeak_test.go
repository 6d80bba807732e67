package kernels

import (
	"testing"
	"time"
)

// TestFMAPeak checks the exported calibration loop runs and reports a
// positive rate where the machine has one (no timing assertions).
func TestFMAPeak(t *testing.T) {
	if FMAPeakWidth() == "" {
		if g := FMAPeak(time.Millisecond, 1); g != 0 {
			t.Fatalf("FMAPeak without a calibration loop = %v, want 0", g)
		}
		t.Skip("no assembly FMA loop on this machine")
	}
	for _, th := range []int{1, 2} {
		if g := FMAPeak(5*time.Millisecond, th); !(g > 0) {
			t.Fatalf("FMAPeak(%d threads) = %v, want > 0", th, g)
		}
	}
}
