package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/experiment"
)

// TestCollectorCmd serves a run's events from a NATS server over TCP into
// --data-dir. Started before `gorch setup`, it waits: its log and /readyz
// name the missing stream and `gorch setup`, in one line each, and it
// serves once setup has run.
func TestCollectorCmd(t *testing.T) {
	ns, err := cluster.StartEmbedded(cluster.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var log lockedBuffer
	go func() {
		root := newRootCmd()
		root.SetErr(&log)
		root.SetArgs([]string{"collector", "--nats", ns.ClientURL(), "--data-dir", dir, "--http", "127.0.0.1:0"})
		done <- root.ExecuteContext(ctx)
	}()
	base := "http://" + waitHTTPAddr(t, &log)
	const missing = "cluster.Bind: stream EVENTS not found: run 'gorch setup' against this NATS server"
	line := waitLog(t, &log, regexp.MustCompile(`.*cluster not ready; retrying with backoff.*`))
	if !strings.Contains(line, missing) {
		t.Errorf("log line %q does not name the missing stream and gorch setup", line)
	}
	if code, body := httpGet(t, base+"/readyz"); code != 503 || body != "not ready: set-up not done: "+missing+"\n" {
		t.Errorf("GET /readyz before gorch setup = %d %q; want 503 naming the missing stream", code, body)
	}
	if _, err := runGorch(t, "setup", "--nats", ns.ClientURL()); err != nil {
		t.Fatal(err)
	}
	waitReady(t, base)

	nc, err := cluster.Connect(ns.ClientURL(), cluster.ConnectOptions{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const run = "run-cli"
	kv, err := js.KeyValue(ctx, cluster.BucketRuns)
	if err != nil {
		t.Fatal(err)
	}
	// The coordinator's record of the claim: the collector takes the
	// events of attempt 1 from worker w1 only.
	if _, err := cluster.CreateState(ctx, kv, cluster.RunState{RunID: run, Status: cluster.StateRunning, Attempt: 1, Worker: "w1",
		Owners: []string{"w1"}}); err != nil {
		t.Fatal(err)
	}
	pub := func(subj, typ string, v any, id string) {
		b, err := cluster.Encode(typ, v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, subj, b, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	pub(cluster.EventSubject("w1", cluster.KindRun, run), cluster.TypeRunEvent, &cluster.RunEvent{RunID: run, Attempt: 1, Kind: "started", Name: "cli"}, "s")
	pub(cluster.EventSubject("w1", cluster.KindMetrics, run), cluster.TypeMetricBatch, &cluster.MetricBatch{RunID: run, Attempt: 1, Seq: 1,
		Points: []cluster.MetricPoint{{Step: 1, Name: "loss", Value: 1}, {Step: 2, Name: "loss", Value: 0.5}}}, "m1")
	pub(cluster.EventSubject("w1", cluster.KindRun, run), cluster.TypeRunEvent, &cluster.RunEvent{RunID: run, Attempt: 1, Kind: "finished", Status: "succeeded", Metrics: 2}, "f")

	st, err := experiment.NewLocalStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := experiment.NewReader(st).GetSummary(ctx, run)
		if err == nil && s.Status == experiment.StatusSucceeded {
			if !s.Complete || s.Metrics["loss"].Count != 2 {
				t.Errorf("summary: complete %v, loss count %d; want true, 2", s.Complete, s.Metrics["loss"].Count)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final summary in %s within 20s (err %v)", dir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The counters move just after the acks, a moment after the summary.
	for series, min := range map[string]float64{"gorch_collector_records_total": 2, "gorch_collector_messages_total": 3,
		"gorch_collector_ingest_lag_seconds": 0, "gorch_collector_last_event_timestamp_seconds": 1} {
		waitMetric(t, base, series, min)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("gorch collector after cancel = %v; want nil", err)
	}
}
