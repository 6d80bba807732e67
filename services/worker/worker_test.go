package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/experiment"
)

// env is an embedded NATS server, a connection and a local store.
type env struct {
	t     *testing.T
	nc    *nats.Conn
	js    jetstream.JetStream
	runs  jetstream.KeyValue
	store experiment.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns, err := cluster.StartEmbedded(cluster.EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := cluster.Connect("", cluster.ConnectOptions{Name: "test", InProcess: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := cluster.Setup(ctx, js); err != nil {
		t.Fatal(err)
	}
	runs, err := js.KeyValue(ctx, cluster.BucketRuns)
	if err != nil {
		t.Fatal(err)
	}
	store, err := experiment.NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, nc: nc, js: js, runs: runs, store: store}
}

// startWorker runs a worker until the returned stop is called; stop
// waits for Run to return.
func (e *env) startWorker(id string, slots int) (stop func()) {
	e.t.Helper()
	w, err := New(e.nc, Options{ID: id, Slots: slots, Store: e.store, PublishEvery: 200 * time.Millisecond, BatchSize: 64,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("worker %s: Run = %v", id, err)
				}
			case <-time.After(30 * time.Second):
				e.t.Errorf("worker %s did not stop within 30s", id)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// blobSpec is a fast synthetic run.
func blobSpec(steps int, lr float64, opt string) []byte {
	return fmt.Appendf(nil, `{"model":{"name":"mlp","hidden":[16]},"dataset":{"name":"blobs","size":256},
		"optimizer":{"name":%q,"lr":%g},"steps":%d,"batch_size":32,"seed":3,"eval_every":%d,"checkpoint_every":10,"keep_last":2}`,
		opt, lr, steps, steps)
}

// submit does what the coordinator does: a queued state, then the request.
func (e *env) submit(id string, spec []byte) {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	st := cluster.RunState{RunID: id, Name: id, Priority: cluster.PriorityNormal, Status: cluster.StateQueued, Submitted: now, Updated: now}
	b, _ := msgpack.Marshal(&st)
	if _, err := e.runs.Create(ctx, cluster.RunKey(id), b); err != nil {
		e.t.Fatal(err)
	}
	req, err := cluster.Encode(cluster.TypeRunRequest, &cluster.RunRequest{RunID: id, Name: id, Spec: spec, Priority: cluster.PriorityNormal, Submitted: now})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.js.Publish(ctx, cluster.DispatchSubject(cluster.PriorityNormal), req, jetstream.WithMsgID(id)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) state(id string) (cluster.RunState, uint64) {
	e.t.Helper()
	en, err := e.runs.Get(context.Background(), cluster.RunKey(id))
	if err != nil {
		e.t.Fatal(err)
	}
	var st cluster.RunState
	if err := msgpack.Unmarshal(en.Value(), &st); err != nil {
		e.t.Fatal(err)
	}
	return st, en.Revision()
}

// waitState polls run id until ok holds, or fails after timeout.
func (e *env) waitState(id string, timeout time.Duration, what string, ok func(cluster.RunState) bool) cluster.RunState {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, _ := e.state(id)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("run %s: waited %v for %s; state %+v", id, timeout, what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func status(s string) func(cluster.RunState) bool {
	return func(st cluster.RunState) bool { return st.Status == s }
}

// events reads every message on subject from the EVENTS stream.
func (e *env) events(subject string) []jetstream.Msg {
	e.t.Helper()
	ctx := context.Background()
	c, err := e.js.OrderedConsumer(ctx, cluster.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []jetstream.Msg
	for {
		batch, err := c.Fetch(100, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			return out
		}
	}
}

func (e *env) runEvents(id string) []cluster.RunEvent {
	var out []cluster.RunEvent
	for _, m := range e.events(cluster.RunEventSubject(id)) {
		var ev cluster.RunEvent
		if err := cluster.Decode(m.Data(), cluster.TypeRunEvent, &ev); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// metricSteps returns, per attempt, the steps that have a train/loss point.
func (e *env) metricSteps(id string) map[int][]int64 {
	out := map[int][]int64{}
	for _, m := range e.events(cluster.MetricsSubject(id)) {
		var b cluster.MetricBatch
		if err := cluster.Decode(m.Data(), cluster.TypeMetricBatch, &b); err != nil {
			e.t.Fatal(err)
		}
		for _, p := range b.Points {
			if p.Name == "train/loss" {
				out[b.Attempt] = append(out[b.Attempt], p.Step)
			}
		}
	}
	return out
}

// TestRunsSucceedWithinSlotsAndGarbageIsDeadLettered: two one-slot workers
// train three runs, never more than two at once; every step's metrics are
// in the stream, checkpoints and LATEST in the store; a garbage message
// ends in the DLQ and does not stop the workers.
func TestRunsSucceedWithinSlotsAndGarbageIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.Publish(ctx, cluster.DispatchSubject(cluster.PriorityNormal), []byte("not msgpack")); err != nil {
		t.Fatal(err)
	}
	ids := []string{"r1", "r2", "r3"}
	for _, id := range ids {
		e.submit(id, blobSpec(40, 3e-3, "adam"))
	}
	// Count the runs running at once from the state changes.
	w, err := e.runs.WatchAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	var mu sync.Mutex
	running, maxRunning := map[string]bool{}, 0
	go func() {
		for en := range w.Updates() {
			if en == nil || !strings.HasPrefix(en.Key(), "run.") {
				continue
			}
			var st cluster.RunState
			if msgpack.Unmarshal(en.Value(), &st) != nil {
				continue
			}
			mu.Lock()
			running[st.RunID] = st.Status == cluster.StateRunning
			n := 0
			for _, r := range running {
				if r {
					n++
				}
			}
			maxRunning = max(maxRunning, n)
			mu.Unlock()
		}
	}()
	e.startWorker("wa", 1)
	e.startWorker("wb", 1)
	for _, id := range ids {
		st := e.waitState(id, 60*time.Second, "succeeded", status(cluster.StateSucceeded))
		if st.Attempt != 1 || st.Step != 40 || st.LastCheckpoint != "runs/"+id+"/checkpoints/step-000000000040.rtch" {
			t.Errorf("run %s: final state %+v", id, st)
		}
		steps := e.metricSteps(id)[1]
		if len(steps) != 40 {
			t.Errorf("run %s: %d train/loss points in the stream, want 40", id, len(steps))
		}
		for i, s := range steps {
			if s != int64(i+1) {
				t.Errorf("run %s: train/loss point %d is step %d", id, i, s)
				break
			}
		}
		keys, err := e.store.List(ctx, "runs/"+id+"/checkpoints/")
		if err != nil {
			t.Fatal(err)
		}
		if want := "[runs/" + id + "/checkpoints/LATEST runs/" + id + "/checkpoints/step-000000000030.rtch runs/" + id +
			"/checkpoints/step-000000000040.rtch]"; fmt.Sprint(keys) != want {
			t.Errorf("run %s: checkpoint keys %v, want %v", id, keys, want)
		}
		evs := e.runEvents(id)
		if len(evs) != 2 || evs[0].Kind != "started" || evs[1].Kind != "finished" || evs[1].Status != "succeeded" ||
			evs[1].LastStep != 40 || evs[1].Metrics == 0 || len(evs[1].Layout) == 0 || evs[0].Seed != 3 {
			t.Errorf("run %s: run events %+v", id, evs)
		}
		if n := len(e.events(cluster.CheckpointSubject(id))); n != 4 {
			t.Errorf("run %s: %d checkpoint events, want 4", id, n)
		}
	}
	mu.Lock()
	if maxRunning > 2 || maxRunning == 0 {
		t.Errorf("at most %d runs ran at once, want 1 or 2", maxRunning)
	}
	mu.Unlock()
	dlq := e.events2(cluster.StreamDLQ, "dlq.>")
	if len(dlq) != 1 || string(dlq[0].Data()) != "not msgpack" || !strings.Contains(dlq[0].Headers().Get(ReasonHeader), "malformed") {
		t.Errorf("DLQ = %d messages, want the garbage with a reason", len(dlq))
	}
	var hb cluster.WorkerInfo
	if en, err := e.js.KeyValue(ctx, cluster.BucketWorkers); err != nil {
		t.Fatal(err)
	} else if v, err := en.Get(ctx, cluster.WorkerKey("wa")); err != nil || msgpack.Unmarshal(v.Value(), &hb) != nil || hb.Slots != 1 {
		t.Errorf("heartbeat of wa: %+v, %v", hb, err)
	}
}

// events2 reads every message of a stream's subject.
func (e *env) events2(stream, subject string) []jetstream.Msg {
	e.t.Helper()
	c, err := e.js.OrderedConsumer(context.Background(), stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		e.t.Fatal(err)
	}
	batch, err := c.Fetch(100, jetstream.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	return out
}

// TestFailingRunEndsFailedAfterMaxAttempts: a diverging run is retried and
// ends failed with its error after MaxAttempts.
func TestFailingRunEndsFailedAfterMaxAttempts(t *testing.T) {
	e := newEnv(t)
	e.submit("bad", blobSpec(40, 1e30, "sgd"))
	e.startWorker("w", 1)
	st := e.waitState("bad", 60*time.Second, "failed", status(cluster.StateFailed))
	if st.Attempt != cluster.MaxAttempts || !strings.Contains(st.Error, "loss is") {
		t.Errorf("final state %+v, want attempt %d and a loss error", st, cluster.MaxAttempts)
	}
	var finished []string
	for _, ev := range e.runEvents("bad") {
		if ev.Kind == "finished" {
			finished = append(finished, ev.Status)
		}
	}
	if fmt.Sprint(finished) != "[failed failed failed]" {
		t.Errorf("finished events %v, want three failed attempts", finished)
	}
	// The message is gone from the work queue.
	time.Sleep(100 * time.Millisecond)
	s, _ := e.js.Stream(context.Background(), cluster.StreamRuns)
	if info, _ := s.Info(context.Background()); info.State.Msgs != 0 {
		t.Errorf("RUNS holds %d messages after the run failed, want 0", info.State.Msgs)
	}
}

// TestCancelNoticeStopsRun: a cancel (state flag + control notice) stops a
// running run, which ends cancelled.
func TestCancelNoticeStopsRun(t *testing.T) {
	e := newEnv(t)
	e.submit("long", blobSpec(20000, 3e-3, "adam"))
	e.startWorker("w", 1)
	e.waitState("long", 30*time.Second, "a checkpoint", func(st cluster.RunState) bool { return st.Step >= 10 })
	// What the coordinator does: CancelRequested by CAS, then the notice.
	for {
		st, rev := e.state("long")
		st.CancelRequested = true
		b, _ := msgpack.Marshal(&st)
		if _, err := e.runs.Update(context.Background(), cluster.RunKey("long"), b, rev); err == nil {
			break
		}
	}
	if err := e.nc.Publish(cluster.ControlSubject("long"), []byte("cancel")); err != nil {
		t.Fatal(err)
	}
	st := e.waitState("long", 10*time.Second, "cancelled", status(cluster.StateCancelled))
	if st.Step >= 20000 {
		t.Errorf("cancelled run trained to the end: %+v", st)
	}
	evs := e.runEvents("long")
	if last := evs[len(evs)-1]; last.Kind != "finished" || last.Status != "cancelled" {
		t.Errorf("last run event %+v, want finished cancelled", last)
	}
}

// TestStoppedWorkerHandsBackAndAnotherResumes: a worker stopping mid-run
// checkpoints and requeues the run; a second worker resumes it from that
// checkpoint and finishes it.
func TestStoppedWorkerHandsBackAndAnotherResumes(t *testing.T) {
	e := newEnv(t)
	const steps = 200
	e.submit("rs", blobSpec(steps, 3e-3, "adam"))
	stop := e.startWorker("w1", 1)
	e.waitState("rs", 30*time.Second, "a checkpoint", func(st cluster.RunState) bool { return st.Step >= 20 })
	stop()
	st, _ := e.state("rs")
	if st.Status != cluster.StateQueued || st.Attempt != 1 || st.HandBacks != 1 || st.UsedAttempts() != 0 ||
		st.Worker != "" || st.LastCheckpoint == "" || st.Step < 20 || st.Step >= steps {
		t.Fatalf("state after the worker stopped: %+v", st)
	}
	handedBack := st.Step
	if _, err := e.store.Get(context.Background(), st.LastCheckpoint); err != nil {
		t.Fatalf("checkpoint %s: %v", st.LastCheckpoint, err)
	}
	e.startWorker("w2", 1)
	st = e.waitState("rs", 60*time.Second, "succeeded", status(cluster.StateSucceeded))
	if st.Attempt != 2 || st.Worker != "w2" || st.Step != steps {
		t.Errorf("final state %+v", st)
	}
	var started []cluster.RunEvent
	for _, ev := range e.runEvents("rs") {
		if ev.Kind == "started" {
			started = append(started, ev)
		}
	}
	if len(started) != 2 || started[1].Attempt != 2 || started[1].LastStep != handedBack || started[1].Worker != "w2" {
		t.Errorf("started events %+v, want attempt 2 on w2 resuming from step %d", started, handedBack)
	}
	ms := e.metricSteps("rs")
	if a2 := ms[2]; len(a2) == 0 || a2[0] != handedBack+1 || a2[len(a2)-1] != steps {
		t.Errorf("attempt 2 logged steps %v, want %d..%d", a2, handedBack+1, steps)
	}
	if a1 := ms[1]; int64(len(a1)) != handedBack {
		t.Errorf("attempt 1 published %d steps, want %d (up to its checkpoint)", len(a1), handedBack)
	}
}
