package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/clustertest"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
)

// env is an embedded NATS server with the cluster layout, in-process.
type env struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	runs jetstream.KeyValue
	coll *Collector // the last one started
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns := clustertest.Start(t, -1, cluster.SetupOptions{})
	return &env{nc: ns.NC, js: ns.JS, runs: ns.KV(t, cluster.BucketRuns)}
}

// testWorker is the worker id the tests publish events as.
const testWorker = "w1"

// subj is the subject of testWorker's events of kind for run.
func subj(kind, run string) string { return cluster.EventSubject(testWorker, kind, run) }

func localStore(t *testing.T) experiment.Store {
	t.Helper()
	st, err := experiment.NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// start runs a collector until the returned stop function is called.
func (e *env) start(t *testing.T, st experiment.Store) (stop func()) {
	t.Helper()
	c, err := New(context.Background(), e.nc, Options{Store: st, SummaryEvery: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.coll = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v; want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// pub publishes v as typ on subj with a Nats-Msg-Id.
func (e *env) pub(t *testing.T, subj, typ string, v any, id string) {
	t.Helper()
	b, err := cluster.Encode(typ, v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(context.Background(), subj, b, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// worker publishes one hand-made attempt, resumed from step resume;
// idSuffix makes new Msg-Ids for a republication.
type worker struct {
	e        *env
	run      string
	attempt  int
	resume   int64
	idSuffix string
}

// startedAt is when attempt a started and finishedAt when it ended, on
// the worker's clock.
func startedAt(a int) time.Time  { return t0.Add(time.Duration(a) * time.Hour) }
func finishedAt(a int) time.Time { return startedAt(a).Add(90 * time.Second) }

// claim records testWorker as the owner of w's attempt in the runs
// bucket, as the coordinator would on a claim: the collector accepts an
// attempt's events only from its owner.
func (w worker) claim(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	st, rev, err := cluster.GetState(ctx, w.e.runs, w.run)
	if err != nil {
		st = cluster.RunState{RunID: w.run, Status: cluster.StateRunning}
	}
	if len(st.Owners) >= w.attempt {
		return
	}
	for len(st.Owners) < w.attempt {
		st.Owners = append(st.Owners, testWorker)
	}
	st.Attempt = w.attempt
	b, _ := msgpack.Marshal(&st)
	if rev == 0 {
		_, err = w.e.runs.Create(ctx, cluster.RunKey(w.run), b)
	} else {
		_, err = w.e.runs.Update(ctx, cluster.RunKey(w.run), b, rev)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (w worker) started(t *testing.T) {
	w.claim(t)
	w.e.pub(t, subj(cluster.KindRun, w.run), cluster.TypeRunEvent, &cluster.RunEvent{
		RunID: w.run, Attempt: w.attempt, Kind: "started", Name: "mlp-lr0.1", Spec: []byte(`{"model":"mlp"}`),
		Worker: "w1", Host: "host-a", Seed: 7, Time: t0, Resume: w.resume, Started: startedAt(w.attempt), Version: "v-test",
	}, cluster.MsgID(w.run, w.attempt, "started"+w.idSuffix, 0))
}

// metrics publishes steps [from, to] of "loss" and "acc" as batch seq.
func (w worker) metrics(t *testing.T, seq, from, to int64) {
	b := &cluster.MetricBatch{RunID: w.run, Attempt: w.attempt, Seq: seq, Resume: w.resume}
	for s := from; s <= to; s++ {
		at := t0.Add(time.Duration(s) * time.Millisecond)
		b.Points = append(b.Points,
			cluster.MetricPoint{Step: s, Name: "loss", Value: 1 / float64(s), Time: at},
			cluster.MetricPoint{Step: s, Name: "acc", Value: float64(s) / 100, Time: at})
	}
	w.claim(t)
	w.e.pub(t, subj(cluster.KindMetrics, w.run), cluster.TypeMetricBatch, b, cluster.MsgID(w.run, w.attempt, "metrics"+w.idSuffix, seq))
}

func (w worker) telemetry(t *testing.T, seq int64, n int) {
	b := &cluster.TelemetryBatch{RunID: w.run, Attempt: w.attempt, Seq: seq}
	for i := range n {
		b.Events = append(b.Events, cluster.TelemetryPoint{Name: "step", Start: t0.Add(time.Duration(w.attempt*1000+int(seq)*100+i) * time.Millisecond),
			Duration: time.Duration(i+1) * time.Millisecond, Tags: map[string]string{"phase": "train"}})
	}
	w.claim(t)
	w.e.pub(t, subj(cluster.KindTelemetry, w.run), cluster.TypeTelemetryBatch, b, cluster.MsgID(w.run, w.attempt, "telemetry"+w.idSuffix, seq))
}

func ckptKey(run string, step int64) string {
	return fmt.Sprintf("runs/%s/checkpoints/step-%012d.rtch", run, step)
}

func (w worker) checkpoint(t *testing.T, step int64) {
	w.claim(t)
	w.e.pub(t, subj(cluster.KindCheckpoint, w.run), cluster.TypeCheckpoint, &cluster.CheckpointEvent{
		RunID: w.run, Attempt: w.attempt, Step: step, Key: ckptKey(w.run, step), Size: 1000 + step, SHA256: "abc", Time: t0,
	}, cluster.MsgID(w.run, w.attempt, "ckpt"+w.idSuffix, step))
}

func (w worker) finished(t *testing.T, status string, metrics, lastStep int64, errMsg string) {
	layout, _ := json.Marshal(map[string]experiment.OpStats{"matmul": {}})
	w.claim(t)
	w.e.pub(t, subj(cluster.KindRun, w.run), cluster.TypeRunEvent, &cluster.RunEvent{
		RunID: w.run, Attempt: w.attempt, Kind: "finished", Status: status, Error: errMsg,
		Metrics: metrics, LastStep: lastStep, Layout: layout, Time: t0.Add(time.Minute),
		Resume: w.resume, Started: startedAt(w.attempt), Finished: finishedAt(w.attempt), Version: "v-test",
	}, cluster.MsgID(w.run, w.attempt, "finished"+w.idSuffix, 0))
}

// fullAttempt publishes a whole successful attempt 1: steps 1–30 in three
// batches, telemetry, a checkpoint at step 30.
func (w worker) fullAttempt(t *testing.T) {
	w.started(t)
	w.metrics(t, 1, 1, 10)
	w.metrics(t, 2, 11, 20)
	w.telemetry(t, 1, 3)
	w.metrics(t, 3, 21, 30)
	w.checkpoint(t, 30)
	w.finished(t, "succeeded", 60, 30, "")
}

// waitSummary waits until run_summary.json of run has a terminal status at
// attempt.
func waitSummary(t *testing.T, st experiment.Store, run string, attempt int) experiment.Summary {
	t.Helper()
	return waitFor(t, st, run, func(s experiment.Summary) bool { return s.Status.Terminal() && s.Run.Attempt == attempt },
		fmt.Sprintf("a final summary of attempt %d", attempt))
}

// waitFor waits until run_summary.json of run satisfies ok and returns it.
func waitFor(t *testing.T, st experiment.Store, run string, ok func(experiment.Summary) bool, what string) experiment.Summary {
	t.Helper()
	rd := experiment.NewReader(st)
	var s experiment.Summary
	testutil.Eventually(t, 20*time.Second, func() error {
		var err error
		if s, err = rd.GetSummary(context.Background(), run); err != nil {
			return err
		}
		if !ok(s) {
			return fmt.Errorf("run %s: want %s; summary says %s, attempt %d, dropped %d, complete %v",
				run, what, s.Status, s.Run.Attempt, s.Dropped, s.Complete)
		}
		return nil
	})
	return s
}

type metricKey struct {
	attempt int
	step    int64
	name    string
}

// metricCounts reads a run's metrics through read and counts each
// (attempt, step, name) and each (step, name).
func metricCounts(t *testing.T, read func(context.Context, string) iter.Seq2[experiment.Metric, error], run string) (map[metricKey]int, map[string]int) {
	t.Helper()
	out, perStep := map[metricKey]int{}, map[string]int{}
	for m, err := range read(context.Background(), run) {
		if err != nil {
			t.Fatal(err)
		}
		out[metricKey{m.Attempt, m.Step, m.Name}]++
		perStep[fmt.Sprint(m.Step, m.Name)]++
	}
	return out, perStep
}

// storedCount is how many distinct (attempt, step, name) the run stores.
func storedCount(t *testing.T, st experiment.Store, run string) int {
	got, _ := metricCounts(t, experiment.NewReader(st).ReadStoredMetrics, run)
	return len(got)
}

// checkMetrics checks that the run stores exactly the steps [from, to]
// of each attempt given, each (attempt, step, name) once.
func checkMetrics(t *testing.T, st experiment.Store, run string, want map[int][2]int64) {
	t.Helper()
	got, _ := metricCounts(t, experiment.NewReader(st).ReadStoredMetrics, run)
	if n := checkEach(t, "stored", got, want); len(got) != n {
		t.Errorf("stored %d distinct metrics; want %d", len(got), n)
	}
}

// checkInForce checks that ReadMetrics returns exactly the steps [from,
// to] of each attempt given: one value per (step, name).
func checkInForce(t *testing.T, st experiment.Store, run string, want map[int][2]int64) {
	t.Helper()
	got, perStep := metricCounts(t, experiment.NewReader(st).ReadMetrics, run)
	if n := checkEach(t, "in force", got, want); len(perStep) != n || len(got) != n {
		t.Errorf("ReadMetrics: %d values at %d (step, name) pairs; want %d, one each", len(got), len(perStep), n)
	}
}

// checkEach checks that got holds each (attempt, step, name) of want's
// ranges once, and returns how many that is.
func checkEach(t *testing.T, what string, got map[metricKey]int, want map[int][2]int64) int {
	t.Helper()
	n := 0
	for attempt, r := range want {
		for s := r[0]; s <= r[1]; s++ {
			for _, name := range []string{"loss", "acc"} {
				n++
				if c := got[metricKey{attempt, s, name}]; c != 1 {
					t.Errorf("%s: (attempt %d, step %d, %s) %d times; want once", what, attempt, s, name, c)
				}
			}
		}
	}
	return n
}

func checkComplete(t *testing.T, st experiment.Store, run string, attempt int, loss int64) {
	t.Helper()
	s := waitSummary(t, st, run, attempt)
	if s.Status != experiment.StatusSucceeded || !s.Complete || s.Dropped != 0 {
		t.Errorf("summary: status %s complete %v dropped %d; want succeeded true 0", s.Status, s.Complete, s.Dropped)
	}
	if got := s.Metrics["loss"].Count; got != loss {
		t.Errorf("summary loss count = %d; want %d", got, loss)
	}
	if _, ok := s.Layout["matmul"]; !ok {
		t.Errorf("summary layout = %v; want the matmul counters", s.Layout)
	}
}

func checkRecords(t *testing.T, st experiment.Store, run string) {
	t.Helper()
	ctx := context.Background()
	rd := experiment.NewReader(st)
	r, err := rd.GetRun(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != run || r.Name != "mlp-lr0.1" || r.Status != experiment.StatusSucceeded || r.Host != "host-a" ||
		r.Seed != 7 || r.Tags["worker"] != "w1" || string(r.Config) != `{"model":"mlp"}` || r.GorchVersion != "v-test" {
		t.Errorf("run.json = %+v; want id %s, name mlp-lr0.1, succeeded, host-a, seed 7, worker w1, the spec, version v-test", r, run)
	}
	if a := r.Attempt; !r.Started.Equal(startedAt(a)) || !r.Finished.Equal(finishedAt(a)) || r.Duration() != 90*time.Second {
		t.Errorf("run.json times %v – %v (%v); want the worker's, %v – %v", r.Started, r.Finished, r.Duration(), startedAt(a), finishedAt(a))
	}
	arts, err := rd.Artifacts(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) != 1 || arts[0].Kind != experiment.ArtifactCheckpoint || arts[0].Key != ckptKey(run, 30) ||
		arts[0].Size != 1030 || arts[0].Step != 30 || arts[0].Name != "checkpoints/step-000000000030.rtch" {
		t.Errorf("artifacts = %+v; want one checkpoint at step 30", arts)
	}
	var spans int
	for _, err := range rd.ReadTelemetry(ctx, run) {
		if err != nil {
			t.Fatal(err)
		}
		spans++
	}
	if spans != 3 {
		t.Errorf("telemetry holds %d spans; want 3", spans)
	}
}

func TestCollectorWritesAttempt(t *testing.T) {
	e := newEnv(t)
	st := localStore(t)
	e.start(t, st)
	worker{e: e, run: "run-one", attempt: 1}.fullAttempt(t)
	checkComplete(t, st, "run-one", 1, 30)
	checkMetrics(t, st, "run-one", map[int][2]int64{1: {1, 30}})
	checkRecords(t, st, "run-one")
}

func TestCollectorS3(t *testing.T) {
	gw := testutil.StartVersityGW(t)
	st, err := experiment.NewS3Store(context.Background(), experiment.S3Config{
		Endpoint: gw.Endpoint, Bucket: "collector", AccessKey: gw.AccessKey, SecretKey: gw.SecretKey, Insecure: true, CreateBucket: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.start(t, st)
	worker{e: e, run: "run-s3", attempt: 1}.fullAttempt(t)
	checkComplete(t, st, "run-s3", 1, 30)
	checkMetrics(t, st, "run-s3", map[int][2]int64{1: {1, 30}})
	checkRecords(t, st, "run-s3")
}

func TestCollectorDeduplicates(t *testing.T) {
	e := newEnv(t)
	st := localStore(t)
	e.start(t, st)
	w := worker{e: e, run: "run-dup", attempt: 1}
	again := w
	again.idSuffix = "/again" // new Msg-Ids: JetStream keeps both copies
	w.started(t)
	w.metrics(t, 1, 1, 10)
	w.metrics(t, 2, 11, 20)
	again.started(t)
	again.metrics(t, 1, 1, 10)
	w.telemetry(t, 1, 3)
	again.metrics(t, 2, 11, 20)
	again.telemetry(t, 1, 3)
	w.metrics(t, 3, 21, 30)
	w.checkpoint(t, 30)
	again.checkpoint(t, 30)
	w.finished(t, "succeeded", 60, 30, "")
	again.finished(t, "succeeded", 60, 30, "")
	again.metrics(t, 5, 1, 30) // after the run finished
	checkComplete(t, st, "run-dup", 1, 30)
	checkMetrics(t, st, "run-dup", map[int][2]int64{1: {1, 30}})
	checkRecords(t, st, "run-dup")
}

func TestCollectorResumedAttempt(t *testing.T) {
	e := newEnv(t)
	st := localStore(t)
	e.start(t, st)
	a1 := worker{e: e, run: "run-resume", attempt: 1}
	a1.started(t)
	a1.metrics(t, 1, 1, 10)
	a1.checkpoint(t, 10)
	a1.metrics(t, 2, 11, 20)
	a1.finished(t, "interrupted", 40, 20, "worker stopped")
	a2 := worker{e: e, run: "run-resume", attempt: 2, resume: 10}
	a2.started(t) // resumes from the checkpoint at step 10
	a2.metrics(t, 1, 11, 20)
	a2.telemetry(t, 1, 2)
	a2.metrics(t, 2, 21, 30)
	a2.checkpoint(t, 30)
	a2.finished(t, "succeeded", 40, 30, "")

	s := waitSummary(t, st, "run-resume", 2)
	if s.Status != experiment.StatusSucceeded || !s.Complete || s.Run.Error != "" {
		t.Errorf("summary: status %s complete %v error %q; want succeeded, true, none", s.Status, s.Complete, s.Run.Error)
	}
	if l := s.Metrics["loss"]; l.Count != 30 || l.Superseded != 10 || l.LastStep != 30 {
		t.Errorf("summary loss count %d, superseded %d, last step %d; want 30, 10 (attempt 1's steps 11–20), 30", l.Count, l.Superseded, l.LastStep)
	}
	checkMetrics(t, st, "run-resume", map[int][2]int64{1: {1, 20}, 2: {11, 30}})
	checkInForce(t, st, "run-resume", map[int][2]int64{1: {1, 10}, 2: {11, 30}})
	arts, err := experiment.NewReader(st).Artifacts(context.Background(), "run-resume")
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) != 2 || arts[0].Step != 10 || arts[1].Step != 30 {
		t.Errorf("artifacts = %+v; want the checkpoints at steps 10 and 30", arts)
	}
}

func TestCollectorDeadLetters(t *testing.T) {
	e := newEnv(t)
	st := localStore(t)
	e.start(t, st)
	if _, err := e.js.Publish(context.Background(), subj(cluster.KindMetrics, "run-dl"), []byte("not msgpack at all")); err != nil {
		t.Fatal(err)
	}
	e.pub(t, subj(cluster.KindMetrics, "run-dl"), cluster.TypeRunEvent, &cluster.RunEvent{RunID: "run-dl", Attempt: 1, Kind: "started"}, "wrong-type")
	e.pub(t, subj(cluster.KindRun, "run-dl"), cluster.TypeRunEvent, &cluster.RunEvent{RunID: "other", Attempt: 1, Kind: "started"}, "wrong-run")
	w := worker{e: e, run: "run-dl", attempt: 1}
	w.claim(t)
	// Events of attempt 1 sent by a worker that did not claim it: forged.
	e.pub(t, cluster.EventSubject("w2", cluster.KindMetrics, "run-dl"), cluster.TypeMetricBatch, &cluster.MetricBatch{RunID: "run-dl", Attempt: 1, Seq: 9,
		Points: []cluster.MetricPoint{{Step: 1, Name: "loss", Value: 99}}}, "forged")
	w.fullAttempt(t)
	checkComplete(t, st, "run-dl", 1, 30)
	checkMetrics(t, st, "run-dl", map[int][2]int64{1: {1, 30}})

	ctx := context.Background()
	dlq, err := e.js.Stream(ctx, cluster.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dlq.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 4 {
		t.Fatalf("DLQ holds %d messages; want 4", info.State.Msgs)
	}
	for seq := uint64(1); seq <= 4; seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		want := cluster.DLQSubject(DLQReason)
		if seq == 4 {
			want = cluster.DLQSubject(DLQForged)
			if r := m.Header.Get(HeaderReason); r != "worker w2 sent an event of attempt 1 of run run-dl, which worker w1 claimed" {
				t.Errorf("forged event's reason %q", r)
			}
		}
		if m.Subject != want || m.Header.Get(HeaderReason) == "" || !strings.HasPrefix(m.Header.Get(HeaderSubject), "ev.") {
			t.Errorf("dead letter %d: subject %s, headers %v; want %s with a reason and the original subject", seq, m.Subject, m.Header, want)
		}
	}
}

func TestCollectorRestart(t *testing.T) {
	e := newEnv(t)
	st := localStore(t)
	stop := e.start(t, st)
	w := worker{e: e, run: "run-restart", attempt: 1}
	w.started(t)
	w.metrics(t, 1, 1, 10)
	w.telemetry(t, 1, 3)
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := storedCount(t, st, "run-restart"); n < 20 {
			return fmt.Errorf("%d of batch 1's 20 values stored", n)
		}
		return nil
	})
	w.metrics(t, 2, 11, 20)
	stop() // batch 2 may be stored, fetched and Nak'ed, or not fetched yet

	e.start(t, st)
	again := w
	again.idSuffix = "/redelivered"
	again.metrics(t, 1, 1, 10) // as if redelivered after the restart
	again.metrics(t, 2, 11, 20)
	again.telemetry(t, 1, 3)
	w.metrics(t, 3, 21, 30)
	w.checkpoint(t, 30)
	w.finished(t, "succeeded", 60, 30, "")
	start := time.Now()
	checkComplete(t, st, "run-restart", 1, 30)
	if d := time.Since(start); d > cluster.AckWait/2 {
		t.Errorf("the run took %v to complete after the restart; messages waited for the ack deadline", d)
	}
	checkMetrics(t, st, "run-restart", map[int][2]int64{1: {1, 30}})
	checkRecords(t, st, "run-restart")
}

// flakyStore fails every Put of a metric segment while failing is set.
type flakyStore struct {
	experiment.Store
	failing atomic.Bool
	fails   atomic.Int64
}

func (s *flakyStore) Put(ctx context.Context, key string, data []byte) error {
	if s.failing.Load() && strings.Contains(key, "/metrics/") {
		s.fails.Add(1)
		return errs.New(errs.IO, "flakyStore.Put", "injected failure writing %s", key)
	}
	return s.Store.Put(ctx, key, data)
}

func TestCollectorAcksAfterWrite(t *testing.T) {
	e := newEnv(t)
	st := &flakyStore{Store: localStore(t)}
	st.failing.Store(true)
	e.start(t, st)
	w := worker{e: e, run: "run-flaky", attempt: 1}
	w.started(t)
	w.metrics(t, 1, 1, 10)
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := st.fails.Load(); n < 3 {
			return fmt.Errorf("only %d failed metric writes; want the batch retried", n)
		}
		return nil
	})
	ctx := context.Background()
	cons, err := e.js.Consumer(ctx, cluster.StreamEvents, cluster.ConsumerCollect)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream >= 2 || info.NumRedelivered == 0 {
		t.Errorf("while the store fails: ack floor %d, redelivered %d; want the metric batch (seq 2) unacked and redelivered",
			info.AckFloor.Stream, info.NumRedelivered)
	}
	if n := storedCount(t, st, "run-flaky"); n != 0 {
		t.Errorf("%d metrics stored while every metric write fails; want 0", n)
	}
	st.failing.Store(false)
	w.metrics(t, 2, 11, 20)
	w.telemetry(t, 1, 3)
	w.metrics(t, 3, 21, 30)
	w.checkpoint(t, 30)
	w.finished(t, "succeeded", 60, 30, "")
	checkComplete(t, st, "run-flaky", 1, 30)
	checkMetrics(t, st, "run-flaky", map[int][2]int64{1: {1, 30}})
	checkRecords(t, st, "run-flaky")
}

// TestCollectorKilledAttempt: attempt 1's worker dies without a "finished"
// event; attempt 2 resumes from its checkpoint and finishes the run.
func TestCollectorKilledAttempt(t *testing.T) {
	e := newEnv(t)
	st := localStore(t)
	e.start(t, st)
	a1 := worker{e: e, run: "run-killed", attempt: 1}
	a1.started(t)
	a1.metrics(t, 1, 1, 10)
	a1.checkpoint(t, 10)
	a1.metrics(t, 2, 11, 15)
	a2 := worker{e: e, run: "run-killed", attempt: 2, resume: 10}
	a2.started(t)
	a2.metrics(t, 1, 11, 30)
	a2.finished(t, "succeeded", 40, 30, "")
	s := waitSummary(t, st, "run-killed", 2)
	if s.Status != experiment.StatusSucceeded || !s.Complete {
		t.Errorf("summary: status %s complete %v; want succeeded true", s.Status, s.Complete)
	}
	checkMetrics(t, st, "run-killed", map[int][2]int64{1: {1, 15}, 2: {11, 30}})
	checkInForce(t, st, "run-killed", map[int][2]int64{1: {1, 10}, 2: {11, 30}})
	if l := s.Metrics["loss"]; l.Count != 30 || l.Superseded != 5 {
		t.Errorf("summary loss count %d, superseded %d; want 30, 5", l.Count, l.Superseded)
	}
}

// TestCollectorReportsMissingMetrics: a worker that published more values
// than arrived makes the summary incomplete.
func TestCollectorReportsMissingMetrics(t *testing.T) {
	e := newEnv(t)
	st := localStore(t)
	e.start(t, st)
	w := worker{e: e, run: "run-missing", attempt: 1}
	w.started(t)
	w.metrics(t, 1, 1, 10)
	w.finished(t, "succeeded", 24, 12, "") // steps 11 and 12 never arrived
	s := waitSummary(t, st, "run-missing", 1)
	if s.Complete || s.Dropped != 4 {
		t.Errorf("summary: complete %v dropped %d; want false 4", s.Complete, s.Dropped)
	}
}

// waitDropped waits until run_summary.json of run says dropped n.
func waitDropped(t *testing.T, st experiment.Store, run string, n uint64) experiment.Summary {
	t.Helper()
	return waitFor(t, st, run, func(s experiment.Summary) bool { return s.Status.Terminal() && s.Dropped == n },
		fmt.Sprintf("ended with %d dropped", n))
}

// TestCollectorLateMetricsAfterFinished: the "finished" event is applied
// before metric batches of the same attempt (as when a killed collector's
// unacked messages come back after AckWait, behind the event). The late
// records are still stored, the dropped count shrinks as they arrive
// (never counted twice), and the summary ends complete — also when the
// collector restarts between the late batches.
func TestCollectorLateMetricsAfterFinished(t *testing.T) {
	e := newEnv(t)
	st := localStore(t)
	stop := e.start(t, st)
	w := worker{e: e, run: "run-late", attempt: 1}
	w.started(t)
	w.metrics(t, 1, 1, 10)
	w.telemetry(t, 1, 3)
	w.checkpoint(t, 30)
	w.finished(t, "succeeded", 60, 30, "") // batches 2 and 3 not here yet
	s := waitDropped(t, st, "run-late", 40)
	if s.Complete || s.Status != experiment.StatusSucceeded {
		t.Fatalf("summary before the late batches: complete %v status %s; want false succeeded", s.Complete, s.Status)
	}
	rd := experiment.NewReader(st)
	before, err := rd.GetRun(context.Background(), "run-late")
	if err != nil {
		t.Fatal(err)
	}

	w.metrics(t, 2, 11, 20) // late, to the collector that finished the run
	s = waitDropped(t, st, "run-late", 20)
	if s.Complete {
		t.Errorf("summary with batch 3 still missing: complete true; want false")
	}
	checkMetrics(t, st, "run-late", map[int][2]int64{1: {1, 20}})

	stop() // the next collector knows of the gap only from the store
	e.start(t, st)
	again := w
	again.idSuffix = "/redelivered"
	again.metrics(t, 1, 1, 10) // duplicates of stored records
	w.metrics(t, 3, 21, 30)
	again.metrics(t, 2, 11, 20)
	s = waitDropped(t, st, "run-late", 0)
	if !s.Complete || s.Status != experiment.StatusSucceeded {
		t.Errorf("summary after the late batches: complete %v status %s; want true succeeded", s.Complete, s.Status)
	}
	if s.Missing != 0 {
		t.Errorf("summary missing = %d; want 0 once every value arrived", s.Missing)
	}
	if got := s.Metrics["loss"].Count; got != 30 {
		t.Errorf("summary loss count = %d; want 30", got)
	}
	if _, ok := s.Layout["matmul"]; !ok {
		t.Errorf("summary layout = %v; want the matmul counters kept", s.Layout)
	}
	after, err := rd.GetRun(context.Background(), "run-late")
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != experiment.StatusSucceeded || !after.Finished.Equal(before.Finished) || after.Attempt != 1 {
		t.Errorf("run.json after the late batches: status %s finished %v attempt %d; want succeeded %v 1",
			after.Status, after.Finished, after.Attempt, before.Finished)
	}
	checkMetrics(t, st, "run-late", map[int][2]int64{1: {1, 30}})
	checkRecords(t, st, "run-late")

	// A duplicate after completion is acked and changes nothing.
	acked := e.coll.Stats().Messages
	again.metrics(t, 3, 21, 30)
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := e.coll.Stats().Messages; n == acked {
			return fmt.Errorf("the duplicate batch is not acked yet (%d messages acked)", n)
		}
		return nil
	})
	checkMetrics(t, st, "run-late", map[int][2]int64{1: {1, 30}})
}

// orphanRecords writes the run state the coordinator leaves when the
// worker of w's attempt reported its end (status, at finished) and died
// before publishing the "finished" event: terminal, RecordsOrphaned.
func (w worker) orphanRecords(t *testing.T, status string, finished time.Time) {
	t.Helper()
	ctx := context.Background()
	st, rev, err := cluster.GetState(ctx, w.e.runs, w.run)
	if err != nil {
		t.Fatal(err)
	}
	st.Status, st.Error, st.Finished, st.Updated, st.RecordsOrphaned = status, "", finished, finished.Add(time.Minute), true
	b, _ := msgpack.Marshal(&st)
	if _, err := w.e.runs.Update(ctx, cluster.RunKey(w.run), b, rev); err != nil {
		t.Fatal(err)
	}
}

// finalNotices answers capi.final as a coordinator would and returns the
// notices it got.
func (e *env) finalNotices(t *testing.T) func() []cluster.FinalNotice {
	t.Helper()
	var mu sync.Mutex
	var got []cluster.FinalNotice
	reply, _ := cluster.Encode(cluster.TypeAPIReply, &cluster.APIReply{})
	sub, err := e.nc.Subscribe(cluster.CollectorFinalSubject, func(m *nats.Msg) {
		var n cluster.FinalNotice
		if cluster.Decode(m.Data, cluster.TypeFinalNotice, &n) == nil {
			mu.Lock()
			got = append(got, n)
			mu.Unlock()
		}
		_ = m.Respond(reply)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func() []cluster.FinalNotice { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) }
}

// TestCollectorEndsOrphanedRecords: the worker of an attempt reported its
// outcome to the coordinator and died before publishing the "finished"
// event; the coordinator marked the run's records orphaned. The collector
// ends the attempt's records from the run state (status, the
// coordinator's end time) after the attempt's events, and tells the
// coordinator they are final. Where the "finished" event did get out, it
// is applied first and the state changes nothing in the records.
func TestCollectorEndsOrphanedRecords(t *testing.T) {
	e := newEnv(t)
	notices := e.finalNotices(t)
	st := localStore(t)
	e.start(t, st)

	lost := worker{e: e, run: "run-orphan", attempt: 1}
	lost.started(t)
	lost.metrics(t, 1, 1, 10)
	lost.metrics(t, 2, 11, 20)
	ended := finishedAt(1).Add(time.Second)
	lost.orphanRecords(t, cluster.StateSucceeded, ended)

	late := worker{e: e, run: "run-orphan-late", attempt: 1}
	late.started(t)
	late.metrics(t, 1, 1, 20)
	late.finished(t, "succeeded", 40, 20, "")
	late.orphanRecords(t, cluster.StateSucceeded, ended)

	for _, run := range []string{lost.run, late.run} {
		s := waitSummary(t, st, run, 1)
		if s.Status != experiment.StatusSucceeded || !s.Complete || s.Metrics["loss"].Count != 20 {
			t.Errorf("%s: summary status %s, complete %v, loss count %d; want succeeded, true, 20", run, s.Status, s.Complete, s.Metrics["loss"].Count)
		}
	}
	for run, want := range map[string]time.Time{lost.run: ended, late.run: finishedAt(1)} {
		r, err := experiment.NewReader(st).GetRun(context.Background(), run)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Started.Equal(startedAt(1)) || !r.Finished.Equal(want) {
			t.Errorf("%s: run.json %v – %v; want %v – %v", run, r.Started, r.Finished, startedAt(1), want)
		}
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		seen := map[cluster.FinalNotice]bool{}
		for _, n := range notices() {
			seen[n] = true
		}
		for _, run := range []string{lost.run, late.run} {
			if !seen[cluster.FinalNotice{RunID: run, Attempt: 1, Status: cluster.StateSucceeded}] {
				return fmt.Errorf("no records-final notice for %s attempt 1 (got %+v)", run, notices())
			}
		}
		return nil
	})
}
