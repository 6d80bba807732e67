package train

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/tensor"
)

func newSink(t testing.TB, spec *Spec) (experiment.Store, *RecordSink) {
	t.Helper()
	store, err := experiment.NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sink, err := NewRun(context.Background(), store, spec, "test")
	if err != nil {
		t.Fatal(err)
	}
	return store, sink
}

func summary(t testing.TB, store experiment.Store, id string) *experiment.Summary {
	t.Helper()
	s, err := experiment.NewReader(store).GetSummary(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

// blobSpec is a fast synthetic run: an MLP with dropout on Gaussian blobs.
func blobSpec(steps int) *Spec {
	return &Spec{
		Model:     ModelSpec{Name: "mlp", Hidden: []int{32, 16}, Dropout: 0.1},
		Dataset:   DatasetSpec{Name: "blobs", Size: 512},
		Optimizer: OptimizerSpec{Name: "adamw", LR: 3e-3, ClipNorm: 5},
		Schedule:  ScheduleSpec{Name: "cosine", Warmup: 5},
		Steps:     steps, BatchSize: 32, Seed: 7, EvalEvery: 10, CkptEvery: 10, KeepLast: 2, LogEvery: 1,
	}
}

func TestRunSucceedsAndRecords(t *testing.T) {
	spec := blobSpec(40)
	store, sink := newSink(t, spec)
	res, err := Run(context.Background(), spec, sink, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 40 || res.TestAccuracy < 0.8 {
		t.Errorf("result = %+v, want 40 steps and accuracy >= 0.8", res)
	}
	s := summary(t, store, res.RunID)
	if s.Status != experiment.StatusSucceeded || !s.Complete || s.Dropped != 0 {
		t.Errorf("summary: status %v complete %v dropped %d", s.Status, s.Complete, s.Dropped)
	}
	if m := s.Metrics["train/loss"]; m.Count != 40 || m.LastStep != 40 {
		t.Errorf("train/loss summary = %+v", m)
	}
	if s.Telemetry["step"].Count != 40 || s.Telemetry["checkpoint"].Count != 4 {
		t.Errorf("telemetry summary: step %+v checkpoint %+v", s.Telemetry["step"], s.Telemetry["checkpoint"])
	}
	if tot := layoutTotal(s); tot == 0 {
		t.Errorf("summary has no layout-validation counts")
	}
	// keep_last 2: only steps 30 and 40 remain, LATEST points at 40.
	keys, err := store.List(context.Background(), "runs/"+res.RunID+"/checkpoints/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"LATEST", "step-000000000030.rtch", "step-000000000040.rtch"}
	if len(keys) != len(want) {
		t.Fatalf("checkpoint keys = %v, want %v", keys, want)
	}
	for i, k := range keys {
		if filepath.Base(k) != want[i] {
			t.Errorf("checkpoint key %d = %s, want %s", i, k, want[i])
		}
	}
	arts, err := experiment.NewReader(store).Artifacts(context.Background(), res.RunID)
	if err != nil || len(arts) != 4 || arts[3].Kind != experiment.ArtifactCheckpoint || arts[3].Step != 40 {
		t.Errorf("artifacts = %+v, %v", arts, err)
	}
}

func layoutTotal(s *experiment.Summary) uint64 {
	var n uint64
	for _, c := range s.Layout {
		n += c.Checks
	}
	return n
}

func TestRunFailsAndRecordsError(t *testing.T) {
	spec := blobSpec(200)
	spec.Optimizer = OptimizerSpec{Name: "sgd", LR: 1e30} // diverges
	spec.Schedule = ScheduleSpec{}
	store, sink := newSink(t, spec)
	_, err := Run(context.Background(), spec, sink, Options{})
	if !errors.Is(err, errs.Training) {
		t.Fatalf("Run err = %v, want a training error", err)
	}
	s := summary(t, store, sink.RunID())
	if s.Status != experiment.StatusFailed || s.Complete || !strings.Contains(s.Run.Error, "loss is") {
		t.Errorf("summary after failure: status %v complete %v error %q", s.Status, s.Complete, s.Run.Error)
	}
}

func TestRunPanicPersistsThenReraises(t *testing.T) {
	spec := blobSpec(40)
	store, sink := newSink(t, spec)
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the original panic", r)
			}
		}()
		_, _ = Run(context.Background(), spec, sink, Options{Progress: func(p Progress) {
			if p.Step >= 10 {
				panic("boom")
			}
		}})
	}()
	s := summary(t, store, sink.RunID())
	if s.Status != experiment.StatusFailed || s.Complete || !strings.Contains(s.Run.Error, "panic: boom") {
		t.Errorf("summary after panic: status %v complete %v error %q", s.Status, s.Complete, s.Run.Error)
	}
}

// TestExactResume: N steps straight, and N/2 + interrupt (checkpoint) +
// resume + N/2, give bit-identical parameters and optimizer state and the
// same metric values.
func TestExactResume(t *testing.T) {
	t.Run("mlp", func(t *testing.T) { checkExactResume(t, 60, blobSpec) })
	t.Run("gpt dropout", func(t *testing.T) { checkExactResume(t, 20, gptSpec) })
}

// gptSpec is a tiny GPT with dropout on the grammar text for n steps.
func gptSpec(n int) *Spec {
	return &Spec{Model: ModelSpec{Name: "gpt", Layers: 1, DModel: 16, Heads: 2, Context: 16, Dropout: 0.1},
		Dataset: DatasetSpec{Name: "grammar", Size: 64}, Optimizer: OptimizerSpec{Name: "adamw", LR: 3e-3},
		Steps: n, BatchSize: 8, Seed: 5, LogEvery: 1, EvalEvery: 5, CkptEvery: 5}
}

// checkExactResume runs spec(n) straight and interrupted at n/2 then
// resumed, and requires bit-identical checkpoints and metrics.
func checkExactResume(t *testing.T, n int, mk func(int) *Spec) {
	ctx := context.Background()
	spec := mk(n)
	spec.CkptEvery = 0 // only the interrupt and the end checkpoint
	storeA, sinkA := newSink(t, spec)
	if _, err := Run(ctx, spec, sinkA, Options{}); err != nil {
		t.Fatal(err)
	}

	spec2 := mk(n)
	spec2.CkptEvery = 0
	storeB, sinkB := newSink(t, spec2)
	cctx, cancel := context.WithCancel(ctx)
	_, err := Run(cctx, spec2, sinkB, Options{Progress: func(p Progress) {
		if p.Step == n/2 {
			cancel()
		}
	}})
	spec2.LogEvery = 0
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run err = %v", err)
	}
	if s := summary(t, storeB, sinkB.RunID()); s.Status != experiment.StatusInterrupted || s.Complete {
		t.Fatalf("interrupted summary: status %v complete %v", s.Status, s.Complete)
	}
	specR, sinkR, err := ResumeRun(ctx, storeB, sinkB.RunID())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, specR, sinkR, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.StartStep != n/2 || res.Steps != n {
		t.Errorf("resumed run: start %d steps %d, want %d and %d", res.StartStep, res.Steps, n/2, n)
	}

	ckA, ckB := lastCheckpoint(t, storeA, sinkA.RunID()), lastCheckpoint(t, storeB, sinkB.RunID())
	if ckA.Train.Step != int64(n) || ckB.Train.Step != int64(n) {
		t.Fatalf("final checkpoints at steps %d and %d", ckA.Train.Step, ckB.Train.Step)
	}
	if len(ckA.Tensors) != len(ckB.Tensors) {
		t.Fatalf("%d tensors after resume, %d straight", len(ckB.Tensors), len(ckA.Tensors))
	}
	for i, a := range ckA.Tensors {
		name, ad, bd := a.Name, a.Data, ckB.Tensors[i].Data
		for i := range ad {
			if math.Float32bits(ad[i]) != math.Float32bits(bd[i]) {
				t.Fatalf("tensor %s[%d] = %v after resume, %v straight (not bit-identical)", name, i, bd[i], ad[i])
			}
		}
	}
	for name, pa := range ckA.Optimizer.Params {
		pb := ckB.Optimizer.Params[name]
		if pa.Step != pb.Step {
			t.Errorf("optimizer step of %s: %d vs %d", name, pa.Step, pb.Step)
		}
		for buf, va := range pa.Buffers {
			vb := pb.Buffers[buf]
			for i := range va {
				if math.Float32bits(va[i]) != math.Float32bits(vb[i]) {
					t.Fatalf("optimizer %s/%s[%d] differs after resume", name, buf, i)
				}
			}
		}
	}
	// Every metric at every step has the same value, and the summary
	// counts each step once.
	sa, sb := summary(t, storeA, sinkA.RunID()), summary(t, storeB, sinkB.RunID())
	if a, b := sa.Metrics["train/loss"], sb.Metrics["train/loss"]; a.Count != int64(n) || b.Count != int64(n) || b.Superseded != 0 {
		t.Errorf("summary train/loss count %d straight, %d (superseded %d) with resume; want %d, %d, 0", a.Count, b.Count, b.Superseded, n, n)
	}
	if at := sb.Run.Attempts; len(at) != 2 || at[0].ResumeStep != 0 || at[1].ResumeStep != int64(n/2) || at[1].Status != experiment.StatusSucceeded {
		t.Errorf("attempts = %+v; want from scratch, then resumed from step %d and succeeded", at, n/2)
	}
	ma, mb := metricValues(t, storeA, sinkA.RunID()), metricValues(t, storeB, sinkB.RunID())
	if len(ma) != len(mb) {
		t.Errorf("%d metric values straight, %d with resume", len(ma), len(mb))
	}
	for k, va := range ma {
		if vb, ok := mb[k]; !ok || math.Float64bits(va) != math.Float64bits(vb) {
			t.Errorf("metric %v = %v with resume, %v straight", k, vb, va)
		}
	}
}

