package tracing

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gorch/gorch/pkg/errs"
)

// Defaults of the batch span processor and of step sampling.
const (
	DefaultQueueSize  = 16384
	DefaultBatchSize  = 2048
	DefaultTraceSteps = 50
)

// Instrumentation is the tracer name of gorch's services.
const Instrumentation = "github.com/gorch/gorch"

// Enabled reports whether the environment asks for trace export.
func Enabled() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER"))) {
	case "none":
		return false
	case "otlp":
		return true
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Protocol returns the OTLP protocol the environment names: "grpc" or
// "http/protobuf" (the default).
func Protocol() (string, error) {
	p := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if p == "" {
		p = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch p {
	case "", "http/protobuf":
		return "http/protobuf", nil
	case "grpc":
		return "grpc", nil
	}
	return "", errs.New(errs.Config, "tracing", "OTEL_EXPORTER_OTLP_PROTOCOL %q: gorch exports grpc or http/protobuf", p)
}

// Setup installs the W3C trace-context propagator and, when the
// environment configures an OTLP exporter (see the package
// documentation), a global tracer provider for service (the default
// service.name; OTEL_SERVICE_NAME wins). The returned shutdown flushes
// and stops the provider; call it on exit. With tracing off it does
// nothing and returns a no-op shutdown.
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	nop := func(context.Context) error { return nil }
	if !Enabled() {
		return nop, nil
	}
	const op = "tracing.Setup"
	proto, err := Protocol()
	if err != nil {
		return nop, err
	}
	var exp *otlptrace.Exporter
	if proto == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nop, errs.Wrap(errs.Config, op, err, "OTLP %s exporter", proto)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && res == nil {
		_ = exp.Shutdown(ctx)
		return nop, errs.Wrap(errs.Config, op, err, "resource")
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, batchOptions()...),
		sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return errors.Join(tp.ForceFlush(ctx), tp.Shutdown(ctx))
	}, nil
}

// batchOptions sizes the batch span processor for step bursts, leaving
// what OTEL_BSP_* sets alone (options override the environment).
func batchOptions() []sdktrace.BatchSpanProcessorOption {
	var o []sdktrace.BatchSpanProcessorOption
	if os.Getenv("OTEL_BSP_MAX_QUEUE_SIZE") == "" {
		o = append(o, sdktrace.WithMaxQueueSize(DefaultQueueSize))
	}
	if os.Getenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") == "" {
		o = append(o, sdktrace.WithMaxExportBatchSize(DefaultBatchSize))
	}
	return o
}

// StepsFromEnv returns GORCH_TRACE_STEPS: a train.step span every N steps
// (0 turns step spans off); DefaultTraceSteps when unset or invalid.
func StepsFromEnv() int {
	s := os.Getenv("GORCH_TRACE_STEPS")
	if s == "" {
		return DefaultTraceSteps
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return DefaultTraceSteps
	}
	return n
}
