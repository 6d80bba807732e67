package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/tracing"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/train"
)

// ReasonHeader carries a dead letter's reason.
const ReasonHeader = "Gorch-Reason"

// handle takes one RUNS message through the state machine in the package
// documentation. It never returns an error: whatever goes wrong is logged
// and settled on the message.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	bg := context.WithoutCancel(ctx) // settling a message outlives a stopping worker
	var req cluster.RunRequest
	if err := cluster.Decode(msg.Data(), cluster.TypeRunRequest, &req); err != nil {
		w.deadLetter(bg, msg, "undecodable", err.Error())
		return
	}
	if !experiment.ValidRunID(req.RunID) {
		w.deadLetter(bg, msg, "undecodable", fmt.Sprintf("run request with invalid run id %q", req.RunID))
		return
	}
	log := w.log.With("run", req.RunID)
	st, rev, err := w.getState(bg, req.RunID)
	switch {
	case errors.Is(err, errNoState):
		w.deadLetter(bg, msg, "nostate", err.Error())
		return
	case err != nil:
		log.Warn("reading run state failed; retrying later", "err", err)
		_ = msg.NakWithDelay(retryDelay)
		return
	}
	st, rev, ok := w.claim(bg, log, msg, &req, st, rev)
	if !ok {
		return
	}
	w.train(ctx, log, msg, &req, st, rev)
}

// claim moves the run to running{attempt+1, this worker}, or settles the
// message when the run must not start. It reports whether the run is ours.
func (w *Worker) claim(ctx context.Context, log *slog.Logger, msg jetstream.Msg, req *cluster.RunRequest,
	st cluster.RunState, rev uint64) (cluster.RunState, uint64, bool) {
	for try := 0; ; try++ {
		switch {
		case cluster.Terminal(st.Status):
			log.Info("run already ended; dropping its request", "status", st.Status)
			_ = msg.Ack()
			return st, rev, false
		case try > 0 && st.Status == cluster.StateRunning && st.Worker != w.opts.ID:
			log.Info("another worker took the run", "owner", st.Worker, "attempt", st.Attempt)
			return st, rev, false // no ack: the owner's delivery stands
		case st.CancelRequested:
			st.Status, st.Worker = cluster.StateCancelled, ""
			w.settle(ctx, log, msg, st, rev, func() error { return msg.Ack() })
			return st, rev, false
		case st.UsedAttempts() >= cluster.MaxAttempts:
			st.Status, st.Worker = cluster.StateFailed, ""
			if st.Error == "" {
				st.Error = fmt.Sprintf("gave up after %d attempts", st.UsedAttempts())
			}
			w.settle(ctx, log, msg, st, rev, func() error { return msg.TermWithReason("max attempts") })
			return st, rev, false
		}
		spec, err := train.ParseSpec("run "+req.RunID+" spec", req.Spec)
		if err != nil {
			st.Status, st.Worker, st.Error = cluster.StateFailed, "", err.Error()
			w.settle(ctx, log, msg, st, rev, func() error { return msg.TermWithReason("invalid spec") })
			return st, rev, false
		}
		next := st
		next.Status, next.Attempt, next.Worker = cluster.StateRunning, st.Attempt+1, w.opts.ID
		if spec.Steps > 0 {
			next.TotalSteps = int64(spec.Steps) // an epochs run learns it from the first progress report
		}
		nrev, err := w.casState(ctx, next, rev)
		if err == nil {
			return next, nrev, true
		}
		if try > 0 || !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			log.Warn("claiming the run failed; retrying later", "err", err)
			_ = msg.NakWithDelay(retryDelay)
			return st, rev, false
		}
		if st, rev, err = w.getState(ctx, req.RunID); err != nil {
			log.Warn("re-reading run state failed; retrying later", "err", err)
			_ = msg.NakWithDelay(retryDelay)
			return st, rev, false
		}
	}
}

