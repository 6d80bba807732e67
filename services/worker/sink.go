package worker

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/tracing"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/tensor"
	"github.com/gorch/gorch/pkg/train"
)

// Retries of checkpoint writes and reads that fail on the store or on a
// NATS read (the S3 server or the broker restarting): with backoff from
// storeRetryBase doubling to storeRetryMax, for up to storeRetryFor, before
// the attempt fails. The run's ack deadline keeps being extended meanwhile.
const (
	storeRetryFor  = 2 * time.Minute
	storeRetryBase = 200 * time.Millisecond
	storeRetryMax  = 5 * time.Second
)

// retryStore calls f until it succeeds, fails with an error that is not
// transient (anything but errs.IO and errs.Cluster, and always
// errNotOwner), ctx ends, or storeRetryFor passes.
func (s *ClusterSink) retryStore(ctx context.Context, what string, f func() error) error {
	deadline := time.Now().Add(storeRetryFor)
	wait := storeRetryBase
	for try := 1; ; try++ {
		err := f()
		transient := err != nil && !errors.Is(err, errNotOwner) && (errors.Is(err, errs.IO) || errors.Is(err, errs.Cluster))
		if !transient || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		s.w.log.Warn(what+" failed; retrying", "run", s.runID, "attempt", s.attempt, "try", try, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, storeRetryMax)
	}
}

// ownedNow reads the run state and fails with errNotOwner unless this
// attempt still owns the run: the fence of every checkpoint write.
func (s *ClusterSink) ownedNow(ctx context.Context) error {
	st, _, err := s.w.getState(ctx, s.runID)
	if err != nil {
		return err
	}
	return s.w.owned(&st, s.attempt)
}

// publishTries is how often a publish is tried (with the same Msg-Id, so
// the stream keeps one copy) before the attempt fails.
const publishTries = 3

// ClusterSink is the [train.Sink] of one attempt on a worker: metrics and
// telemetry go to the EVENTS stream in batches, checkpoints to the object
// store (announced on the stream and recorded in the run state).
type ClusterSink struct {
	w       *Worker
	runID   string
	attempt int
	req     *cluster.RunRequest
	spec    *train.Spec
	ckpts   *train.Checkpoints
	stop    context.CancelCauseFunc // cancels the attempt's training
	trace   context.Context         // carries the attempt's run span, injected into every event

	mu         sync.Mutex
	metrics    []cluster.MetricPoint
	metricSeq  int64
	metricN    int64 // points published
	metricsAt  time.Time
	events     []cluster.TelemetryPoint
	eventSeq   int64
	eventsAt   time.Time
	lastStep   int64
	startStep  int64
	started    bool
	startedAt  time.Time // the "started" event's time
	endedAt    time.Time // when training ended (Finish)
	layout     []byte
	publishErr error // the first failed publish; every later call returns it
}

var _ train.Sink = (*ClusterSink)(nil)

func newClusterSink(w *Worker, req *cluster.RunRequest, spec *train.Spec, attempt int, stop context.CancelCauseFunc, traceCtx context.Context) *ClusterSink {
	now := time.Now()
	return &ClusterSink{w: w, runID: req.RunID, attempt: attempt, req: req, spec: spec, stop: stop, trace: traceCtx,
		ckpts: train.NewCheckpoints(w.opts.Store, req.RunID, spec.KeepLast), metricsAt: now, eventsAt: now}
}

// RunID returns the run's ID.
func (s *ClusterSink) RunID() string { return s.runID }

// publish sends v as a typ envelope on subj with Msg-Id id and waits for
// the stream's ack.
func (s *ClusterSink) publish(ctx context.Context, subj, typ string, v any, id string) error {
	const op = "worker.publish"
	b, err := cluster.Encode(typ, v)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(subj)
	msg.Data = b
	if s.trace != nil {
		tracing.Inject(s.trace, msg.Header)
	}
	for try := 1; ; try++ {
		pctx, cancel := context.WithTimeout(ctx, opTimeout)
		_, err = s.w.js.PublishMsg(pctx, msg, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return nil
		}
		if try == publishTries || ctx.Err() != nil {
			return errs.Wrap(errs.Cluster, op, err, "%s %s", typ, id)
		}
		time.Sleep(time.Duration(try) * 200 * time.Millisecond)
	}
}

