package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/health"
	"github.com/gorch/gorch/internal/natsconn"
	"github.com/gorch/gorch/internal/tracing"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/services/collector"
	"github.com/gorch/gorch/services/worker"
)

// obsOptions are the observability flags of a service command.
type obsOptions struct {
	http string
}

// obsFlags adds --http to a service command.
func obsFlags(cmd *cobra.Command) *obsOptions {
	o := &obsOptions{}
	cmd.Flags().StringVar(&o.http, "http", "", "serve /healthz, /readyz and Prometheus /metrics on this address (e.g. 127.0.0.1:9464; default off)")
	return o
}

// service is the observability of one running service command: its
// tracer provider (from OTEL_*) and, with --http, its health server.
type service struct {
	log         *slog.Logger
	stopTracing func(context.Context) error
	srv         *health.Server
	ready       *health.Readiness
}

// startTracing sets up tracing for the service named name (the default
// OTEL_SERVICE_NAME).
func (o *obsOptions) startTracing(ctx context.Context, name string, log *slog.Logger) (*service, error) {
	stop, err := tracing.Setup(ctx, name)
	if err != nil {
		return nil, err
	}
	if tracing.Enabled() {
		p, _ := tracing.Protocol()
		log.Info("tracing on", "service", name, "protocol", p)
	}
	return &service{log: log, stopTracing: stop}, nil
}

// serveHTTP starts the --http server (if asked for) reporting nc's
// readiness; call ready.SetUp once the service is set up.
func (s *service) serveHTTP(addr string, nc *nats.Conn) error {
	s.ready = health.NewReadiness(nc)
	if addr == "" {
		return nil
	}
	srv, err := health.Start(addr, health.Options{Ready: s.ready.Check})
	if err != nil {
		return err
	}
	s.srv = srv
	s.log.Info("http serving", "addr", srv.Addr(), "paths", "/healthz /readyz /metrics")
	return nil
}

// bindCluster calls newSvc (a service's New, which binds the streams and
// buckets `gorch setup` makes) until it succeeds. While the cluster is not
// ready — a stream or bucket missing because setup has not run yet (a
// Kubernetes setup Job still running), or JetStream electing its leader —
// it logs why in one line (the first few tries, then every 32nd) and
// /readyz says it, and it tries again with backoff, as the services wait
// for NATS itself. Any other error ends it. Call serveHTTP first.
func bindCluster[T any](ctx context.Context, s *service, newSvc func() (T, error)) (T, error) {
	for n := 1; ; n++ {
		v, err := newSvc()
		if err == nil || !cluster.Unready(err) {
			return v, err
		}
		s.ready.Waiting(err)
		if n <= 4 || n%32 == 0 {
			s.log.Warn("cluster not ready; retrying with backoff", "attempt", n, "max_delay", natsconn.MaxDelay, "err", err)
		}
		select {
		case <-ctx.Done():
			return v, errs.Wrap(errs.Cluster, "setup", ctx.Err(), "waiting for the cluster's streams and buckets")
		case <-time.After(natsconn.Delay(n)):
		}
	}
}

// metrics registers a source of metrics with the --http server, if any.
func (s *service) metrics(f func(context.Context) []health.Metric) {
	if s.srv != nil {
		s.srv.Register(f)
	}
}

// close stops the HTTP server and flushes the service's spans.
func (s *service) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.srv != nil {
		_ = s.srv.Close(ctx)
	}
	if err := s.stopTracing(ctx); err != nil {
		s.log.Warn("flushing traces failed", "err", err)
	}
}

// workerMetrics are the metrics of a worker's (or several workers') stats.
func workerMetrics(ws ...*worker.Worker) func(context.Context) []health.Metric {
	return func(context.Context) []health.Metric {
		var st worker.Stats
		for _, w := range ws {
			s := w.Stats()
			st.Active += s.Active
			st.Checkpoints += s.Checkpoints
			st.CheckpointBytes += s.CheckpointBytes
		}
		return []health.Metric{
			health.Gauge("gorch_worker_active_runs", "Runs this process is training.", float64(st.Active)),
			health.Counter("gorch_worker_checkpoints_total", "Checkpoints written.", float64(st.Checkpoints)),
			health.Counter("gorch_worker_checkpoint_bytes_total", "Bytes of the checkpoints written.", float64(st.CheckpointBytes)),
		}
	}
}

// collectorMetrics are the metrics of a collector's stats.
func collectorMetrics(c *collector.Collector) func(context.Context) []health.Metric {
	return func(context.Context) []health.Metric {
		st := c.Stats()
		ms := []health.Metric{
			health.Counter("gorch_collector_records_total", "Metric points and telemetry events written to the store.", float64(st.Records)),
			health.Counter("gorch_collector_messages_total", "EVENTS messages written and acked.", float64(st.Messages)),
			health.Counter("gorch_collector_forged_total", "Events dead-lettered because their worker did not claim their attempt.", float64(st.Forged)),
		}
		if !st.LastEvent.IsZero() {
			ms = append(ms,
				health.Gauge("gorch_collector_ingest_lag_seconds", "Publish-to-ack time of the last acked event.", st.IngestLag.Seconds()),
				health.Gauge("gorch_collector_last_event_timestamp_seconds",
					"Publish time of the last acked event (time() minus this is how far the records trail).",
					float64(st.LastEvent.UnixNano())/1e9))
		}
		return ms
	}
}
