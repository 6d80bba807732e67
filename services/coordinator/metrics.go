package coordinator

import (
	"context"
	"errors"
	"iter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
)

// MetricPoint is one metric value a run's worker published, with the
// attempt that published it.
type MetricPoint struct {
	Attempt int       `json:"attempt"`
	Step    int64     `json:"step"`
	Name    string    `json:"name"`
	Value   float64   `json:"value"`
	Time    time.Time `json:"time"`
}

// Metrics yields the metric points run's workers published, oldest first,
// from the cluster's event stream (`gorch logs`, Python's Run.follow).
// Without follow it stops at the run's newest point as of the call; with
// follow, at its last point once the run is terminal. It ends without an
// error when ctx is cancelled.
func (c *Client) Metrics(ctx context.Context, run string, follow bool) iter.Seq2[MetricPoint, error] {
	return func(yield func(MetricPoint, error) bool) {
		if err := c.metrics(ctx, run, follow, yield); err != nil {
			yield(MetricPoint{}, err)
		}
	}
}

func (c *Client) metrics(ctx context.Context, run string, follow bool, yield func(MetricPoint, error) bool) error {
	const op = "logs"
	if !experiment.ValidRunID(run) {
		return errs.New(errs.Experiment, op, "run %s not found", run)
	}
	ctx, cancel := context.WithCancel(ctx) // ends the state watch with the read
	defer cancel()
	js, err := jetstream.New(c.nc)
	if err != nil {
		return errs.Wrap(errs.Cluster, op, err, "")
	}
	kv, err := js.KeyValue(ctx, cluster.BucketRuns)
	if err != nil {
		return errs.Wrap(errs.Cluster, op, err, "bucket %s (is this a gorch cluster's NATS server?)", cluster.BucketRuns)
	}
	st, _, err := cluster.GetState(ctx, kv, run)
	if err != nil {
		return err
	}
	stream, err := js.Stream(ctx, cluster.StreamEvents)
	if err != nil {
		return errs.Wrap(errs.Cluster, op, err, "stream %s", cluster.StreamEvents)
	}
	subj := cluster.EventFilter(cluster.KindMetrics, run)
	// lastSeq is the stream sequence of the run's newest metric batch
	// (0: none yet).
	lastSeq := func() (uint64, error) {
		m, err := stream.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, errs.Wrap(errs.Cluster, op, err, "stream %s", cluster.StreamEvents)
		}
		return m.Sequence, nil
	}

	terminal, err := endSignal(ctx, kv, run, follow && !cluster.Terminal(st.Status))
	if err != nil {
		return err
	}
	var until uint64 // the run's last metric batch, once the end is known
	known := false
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return errs.Wrap(errs.Cluster, op, err, "reading %s", subj)
	}
	var seen uint64
	for {
		if !known {
			select {
			case <-terminal:
				if until, err = lastSeq(); err != nil {
					return err
				}
				known = true
			default:
			}
		}
		if known && seen >= until {
			return nil
		}
		if ctx.Err() != nil {
			return nil // interrupted while following
		}
		batch, err := cons.Fetch(64, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return errs.Wrap(errs.Cluster, op, err, "reading %s", subj)
		}
		for m := range batch.Messages() {
			if md, err := m.Metadata(); err == nil {
				seen = md.Sequence.Stream
			}
			var b cluster.MetricBatch
			if err := cluster.Decode(m.Data(), cluster.TypeMetricBatch, &b); err != nil {
				continue // the collector dead-letters it; nothing to show
			}
			for _, p := range b.Points {
				if !yield(MetricPoint{Attempt: b.Attempt, Step: p.Step, Name: p.Name, Value: p.Value, Time: p.Time}, nil) {
					return nil
				}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil && !isFetchTimeout(err) {
			return errs.Wrap(errs.Cluster, op, err, "reading %s", subj)
		}
	}
}

// endSignal returns a channel that is closed once the run's points are
// all in the stream: at once unless watch, else when a watch of the run's
// state sees it end (or ctx ends).
func endSignal(ctx context.Context, kv jetstream.KeyValue, run string, watch bool) (<-chan struct{}, error) {
	terminal := make(chan struct{})
	if !watch {
		close(terminal)
		return terminal, nil
	}
	watcher, err := kv.Watch(ctx, cluster.RunKey(run), jetstream.UpdatesOnly())
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, "logs", err, "watching run %s", run)
	}
	go func() {
		defer watcher.Stop()
		for e := range watcher.Updates() {
			var s cluster.RunState
			if e != nil && cluster.Unmarshal(e.Value(), &s) == nil && cluster.Terminal(s.Status) {
				close(terminal)
				return
			}
		}
	}()
	// A run that ended between the read and the watch.
	if st, _, err := cluster.GetState(ctx, kv, run); err == nil && cluster.Terminal(st.Status) {
		watcher.Stop()
		return endSignal(ctx, kv, run, false)
	}
	return terminal, nil
}

// isFetchTimeout reports a Fetch that ended for lack of messages.
func isFetchTimeout(err error) bool {
	return errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoHeartbeat)
}