// Log buffers a metric point and publishes the buffer when it is full or
// old enough.
func (s *ClusterSink) Log(step int64, name string, value float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.publishErr != nil {
		return s.publishErr
	}
	s.metrics = append(s.metrics, cluster.MetricPoint{Step: step, Name: name, Value: value, Time: time.Now().UTC()})
	s.lastStep = max(s.lastStep, step)
	if len(s.metrics) >= s.w.opts.BatchSize || time.Since(s.metricsAt) >= s.w.opts.PublishEvery {
		return s.flushMetricsLocked(context.Background())
	}
	return nil
}

func (s *ClusterSink) flushMetricsLocked(ctx context.Context) error {
	s.metricsAt = time.Now()
	if len(s.metrics) == 0 {
		return s.publishErr
	}
	if err := s.startedLocked(ctx); err != nil {
		return err
	}
	s.metricSeq++
	batch := cluster.MetricBatch{RunID: s.runID, Attempt: s.attempt, Seq: s.metricSeq, Resume: s.startStep, Points: s.metrics}
	if err := s.publish(ctx, cluster.MetricsSubject(s.runID), cluster.TypeMetricBatch, &batch,
		cluster.MsgID(s.runID, s.attempt, "metrics", s.metricSeq)); err != nil {
		s.publishErr = err
		return err
	}
	s.metricN += int64(len(s.metrics))
	s.metrics = s.metrics[:0]
	return nil
}

// timer is a telemetry timer of a ClusterSink.
type timer struct {
	s     *ClusterSink
	name  string
	start time.Time
}

// Timer starts a telemetry timer; its Stop buffers the event.
func (s *ClusterSink) Timer(name string) train.Stopper {
	return &timer{s: s, name: name, start: time.Now()}
}

func (t *timer) Stop() time.Duration {
	d := time.Since(t.start)
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, cluster.TelemetryPoint{Name: t.name, Start: t.start.UTC(), Duration: d})
	if len(s.events) >= s.w.opts.BatchSize || time.Since(s.eventsAt) >= s.w.opts.PublishEvery {
		_ = s.flushEventsLocked(context.Background()) // a failure fails the next Log
	}
	return d
}

func (s *ClusterSink) flushEventsLocked(ctx context.Context) error {
	s.eventsAt = time.Now()
	if len(s.events) == 0 || s.publishErr != nil {
		return s.publishErr
	}
	if err := s.startedLocked(ctx); err != nil {
		return err
	}
	s.eventSeq++
	batch := cluster.TelemetryBatch{RunID: s.runID, Attempt: s.attempt, Seq: s.eventSeq, Events: s.events}
	if err := s.publish(ctx, cluster.TelemetrySubject(s.runID), cluster.TypeTelemetryBatch, &batch,
		cluster.MsgID(s.runID, s.attempt, "telemetry", s.eventSeq)); err != nil {
		s.publishErr = err
		return err
	}
	s.events = s.events[:0]
	return nil
}

// flush publishes whatever metrics and telemetry are buffered.
func (s *ClusterSink) flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.flushMetricsLocked(ctx), s.flushEventsLocked(ctx))
}

// startedLocked publishes the attempt's "started" event once.
func (s *ClusterSink) startedLocked(ctx context.Context) error {
	if s.started {
		return nil
	}
	now := time.Now().UTC()
	ev := cluster.RunEvent{RunID: s.runID, Attempt: s.attempt, Kind: "started", Name: s.req.Name, Spec: s.req.Spec,
		Worker: s.w.opts.ID, Host: s.w.host, Seed: s.spec.Seed, LastStep: s.startStep, Time: now,
		Resume: s.startStep, Started: now, Version: s.w.opts.Version}
	if err := s.publish(ctx, cluster.RunEventSubject(s.runID), cluster.TypeRunEvent, &ev,
		cluster.MsgID(s.runID, s.attempt, "run", 0)); err != nil {
		s.publishErr = err
		return err
	}
	s.started, s.startedAt = true, now
	return nil
}

