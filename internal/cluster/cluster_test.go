package cluster

import (
	"context"
	"errors"
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
	ns, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := Connect("", ConnectOptions{Name: "test", InProcess: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := Setup(ctx, js); err != nil {
			t.Fatalf("Setup #%d: %v", i+1, err)
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
		if _, err := js.Publish(ctx, MetricsSubject("r"), []byte("x"), jetstream.WithMsgID(MsgID("r", 1, "metrics", 1))); err != nil {
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