// settle writes st at rev and, if that worked, settles the message.
func (w *Worker) settle(ctx context.Context, log *slog.Logger, msg jetstream.Msg, st cluster.RunState, rev uint64, ack func() error) {
	if _, err := w.casState(ctx, st, rev); err != nil {
		log.Warn("updating run state failed; retrying later", "status", st.Status, "err", err)
		_ = msg.NakWithDelay(retryDelay)
		return
	}
	log.Info("run settled without training", "status", st.Status, "error", st.Error)
	if err := ack(); err != nil {
		log.Warn("settling the run message failed", "err", err)
	}
}

// deadLetter copies msg to the DLQ with reason and terminates it.
func (w *Worker) deadLetter(ctx context.Context, msg jetstream.Msg, token, reason string) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	dl := nats.NewMsg(cluster.DLQSubject(token))
	dl.Data = msg.Data()
	dl.Header.Set(ReasonHeader, reason)
	dl.Header.Set("Gorch-Subject", msg.Subject())
	if _, err := w.js.PublishMsg(ctx, dl); err != nil {
		w.log.Error("dead-lettering failed; the message will be redelivered", "reason", reason, "err", err)
		_ = msg.NakWithDelay(retryDelay)
		return
	}
	w.log.Warn("dead-lettered a run message", "subject", msg.Subject(), "reason", reason)
	_ = msg.TermWithReason(reason)
}

// train runs an attempt this worker claimed, then writes its outcome.
func (w *Worker) train(ctx context.Context, log *slog.Logger, msg jetstream.Msg, req *cluster.RunRequest, st cluster.RunState, rev uint64) {
	var status experiment.Status
	var errText string
	ctx, span := w.runSpan(ctx, msg, req, st)
	defer span.End()
	bg := context.WithoutCancel(ctx)
	attempt := st.Attempt
	log = log.With("attempt", attempt)
	spec, _ := train.ParseSpec("run "+req.RunID+" spec", req.Spec) // parsed in claim
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w.mu.Lock()
	w.active[req.RunID] = &activeRun{attempt: attempt, claimRev: rev, cancel: cancel}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.active, req.RunID)
		w.mu.Unlock()
	}()
	// A cancel that arrived between the claim and the registration.
	if cur, _, err := w.getState(bg, req.RunID); err == nil && cur.CancelRequested {
		cancel(errCancelRequested)
	}

	tickDone := make(chan struct{})
	go func() {
		t := time.NewTicker(cluster.EffectiveAckWait() / 3)
		defer t.Stop()
		for {
			select {
			case <-tickDone:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Warn("extending the ack deadline failed", "err", err)
				}
			}
		}
	}()

	log.Info("training", "name", req.Name, "start_step", st.Step)
	sink := newClusterSink(w, req, spec, attempt, cancel, ctx)
	res, runErr := train.Run(rctx, spec, sink, train.Options{Progress: w.totalSteps(bg, log, req.RunID, attempt, st.TotalSteps),
		TraceSteps: w.opts.TraceSteps})
	close(tickDone)
	defer func() {
		span.SetAttributes(attribute.String("gorch.run.status", string(status)), attribute.Int("gorch.steps", res.Steps))
		if status == experiment.StatusFailed {
			span.SetStatus(codes.Error, errText)
		}
	}()

	status, errText = experiment.StatusSucceeded, ""
	if runErr != nil {
		errText = runErr.Error()
	}
	switch cause := context.Cause(rctx); {
	case runErr == nil:
		w.finish(bg, log, sink, attempt, func(s *cluster.RunState) {
			s.Status, s.Step, s.Error = cluster.StateSucceeded, int64(res.Steps), ""
		}, func() error { return msg.DoubleAck(bg) })
	case rctx.Err() != nil && errors.Is(cause, errLostOwnership):
		status = experiment.StatusInterrupted
		log.Warn("lost ownership of the run; stopped training", "err", runErr)
	case rctx.Err() != nil:
		// Cancelled, or the worker is stopping: train.Run checkpointed.
		status = experiment.StatusInterrupted
		ack := func() error { return msg.Nak() }
		w.finish(bg, log, sink, attempt, func(s *cluster.RunState) {
			if s.CancelRequested || errors.Is(cause, errCancelRequested) {
				s.Status = cluster.StateCancelled
				status, errText, ack = experiment.StatusCancelled, "", func() error { return msg.Ack() }
			} else {
				s.Status, s.Worker = cluster.StateQueued, ""
				s.HandBacks++ // a hand-back does not use up an attempt
				status, ack = experiment.StatusInterrupted, func() error { return msg.Nak() }
			}
		}, func() error { return ack() })
	default:
		status = experiment.StatusFailed
		ack := func() error { return msg.NakWithDelay(retryDelay) }
		w.finish(bg, log, sink, attempt, func(s *cluster.RunState) {
			s.Error = errText
			if s.UsedAttempts() < cluster.MaxAttempts {
				s.Status, s.Worker = cluster.StateQueued, ""
				ack = func() error { return msg.NakWithDelay(retryDelay) }
			} else {
				s.Status = cluster.StateFailed
				ack = func() error { return msg.TermWithReason("failed after max attempts") }
			}
		}, func() error { return ack() })
	}
	if err := sink.finished(bg, status, errText); err != nil {
		log.Warn("publishing the finished event failed", "err", err)
	}
}

