package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/optim"
	"github.com/gorch/gorch/pkg/tensor"
	"github.com/gorch/gorch/pkg/train"
)

// The fixture runs. The first two share the ID prefix "20260101T", so
// that prefix is ambiguous; they differ in the learning rate only.
const (
	runA = "20260101T090000.000000Z-aaaa0001"
	runB = "20260101T100000.000000Z-aaaa0002"
	runC = "20260102T090000.000000Z-cccc0003"
)

// fixtureStore writes three real runs with experiment's Recorder into a
// temp store and returns its directory: runA and runB succeeded (lr 0.001
// and 0.01) with loss every step, test_accuracy every 20 steps, telemetry,
// layout counters and artifacts; runC failed after 10 steps.
func fixtureStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	store, err := experiment.NewLocalStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	type spec struct {
		id, name string
		lr       float64
		steps    int
		status   experiment.Status
		err      error
	}
	for _, s := range []spec{
		{runA, "mlp-slow", 0.001, 100, experiment.StatusSucceeded, nil},
		{runB, "mlp-fast", 0.01, 100, experiment.StatusSucceeded, nil},
		{runC, "cnn-broken", 0.01, 10, experiment.StatusFailed, errors.New("loss is NaN at step 9")},
	} {
		cfg, _ := json.Marshal(map[string]any{
			"model":      strings.SplitN(s.name, "-", 2)[0],
			"batch_size": 64,
			"optimizer":  map[string]any{"name": "adam", "lr": s.lr},
			"hidden":     []int{256},
		})
		rec, err := experiment.Create(ctx, store, experiment.Run{ID: s.id, Name: s.name, Config: cfg,
			Hyperparameters: map[string]float64{"lr": s.lr}, Seed: 7, GorchVersion: "test"}, experiment.LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for step := range s.steps {
			tm := rec.Start("step")
			loss := 2.3 * math.Exp(-float64(step)*s.lr*5)
			if s.status == experiment.StatusFailed && step == s.steps-1 {
				loss = math.NaN()
			}
			if err := rec.Log(int64(step), "loss", loss); err != nil {
				t.Fatal(err)
			}
			if step%20 == 19 {
				if err := rec.Log(int64(step), "test_accuracy", 0.5+0.4*(1-loss/2.3)); err != nil {
					t.Fatal(err)
				}
			}
			tm.Stop()
		}
		rec.SetLayout(map[string]experiment.OpStats{"matmul": {Checks: 200, Failures: 0}})
		if _, err := rec.PutArtifact(ctx, "ckpt-final.rtch", experiment.ArtifactCheckpoint, int64(s.steps), strings.NewReader("not really a checkpoint")); err != nil {
			t.Fatal(err)
		}
		if err := rec.Finish(ctx, s.status, s.err); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runCLI runs gorch in-process with args and returns stdout, stderr and
// the error main would print as "gorch: <err>".
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(context.Background())
	return stdout.String(), stderr.String(), err
}

// mustRun runs gorch in-process and fails the test on error.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, _, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("gorch %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// wantOneLineErr checks that err is one line mentioning every want.
func wantOneLineErr(t *testing.T, args []string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("gorch %s: no error, want one mentioning %q", strings.Join(args, " "), want)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("gorch %s: error %q is more than one line", strings.Join(args, " "), msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("gorch %s: error %q, want it to mention %q", strings.Join(args, " "), msg, w)
		}
	}
}

// tableRows splits a tabwriter table into rows of fields.
func tableRows(out string) [][]string {
	var rows [][]string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 {
			rows = append(rows, f)
		}
	}
	return rows
}

