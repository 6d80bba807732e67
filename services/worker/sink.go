package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// castagnoli is the CRC-32C table of resume points.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CheckpointPrefix is where attempt a of run id keeps its checkpoint
// objects: runs/<id>/checkpoints/a<a>/. Each attempt writes only under
// its own prefix, so a stale attempt's late objects never replace one a
// resume point names.
func CheckpointPrefix(id string, attempt int) string {
	return fmt.Sprintf("runs/%s/checkpoints/a%d/", id, attempt)
}

// ClusterSink is the [train.Sink] of one attempt: metrics and telemetry go
// to the EVENTS stream in batches under the worker's id, checkpoints to
// the object store under the attempt's prefix, recorded as the run's
// resume point by the coordinator.
type ClusterSink struct {
	env     attemptEnv
	api     *coordAPI
	t       *Ticket
	runID   string
	attempt int
	spec    *train.Spec
	stop    context.CancelCauseFunc // cancels the attempt's training
	log     *slog.Logger

	ckpts, ckptBytes atomic.Int64

	mu         sync.Mutex
	metrics    []cluster.MetricPoint
	metricSeq  int64
	metricN    int64 // points published
	metricsAt  time.Time
	events     []cluster.TelemetryPoint
	eventSeq   int64
	eventsAt   time.Time
	lastStep   int64
	startedAt  time.Time // when training started (LoadCheckpoint), on the worker's clock
	endedAt    time.Time // when training ended (Finish)
	layout     []byte
	publishErr error // the first failed publish; every later call returns it
}

var _ train.Sink = (*ClusterSink)(nil)

func newClusterSink(env attemptEnv, api *coordAPI, t *Ticket, spec *train.Spec, stop context.CancelCauseFunc, log *slog.Logger) *ClusterSink {
	now := time.Now()
	return &ClusterSink{env: env, api: api, t: t, runID: t.Request.RunID, attempt: t.Attempt, spec: spec, stop: stop, log: log,
		metricsAt: now, eventsAt: now, lastStep: resumeStep(t.Resume)}
}

// RunID returns the run's ID.
func (s *ClusterSink) RunID() string { return s.runID }

// publish sends v as a typ envelope of kind under the worker's id, with
// Msg-Id id, and waits for the stream's ack. A failed publish is tried
// again with the same Msg-Id (the stream keeps one copy) for as long as
// a store write is (retry): a NATS node dying, a stream electing a new
// leader, are waited out.
func publish(ctx context.Context, log *slog.Logger, js jetstream.JetStream, traceCtx context.Context, worker, kind, run, typ string, v any, id string) error {
	const op = "worker.publish"
	b, err := cluster.Encode(typ, v)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(cluster.EventSubject(worker, kind, run))
	msg.Data = b
	if traceCtx != nil {
		tracing.Inject(traceCtx, msg.Header)
	}
	return retry(ctx, log, "publishing "+typ, func() error {
		pctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		_, err := js.PublishMsg(pctx, msg, jetstream.WithMsgID(id))
		return errs.Wrap(errs.Cluster, op, err, "%s %s", typ, id)
	})
}

func (s *ClusterSink) publish(ctx context.Context, kind, typ string, v any, id string) error {
	return publish(ctx, s.log, s.env.js, tracing.FromTraceParent(context.Background(), s.t.TraceParent), s.t.Worker, kind, s.runID, typ, v, id)
}

// Log buffers a metric point and publishes the buffer when it is full or
// old enough.
func (s *ClusterSink) Log(step int64, name string, value float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.publishErr != nil {
		return s.publishErr
	}
	s.hook(step)
	s.metrics = append(s.metrics, cluster.MetricPoint{Step: step, Name: name, Value: value, Time: time.Now().UTC()})
	s.lastStep = max(s.lastStep, step)
	if len(s.metrics) >= s.t.BatchSize || time.Since(s.metricsAt) >= s.t.PublishEvery {
		return s.flushMetricsLocked(context.Background())
	}
	return nil
}

