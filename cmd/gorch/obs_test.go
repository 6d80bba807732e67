package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/services/coordinator"
)

// lockedBuffer is a bytes.Buffer safe for a command writing its log while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

var httpAddrRe = regexp.MustCompile(`msg="http serving" addr=(\S+)`)

// waitHTTPAddr waits for a service's "http serving" log line and returns
// its address.
func waitHTTPAddr(t *testing.T, log *lockedBuffer) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := httpAddrRe.FindStringSubmatch(log.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"http serving\" line within 30s; log:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady polls /readyz until it answers 200.
func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := httpGet(t, base+"/readyz")
		if code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz = %d %q after 30s; want 200", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue returns the value of the sample line that starts with
// series ("name" or `name{labels}`) in a /metrics body.
func metricValue(body, series string) (float64, bool) {
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestCoordinatorHTTP serves the coordinator's health and metrics
// endpoints and checks queue depth and runs by state after a submit.
func TestCoordinatorHTTP(t *testing.T) {
	t.Setenv("GORCH_NATS", "")
	ns, err := cluster.StartEmbedded(cluster.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if _, err := runGorch(t, "setup", "--nats", ns.ClientURL()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var log lockedBuffer
	root := newRootCmd()
	root.SetErr(&log)
	root.SetArgs([]string{"coordinator", "--nats", ns.ClientURL(), "--http", "127.0.0.1:0"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	base := "http://" + waitHTTPAddr(t, &log)
	if code, body := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("GET /healthz = %d %q; want 200", code, body)
	}
	waitReady(t, base)

	nc, err := cluster.Connect(ns.ClientURL(), cluster.ConnectOptions{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	spec := []byte(`{"model":{"name":"mlp","hidden":[8]},"dataset":{"name":"blobs","size":64},"optimizer":{"name":"sgd","lr":0.1},"steps":5,"batch_size":8}`)
	if _, err := coordinator.NewClient(nc).Submit(ctx, spec, cluster.PriorityHigh); err != nil {
		t.Fatal(err)
	}
	_, body := httpGet(t, base+"/metrics")
	for series, want := range map[string]float64{`gorch_queue_pending{priority="high"}`: 1, `gorch_queue_pending{priority="normal"}`: 0,
		`gorch_queue_pending{priority="low"}`: 0, `gorch_runs{state="queued"}`: 1, `gorch_runs{state="succeeded"}`: 0} {
		if got, ok := metricValue(body, series); !ok || got != want {
			t.Errorf("GET /metrics: %s = %v (present %v); want %v\n%s", series, got, ok, want, body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("gorch coordinator after cancel = %v; want nil", err)
	}
}

// waitMetric polls /metrics until series is at least min.
func waitMetric(t *testing.T, base, series string, min float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := httpGet(t, base+"/metrics")
		got, ok := metricValue(body, series)
		if ok && got >= min {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /metrics: %s = %v (present %v) after 10s; want ≥ %v\n%s", series, got, ok, min, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUpHTTP serves `gorch up --http` and checks that /metrics has the
// cluster, worker and collector families.
func TestUpHTTP(t *testing.T) {
	t.Setenv("GORCH_S3_ENDPOINT", "")
	t.Setenv("GORCH_S3_BUCKET", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var log lockedBuffer
	root := newRootCmd()
	root.SetErr(&log)
	root.SetOut(io.Discard)
	root.SetArgs([]string{"up", "--workers", "1", "--nats-port", "0", "--http", "127.0.0.1:0", "--data-dir", t.TempDir()})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	base := "http://" + waitHTTPAddr(t, &log)
	waitReady(t, base)
	_, body := httpGet(t, base+"/metrics")
	for _, series := range []string{`gorch_queue_pending{priority="normal"}`, `gorch_runs{state="running"}`, "gorch_worker_checkpoint_bytes_total",
		"gorch_collector_records_total"} {
		if _, ok := metricValue(body, series); !ok {
			t.Errorf("GET /metrics has no %s sample:\n%s", series, body)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("gorch up after cancel = %v; want nil", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("gorch up did not stop within 60s")
	}
}
