package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/clustertest"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/services/coordinator"
)

// env is an embedded NATS server set up for a cluster, a coordinator, a
// client connection and a local store.
type env struct {
	t     *testing.T
	nc    *nats.Conn
	js    jetstream.JetStream
	runs  jetstream.KeyValue
	cli   *coordinator.Client
	store experiment.Store
	dir   string // the store's directory
	ns    *clustertest.Server
}

func newEnv(t *testing.T) *env { return newEnvPort(t, -1) }

// newEnvPort is newEnv with the server listening on port (0: any free
// port; -1: none, in-process clients only).
func newEnvPort(t *testing.T, port int) *env {
	t.Helper()
	ns := clustertest.Start(t, port, cluster.SetupOptions{AckWait: 3 * time.Second})
	e := &env{t: t, ns: ns, nc: ns.NC, js: ns.JS, runs: ns.KV(t, cluster.BucketRuns), dir: t.TempDir()}
	ctx := context.Background()
	var err error
	if e.store, err = experiment.NewLocalStore(e.dir); err != nil {
		t.Fatal(err)
	}
	coord, err := coordinator.New(context.Background(), e.connect("coordinator", cluster.RoleCoordinator), coordinator.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- coord.Run(cctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.cli = coordinator.NewClient(e.nc)
	testutil.Eventually(t, 5*time.Second, func() error { _, err := e.cli.List(ctx); return err })
	return e
}

func quiet() *slog.Logger {
	if os.Getenv("GORCH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// connect opens an in-process connection as role (id for a worker).
func (e *env) connect(id, role string) *nats.Conn { return e.ns.Connect(e.t, id, role, id) }

// startWorker runs a worker until the returned stop is called; stop
// waits for Run to return.
func (e *env) startWorker(id string, slots int) (stop func()) {
	e.t.Helper()
	return e.startWorkerOpts(Options{ID: id, Slots: slots})
}

// startWorkerOpts is startWorker with more options (ID and Slots among
// them); the store, batching and logger are the env's.
func (e *env) startWorkerOpts(o Options) (stop func()) {
	e.t.Helper()
	id := o.ID
	o.Store, o.PublishEvery, o.BatchSize, o.Logger, o.Version = e.store, 200*time.Millisecond, 64, quiet(), "test"
	w, err := New(context.Background(), e.connect(id, cluster.RoleWorker), o)
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

// submit submits spec through the coordinator and returns the run id.
func (e *env) submit(spec []byte) string {
	e.t.Helper()
	ids, err := e.cli.Submit(context.Background(), spec, cluster.PriorityNormal)
	if err != nil || len(ids) != 1 {
		e.t.Fatalf("submit: %v, %v", ids, err)
	}
	return ids[0]
}

func (e *env) state(id string) cluster.RunState {
	e.t.Helper()
	st, err := e.cli.Status(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// waitState waits until ok holds for run id, or fails after timeout.
func (e *env) waitState(id string, timeout time.Duration, what string, ok func(cluster.RunState) bool) cluster.RunState {
	e.t.Helper()
	var st cluster.RunState
	testutil.Eventually(e.t, timeout, func() error {
		if st = e.state(id); !ok(st) {
			return fmt.Errorf("run %s: not %s; state %+v", id, what, st)
		}
		return nil
	})
	return st
}

func status(s string) func(cluster.RunState) bool {
	return func(st cluster.RunState) bool { return st.Status == s }
}

// events reads every message on subject from the EVENTS stream.
func (e *env) events(subject string) []jetstream.Msg {
	return e.streamMsgs(cluster.StreamEvents, subject)
}

// streamMsgs reads every message of a stream's subject.
func (e *env) streamMsgs(stream, subject string) []jetstream.Msg {
	e.t.Helper()
	ctx := context.Background()
	c, err := e.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
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
	for _, m := range e.events(cluster.EventFilter(cluster.KindRun, id)) {
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
	for _, m := range e.events(cluster.EventFilter(cluster.KindMetrics, id)) {
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
// in the stream, checkpoints under the attempt's prefix in the store and
// the last one the run's resume point; a garbage message ends in the DLQ
// and does not stop the workers.
func TestRunsSucceedWithinSlotsAndGarbageIsDeadLettered(t *testing.T) {
	testutil.Long(t, "trains runs in child processes")
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.Publish(ctx, cluster.DispatchSubject(cluster.PriorityNormal), []byte("not msgpack")); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		ids = append(ids, e.submit(blobSpec(40, 3e-3, "adam")))
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
		prefix := "runs/" + id + "/checkpoints/a1/"
		if st.Attempt != 1 || st.Step != 40 || st.Resume == nil || st.Resume.Key != prefix+"step-000000000040.rtch" || st.Resume.Step != 40 ||
			len(st.Owners) != 1 || st.Owners[0] != st.Worker {
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
		if want := "[" + prefix + "step-000000000030.rtch " + prefix + "step-000000000040.rtch]"; fmt.Sprint(keys) != want {
			t.Errorf("run %s: checkpoint keys %v, want %v", id, keys, want)
		}
		evs := e.runEvents(id)
		if len(evs) != 2 || evs[0].Kind != "started" || evs[1].Kind != "finished" || evs[1].Status != "succeeded" ||
			evs[1].LastStep != 40 || evs[1].Metrics == 0 || len(evs[1].Layout) == 0 || evs[0].Seed != 3 {
			t.Errorf("run %s: run events %+v", id, evs)
		}
		if n := len(e.events(cluster.EventFilter(cluster.KindCheckpoint, id))); n != 4 {
			t.Errorf("run %s: %d checkpoint events, want 4", id, n)
		}
		if n := len(e.events("ev." + st.Worker + ".>")); n == 0 {
			t.Errorf("run %s: no events under its worker's id %s", id, st.Worker)
		}
	}
	mu.Lock()
	if maxRunning > 2 || maxRunning == 0 {
		t.Errorf("at most %d runs ran at once, want 1 or 2", maxRunning)
	}
	mu.Unlock()
	dlq := e.streamMsgs(cluster.StreamDLQ, "dlq.>")
	if len(dlq) != 1 || string(dlq[0].Data()) != "not msgpack" || !strings.Contains(dlq[0].Headers().Get(ReasonHeader), "malformed") {
		t.Errorf("DLQ = %d messages, want the garbage with a reason", len(dlq))
	}
	ws, err := e.cli.Workers(ctx)
	if err != nil || len(ws) != 2 || ws[0].ID != "wa" || ws[0].Slots != 1 || ws[1].ID != "wb" {
		t.Errorf("Workers = %+v, %v; want wa and wb with one slot each", ws, err)
	}
}

// TestDeterministicFailureIsNotRetried: a diverging run (NaN loss) fails
// on its first attempt, with the error's kind, and is not retried.
func TestDeterministicFailureIsNotRetried(t *testing.T) {
	e := newEnv(t)
	id := e.submit(blobSpec(40, 1e30, "sgd"))
	e.startWorker("w", 1)
	st := e.waitState(id, 60*time.Second, "failed", status(cluster.StateFailed))
	if st.Attempt != 1 || !strings.Contains(st.Error, "loss is") || st.ErrorKind != "training" || st.Retryable {
		t.Errorf("final state %+v, want attempt 1 and a training error, not retryable", st)
	}
	var finished []string
	for _, ev := range e.runEvents(id) {
		if ev.Kind == "finished" {
			finished = append(finished, ev.Status)
		}
	}
	if fmt.Sprint(finished) != "[failed]" {
		t.Errorf("finished events %v, want one failed attempt", finished)
	}
	// The message is gone from the work queue.
	testutil.Eventually(t, 5*time.Second, func() error {
		s, _ := e.js.Stream(context.Background(), cluster.StreamRuns)
		if info, err := s.Info(context.Background()); err != nil || info.State.Msgs != 0 {
			return fmt.Errorf("RUNS holds %d messages after the run failed (%v), want 0", info.State.Msgs, err)
		}
		return nil
	})
}

// TestDeadLetteredRequestFailsItsRun: a RunRequest the worker cannot
// decode is dead-lettered, and the run its Nats-Msg-Id names ends failed
// with the reason instead of staying queued.
func TestDeadLetteredRequestFailsItsRun(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const id = "20990101T000000.000000Z-0000dead"
	if _, err := cluster.CreateState(ctx, e.runs, cluster.RunState{RunID: id, Status: cluster.StateQueued, Priority: cluster.PriorityNormal}); err != nil {
		t.Fatal(err)
	}
	body, _ := msgpack.Marshal(&cluster.RunRequest{RunID: id})
	env, _ := msgpack.Marshal(&cluster.Envelope{V: 9, Type: cluster.TypeRunRequest, Body: body})
	if _, err := e.js.Publish(ctx, cluster.DispatchSubject(cluster.PriorityNormal), env, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
	e.startWorker("w", 1)
	st := e.waitState(id, 20*time.Second, "failed", status(cluster.StateFailed))
	if !strings.Contains(st.Error, "dead-lettered: ") || !strings.Contains(st.Error, "unsupported wire version 9") || !st.RecordsFinal {
		t.Errorf("state %+v; want failed naming the dead letter's reason", st)
	}
}

// TestCancelNoticeStopsRun: a cancel (state flag + control notice) stops a
// running run, which ends cancelled.
func TestCancelNoticeStopsRun(t *testing.T) {
	e := newEnv(t)
	id := e.submit(blobSpec(20000, 3e-3, "adam"))
	e.startWorker("w", 1)
	e.waitState(id, 30*time.Second, "a checkpoint", func(st cluster.RunState) bool { return st.Resume != nil })
	if err := e.cli.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	st := e.waitState(id, 10*time.Second, "cancelled", status(cluster.StateCancelled))
	if st.Step >= 20000 {
		t.Errorf("cancelled run trained to the end: %+v", st)
	}
	evs := e.runEvents(id)
	if last := evs[len(evs)-1]; last.Kind != "finished" || last.Status != "cancelled" {
		t.Errorf("last run event %+v, want finished cancelled", last)
	}
}

// TestStoppedWorkerHandsBackAndAnotherResumes: a worker stopping mid-run
// checkpoints and hands the run back; a second worker resumes it from that
// checkpoint (the run's resume point) and finishes it.
func TestStoppedWorkerHandsBackAndAnotherResumes(t *testing.T) {
	e := newEnv(t)
	const steps = 200
	id := e.submit(blobSpec(steps, 3e-3, "adam"))
	stop := e.startWorker("w1", 1)
	e.waitState(id, 30*time.Second, "a checkpoint", func(st cluster.RunState) bool { return st.Step >= 20 && st.Resume != nil })
	stop()
	st := e.state(id)
	if st.Status != cluster.StateQueued || st.Attempt != 1 || st.HandBacks != 1 || st.UsedAttempts() != 0 ||
		st.Worker != "" || st.Resume == nil || st.Resume.Step < 20 || st.Resume.Step >= steps {
		t.Fatalf("state after the worker stopped: %+v", st)
	}
	handedBack := st.Resume.Step
	if _, err := e.store.Get(context.Background(), st.Resume.Key); err != nil {
		t.Fatalf("checkpoint %s: %v", st.Resume.Key, err)
	}
	e.startWorker("w2", 1)
	st = e.waitState(id, 60*time.Second, "succeeded", status(cluster.StateSucceeded))
	if st.Attempt != 2 || st.Worker != "w2" || st.Step != steps || fmt.Sprint(st.Owners) != "[w1 w2]" {
		t.Errorf("final state %+v", st)
	}
	var started []cluster.RunEvent
	for _, ev := range e.runEvents(id) {
		if ev.Kind == "started" {
			started = append(started, ev)
		}
	}
	if len(started) != 2 || started[1].Attempt != 2 || started[1].LastStep != handedBack || started[1].Worker != "w2" {
		t.Errorf("started events %+v, want attempt 2 on w2 resuming from step %d", started, handedBack)
	}
	ms := e.metricSteps(id)
	if a2 := ms[2]; len(a2) == 0 || a2[0] != handedBack+1 || a2[len(a2)-1] != steps {
		t.Errorf("attempt 2 logged steps %v, want %d..%d", a2, handedBack+1, steps)
	}
	if a1 := ms[1]; int64(len(a1)) != handedBack {
		t.Errorf("attempt 1 published %d steps, want %d (up to its checkpoint)", len(a1), handedBack)
	}
}
