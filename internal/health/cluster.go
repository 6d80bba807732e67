package health

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
)

// Readiness is a service's readiness: NATS connected and its set-up
// (binding the cluster's streams and buckets, in the service's New) done.
type Readiness struct {
	nc      *nats.Conn
	done    atomic.Bool
	waiting atomic.Pointer[string] // why the set-up is not done yet, if known
}

// NewReadiness watches nc; call SetUp once the service is set up.
func NewReadiness(nc *nats.Conn) *Readiness { return &Readiness{nc: nc} }

// SetUp marks the service's set-up done.
func (r *Readiness) SetUp() { r.done.Store(true) }

// Waiting records why the set-up is not done yet (e.g. a stream `gorch
// setup` makes is missing), for Check to say.
func (r *Readiness) Waiting(why error) {
	msg := why.Error()
	r.waiting.Store(&msg)
}

// Check returns nil when ready, else why not.
func (r *Readiness) Check() error {
	switch {
	case r.nc == nil || !r.nc.IsConnected():
		return errors.New("NATS not connected")
	case r.done.Load():
		return nil
	case r.waiting.Load() != nil:
		return errors.New("set-up not done: " + *r.waiting.Load())
	}
	return errors.New("set-up not done")
}

// ClusterGauges reports the cluster-wide gauges: queue depth per priority
// (runs queued and not yet delivered, and runs delivered and not yet
// acked) and runs by state (a scan of the runs bucket, cached for TTL).
type ClusterGauges struct {
	js  jetstream.JetStream
	ttl time.Duration

	mu      sync.Mutex
	at      time.Time
	byState map[string]int
}

// NewClusterGauges reads the cluster through js; ttl bounds how stale the
// runs-by-state scan may be (0 means 5 s).
func NewClusterGauges(js jetstream.JetStream, ttl time.Duration) *ClusterGauges {
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	return &ClusterGauges{js: js, ttl: ttl}
}

// Metrics returns gorch_queue_pending, gorch_queue_in_flight and
// gorch_runs; a part that cannot be read is left out.
func (g *ClusterGauges) Metrics(ctx context.Context) []Metric {
	var out []Metric
	if q, ack, err := g.queue(ctx); err == nil {
		out = append(out, q, ack)
	}
	if by := g.runsByState(ctx); by != nil {
		m := Metric{Name: "gorch_runs", Help: "Runs in the runs bucket by state (cached a few seconds).", Type: "gauge"}
		for _, s := range []string{cluster.StateQueued, cluster.StateRunning, cluster.StateSucceeded, cluster.StateFailed, cluster.StateCancelled} {
			m.Samples = append(m.Samples, Sample{Labels: []string{"state", s}, Value: float64(by[s])})
		}
		for s, n := range by {
			switch s {
			case cluster.StateQueued, cluster.StateRunning, cluster.StateSucceeded, cluster.StateFailed, cluster.StateCancelled:
			default:
				m.Samples = append(m.Samples, Sample{Labels: []string{"state", s}, Value: float64(n)})
			}
		}
		sortSamples(m.Samples)
		out = append(out, m)
	}
	return out
}

// queue reads the queue gauges. The messages of a priority are counted
// in the RUNS stream's store (one stream info, filtered on the dispatch
// subjects), which holds a run request by the time its publisher has the
// stream's ack; the dispatch consumer's NumPending would lag behind it,
// since the server counts new messages for its consumers asynchronously
// (a gauge read right after a submit could say 0). A work-queue stream
// holds a request until it is acked, so queued = stored - in flight
// (the consumer's NumAckPending, which changes as it delivers).
func (g *ClusterGauges) queue(ctx context.Context) (pending, inFlight Metric, err error) {
	pending = Metric{Name: "gorch_queue_pending", Help: "Runs queued and not yet delivered to a worker, by priority.", Type: "gauge"}
	inFlight = Metric{Name: "gorch_queue_in_flight", Help: "Runs delivered to a worker and not yet acked, by priority.", Type: "gauge"}
	s, err := g.js.Stream(ctx, cluster.StreamRuns)
	if err != nil {
		return pending, inFlight, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(cluster.DispatchSubject("*")))
	if err != nil {
		return pending, inFlight, err
	}
	for _, p := range cluster.Priorities {
		c, err := g.js.Consumer(ctx, cluster.StreamRuns, cluster.DispatchConsumer(p))
		if err != nil {
			return pending, inFlight, err
		}
		acks := uint64(c.CachedInfo().NumAckPending)
		stored := info.State.Subjects[cluster.DispatchSubject(p)]
		labels := []string{"priority", string(p)}
		pending.Samples = append(pending.Samples, Sample{Labels: labels, Value: float64(stored - min(acks, stored))})
		inFlight.Samples = append(inFlight.Samples, Sample{Labels: labels, Value: float64(acks)})
	}
	return pending, inFlight, nil
}

func (g *ClusterGauges) runsByState(ctx context.Context) map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byState != nil && time.Since(g.at) < g.ttl {
		return g.byState
	}
	kv, err := g.js.KeyValue(ctx, cluster.BucketRuns)
	if err != nil {
		return g.byState
	}
	states, err := cluster.ListStates(ctx, kv)
	if err != nil {
		return g.byState
	}
	by := map[string]int{}
	for _, st := range states {
		by[st.Status]++
	}
	g.byState, g.at = by, time.Now()
	return by
}