// SaveCheckpoint flushes the buffered records, writes the checkpoint
// object and then its LATEST pointer, announces it on the stream and
// records it in the run state. If the state shows that this attempt no
// longer owns the run, or that the run was cancelled, it stops training.
func (s *ClusterSink) SaveCheckpoint(ctx context.Context, step int64, ck *experiment.Checkpoint) error {
	const op = "worker.SaveCheckpoint"
	if cause := context.Cause(ctx); errors.Is(cause, errLostOwnership) {
		return errs.Wrap(errs.Cluster, op, cause, "run %s: not writing checkpoint %d", s.runID, step)
	}
	ctx = context.WithoutCancel(ctx) // the checkpoint of a stopping run must land
	if err := s.flush(ctx); err != nil {
		return err
	}
	// Fenced: each write first checks that this attempt still owns the run,
	// and store outages are retried with backoff.
	var key string
	var size int64
	err := s.retryStore(ctx, "saving checkpoint", func() error {
		var err error
		key, size, err = s.ckpts.SaveGuarded(ctx, step, ck, s.ownedNow)
		return err
	})
	switch {
	case errors.Is(err, errNotOwner):
		s.stop(errLostOwnership)
		return err
	case err != nil:
		return err
	}
	s.w.ckpts.Add(1)
	s.w.ckptBytes.Add(size)
	ev := cluster.CheckpointEvent{RunID: s.runID, Attempt: s.attempt, Step: step, Key: key, Size: size, Time: time.Now().UTC()}
	if err := s.publish(ctx, cluster.CheckpointSubject(s.runID), cluster.TypeCheckpoint, &ev,
		cluster.MsgID(s.runID, s.attempt, "ckpt", step)); err != nil {
		return err
	}
	st, _, err := s.w.updateState(ctx, s.runID, func(st *cluster.RunState) error {
		if err := s.w.owned(st, s.attempt); err != nil {
			return err
		}
		st.Step, st.LastCheckpoint = step, key
		return nil
	})
	switch {
	case errors.Is(err, errNotOwner):
		s.stop(errLostOwnership)
		return err
	case err != nil:
		return err
	case st.CancelRequested:
		s.stop(errCancelRequested)
	}
	return nil
}

// LoadCheckpoint returns the run's newest valid checkpoint (nil for a
// fresh run) and announces the attempt's start from its step.
func (s *ClusterSink) LoadCheckpoint(ctx context.Context) (*experiment.Checkpoint, error) {
	var ck *experiment.Checkpoint
	err := s.retryStore(ctx, "loading checkpoint", func() error {
		var err error
		ck, err = s.ckpts.Load(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ck != nil {
		s.startStep, s.lastStep = ck.Train.Step, ck.Train.Step
	}
	return ck, s.startedLocked(context.WithoutCancel(ctx))
}

// SetLayout keeps the layout counters for the finished event.
func (s *ClusterSink) SetLayout(m map[string]tensor.OpStats) {
	b, _ := json.Marshal(m)
	s.mu.Lock()
	s.layout = b
	s.mu.Unlock()
}

// Finish publishes the buffered records. The attempt's "finished" event
// follows once the worker has written the outcome to the run state.
func (s *ClusterSink) Finish(ctx context.Context, status experiment.Status, runErr error) error {
	s.mu.Lock()
	s.endedAt = time.Now().UTC()
	s.mu.Unlock()
	return s.flush(context.WithoutCancel(ctx))
}

// finished publishes the attempt's "finished" event.
func (s *ClusterSink) finished(ctx context.Context, status experiment.Status, errText string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publishErr = nil // the outcome is worth a try even after a failed batch
	if err := s.startedLocked(ctx); err != nil {
		return err
	}
	ev := cluster.RunEvent{RunID: s.runID, Attempt: s.attempt, Kind: "finished", Status: string(status), Error: errText,
		Worker: s.w.opts.ID, Host: s.w.host, Seed: s.spec.Seed, Layout: s.layout, Metrics: s.metricN, LastStep: s.lastStep,
		Time: time.Now().UTC(), Resume: s.startStep, Started: s.startedAt, Finished: s.endedAt, Version: s.w.opts.Version}
	return s.publish(ctx, cluster.RunEventSubject(s.runID), cluster.TypeRunEvent, &ev, cluster.MsgID(s.runID, s.attempt, "run", 1))
}
