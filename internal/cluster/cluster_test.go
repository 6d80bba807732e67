package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/pkg/errs"
)

func TestWireRoundTripAndRejects(t *testing.T) {
	in := MetricBatch{RunID: "r1", Attempt: 2, Seq: 7, Points: []MetricPoint{{Step: 3, Name: "train/loss", Value: 0.5, Time: time.Unix(10, 0).UTC()}}}
	b, err := Encode(TypeMetricBatch, &in)
	if err != nil {
		t.Fatal(err)
	}
	var out MetricBatch
	if err := Decode(b, TypeMetricBatch, &out); err != nil {
		t.Fatal(err)
	}
	if out.RunID != "r1" || out.Attempt != 2 || len(out.Points) != 1 || out.Points[0].Value != 0.5 || !out.Points[0].Time.Equal(in.Points[0].Time) {
		t.Errorf("round trip = %+v", out)
	}
	future, _ := msgpack.Marshal(&Envelope{V: 9, Type: TypeMetricBatch})
	cases := map[string][]byte{"garbage": []byte("not msgpack"), "future version": future, "wrong type": b[:0]}
	wrongType, _ := Encode(TypeRunEvent, &RunEvent{RunID: "x"})
	cases["wrong type"] = wrongType
	for name, msg := range cases {
		if err := Decode(msg, TypeMetricBatch, &out); !errors.Is(err, errs.Cluster) {
			t.Errorf("%s: Decode err = %v, want a cluster error", name, err)
		}
	}
	if _, err := ParsePriority("urgent"); !errors.Is(err, errs.Config) {
		t.Errorf("ParsePriority(urgent) err = %v", err)
	}
}

