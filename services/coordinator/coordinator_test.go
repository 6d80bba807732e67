package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/clustertest"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/train"
)

const testSpec = `
model: {name: mlp}
dataset: {name: blobs}
optimizer: {name: sgd, lr: 0.1}
steps: 10
batch_size: 16
`

type env struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	cli *Client
}

// startEnv starts an in-process NATS server and, if withCoord, a
// coordinator serving on it until the test ends.
func startEnv(t *testing.T, withCoord bool) *env {
	t.Helper()
	ns := clustertest.Start(t, -1, cluster.SetupOptions{WorkerTTL: time.Second})
	e := &env{nc: ns.NC, js: ns.JS, cli: NewClient(ns.NC)}
	if withCoord {
		c, err := New(t.Context(), ns.Connect(t, "coordinator", cluster.RoleCoordinator, ""), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v", err)
			}
		})
		// Wait until the coordinator's subscriptions are live.
		testutil.Eventually(t, 5*time.Second, func() error { _, err := e.cli.List(context.Background()); return err })
		e.kv = ns.KV(t, cluster.BucketRuns)
	}
	return e
}

// dispatched fetches the RunRequests waiting on a priority's consumer.
func (e *env) dispatched(t *testing.T, p cluster.Priority, max int) []cluster.RunRequest {
	t.Helper()
	cons, err := e.js.Consumer(context.Background(), cluster.StreamRuns, cluster.DispatchConsumer(p))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(max, jetstream.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var out []cluster.RunRequest
	for m := range batch.Messages() {
		var r cluster.RunRequest
		if err := cluster.Decode(m.Data(), cluster.TypeRunRequest, &r); err != nil {
			t.Fatal(err)
		}
		if got := m.Headers().Get(jetstream.MsgIDHeader); got != r.RunID {
			t.Errorf("Nats-Msg-Id = %q, want the run id %q", got, r.RunID)
		}
		_ = m.Ack()
		out = append(out, r)
	}
	return out
}

// ask sends worker's request op and returns the coordinator's reply.
func (e *env) ask(t *testing.T, worker, op string, req cluster.WorkerRequest) cluster.WorkerReply {
	t.Helper()
	b, err := cluster.Encode(cluster.TypeWorkerRequest, &req)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.nc.Request(cluster.WorkerAPISubject(worker, op), b, 5*time.Second)
	if err != nil {
		t.Fatalf("%s %s: %v", worker, op, err)
	}
	var r cluster.WorkerReply
	if err := cluster.Decode(m.Data, cluster.TypeWorkerReply, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// submit submits testSpec and returns the run id.
func (e *env) submit(t *testing.T) string {
	t.Helper()
	ids, err := e.cli.Submit(context.Background(), []byte(testSpec), "")
	if err != nil || len(ids) != 1 {
		t.Fatalf("Submit = %v, %v", ids, err)
	}
	return ids[0]
}

func TestSubmit(t *testing.T) {
	e := startEnv(t, true)
	ctx := context.Background()
	ids, err := e.cli.Submit(ctx, []byte("name: one\n"+testSpec), cluster.PriorityHigh)
	if err != nil || len(ids) != 1 {
		t.Fatalf("Submit = %v, %v", ids, err)
	}
	if _, _, run, ok := cluster.ParseEventSubject(cluster.EventSubject("w", cluster.KindMetrics, ids[0])); !ok || run != ids[0] || !cluster.ValidID(ids[0]) {
		t.Errorf("run id %q is not one subject token: workers and the collector cannot use it", ids[0])
	}
	st, err := e.cli.Status(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != cluster.StateQueued || st.Attempt != 0 || st.Priority != cluster.PriorityHigh || st.Name != "one" || st.Submitted.IsZero() {
		t.Errorf("state = %+v, want queued, attempt 0, high, named one", st)
	}
	if got := e.dispatched(t, cluster.PriorityNormal, 5); len(got) != 0 {
		t.Errorf("normal priority got %d requests, want 0", len(got))
	}
	got := e.dispatched(t, cluster.PriorityHigh, 5)
	if len(got) != 1 || got[0].RunID != ids[0] || got[0].Name != "one" || got[0].Priority != cluster.PriorityHigh {
		t.Fatalf("high priority requests = %+v, want one for %s", got, ids[0])
	}
	var spec train.Spec
	if err := json.Unmarshal(got[0].Spec, &spec); err != nil || spec.Optimizer.LR != 0.1 || spec.BatchSize != 16 {
		t.Errorf("dispatched spec = %s (%v)", got[0].Spec, err)
	}
	// Default priority is normal.
	ids, err = e.cli.Submit(ctx, []byte(testSpec), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.dispatched(t, cluster.PriorityNormal, 5); len(got) != 1 || got[0].RunID != ids[0] {
		t.Errorf("normal priority requests = %+v", got)
	}
}

func TestSubmitInvalid(t *testing.T) {
	e := startEnv(t, true)
	ctx := context.Background()
	cases := []struct {
		spec, prio, want string
	}{
		{strings.Replace(testSpec, "lr: 0.1", "lr: -1", 1), "", `field "optimizer.lr": must be positive`},
		{testSpec + "optimiser: {}\n", "", `unknown field "optimiser"`},
		{"{", "", "submitted spec"},
		{testSpec, "urgent", `unknown priority "urgent"`},
	}
	for _, c := range cases {
		_, err := e.cli.Submit(ctx, []byte(c.spec), cluster.Priority(c.prio))
		var te *errs.TorchError
		if !errors.As(err, &te) || te.Kind != errs.Config || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Submit(%q) = %v, want a config error containing %q", c.spec, err, c.want)
		}
	}
	if states, _ := e.cli.List(ctx); len(states) != 0 {
		t.Errorf("after invalid submissions List = %+v, want none", states)
	}
}

func TestSweepGrid(t *testing.T) {
	e := startEnv(t, true)
	ctx := context.Background()
	sweep := "name: lrs\npriority: low\nbase:\n" + indent(testSpec) + "grid:\n  optimizer.lr: [0.1, 0.01]\n  model.name: [mlp, cnn]\n  dataset.name: [fashion-mnist]\n"
	ids, err := e.cli.Sweep(ctx, []byte(sweep))
	if err != nil || len(ids) != 4 {
		t.Fatalf("Sweep = %v, %v; want 4 runs", ids, err)
	}
	got := e.dispatched(t, cluster.PriorityLow, 10)
	if len(got) != 4 {
		t.Fatalf("low priority requests = %d, want 4", len(got))
	}
	want := []struct {
		model string
		lr    float64
	}{{"mlp", 0.1}, {"mlp", 0.01}, {"cnn", 0.1}, {"cnn", 0.01}}
	for i, r := range got {
		var s train.Spec
		if err := json.Unmarshal(r.Spec, &s); err != nil {
			t.Fatal(err)
		}
		if r.RunID != ids[i] || r.Name != "lrs-"+string(rune('0'+i)) || r.SweepID == "" || r.SweepID != got[0].SweepID ||
			s.Model.Name != want[i].model || s.Optimizer.LR != want[i].lr || s.Name != r.Name {
			t.Errorf("run %d = %+v spec %+v, want %s lr %g", i, r, s, want[i].model, want[i].lr)
		}
	}
	states, err := e.cli.List(ctx)
	if err != nil || len(states) != 4 {
		t.Fatalf("List = %d states, %v", len(states), err)
	}
	for _, st := range states {
		if st.SweepID != got[0].SweepID || st.Status != cluster.StateQueued || st.Priority != cluster.PriorityLow {
			t.Errorf("state %+v", st)
		}
	}
	if _, err := e.cli.Sweep(ctx, []byte("name: bad\nbase:\n"+indent(testSpec)+"grid: {optimizer.lrr: [1]}\n")); !errors.Is(err, errs.Config) ||
		!strings.Contains(err.Error(), "optimizer.lrr") {
		t.Errorf("Sweep(unknown path) = %v, want a config error naming the path", err)
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n  ") + "\n"
}

func TestCancel(t *testing.T) {
	e := startEnv(t, true)
	ctx := context.Background()
	ids, err := e.cli.Submit(ctx, []byte(testSpec), "")
	if err != nil {
		t.Fatal(err)
	}
	queued := ids[0]
	ids, _ = e.cli.Submit(ctx, []byte(testSpec), "")
	running := ids[0]

	// queued -> cancelled
	if err := e.cli.Cancel(ctx, queued); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.cli.Status(ctx, queued); st.Status != cluster.StateCancelled {
		t.Errorf("cancelled queued run: status %q, want cancelled", st.Status)
	}
	// terminal -> error
	if err := e.cli.Cancel(ctx, queued); err == nil || !strings.Contains(err.Error(), "run "+queued+" already cancelled") {
		t.Errorf("second Cancel = %v, want \"already cancelled\"", err)
	}

	// running -> CancelRequested + a control notice to its worker
	if r := e.ask(t, "w1", cluster.WOpClaim, cluster.WorkerRequest{RunID: running}); r.Action != cluster.ActionTrain {
		t.Fatalf("claim = %+v", r)
	}
	notices, err := e.nc.SubscribeSync(cluster.ControlSubject("w1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cli.Cancel(ctx, running); err != nil {
		t.Fatal(err)
	}
	st, _ := e.cli.Status(ctx, running)
	if st.Status != cluster.StateRunning || !st.CancelRequested {
		t.Errorf("cancelled running run: %+v, want running with CancelRequested", st)
	}
	m, err := notices.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatalf("no control notice: %v", err)
	}
	var notice cluster.Control
	if err := cluster.Decode(m.Data, cluster.TypeControl, &notice); err != nil || notice.RunID != running || notice.Attempt != 1 {
		t.Errorf("notice = %+v, %v", notice, err)
	}
	// The worker ends it cancelled; then cancel is refused.
	r := e.ask(t, "w1", cluster.WOpFinish, cluster.WorkerRequest{RunID: running, Attempt: 1, Outcome: &cluster.Outcome{Status: cluster.StateCancelled}})
	if r.Error != "" || r.State.Status != cluster.StateCancelled || r.Action != cluster.ActionAck {
		t.Errorf("finish cancelled = %+v", r)
	}
	if err := e.cli.Cancel(ctx, running); !errors.Is(err, errs.Experiment) || !strings.Contains(err.Error(), "already cancelled") {
		t.Errorf("Cancel(cancelled) = %v", err)
	}
}

func TestUnknownRun(t *testing.T) {
	e := startEnv(t, true)
	ctx := context.Background()
	const id = "20990101T000000.000000Z-00000000"
	if _, err := e.cli.Status(ctx, id); !errors.Is(err, errs.Experiment) || !strings.Contains(err.Error(), "run "+id+" not found") {
		t.Errorf("Status(unknown) = %v, want an experiment error \"run %s not found\"", err, id)
	}
	if err := e.cli.Cancel(ctx, id); !errors.Is(err, errs.Experiment) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Cancel(unknown) = %v", err)
	}
	if _, err := e.cli.Status(ctx, "a b*"); !errors.Is(err, errs.Config) {
		t.Errorf("Status(bad id) = %v, want a config error", err)
	}
}

// TestGarbageRequest sends payloads that are not API requests and checks
// that each gets an error reply and the coordinator keeps serving.
func TestGarbageRequest(t *testing.T) {
	e := startEnv(t, true)
	wrongType, _ := cluster.Encode(cluster.TypeRunRequest, &cluster.RunRequest{RunID: "x"})
	for _, op := range []string{cluster.OpSubmit, cluster.OpSweep, cluster.OpCancel, cluster.OpStatus, cluster.OpList, cluster.OpWorkers} {
		for _, payload := range [][]byte{[]byte("garbage"), nil, wrongType} {
			m, err := e.nc.Request(cluster.APISubject(op), payload, 2*time.Second)
			if err != nil {
				t.Fatalf("%s(%q): %v", op, payload, err)
			}
			var r cluster.APIReply
			if err := cluster.Decode(m.Data, cluster.TypeAPIReply, &r); err != nil || r.Error == "" || r.Kind != "cluster" {
				t.Errorf("%s(%q) reply = %+v, %v; want a cluster error", op, payload, r, err)
			}
		}
	}
	// A request without a reply subject is dropped, not answered.
	if err := e.nc.Publish(cluster.APISubject(cluster.OpSubmit), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.Submit(context.Background(), []byte(testSpec), ""); err != nil {
		t.Errorf("Submit after garbage = %v", err)
	}
}

func TestNoCoordinator(t *testing.T) {
	e := startEnv(t, false)
	e.cli.Timeout = 500 * time.Millisecond
	start := time.Now()
	_, err := e.cli.Submit(context.Background(), []byte(testSpec), "")
	if !errors.Is(err, errs.Cluster) || !strings.Contains(err.Error(), "no coordinator answered on api.submit within 500ms") {
		t.Errorf("Submit with no coordinator = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v, want < 2s", d)
	}
}

// New gives up as soon as its context ends (Ctrl-C during start-up),
// instead of binding on under a fixed timeout.
func TestNewHonoursItsContext(t *testing.T) {
	ns := clustertest.Start(t, -1, cluster.SetupOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := New(ctx, ns.Connect(t, "coordinator", cluster.RoleCoordinator, ""), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("New with a cancelled context = %v, want context.Canceled", err)
	}
}
