package testutil

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// given holds every port FreePort has returned in this process: the
// kernel may hand the same ephemeral port to two binds in a row once the
// first is closed, and two servers of one test (say a worker's HTTP port
// and a NATS server's) must not get the same port.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a loopback TCP port that was free a moment ago (for a
// server the test starts; another process may take it meanwhile), never
// one it returned before in this process.
func FreePort(tb testing.TB) int {
	tb.Helper()
	given.Lock()
	defer given.Unlock()
	for range 1000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("no free loopback port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !given.ports[port] {
			given.ports[port] = true
			return port
		}
	}
	tb.Fatalf("no loopback port that this process was not given before, after 1000 tries")
	return 0
}

// FreeAddr is FreePort as "127.0.0.1:PORT".
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(tb))
}