func TestRunsList(t *testing.T) {
	dir := fixtureStore(t)
	out := mustRun(t, "runs", "list", "--data-dir", dir)
	rows := tableRows(out)
	wantHead := []string{"ID", "NAME", "STATUS", "DURATION", "LOSS", "TEST_ACCURACY"}
	if len(rows) != 4 || strings.Join(rows[0], " ") != strings.Join(wantHead, " ") {
		t.Fatalf("runs list:\n%s\nwant a header %v and 3 rows", out, wantHead)
	}
	// Columns are aligned: every row's NAME starts where the header's does.
	lines := strings.Split(out, "\n")
	col := strings.Index(lines[0], "NAME")
	for _, l := range lines[1:4] {
		if l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("row %q is not aligned with header %q", l, lines[0])
		}
	}
	for i, want := range []struct{ id, name, status, loss, acc string }{
		{runA, "mlp-slow", "succeeded", fmtFloat(2.3 * math.Exp(-99*0.001*5)), fmtFloat(0.5 + 0.4*(1-math.Exp(-99*0.001*5)))},
		{runB, "mlp-fast", "succeeded", fmtFloat(2.3 * math.Exp(-99*0.01*5)), fmtFloat(0.5 + 0.4*(1-math.Exp(-99*0.01*5)))},
		{runC, "cnn-broken", "failed", fmtFloat(2.3 * math.Exp(-8*0.01*5)), "-"},
	} {
		r := rows[i+1]
		got := []string{r[0], r[1], r[2], r[4], r[5]}
		if strings.Join(got, " ") != strings.Join([]string{want.id, want.name, want.status, want.loss, want.acc}, " ") {
			t.Errorf("row %d = %v, want %+v", i+1, r, want)
		}
	}

	out = mustRun(t, "runs", "list", "--data-dir", dir, "--metrics", "test_accuracy")
	if rows := tableRows(out); len(rows[0]) != 5 || rows[0][4] != "TEST_ACCURACY" {
		t.Errorf("runs list --metrics test_accuracy header = %v", rows[0])
	}
}

func TestRunsListJSON(t *testing.T) {
	dir := fixtureStore(t)
	out := mustRun(t, "runs", "list", "--data-dir", dir, "--json")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("runs list --json printed %d lines, want 3:\n%s", len(lines), out)
	}
	for i, id := range []string{runA, runB, runC} {
		var s experiment.Summary
		if err := json.Unmarshal([]byte(lines[i]), &s); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, lines[i])
		}
		if s.Run.ID != id || s.Metrics["loss"].Count == 0 {
			t.Errorf("line %d: run %q with %d losses, want %s with some", i, s.Run.ID, s.Metrics["loss"].Count, id)
		}
		if wantComplete := id != runC; s.Complete != wantComplete {
			t.Errorf("run %s: complete = %v, want %v", id, s.Complete, wantComplete)
		}
	}
}

// TestRunsShowResumed: a run resumed from step 2 after its first attempt
// logged steps 1–4 shows where it resumed, counts each step once and the
// rest as superseded, and plots one value per step.
func TestRunsShowResumed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := experiment.NewLocalStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := experiment.Create(ctx, st, experiment.Run{ID: "resumed"}, experiment.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for s := int64(1); s <= 4; s++ {
		_ = rec.Log(s, "loss", 1/float64(s))
	}
	if err := rec.Flush(); err != nil {
		t.Fatal(err)
	}
	if rec, err = experiment.Resume(ctx, st, "resumed", experiment.LogOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := rec.SetResume(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for s := int64(3); s <= 6; s++ {
		_ = rec.Log(s, "loss", 1/float64(s))
	}
	if err := rec.Finish(ctx, experiment.StatusSucceeded, nil); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "runs", "show", "--data-dir", dir, "resumed")
	for _, want := range []string{"Resumed:", "attempt 2 from step 2", "6 (+2 superseded)"} {
		if !strings.Contains(out, want) {
			t.Errorf("runs show output lacks %q:\n%s", want, out)
		}
	}
	pts, _, err := metricPoints(ctx, experiment.NewReader(st), "resumed", "loss")
	if err != nil || len(pts) != 6 {
		t.Errorf("plot points = %v, %v; want steps 1–6 once each", pts, err)
	}
}

func TestRunsShow(t *testing.T) {
	dir := fixtureStore(t)
	out := mustRun(t, "runs", "show", "--data-dir", dir, "20260102") // a unique prefix of runC
	for _, want := range []string{
		"ID:", runC, "cnn-broken", "failed (incomplete, 0 records dropped)", "loss is NaN at step 9",
		"Config:", "optimizer.lr", "hidden[0]", "Hyperparameters:",
		"Metrics:", "P95", "1 non-finite", "Telemetry (seconds):", "step ",
		"Layout checks:", "matmul", "Artifacts:", "ckpt-final.rtch", "checkpoint",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("runs show output lacks %q:\n%s", want, out)
		}
	}

	out = mustRun(t, "runs", "show", "--data-dir", dir, runA, "--json")
	var s experiment.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("runs show --json: %v\n%s", err, out)
	}
	if m := s.Metrics["loss"]; s.Run.ID != runA || !s.Complete || m.Count != 100 || m.LastStep != 99 || s.Telemetry["step"].Count != 100 {
		t.Errorf("runs show --json = run %s complete %v loss %+v", s.Run.ID, s.Complete, m)
	}

	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"runs", "show", "--data-dir", dir, "zzz"}, []string{"run zzz not found"}},
		{[]string{"runs", "show", "--data-dir", dir, "20260101T"}, []string{"ambiguous", runA, runB}},
		{[]string{"runs", "show", "--data-dir", dir, "../etc"}, []string{"run ../etc not found"}},
		{[]string{"runs", "show", "--data-dir", dir}, []string{"accepts 1 arg(s)"}},
	} {
		_, _, err := runCLI(t, c.args...)
		wantOneLineErr(t, c.args, err, c.want...)
	}
}

