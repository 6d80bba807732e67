package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestQuickRun runs the harness in quick mode and checks that
// cluster-results.json has every figure's key with a positive value and
// the metadata. No timing assertions.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded NATS server and measures for a few seconds")
	}
	out := filepath.Join(t.TempDir(), "cluster-results.json")
	cfg := config{quick: true, reps: 1, runs: 30, submitters: 4, claimers: 2, publishers: 2, batches: 5, points: 64, out: out}
	if _, err := run(cfg); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("cluster-results.json is not JSON: %v", err)
	}
	for _, k := range []string{
		"dispatch_runs_per_s", "dispatch_submitted_per_s", "dispatch_latency_p50_ms", "dispatch_latency_p99_ms",
		"ingest_points_per_s", "ingest_lag_p50_ms", "ingest_lag_p99_ms", "jetstream_raw_points_per_s", "ingest_vs_raw_ratio",
		"raw_cpu_ns_per_point", "ingest_cpu_ns_per_point",
		"jetstream_consume_points_per_s", "consume_cpu_ns_per_point", "ingest_vs_consume_ratio", "consume_vs_raw_ratio",
	} {
		v, ok := got[k].(float64)
		if !ok {
			t.Errorf("key %q missing or not a number (%v)", k, got[k])
			continue
		}
		if !(v > 0) {
			t.Errorf("%s = %v, want > 0", k, v)
		}
	}
	meta, ok := got["meta"].(map[string]any)
	if !ok {
		t.Fatalf("meta missing: %v", got["meta"])
	}
	for _, k := range []string{"date", "cpu", "go_version", "reps", "loadavg_start", "quick"} {
		if _, ok := meta[k]; !ok {
			t.Errorf("meta.%s missing", k)
		}
	}
}

func TestAckTime(t *testing.T) {
	for _, s := range []string{
		"$JS.ACK.EVENTS.collector.1.42.42.1700000000123456789.0",
		"$JS.ACK.dom.HASH.EVENTS.collector.1.42.42.1700000000123456789.0.tok",
	} {
		tm, ok := ackTime(s)
		if !ok || tm.UnixNano() != 1700000000123456789 {
			t.Errorf("ackTime(%q) = %v, %v", s, tm, ok)
		}
	}
	if _, ok := ackTime("$JS.ACK.bad"); ok {
		t.Error("ackTime accepted a short subject")
	}
}

// TestConsumerModes runs the consume phase with the other no-op consumers and
// checks that every message was counted; an unknown mode is refused.
func TestConsumerModes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded NATS server")
	}
	for _, mode := range []string{"fetch", "acknone"} {
		t.Run(mode, func(t *testing.T) {
			cfg := config{reps: 1, runs: 1, submitters: 1, claimers: 1, publishers: 2, batches: 5, points: 16, only: "ingest", consumer: mode}
			res, err := run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := res["jetstream_consume_points_per_s"].(float64); !(v > 0) {
				t.Errorf("consume figure %v, want > 0", res["jetstream_consume_points_per_s"])
			}
			if got := res["meta"].(map[string]any)["consumer"]; got != mode {
				t.Errorf("meta.consumer = %v, want %q", got, mode)
			}
		})
	}
	if _, err := run(config{reps: 1, runs: 1, submitters: 1, claimers: 1, publishers: 1, batches: 1, points: 1, consumer: "push"}); err == nil {
		t.Error("consumer mode push accepted")
	}
}
