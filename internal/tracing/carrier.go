package tracing

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Carrier adapts nats.Header to propagation.TextMapCarrier without
// changing key case: W3C keys stay "traceparent" and "tracestate".
type Carrier nats.Header

var _ propagation.TextMapCarrier = Carrier(nil)

// Get returns the first value of key.
func (c Carrier) Get(key string) string { return nats.Header(c).Get(key) }

// Set sets key to value; a nil Carrier drops it.
func (c Carrier) Set(key, value string) {
	if c != nil {
		c[key] = []string{value}
	}
}

// Keys lists the header keys.
func (c Carrier) Keys() []string {
	ks := make([]string, 0, len(c))
	for k := range c {
		ks = append(ks, k)
	}
	return ks
}

// Inject writes ctx's trace context into h (which must not be nil; use
// nats.NewMsg).
func Inject(ctx context.Context, h nats.Header) {
	otel.GetTextMapPropagator().Inject(ctx, Carrier(h))
}

// Extract returns ctx with the remote trace context found in h, if any.
func Extract(ctx context.Context, h nats.Header) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, Carrier(h))
}

// TraceParent returns ctx's span context as a W3C traceparent value, or
// "" when ctx carries no valid span context.
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	m := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, m)
	return m["traceparent"]
}

// FromTraceParent returns ctx with the remote span context of a W3C
// traceparent value; ctx unchanged when tp is empty or malformed.
func FromTraceParent(ctx context.Context, tp string) context.Context {
	if tp == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
}

// Tracer returns gorch's tracer from the global provider.
func Tracer() trace.Tracer { return otel.Tracer(Instrumentation) }

// Messaging returns the OpenTelemetry messaging attributes of a NATS
// operation: opType is "send", "receive" or "process", dest the subject.
func Messaging(opType, dest string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.type", opType),
		attribute.String("messaging.destination.name", dest),
	}
}
