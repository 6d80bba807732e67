package main

import (
	"encoding/json"
	"math"
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
		"mlp_b64_steps_per_s", "mlp_b256_steps_per_s", "cnn_b64_steps_per_s", "gpt_b16_steps_per_s",
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

// TestCompileTable checks the torch.compile ratios and their table from
// made-up figures.
func TestCompileTable(t *testing.T) {
	res := &results{Figures: map[string]float64{
		"compile_mlp_64_eager_steps_per_s": 500, "compile_mlp_64_inductor_steps_per_s": 400,
		"compile_mlp_64_gorch_steps_per_s": 650, "mlp_b64_steps_per_s": 1000,
		"compile_crossing_gorch_us_per_call": 25, "compile_crossing_aot_eager_us_per_call": 18,
	}}
	compileRatios(res)
	for k, want := range map[string]float64{
		"compile_mlp_64_gorch_vs_eager": 1.3, "compile_mlp_64_inductor_vs_eager": 0.8,
		"compile_mlp_64_gorch_vs_native": 0.65, "compile_crossing_us_per_call": 7,
	} {
		if got := res.Figures[k]; math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v; want %v", k, got, want)
		}
	}
	var sb strings.Builder
	printCompile(&sb, config{trainThreads: 1}, res)
	for _, want := range []string{"mlp          64     500.0     400.0     650.0    1000.0        1.30x         0.65x",
		"crossing into gorch: 7.0 µs per call"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, sb.String())
		}
	}
}