func TestRunsCompare(t *testing.T) {
	dir := fixtureStore(t)
	out := mustRun(t, "runs", "compare", "--data-dir", dir, runA, "20260101T10")
	rows := map[string][]string{}
	for _, r := range tableRows(out) {
		rows[r[0]] = r[1:]
	}
	if got := rows["RUN"]; len(got) != 2 || got[0] != runA || got[1] != runB {
		t.Errorf("header = %v, want the two run IDs\n%s", got, out)
	}
	if got := rows["optimizer.lr"]; len(got) != 2 || got[0] != "0.001" || got[1] != "0.01" {
		t.Errorf("optimizer.lr row = %v, want [0.001 0.01]\n%s", got, out)
	}
	if got := rows["hp.lr"]; len(got) != 2 || got[0] != "0.001" || got[1] != "0.01" {
		t.Errorf("hp.lr row = %v, want [0.001 0.01]\n%s", got, out)
	}
	for _, same := range []string{"batch_size", "model", "seed", "hidden[0]"} {
		if _, ok := rows[same]; ok {
			t.Errorf("compare lists %q, which does not differ\n%s", same, out)
		}
	}
	if got := rows["loss"]; len(got) != 2 || got[0] == got[1] {
		t.Errorf("loss row = %v, want two different final losses\n%s", got, out)
	}

	out = mustRun(t, "runs", "compare", "--data-dir", dir, runA, runB, runC, "--json")
	var cj compareJSON
	if err := json.Unmarshal([]byte(out), &cj); err != nil {
		t.Fatalf("compare --json: %v\n%s", err, out)
	}
	if lr := cj.Config["optimizer.lr"]; len(lr) != 3 || *lr[0] != "0.001" || *lr[2] != "0.01" {
		t.Errorf("compare --json optimizer.lr = %v", lr)
	}
	if m := cj.Config["model"]; len(m) != 3 || *m[0] != "mlp" || *m[2] != "cnn" {
		t.Errorf("compare --json model = %v", m)
	}
	if acc := cj.Metrics["test_accuracy"]; len(acc) != 3 || acc[0] == nil || acc[2] != nil {
		t.Errorf("compare --json test_accuracy = %v, want values for A and B, null for C", acc)
	}

	args := []string{"runs", "compare", "--data-dir", dir, runA}
	_, _, err := runCLI(t, args...)
	wantOneLineErr(t, args, err, "requires at least 2 arg(s)")
	args = []string{"runs", "compare", "--data-dir", dir, runA, runA}
	_, _, err = runCLI(t, args...)
	wantOneLineErr(t, args, err, "given twice")
}

func TestRunsPlot(t *testing.T) {
	dir := fixtureStore(t)
	outDir := t.TempDir()
	for _, c := range []struct {
		file  string
		check func([]byte) bool
	}{
		{"loss.png", func(b []byte) bool { return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) }},
		{"acc.SVG", func(b []byte) bool { return bytes.Contains(b, []byte("<svg")) }},
	} {
		// runC never logged test_accuracy, so it is in the loss plot only.
		metric, runs := "loss", []string{runA, runB, "20260102"}
		if strings.HasPrefix(c.file, "acc") {
			metric, runs = "test_accuracy", runs[:2]
		}
		path := filepath.Join(outDir, c.file)
		args := append([]string{"runs", "plot", "--data-dir", dir, "--metric", metric, "-o", path}, runs...)
		out := mustRun(t, args...)
		if !strings.Contains(out, "wrote "+path) {
			t.Errorf("plot printed %q", out)
		}
		b, err := os.ReadFile(path)
		if err != nil || !c.check(b) {
			t.Errorf("%s: %v, %d bytes starting %q", c.file, err, len(b), b[:min(len(b), 16)])
		}
		if keep := os.Getenv("GORCH_KEEP_PLOT"); keep != "" { // to look at it
			os.WriteFile(filepath.Join(keep, c.file), b, 0o644)
		}
	}
	ents, _ := os.ReadDir(outDir)
	if len(ents) != 2 {
		t.Errorf("output directory holds %d entries, want the 2 plots (no temp files)", len(ents))
	}

	bad := filepath.Join(outDir, "bad.png")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{runA, "--metric", "nope", "-o", bad}, []string{`metric "nope"`, runA, "loss, test_accuracy"}},
		{[]string{runA, runC, "--metric", "test_accuracy", "-o", bad}, []string{`metric "test_accuracy"`, runC}},
		{[]string{runA, "-o", filepath.Join(outDir, "x.jpg")}, []string{"must end in .png or .svg"}},
		{[]string{runA}, []string{"-o"}},
		{[]string{runA, "-o", filepath.Join(outDir, "no-such-dir", "x.png")}, []string{"no-such-dir"}},
	} {
		args := append([]string{"runs", "plot", "--data-dir", dir}, c.args...)
		_, _, err := runCLI(t, args...)
		wantOneLineErr(t, args, err, c.want...)
	}
	if ents, _ := os.ReadDir(outDir); len(ents) != 2 {
		t.Errorf("failed plots left files behind: %v", ents)
	}
}

func TestMissingDataDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	for _, args := range [][]string{
		{"runs", "list", "--data-dir", missing},
		{"runs", "show", "--data-dir", missing, runA},
		{"runs", "compare", "--data-dir", missing, runA, runB},
		{"runs", "plot", "--data-dir", missing, runA, "-o", filepath.Join(t.TempDir(), "x.png")},
	} {
		_, _, err := runCLI(t, args...)
		wantOneLineErr(t, args, err, missing, "does not exist", "--data-dir")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing data dir was created: %v", err)
	}
}

func TestEmptyDataDir(t *testing.T) {
	dir := t.TempDir()
	out, stderr, err := runCLI(t, "runs", "list", "--data-dir", dir)
	if err != nil || out != "" || !strings.Contains(stderr, "no runs") {
		t.Errorf("runs list on an empty store = %q, %q, %v", out, stderr, err)
	}
	out = mustRun(t, "runs", "list", "--data-dir", dir, "--json")
	if out != "" {
		t.Errorf("runs list --json on an empty store = %q, want nothing", out)
	}
}

// fixtureCheckpoint saves a real checkpoint of a 4-8-3 MLP after one Adam
// step (so the optimizer has moment buffers) and returns its path.
func fixtureCheckpoint(t *testing.T) string {
	t.Helper()
	model, err := nn.MLP([]int{4, 8, 3}, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	opt, err := optim.NewAdam(model.Parameters(), optim.DefaultAdamConfig(0.01))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := tensor.New([]float32{1, 2, 3, 4, -1, -2, -3, -4}, 2, 4)
	y, _ := tensor.New([]float32{0, 2}, 2)
	logits, err := model.Forward(autograd.Const(x))
	if err != nil {
		t.Fatal(err)
	}
	loss, err := autograd.CrossEntropy(logits, y)
	if err != nil {
		t.Fatal(err)
	}
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	if err := opt.Step(); err != nil {
		t.Fatal(err)
	}
	ck, err := train.CheckpointFromModel(model, opt, experiment.TrainState{Step: 1, Epoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	ck.ModelConfig = json.RawMessage(`{"arch":"mlp","sizes":[4,8,3]}`)
	path := filepath.Join(t.TempDir(), "model.rtch")
	if err := experiment.SaveCheckpointFile(path, ck); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCkptVerify(t *testing.T) {
	path := fixtureCheckpoint(t)
	fi, _ := os.Stat(path)
	out := mustRun(t, "ckpt", "verify", path)
	// 2 layers × (weight, bias) params + 2 Adam moments each.
	if want := path + ": ok (12 tensors, " + strconv.FormatInt(fi.Size(), 10) + " bytes)\n"; out != want {
		t.Errorf("ckpt verify = %q, want %q", out, want)
	}

	good, _ := os.ReadFile(path)
	info, err := experiment.VerifyCheckpoint(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	dataOff := info.Size - 32 - info.DataBytes
	for _, c := range []struct {
		name   string
		mutate func([]byte) []byte
		reason experiment.Reason
	}{
		{"flipped tensor byte", func(b []byte) []byte { b[dataOff+info.Tensors[0].Offset] ^= 1; return b }, experiment.ReasonTensorChecksum},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b }, experiment.ReasonBadMagic},
		{"truncated", func(b []byte) []byte { return b[:len(b)-100] }, 0},
		{"empty", func([]byte) []byte { return nil }, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.rtch")
			if err := os.WriteFile(bad, c.mutate(bytes.Clone(good)), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, sub := range []string{"verify", "inspect"} {
				args := []string{"ckpt", sub, bad}
				out, _, err := runCLI(t, args...)
				var ce *experiment.CorruptionError
				if !errors.As(err, &ce) {
					t.Fatalf("gorch %v: err = %v, want a CorruptionError", args, err)
				}
				if c.reason != 0 && ce.Reason != c.reason {
					t.Errorf("gorch %v: reason %v, want %v", args, ce.Reason, c.reason)
				}
				wantOneLineErr(t, args, err, bad, "invalid checkpoint", ce.Reason.String())
				if out != "" {
					t.Errorf("gorch %v printed %q on stdout", args, out)
				}
			}
		})
	}

	args := []string{"ckpt", "verify", filepath.Join(t.TempDir(), "missing.rtch")}
	_, _, err = runCLI(t, args...)
	wantOneLineErr(t, args, err, "missing.rtch", "no such file")
	args = []string{"ckpt", "verify", t.TempDir()}
	_, _, err = runCLI(t, args...)
	wantOneLineErr(t, args, err, "not a regular file")
}

func TestCkptInspect(t *testing.T) {
	path := fixtureCheckpoint(t)
	out := mustRun(t, "ckpt", "inspect", path)
	for _, want := range []string{
		"RTCH v1.0", "Optimizer:", "adam", "step 1, epoch 2", "Parameters:", "67",
		`{"arch":"mlp","sizes":[4,8,3]}`, "0.weight", "[8 4]", "128", "param", "optim",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ckpt inspect output lacks %q:\n%s", want, out)
		}
	}

	out = mustRun(t, "ckpt", "inspect", path, "--json")
	var got ckptJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("ckpt inspect --json: %v\n%s", err, out)
	}
	fi, _ := os.Stat(path)
	if got.Version != "1.0" || got.Size != fi.Size() || got.Optimizer != "adam" || got.Train.Step != 1 ||
		got.Train.Epoch != 2 || got.Parameters != 4*8+8+8*3+3 || len(got.Tensors) != 12 {
		t.Errorf("ckpt inspect --json = %+v", got)
	}
	var w tensorJSON
	for _, tj := range got.Tensors {
		if tj.Name == "0.weight" {
			w = tj
		}
	}
	if len(w.Shape) != 2 || w.Shape[0] != 8 || w.Shape[1] != 4 || w.NBytes != 128 || w.Group != "param" {
		t.Errorf("tensor 0.weight = %+v, want shape [8 4], 128 bytes, group param", w)
	}
}

// TestRecordsBinary runs the built binary: bad input exits 1 with one
// "gorch: " line on stderr; a valid checkpoint exits 0.
func TestRecordsBinary(t *testing.T) {
	testutil.Long(t, "runs gorch commands as processes")
	bin := buildGorch(t)
	dir := fixtureStore(t)
	ck := fixtureCheckpoint(t)
	corrupt := filepath.Join(t.TempDir(), "corrupt.rtch")
	b, _ := os.ReadFile(ck)
	os.WriteFile(corrupt, b[:len(b)-1], 0o644)
	missing := filepath.Join(t.TempDir(), "nope")
	for _, c := range []struct {
		args     []string
		exit     int
		want     string // on stdout if exit is 0, else on stderr
		inStdout bool
	}{
		{[]string{"ckpt", "verify", ck}, 0, ": ok (12 tensors", true},
		{[]string{"ckpt", "verify", corrupt}, 1, "invalid checkpoint", false},
		{[]string{"runs", "list", "--data-dir", missing}, 1, "does not exist", false},
		{[]string{"runs", "list", "--data-dir", dir}, 0, runB, true},
		{[]string{"runs", "show", "--data-dir", dir, "nope"}, 1, "run nope not found", false},
		{[]string{"runs", "bogus"}, 1, `unknown command "bogus" for "gorch runs"`, false},
		{[]string{"ckpt", "bogus"}, 1, `unknown command "bogus" for "gorch ckpt"`, false},
		{[]string{"runs"}, 0, "Available Commands", true},
	} {
		cmd := exec.Command(bin, c.args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := exitCode(err)
		if code != c.exit {
			t.Errorf("gorch %v: exit %d (%v), want %d; stderr %q", c.args, code, err, c.exit, stderr.String())
		}
		if c.inStdout {
			if !strings.Contains(stdout.String(), c.want) {
				t.Errorf("gorch %v: stdout %q, want it to mention %q", c.args, stdout.String(), c.want)
			}
			continue
		}
		msg := stderr.String()
		if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "gorch: ") || !strings.Contains(msg, c.want) {
			t.Errorf("gorch %v: stderr = %q, want one \"gorch: \" line mentioning %q", c.args, msg, c.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("gorch %v: stdout = %q on failure", c.args, stdout.String())
		}
	}
}

// exitCode is the exit status of a finished command, 0 if err is nil.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
