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