func (s *ClusterSink) flushMetricsLocked(ctx context.Context) error {
	s.metricsAt = time.Now()
	if len(s.metrics) == 0 || s.publishErr != nil {
		return s.publishErr
	}
	s.metricSeq++
	batch := cluster.MetricBatch{RunID: s.runID, Attempt: s.attempt, Seq: s.metricSeq, Resume: resumeStep(s.t.Resume), Points: s.metrics}
	if err := s.publish(ctx, cluster.KindMetrics, cluster.TypeMetricBatch, &batch,
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
	if len(s.events) >= s.t.BatchSize || time.Since(s.eventsAt) >= s.t.PublishEvery {
		_ = s.flushEventsLocked(context.Background()) // a failure fails the next Log
	}
	return d
}

func (s *ClusterSink) flushEventsLocked(ctx context.Context) error {
	s.eventsAt = time.Now()
	if len(s.events) == 0 || s.publishErr != nil {
		return s.publishErr
	}
	s.eventSeq++
	batch := cluster.TelemetryBatch{RunID: s.runID, Attempt: s.attempt, Seq: s.eventSeq, Events: s.events}
	if err := s.publish(ctx, cluster.KindTelemetry, cluster.TypeTelemetryBatch, &batch,
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

// ownedNow fails with errNotOwner unless this attempt still owns the run
// (a progress request: the coordinator answers with the state).
func (s *ClusterSink) ownedNow(ctx context.Context, step int64) error {
	_, err := s.api.call(ctx, cluster.WOpProgress, &cluster.WorkerRequest{RunID: s.runID, Attempt: s.attempt, Step: step})
	return err
}

// SaveCheckpoint flushes the buffered records, checks that the attempt
// still owns the run, writes the checkpoint object under the attempt's
// prefix and asks the coordinator to record it as the run's resume point.
// The coordinator records it only while the attempt owns the run, so a
// stale attempt's object (written after its check, say) is never what a
// resume loads. Then it announces the checkpoint on the stream and prunes
// the attempt's older objects. A refusal stops training.
func (s *ClusterSink) SaveCheckpoint(ctx context.Context, step int64, ck *experiment.Checkpoint) error {
	const op = "worker.SaveCheckpoint"
	if cause := context.Cause(ctx); errors.Is(cause, errLostOwnership) {
		return errs.Wrap(errs.Cluster, op, cause, "run %s: not writing checkpoint %d", s.runID, step)
	}
	ctx = context.WithoutCancel(ctx) // the checkpoint of a stopping run must land
	if err := s.flush(ctx); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := experiment.EncodeCheckpoint(&buf, ck); err != nil {
		return err
	}
	rp := cluster.ResumePoint{Attempt: s.attempt, Step: step, Key: CheckpointPrefix(s.runID, s.attempt) + fmt.Sprintf("step-%012d.rtch", step),
		Size: int64(buf.Len()), CRC32C: crc32.Checksum(buf.Bytes(), castagnoli)}
	err := retry(ctx, s.log, "checking ownership", func() error { return s.ownedNow(ctx, step) })
	if err == nil {
		s.pauseHook(step)
		err = retry(ctx, s.log, "writing checkpoint", func() error { return s.env.store.Put(ctx, rp.Key, buf.Bytes()) })
	}
	var reply *cluster.WorkerReply
	if err == nil {
		err = retry(ctx, s.log, "recording the resume point", func() error {
			var err error
			reply, err = s.api.call(ctx, cluster.WOpCheckpoint, &cluster.WorkerRequest{RunID: s.runID, Attempt: s.attempt, Resume: &rp})
			return err
		})
	}
	switch {
	case errors.Is(err, errNotOwner):
		s.log.Warn("checkpoint refused; stopping", "step", step, "err", err)
		s.stop(errLostOwnership)
		return err
	case err != nil:
		return err
	case reply.State.CancelRequested:
		s.stop(errCancelRequested)
	}
	s.ckpts.Add(1)
	s.ckptBytes.Add(rp.Size)
	ev := cluster.CheckpointEvent{RunID: s.runID, Attempt: s.attempt, Step: step, Key: rp.Key, Size: rp.Size, Time: time.Now().UTC()}
	if err := s.publish(ctx, cluster.KindCheckpoint, cluster.TypeCheckpoint, &ev, cluster.MsgID(s.runID, s.attempt, "ckpt", step)); err != nil {
		return err
	}
	s.prune(ctx, rp.Key)
	return nil
}

// prune deletes the attempt's checkpoint objects beyond the newest
// KeepLast (never keep, the resume point just recorded). A failure only
// leaves objects behind.
func (s *ClusterSink) prune(ctx context.Context, keep string) {
	keys, err := s.env.store.List(ctx, CheckpointPrefix(s.runID, s.attempt))
	if err != nil {
		s.log.Warn("listing checkpoints to prune failed", "err", err)
		return
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return !strings.HasSuffix(path.Base(k), ".rtch") })
	slices.Sort(keys) // zero-padded steps sort numerically
	for i := 0; i < len(keys)-max(s.spec.KeepLast, 1); i++ {
		if keys[i] == keep {
			continue
		}
		if err := s.env.store.Delete(ctx, keys[i]); err != nil && !experiment.IsNotFound(err) {
			s.log.Warn("pruning a checkpoint failed", "key", keys[i], "err", err)
		}
	}
}

// LoadCheckpoint returns the checkpoint the run's resume point names (nil
// for a fresh run), after checking its size and CRC-32C: never a newer
// object a stale attempt may have left.
func (s *ClusterSink) LoadCheckpoint(ctx context.Context) (*experiment.Checkpoint, error) {
	const op = "worker.LoadCheckpoint"
	s.mu.Lock()
	s.startedAt = time.Now().UTC() // train.Run restores, then trains
	s.mu.Unlock()
	rp := s.t.Resume
	if rp == nil {
		return nil, nil
	}
	var b []byte
	err := retry(ctx, s.log, "loading checkpoint", func() error {
		var err error
		b, err = s.env.store.Get(ctx, rp.Key)
		return err
	})
	switch {
	case err != nil:
		return nil, errs.Wrap(errs.Checkpoint, op, err, "run %s: resume point %s", s.runID, rp.Key)
	case int64(len(b)) != rp.Size || crc32.Checksum(b, castagnoli) != rp.CRC32C:
		return nil, errs.New(errs.Checkpoint, op, "run %s: resume point %s: %d bytes with CRC-32C %08x, want %d bytes with %08x",
			s.runID, rp.Key, len(b), crc32.Checksum(b, castagnoli), rp.Size, rp.CRC32C)
	}
	return experiment.DecodeCheckpoint(bytes.NewReader(b), int64(len(b)))
}

// SetLayout keeps the layout counters for the finished event.
func (s *ClusterSink) SetLayout(m map[string]tensor.OpStats) {
	b, _ := json.Marshal(m)
	s.mu.Lock()
	s.layout = b
	s.mu.Unlock()
}

// Finish publishes the buffered records. The attempt's "finished" event
// follows once the supervisor has reported the outcome to the
// coordinator.
func (s *ClusterSink) Finish(ctx context.Context, status experiment.Status, runErr error) error {
	s.mu.Lock()
	s.endedAt = time.Now().UTC()
	s.mu.Unlock()
	return s.flush(context.WithoutCancel(ctx))
}