func TestSetupIdempotentOnEmbeddedServer(t *testing.T) {
	js := embeddedJS(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		res, err := Setup(ctx, js, SetupOptions{})
		if err != nil {
			t.Fatalf("Setup #%d: %v", i+1, err)
		}
		if created, kept := len(res.Created), len(res.Kept); i == 0 && (created != 9 || kept != 0) || i == 1 && (created != 0 || kept != 9) {
			t.Errorf("Setup #%d created %v and kept %v; want all 9 created the first time, kept the second", i+1, res.Created, res.Kept)
		}
	}
	for _, name := range []string{StreamRuns, StreamEvents, StreamDLQ} {
		if _, err := js.Stream(ctx, name); err != nil {
			t.Errorf("stream %s: %v", name, err)
		}
	}
	kv, err := js.KeyValue(ctx, BucketRuns)
	if err != nil {
		t.Fatal(err)
	}
	// Compare-and-set: a stale revision is refused.
	b, _ := msgpack.Marshal(&RunState{RunID: "r", Status: StateQueued})
	rev, err := kv.Create(ctx, RunKey("r"), b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(ctx, RunKey("r"), b, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(ctx, RunKey("r"), b, rev); err == nil {
		t.Errorf("update with a stale revision succeeded")
	}
	// Dedup on the event stream.
	for i := 0; i < 2; i++ {
		if _, err := js.Publish(ctx, EventSubject("w", KindMetrics, "r"), []byte("x"), jetstream.WithMsgID(MsgID("r", 1, "metrics", 1))); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := js.Stream(ctx, StreamEvents)
	info, _ := st.Info(ctx)
	if info.State.Msgs != 1 {
		t.Errorf("events stream holds %d messages after a duplicate publish, want 1", info.State.Msgs)
	}
}

func TestUsedAttemptsIgnoresHandBacks(t *testing.T) {
	for _, c := range []struct{ attempt, handBacks, want int }{{0, 0, 0}, {3, 0, 3}, {3, 3, 0}, {5, 3, 2}} {
		if got := (RunState{Attempt: c.attempt, HandBacks: c.handBacks}).UsedAttempts(); got != c.want {
			t.Errorf("RunState{Attempt: %d, HandBacks: %d}.UsedAttempts() = %d, want %d", c.attempt, c.handBacks, got, c.want)
		}
	}
}

// TestSetupKeepsOperatorEdits: Setup never changes a stream, consumer or
// bucket that exists, so an operator's edits survive it; what is missing
// it creates with its options.
func TestSetupKeepsOperatorEdits(t *testing.T) {
	js := embeddedJS(t)
	ctx := context.Background()
	if _, err := Setup(ctx, js, SetupOptions{EventsMaxBytes: 64 << 20, DLQMaxAge: time.Hour, FinishedTTL: 48 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	ev, err := js.Stream(ctx, StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ev.CachedInfo().Config
	if cfg.MaxBytes != 64<<20 || cfg.Discard != jetstream.DiscardNew || cfg.MaxAge != DefaultEventsMaxAge {
		t.Errorf("EVENTS max bytes %d, discard %v, max age %v; want %d, new, %v", cfg.MaxBytes, cfg.Discard, cfg.MaxAge, 64<<20, DefaultEventsMaxAge)
	}
	cfg.MaxBytes = 1 << 30 // the operator's edit
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteConsumer(ctx, StreamRuns, DispatchConsumer(PriorityLow)); err != nil {
		t.Fatal(err)
	}
	res, err := Setup(ctx, js, SetupOptions{EventsMaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Created) != 1 || res.Created[0] != "consumer RUNS/disp-low" {
		t.Errorf("second Setup created %v; want only the deleted consumer RUNS/disp-low", res.Created)
	}
	info, err := ev.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxBytes != 1<<30 {
		t.Errorf("EVENTS max bytes %d after a second Setup; want the operator's %d", info.Config.MaxBytes, 1<<30)
	}
	kv, err := js.KeyValue(ctx, BucketRuns)
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := FinishedTTL(ctx, kv); err != nil || ttl != 48*time.Hour {
		t.Errorf("FinishedTTL = %v, %v; want 48h", ttl, err)
	}
}

// TestBindNamesWhatIsMissing: a service on a server nobody set up gets
// one line naming the missing stream, consumer or bucket, and Unready
// says that waiting (for `gorch setup`) can help; with everything set up
// nothing is missing, and other errors are not "unready".
func TestBindNamesWhatIsMissing(t *testing.T) {
	js := embeddedJS(t)
	ctx := context.Background()
	_, err := BindConsumer(ctx, js, StreamEvents, ConsumerCollect)
	if err == nil || err.Error() != "cluster.Bind: stream EVENTS not found: run 'gorch setup' against this NATS server" || !Unready(err) {
		t.Errorf("BindConsumer on an empty server = %v (unready %v); want one line naming stream EVENTS, unready", err, Unready(err))
	}
	if _, err := BindKV(ctx, js, BucketRuns); err == nil || !strings.Contains(err.Error(), "bucket runs not found: run 'gorch setup'") || !Unready(err) {
		t.Errorf("BindKV on an empty server = %v; want one line naming bucket runs, unready", err)
	}
	if _, err := BindStream(ctx, js, StreamRuns); err == nil || !strings.Contains(err.Error(), "stream RUNS not found: run 'gorch setup'") || !Unready(err) {
		t.Errorf("BindStream on an empty server = %v; want one line naming stream RUNS, unready", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: StreamEvents, Subjects: []string{"ev.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := BindConsumer(ctx, js, StreamEvents, ConsumerCollect); err == nil ||
		!strings.Contains(err.Error(), "consumer collector of stream EVENTS not found") || !Unready(err) {
		t.Errorf("BindConsumer without the consumer = %v; want one line naming it, unready", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := BindStream(cctx, js, StreamEvents); err == nil || Unready(err) {
		t.Errorf("BindStream with a cancelled context = %v (unready %v); want an error that waiting does not fix", err, Unready(err))
	}
	dctx, cancel := context.WithTimeout(ctx, -time.Second)
	defer cancel()
	if _, err := BindStream(dctx, js, StreamEvents); err == nil || !Unready(err) {
		t.Errorf("BindStream unanswered in time = %v (unready %v); want an error that waiting may fix", err, Unready(err))
	}
	if !Unready(jetstream.ErrJetStreamNotEnabled) || Unready(errs.New(errs.Config, "x", "y")) {
		t.Errorf("Unready(JetStream not enabled) = %v, Unready(a config error) = %v; want true, false",
			Unready(jetstream.ErrJetStreamNotEnabled), Unready(errs.New(errs.Config, "x", "y")))
	}
}

func TestSubjects(t *testing.T) {
	for _, c := range []struct {
		subj              string
		worker, kind, run string
		ok                bool
	}{
		{EventSubject("w1", KindMetrics, "r1"), "w1", "metrics", "r1", true},
		{"ev.w1.run.old.style.id", "w1", "run", "old.style.id", true},
		{"ev.w1.metrics", "", "", "", false},
		{"ev..metrics.r", "", "", "", false},
		{"dlq.x.y.z", "", "", "", false},
	} {
		w, k, r, ok := ParseEventSubject(c.subj)
		if w != c.worker || k != c.kind || r != c.run || ok != c.ok {
			t.Errorf("ParseEventSubject(%q) = %q, %q, %q, %v; want %q, %q, %q, %v", c.subj, w, k, r, ok, c.worker, c.kind, c.run, c.ok)
		}
	}
	for _, c := range []struct {
		subj, worker, op string
		ok               bool
	}{
		{WorkerAPISubject("w1", WOpClaim), "w1", "claim", true},
		{"wapi.w1.claim.extra", "", "", false},
		{"api.w1.claim", "", "", false},
	} {
		w, op, ok := ParseWorkerAPISubject(c.subj)
		if w != c.worker || op != c.op || ok != c.ok {
			t.Errorf("ParseWorkerAPISubject(%q) = %q, %q, %v; want %q, %q, %v", c.subj, w, op, ok, c.worker, c.op, c.ok)
		}
	}
	if got, want := InboxPrefix(RoleWorker, "w1"), "_INBOX_worker_w1"; got != want {
		t.Errorf("InboxPrefix(worker, w1) = %q; want %q", got, want)
	}
	for id, want := range map[string]bool{"w-1_a": true, "": false, "w.1": false, "w*": false, "w 1": false} {
		if ValidID(id) != want {
			t.Errorf("ValidID(%q) = %v; want %v", id, !want, want)
		}
	}
}

// embeddedJS is JetStream on an in-process server with nothing set up.
func embeddedJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	ns, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := Connect("", ConnectOptions{Name: "test", InProcess: ns, InboxPrefix: InboxPrefix(RoleAdmin, "")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
