package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/kernels"
)

// TestQuickRun runs the gorch side of the harness in quick mode (no torch)
// and checks that results.json has every figure's key with a positive value
// and the metadata. No timing assertions.
func TestQuickRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "results.json")
	cfg := config{
		quick:        true,
		reps:         1,
		minTime:      5 * time.Millisecond,
		out:          out,
		trainThreads: 1,
		sizes:        []int{64},
		threads:      []int{1, 2},
	}
	res, err := run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("results.json is not JSON: %v", err)
	}
	keys := []string{
		"matmul_64_t1_gflops", "matmul_64_t2_gflops",
		"mlp_b64_steps_per_s", "mlp_b256_steps_per_s", "cnn_b64_steps_per_s",
	}
	if kernels.FMAPeakWidth() != "" {
		keys = append(keys, "fma_peak_t1_gflops", "fma_peak_t2_gflops", "matmul_64_t1_pct_fma_peak")
	}
	for _, k := range keys {
		v, ok := got[k].(float64)
		if !ok {
			t.Errorf("results.json: key %q missing or not a number (%v)", k, got[k])
			continue
		}
		if !(v > 0) {
			t.Errorf("results.json: %s = %v, want > 0", k, v)
		}
	}
	for k := range got {
		if strings.Contains(k, "_torch_") {
			t.Errorf("torch key %q present in a gorch-only run", k)
		}
	}
	meta, ok := got["meta"].(map[string]any)
	if !ok {
		t.Fatalf("results.json: no meta object")
	}
	for _, k := range []string{"date", "cpu_model", "kernel_path", "threads", "train_threads", "torch_version"} {
		if _, ok := meta[k]; !ok {
			t.Errorf("meta: key %q missing", k)
		}
	}
	if len(res.order) == 0 {
		t.Fatal("no figures measured")
	}
	var sb strings.Builder
	printTable(&sb, cfg, res)
	if sb.Len() == 0 {
		t.Error("empty table")
	}
}

// TestRunSteps checks the instruction counts' child mode: it trains and
// names the kernel path, and rejects a malformed spec.
func TestRunSteps(t *testing.T) {
	if err := runSteps("mlp_8:1"); err != nil {
		t.Errorf("runSteps(mlp_8:1) = %v; want nil", err)
	}
	for _, bad := range []string{"mlp", "mlp_8", "mlp_x:1", "rnn_8:1", "mlp_8:-1"} {
		if err := runSteps(bad); err == nil {
			t.Errorf("runSteps(%q) = nil; want an error", bad)
		}
	}
}
