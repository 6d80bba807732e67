package train

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestRunTraceSpans: with a span in ctx, Run adds one train.step span per
// TraceSteps steps and one checkpoint span per checkpoint, children of it.
func TestRunTraceSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	spec := blobSpec(20)
	_, sink := newSink(t, spec)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "run")
	if _, err := Run(ctx, spec, sink, Options{TraceSteps: 5}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var steps []int64
	ckpts := 0
	for _, s := range rec.Ended() {
		if s.Name() == "run" {
			continue
		}
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %s: parent %v; want the run span", s.Name(), s.Parent().SpanID())
		}
		for _, a := range s.Attributes() {
			if a.Key == "gorch.step" && s.Name() == "train.step" {
				steps = append(steps, a.Value.AsInt64())
			}
		}
		if s.Name() == "checkpoint" {
			ckpts++
		}
	}
	if want := []int64{5, 10, 15, 20}; !slices.Equal(steps, want) || ckpts != 2 {
		t.Errorf("train.step spans at %v and %d checkpoint spans; want %v and 2", steps, ckpts, want)
	}
}
