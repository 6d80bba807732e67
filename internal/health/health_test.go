package health

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorch/gorch/pkg/errs"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServer(t *testing.T) {
	var ready atomic.Bool
	s, err := Start("127.0.0.1:0", Options{
		Ready: func() error {
			if !ready.Load() {
				return errors.New("set-up not done")
			}
			return nil
		},
		Metrics: []func(context.Context) []Metric{func(context.Context) []Metric {
			return []Metric{Gauge("gorch_x", "An x.", 2)}
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	base := "http://" + s.Addr()
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q; want 200 \"ok\\n\"", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "set-up not done") {
		t.Errorf("GET /readyz before ready = %d %q; want 503 naming the reason", code, body)
	}
	ready.Store(true)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("GET /readyz when ready = %d; want 200", code)
	}
	s.Register(func(context.Context) []Metric { return []Metric{Counter("gorch_y_total", "Ys.", 3)} })
	code, body := get(t, base+"/metrics")
	want := "# HELP gorch_x An x.\n# TYPE gorch_x gauge\ngorch_x 2\n# HELP gorch_y_total Ys.\n# TYPE gorch_y_total counter\ngorch_y_total 3\n"
	if code != 200 || body != want {
		t.Errorf("GET /metrics = %d\n%s\nwant 200\n%s", code, body, want)
	}
}

func TestFormat(t *testing.T) {
	got := Format([]Metric{{Name: "gorch_queue_pending", Help: "Queued\nruns.", Type: "gauge", Samples: []Sample{
		{Labels: []string{"priority", "high"}, Value: 0},
		{Labels: []string{"priority", `a"b`, "x", "y"}, Value: 1.5},
	}}})
	want := `# HELP gorch_queue_pending Queued\nruns.
# TYPE gorch_queue_pending gauge
gorch_queue_pending{priority="high"} 0
gorch_queue_pending{priority="a\"b",x="y"} 1.5
`
	if got != want {
		t.Errorf("Format = \n%s\nwant\n%s", got, want)
	}
}

func TestStartBadAddr(t *testing.T) {
	if _, err := Start("256.0.0.1:x", Options{}); err == nil || !strings.Contains(err.Error(), "--http") {
		t.Errorf("Start(bad addr) = %v; want an error naming --http", err)
	}
}

// A server whose listener fails says so when it is closed, instead of the
// error being dropped.
func TestServeFailureIsReported(t *testing.T) {
	s, err := Start("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if err := s.ln.Close(); err != nil { // Serve's Accept fails from here on
		t.Fatal(err)
	}
	select {
	case <-s.done: // Serve returned on its own
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running 10 s after its listener was closed")
	}
	err = s.Close(context.Background())
	if !errors.Is(err, errs.IO) || !strings.Contains(err.Error(), "serving --http "+addr) {
		t.Fatalf("Close after the listener failed = %v, want an IO error naming %s", err, addr)
	}
	s2, err := Start("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(context.Background()); err != nil {
		t.Errorf("Close of a healthy server = %v", err)
	}
}