// finish writes the attempt's outcome with mutate, fenced by ownership,
// and then settles the message with ack. A worker that lost the run
// writes nothing and leaves the message alone.
func (w *Worker) finish(ctx context.Context, log *slog.Logger, sink *ClusterSink, attempt int,
	mutate func(*cluster.RunState), ack func() error) {
	if err := sink.flush(ctx); err != nil {
		log.Warn("flushing the run's events failed", "err", err)
	}
	st, _, err := w.updateState(ctx, sink.runID, func(s *cluster.RunState) error {
		if err := w.owned(s, attempt); err != nil {
			return err
		}
		mutate(s)
		return nil
	})
	if err != nil {
		log.Warn("writing the run's outcome failed; leaving its message to redelivery", "err", err)
		return
	}
	log.Info("attempt ended", "status", st.Status, "step", st.Step, "error", st.Error)
	if err := ack(); err != nil {
		log.Warn("settling the run message failed", "err", err)
	}
}

// totalSteps returns a progress hook that records the run's total steps
// in its state once, when the first report shows a total the state lacks
// (an epochs spec: the total depends on the dataset).
func (w *Worker) totalSteps(ctx context.Context, log *slog.Logger, id string, attempt int, known int64) func(train.Progress) {
	return func(p train.Progress) {
		if p.Total <= 0 || int64(p.Total) == known {
			return
		}
		known = int64(p.Total)
		if _, _, err := w.updateState(ctx, id, func(s *cluster.RunState) error {
			if err := w.owned(s, attempt); err != nil {
				return err
			}
			s.TotalSteps = known
			return nil
		}); err != nil {
			log.Debug("recording the run's total steps failed", "err", err)
		}
	}
}

// runSpan starts the attempt's "run" span: a consumer span, child of the
// submit span whose context the RunRequest's headers carry (or, for a
// request without them, the one the run state keeps).
func (w *Worker) runSpan(ctx context.Context, msg jetstream.Msg, req *cluster.RunRequest, st cluster.RunState) (context.Context, trace.Span) {
	pctx := tracing.Extract(ctx, msg.Headers())
	if !trace.SpanContextFromContext(pctx).IsValid() {
		pctx = tracing.FromTraceParent(ctx, st.TraceParent)
	}
	attrs := append(tracing.Messaging("process", msg.Subject()),
		attribute.String("messaging.message.id", req.RunID),
		attribute.String("gorch.run.id", req.RunID), attribute.Int("gorch.attempt", st.Attempt),
		attribute.String("gorch.worker", w.opts.ID))
	if md, err := msg.Metadata(); err == nil {
		attrs = append(attrs, attribute.String("messaging.consumer.group.name", md.Consumer),
			attribute.Int64("messaging.nats.delivery_count", int64(md.NumDelivered)),
			attribute.Float64("gorch.queue_wait_seconds", time.Since(md.Timestamp).Seconds()))
	}
	return tracing.Tracer().Start(pctx, "run", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}
