// Package tracing sets up OpenTelemetry tracing for gorch's services and
// carries W3C trace context over NATS message headers.
//
// # Configuration
//
// [Setup] reads the standard OTEL_* environment variables. Tracing is on
// when an OTLP endpoint is configured (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER=otlp, and
// off when OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none. The
// protocol comes from OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL: grpc or http/protobuf (the default, as the
// specification says). The exporters read the remaining OTEL_EXPORTER_OTLP_*
// variables (headers, timeout, TLS) themselves, the SDK reads
// OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_*, and the resource takes
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
//
// When tracing is off, Setup installs nothing: the global tracer provider
// stays OpenTelemetry's no-op one, no exporter or goroutine is started,
// and a span costs an interface call. The W3C propagator is installed
// either way, so a service with tracing off still passes a trace context
// it received on to the messages it publishes.
//
// # Step bursts
//
// A training loop can end thousands of spans a second. The batch span
// processor gets a queue of [DefaultQueueSize] spans and export batches of
// [DefaultBatchSize] (unless OTEL_BSP_MAX_QUEUE_SIZE or
// OTEL_BSP_MAX_EXPORT_BATCH_SIZE say otherwise), and the worker samples
// step spans: one train.step span per [StepsFromEnv] steps
// (GORCH_TRACE_STEPS, default [DefaultTraceSteps]).
//
// # NATS headers
//
// [Carrier] is a propagation.TextMapCarrier over nats.Header that keeps
// keys exactly as given, so the header on the wire is "traceparent" in
// lower case as W3C specifies. (propagation.HeaderCarrier is an http.Header
// adapter: it would write "Traceparent", and nats.Header lookups are
// case-sensitive.) [Inject] and [Extract] use the global propagator.
package tracing
