// Package health serves a gorch service's /healthz, /readyz and
// Prometheus-format /metrics over HTTP.
//
// /healthz answers 200 "ok" while the process serves HTTP at all.
// /readyz answers 200 "ready" once the service's readiness check passes
// (NATS connected and the cluster layout set up) and 503 with the reason
// otherwise. /metrics writes the Prometheus text exposition format
// (version 0.0.4) by hand: the handful of gauges and counters gorch
// exposes do not justify client_golang's dependencies.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorch/gorch/pkg/errs"
)

// Metric is one metric family.
type Metric struct {
	Name    string // e.g. gorch_queue_pending
	Help    string
	Type    string // "gauge" or "counter"
	Samples []Sample
}

// Sample is one value of a family, with its labels as name, value pairs.
type Sample struct {
	Labels []string
	Value  float64
}

// Options are what a server reports.
type Options struct {
	// Ready returns nil when the service is ready; nil means always ready.
	Ready func() error
	// Metrics returns the families to expose, each call; may be nil.
	Metrics []func(context.Context) []Metric
}

// Server is a running health and metrics endpoint.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	opts Options
	done chan struct{}
	// serveErr is why Serve returned, other than Close (set before done
	// is closed).
	serveErr error

	mu    sync.Mutex
	extra []func(context.Context) []Metric
}

// Register adds a source of metrics after Start (a service created once
// the server runs).
func (s *Server) Register(f func(context.Context) []Metric) {
	s.mu.Lock()
	s.extra = append(s.extra, f)
	s.mu.Unlock()
}

// Start listens on addr (host:port; port 0 picks a free one) and serves
// until Close.
func Start(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errs.Wrap(errs.Config, "health", err, "listening on --http %s", addr)
	}
	s := &Server{ln: ln, opts: opts, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /metrics", s.metrics)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = errs.Wrap(errs.IO, "health", err, "serving --http %s", ln.Addr())
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, s.serveErr)
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = io.WriteString(w, "ready\n")
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	var all []Metric
	s.mu.Lock()
	fs := append(slices.Clone(s.opts.Metrics), s.extra...)
	s.mu.Unlock()
	for _, f := range fs {
		all = append(all, f(ctx)...)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = io.WriteString(w, Format(all))
}

// Format writes families in the Prometheus text exposition format.
func Format(ms []Metric) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m.Name, escapeHelp(m.Help), m.Name, m.Type)
		for _, smp := range m.Samples {
			b.WriteString(m.Name)
			if len(smp.Labels) >= 2 {
				b.WriteByte('{')
				for i := 0; i+1 < len(smp.Labels); i += 2 {
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, "%s=%q", smp.Labels[i], smp.Labels[i+1])
				}
				b.WriteByte('}')
			}
			b.WriteByte(' ')
			b.WriteString(formatValue(smp.Value))
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Gauge is a one-sample gauge family.
func Gauge(name, help string, v float64) Metric {
	return Metric{Name: name, Help: help, Type: "gauge", Samples: []Sample{{Value: v}}}
}

// Counter is a one-sample counter family.
func Counter(name, help string, v float64) Metric {
	return Metric{Name: name, Help: help, Type: "counter", Samples: []Sample{{Value: v}}}
}

// sortSamples orders samples by their labels, for stable output.
func sortSamples(ss []Sample) {
	slices.SortFunc(ss, func(a, b Sample) int {
		return strings.Compare(strings.Join(a.Labels, "\x00"), strings.Join(b.Labels, "\x00"))
	})
}
