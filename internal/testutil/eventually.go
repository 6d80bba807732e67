package testutil

import (
	"testing"
	"time"
)

// Eventually calls check every 20 ms until it returns nil, and fails the
// test with check's last error if that has not happened within timeout:
// the one way tests wait for something to happen (nats-server's checkFor).
func Eventually(tb testing.TB, timeout time.Duration, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Long skips tb under `go test -short`, saying why: the test starts real
// processes or servers, or trains for seconds. `go test -short ./...` is
// the quick local loop; scripts/test.sh (and CI) run everything.
func Long(tb testing.TB, why string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("skipped with -short: " + why)
	}
}
