package tracing

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestCarrierKeepsLowercaseKeys(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	msg := nats.NewMsg("x")
	Inject(ctx, msg.Header)
	if got := msg.Header.Get("traceparent"); got == "" {
		t.Fatalf("header after Inject = %v; want a lowercase traceparent key", msg.Header)
	}
	if _, ok := msg.Header["Traceparent"]; ok {
		t.Errorf("header after Inject = %v; want no canonicalised Traceparent key", msg.Header)
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), msg.Header))
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || !got.IsRemote() {
		t.Errorf("Extract(Inject(span)) = %v/%v remote %v; want %v/%v remote", got.TraceID(), got.SpanID(), got.IsRemote(),
			span.SpanContext().TraceID(), span.SpanContext().SpanID())
	}
}

func TestTraceParentRoundTrip(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	s := TraceParent(ctx)
	if len(s) != 55 {
		t.Fatalf("TraceParent = %q; want a 55-character W3C traceparent", s)
	}
	got := trace.SpanContextFromContext(FromTraceParent(context.Background(), s))
	if got.SpanID() != span.SpanContext().SpanID() {
		t.Errorf("FromTraceParent(%q) span %v; want %v", s, got.SpanID(), span.SpanContext().SpanID())
	}
	if TraceParent(context.Background()) != "" {
		t.Errorf("TraceParent(no span) != \"\"")
	}
	if FromTraceParent(context.Background(), "garbage") == nil || trace.SpanContextFromContext(FromTraceParent(context.Background(), "garbage")).IsValid() {
		t.Errorf("FromTraceParent(garbage) gave a valid span context")
	}
}

func TestNilCarrierSetDoesNotPanic(t *testing.T) {
	Carrier(nil).Set("traceparent", "x")
}

func TestSetupOffIsNoop(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
	}
	before := otel.GetTracerProvider()
	shutdown, err := Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if otel.GetTracerProvider() != before {
		t.Errorf("Setup with nothing configured replaced the tracer provider")
	}
	if err := shutdown(context.Background()); err != nil {
		t.Errorf("shutdown = %v", err)
	}
	_, span := Tracer().Start(context.Background(), "x")
	if span.IsRecording() {
		t.Errorf("span with tracing off is recording")
	}
}

func TestEnabledAndProtocol(t *testing.T) {
	cases := []struct {
		env     map[string]string
		enabled bool
		proto   string
	}{
		{map[string]string{}, false, "http/protobuf"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, "http/protobuf"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, "grpc"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, true, "grpc"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h", "OTEL_SDK_DISABLED": "true"}, false, "http/protobuf"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h", "OTEL_TRACES_EXPORTER": "none"}, false, "http/protobuf"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, "http/protobuf"},
	}
	keys := []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"}
	for _, c := range cases {
		for _, k := range keys {
			t.Setenv(k, c.env[k])
		}
		p, err := Protocol()
		if Enabled() != c.enabled || p != c.proto || err != nil {
			t.Errorf("env %v: Enabled() = %v, Protocol() = %q, %v; want %v, %q", c.env, Enabled(), p, err, c.enabled, c.proto)
		}
	}
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "")
	if _, err := Protocol(); err == nil {
		t.Errorf("Protocol() with http/json = nil error; want one")
	}
}

func TestStepsFromEnv(t *testing.T) {
	for in, want := range map[string]int{"": DefaultTraceSteps, "1": 1, "0": 0, "x": DefaultTraceSteps, "-3": DefaultTraceSteps, "200": 200} {
		t.Setenv("GORCH_TRACE_STEPS", in)
		if got := StepsFromEnv(); got != want {
			t.Errorf("StepsFromEnv() with GORCH_TRACE_STEPS=%q = %d; want %d", in, got, want)
		}
	}
}