type metricKey struct {
	step int64
	name string
}

func metricValues(t *testing.T, store experiment.Store, id string) map[metricKey]float64 {
	t.Helper()
	out := map[metricKey]float64{}
	for m, err := range experiment.NewReader(store).ReadMetrics(context.Background(), id) {
		if err != nil {
			t.Fatal(err)
		}
		out[metricKey{m.Step, m.Name}] = m.Value
	}
	return out
}

func lastCheckpoint(t *testing.T, store experiment.Store, id string) *experiment.Checkpoint {
	t.Helper()
	keys, err := store.List(context.Background(), "runs/"+id+"/checkpoints/")
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for _, k := range keys {
		if strings.HasSuffix(k, ".rtch") {
			last = k
		}
	}
	b, err := store.Get(context.Background(), last)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := experiment.DecodeCheckpoint(bytesReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// TestResumeSkipsCorruptCheckpoint: a corrupt newest checkpoint is passed
// over for the newest valid one.
func TestResumeSkipsCorruptCheckpoint(t *testing.T) {
	ctx := context.Background()
	spec := blobSpec(40)
	dir := t.TempDir()
	store, err := experiment.NewLocalStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := NewRun(ctx, store, spec, "test")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	_, err = Run(cctx, spec, sink, Options{Progress: func(p Progress) {
		if p.Step == 25 {
			cancel()
		}
	}})
	spec.LogEvery = 0
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v", err)
	}
	// Newest is step 25 (the interrupt); corrupt it.
	newest := filepath.Join(dir, "runs", sink.RunID(), "checkpoints", "step-000000000025.rtch")
	b, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(newest, b, 0o644); err != nil {
		t.Fatal(err)
	}
	specR, sinkR, err := ResumeRun(ctx, store, sink.RunID())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, specR, sinkR, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.StartStep != 20 {
		t.Errorf("resumed from step %d, want 20 (the newest valid checkpoint)", res.StartStep)
	}
}

func TestSpecParsing(t *testing.T) {
	good := `
name: blobs-test
model: {name: mlp, hidden: [16]}
dataset: {name: blobs, size: 64}
optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
steps: 5
batch_size: 8
seed: 3
`
	s, err := ParseSpec("good.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "blobs-test" || s.Optimizer.Momentum != 0.9 || s.KeepLast != 3 || s.LogEvery != 100 {
		t.Errorf("parsed spec = %+v", s)
	}
	js, err := ParseSpec("good.json", s.JSON())
	if err != nil || js.Model.Hidden[0] != 16 {
		t.Errorf("JSON round trip: %+v, %v", js, err)
	}
	bad := []struct{ src, want string }{
		{"model: {name: mlp}\ndataset: {name: blobs}\noptimizer: {name: sgd, lr: 0.1}\nsteps: 5\nbatch_size: 8\nepoch: 2\n", `unknown field "epoch"`},
		{"model: {name: mlp}\ndataset: {name: blobs}\noptimizer: {name: sgd, lr: fast}\nsteps: 5\nbatch_size: 8\n", `field "optimizer.lr"`},
		{"model: {name: mlp}\ndataset: {name: blobs}\noptimizer: {name: sgd, lr: 0.1}\nsteps: 5\n", `field "batch_size"`},
		{"model: {name: mlp}\ndataset: {name: imagenet}\noptimizer: {name: sgd, lr: 0.1}\nsteps: 5\nbatch_size: 1\n", `field "dataset.name"`},
		{"model: {name: mlp}\ndataset: {name: blobs}\noptimizer: {name: sgd, lr: 0.1}\nsteps: 5\nepochs: 1\nbatch_size: 1\n", `field "steps"`},
		{"model: {name: gpt, d_model: 30, heads: 4}\ndataset: {name: grammar}\noptimizer: {name: adam, lr: 0.1}\nsteps: 5\nbatch_size: 1\n", `field "model.heads"`},
		{"model: {name: gpt}\ndataset: {name: blobs}\noptimizer: {name: adam, lr: 0.1}\nsteps: 5\nbatch_size: 1\n", `needs a text dataset`},
		{"model: {name: mlp}\ndataset: {name: grammar}\noptimizer: {name: adam, lr: 0.1}\nsteps: 5\nbatch_size: 1\n", `field "dataset.name"`},
		{"model: {name: gpt, vocab: 3}\ndataset: {name: grammar}\noptimizer: {name: adam, lr: 0.1}\nsteps: 5\nbatch_size: 1\n", `field "model.vocab"`},
		{"model: {name: gpt, context: -1}\ndataset: {name: grammar}\noptimizer: {name: adam, lr: 0.1}\nsteps: 5\nbatch_size: 1\n", `field "model.context"`},
		{"model: [", "did not find expected node content"},
		{"", "empty spec"},
	}
	for _, c := range bad {
		_, err := ParseSpec("bad.yaml", []byte(c.src))
		if !errors.Is(err, errs.Config) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.yaml") {
			t.Errorf("ParseSpec(%q) err = %v, want a config error mentioning %q and the file", c.src, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
	}
	if _, err := LoadSpec(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, errs.Config) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadSpec(missing) err = %v", err)
	}
}

func TestMissingDatasetIsDataError(t *testing.T) {
	spec := &Spec{Model: ModelSpec{Name: "mlp"}, Dataset: DatasetSpec{Name: "fashion-mnist", Dir: t.TempDir()},
		Optimizer: OptimizerSpec{Name: "adam", LR: 1e-3}, Epochs: 1, BatchSize: 8}
	store, sink := newSink(t, spec)
	_, err := Run(context.Background(), spec, sink, Options{})
	if !errors.Is(err, errs.Data) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want a data error wrapping ErrNotExist", err)
	}
	if s := summary(t, store, sink.RunID()); s.Status != experiment.StatusFailed {
		t.Errorf("status = %v, want failed", s.Status)
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// scopeSink keeps the layout counters a run reports and, at step meet,
// waits for every run sharing its barrier, so concurrent runs overlap.
type scopeSink struct {
	*RecordSink
	layout  map[string]tensor.OpStats
	meet    int64
	barrier *sync.WaitGroup
}

func (s *scopeSink) SetLayout(m map[string]tensor.OpStats) { s.layout = m }

func (s *scopeSink) Log(step int64, name string, v float64) error {
	if step == s.meet && name == "train/loss" {
		s.barrier.Done()
		s.barrier.Wait()
	}
	return s.RecordSink.Log(step, name, v)
}

// TestConcurrentRunsKeepTheirOwnLayoutCounters trains two different runs
// alone, then both at once in this process, meeting mid-run; each must
// report the same layout counters as when it ran alone.
func TestConcurrentRunsKeepTheirOwnLayoutCounters(t *testing.T) {
	small := blobSpec(20)
	small.Model.Hidden = []int{8}
	specs := []*Spec{blobSpec(20), small}
	train := func(specs []*Spec) []map[string]tensor.OpStats {
		var barrier, done sync.WaitGroup
		barrier.Add(len(specs))
		sinks := make([]*scopeSink, len(specs))
		errs := make([]error, len(specs))
		for i, spec := range specs {
			_, rs := newSink(t, spec)
			sinks[i] = &scopeSink{RecordSink: rs, meet: 5, barrier: &barrier}
			done.Go(func() { _, errs[i] = Run(context.Background(), spec, sinks[i], Options{}) })
		}
		done.Wait()
		out := make([]map[string]tensor.OpStats, len(specs))
		for i, s := range sinks {
			if errs[i] != nil {
				t.Fatalf("run %d: %v", i, errs[i])
			}
			out[i] = s.layout
		}
		return out
	}
	alone := [][]map[string]tensor.OpStats{train(specs[:1]), train(specs[1:])}
	together := train(specs)
	for i := range specs {
		if got, want := together[i], alone[i][0]; !reflect.DeepEqual(got, want) || len(want) == 0 {
			t.Errorf("run %d trained beside another reported %v; want its own counters %v", i, got, want)
		}
	}
}
