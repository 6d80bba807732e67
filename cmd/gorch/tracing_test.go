package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/services/coordinator"
)

// TestRunTraceInProcess runs the services of `gorch up` in this process
// with an in-memory span recorder and checks the shape of one run's trace:
// submit → run → train.step / checkpoint / collector.write, all one trace.
// (tests/integration's TestTracing checks the same through a real Jaeger.)
func TestRunTraceInProcess(t *testing.T) {
	t.Setenv("GORCH_TRACE_STEPS", "5")
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	prevDir := dataDirFlag
	dataDirFlag = t.TempDir()
	t.Cleanup(func() { dataDirFlag = prevDir })
	store, err := experiment.NewLocalStore(dataDirFlag)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lc, err := startLocalCluster(ctx, store, upOptions{workers: 1, slots: 1, natsPort: 0, inProcess: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = lc.stop(log)
		}
	}()
	spec := []byte(`{"model":{"name":"mlp","hidden":[8]},"dataset":{"name":"blobs","size":128},"optimizer":{"name":"adam","lr":0.01},
		"steps":20,"batch_size":16,"seed":1,"eval_every":20,"checkpoint_every":10}`)
	ids, err := coordinator.NewClient(lc.nc).Submit(ctx, spec, cluster.PriorityNormal)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := lc.js.KeyValue(ctx, cluster.BucketRuns)
	if err != nil {
		t.Fatal(err)
	}
	for {
		st, _, err := cluster.GetState(ctx, kv, ids[0])
		if err == nil && cluster.Terminal(st.Status) {
			if st.Status != cluster.StateSucceeded {
				t.Fatalf("run ended %s: %s", st.Status, st.Error)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("run not terminal: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopped = true
	if err := lc.stop(log); err != nil { // drains the collector
		t.Fatal(err)
	}

	count := map[string]int{}
	var submit, run sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		count[s.Name()]++
		switch s.Name() {
		case "submit":
			submit = s
		case "run":
			run = s
		}
	}
	if count["submit"] != 1 || count["run"] != 1 || count["train.step"] != 4 || count["checkpoint"] != 2 || count["collector.write"] < 1 {
		t.Fatalf("spans %v; want submit 1, run 1, train.step 4, checkpoint 2, collector.write ≥ 1", count)
	}
	trace := submit.SpanContext().TraceID()
	if submit.Parent().IsValid() {
		t.Errorf("submit has a parent %v; want a root span", submit.Parent())
	}
	if run.Parent().SpanID() != submit.SpanContext().SpanID() {
		t.Errorf("run's parent = %v; want submit %v", run.Parent().SpanID(), submit.SpanContext().SpanID())
	}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() != trace {
			t.Errorf("span %s in trace %v; want %v", s.Name(), s.SpanContext().TraceID(), trace)
		}
		switch s.Name() {
		case "train.step", "checkpoint", "collector.write":
			if s.Parent().SpanID() != run.SpanContext().SpanID() {
				t.Errorf("%s's parent = %v; want run %v", s.Name(), s.Parent().SpanID(), run.SpanContext().SpanID())
			}
		}
	}
}
