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
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/train"
)

// ReasonHeader carries a dead letter's reason.
const ReasonHeader = "Gorch-Reason"

// handle takes one RUNS message through the life of an attempt (see the
// package documentation). It never returns an error: whatever goes wrong
// is logged and settled on the message.
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
	reply, err := w.api.call(bg, cluster.WOpClaim, &cluster.WorkerRequest{RunID: req.RunID, MemoryLimit: w.opts.MemoryLimit})
	switch {
	case errors.Is(err, errs.Experiment): // the coordinator knows no such run
		w.deadLetter(bg, msg, "nostate", "run has no state: "+err.Error())
		return
	case err != nil:
		log.Warn("claiming the run failed; retrying later", "err", err)
		_ = msg.NakWithDelay(retryDelay)
		return
	case reply.Action != cluster.ActionTrain:
		w.settle(bg, log, msg, reply)
		return
	}
	w.train(ctx, log, msg, &req, reply.State)
}

// settle does with the RUNS message what the coordinator's reply says.
func (w *Worker) settle(ctx context.Context, log *slog.Logger, msg jetstream.Msg, reply *cluster.WorkerReply) {
	var err error
	switch reply.Action {
	case cluster.ActionAck:
		err = msg.DoubleAck(ctx)
	case cluster.ActionTerm:
		err = msg.TermWithReason(reply.State.Status)
	case cluster.ActionNak:
		err = msg.NakWithDelay(retryDelay)
	case cluster.ActionLeave:
	default:
		log.Warn("unknown action from the coordinator; leaving the message to its ack wait", "action", reply.Action)
	}
	if err != nil {
		log.Warn("settling the run message failed", "action", reply.Action, "err", err)
	}
}

// deadLetter copies msg to the DLQ with reason, asks the coordinator to
// fail its run (named by the message's Nats-Msg-Id, which the coordinator
// sets to the run id) and terminates it.
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
	if id := msg.Headers().Get(jetstream.MsgIDHeader); experiment.ValidRunID(id) && token != "nostate" {
		if _, err := w.api.call(ctx, cluster.WOpReject, &cluster.WorkerRequest{RunID: id, Reason: reason}); err != nil && !errors.Is(err, errs.Experiment) {
			w.log.Warn("failing the dead-lettered run failed", "run", id, "err", err)
		}
	}
	_ = msg.TermWithReason(reason)
}

// train runs an attempt this worker claimed, reports its outcome to the
// coordinator, settles the message as the coordinator says and publishes
// the attempt's "finished" event.
func (w *Worker) train(ctx context.Context, log *slog.Logger, msg jetstream.Msg, req *cluster.RunRequest, st cluster.RunState) {
	ctx, span := w.runSpan(ctx, msg, req, st)
	defer span.End()
	bg := context.WithoutCancel(ctx)
	attempt := st.Attempt
	log = log.With("attempt", attempt)
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w.mu.Lock()
	w.active[req.RunID] = &activeRun{attempt: attempt, cancel: cancel}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.active, req.RunID)
		w.mu.Unlock()
	}()
	spec, _ := train.ParseSpec("run "+req.RunID+" spec", req.Spec) // nil if invalid: the attempt fails on it
	var seed uint64
	if spec != nil {
		seed = spec.Seed
	}
	t := &Ticket{Worker: w.opts.ID, Host: w.host, Request: *req, Attempt: attempt, Resume: st.Resume, TotalSteps: st.TotalSteps,
		AckWait: w.ackWait, PublishEvery: w.opts.PublishEvery, BatchSize: w.opts.BatchSize, TraceSteps: w.opts.TraceSteps,
		TraceParent: tracing.TraceParent(ctx), MemoryLimit: w.opts.MemoryLimit, TestHooks: w.hooks}
	if err := w.publishRunEvent(bg, ctx, w.startedEvent(t, seed)); err != nil {
		log.Warn("publishing the started event failed", "err", err)
	}

	stopLease := w.extendLease(msg, log)
	var res Result
	if w.opts.Child != nil {
		res = w.runChild(rctx, t)
	} else {
		res = runAttempt(rctx, attemptEnv{nc: w.nc, js: w.js, store: w.opts.Store, log: w.log}, t)
	}
	stopLease()
	w.ckpts.Add(res.Checkpoints)
	w.ckptBytes.Add(res.CheckpointBytes)

	status := res.Status
	var reply *cluster.WorkerReply
	var err error
	switch res.Status {
	case outcomeLost:
		status = string(experiment.StatusInterrupted)
		log.Warn("lost ownership of the run; stopped training without settling its message")
	case outcomeInterrupted:
		status = string(experiment.StatusInterrupted)
		err = retry(bg, log, "handing the run back", func() error {
			reply, err = w.api.call(bg, cluster.WOpHandBack, &cluster.WorkerRequest{RunID: req.RunID, Attempt: attempt})
			return err
		})
	default:
		o := &cluster.Outcome{Status: res.Status, Error: res.Error, Kind: res.Kind, Retryable: res.Retryable, Step: res.Step}
		err = retry(bg, log, "reporting the outcome", func() error {
			reply, err = w.api.call(bg, cluster.WOpFinish, &cluster.WorkerRequest{RunID: req.RunID, Attempt: attempt, Outcome: o})
			return err
		})
	}
	if err != nil {
		log.Warn("the coordinator did not take the attempt's outcome; leaving its message to redelivery", "outcome", res.Status, "err", err)
	} else if reply != nil {
		log.Info("attempt ended", "outcome", res.Status, "status", reply.State.Status, "step", res.Step, "error", res.Error)
		w.settle(bg, log, msg, reply)
		if cluster.Terminal(reply.State.Status) {
			status = reply.State.Status // e.g. a failure of a run being cancelled ends it cancelled
		}
	}
	w.dieHook(log, spec, attempt)
	span.SetAttributes(attribute.String("gorch.run.status", status), attribute.Int64("gorch.steps", res.Step))
	if status == cluster.StateFailed {
		span.SetStatus(codes.Error, res.Error)
	}
	if err := w.publishRunEvent(bg, ctx, w.finishedEvent(t, seed, status, &res)); err != nil {
		log.Warn("publishing the finished event failed", "err", err)
	}
}

// startedEvent is the "started" event of attempt t, published as it
// starts (Started is refined by the finished event: training proper).
func (w *Worker) startedEvent(t *Ticket, seed uint64) *cluster.RunEvent {
	now := time.Now().UTC()
	return &cluster.RunEvent{RunID: t.Request.RunID, Attempt: t.Attempt, Kind: "started", Name: t.Request.Name, Spec: t.Request.Spec,
		Worker: t.Worker, Host: t.Host, Seed: seed, LastStep: resumeStep(t.Resume), Time: now,
		Resume: resumeStep(t.Resume), Started: now, Version: w.opts.Version}
}

// finishedEvent is the "finished" event of attempt t, which ended status,
// with the attempt's training times on the worker's clock.
func (w *Worker) finishedEvent(t *Ticket, seed uint64, status string, res *Result) *cluster.RunEvent {
	return &cluster.RunEvent{RunID: t.Request.RunID, Attempt: t.Attempt, Kind: "finished", Status: status, Error: res.Error,
		Worker: t.Worker, Host: t.Host, Seed: seed, Layout: res.Layout, Metrics: res.Metrics, LastStep: res.Step, Time: time.Now().UTC(),
		Resume: resumeStep(t.Resume), Started: res.Started, Finished: res.Finished, Version: w.opts.Version}
}

// publishRunEvent publishes a started (Msg-Id seq 0) or finished (seq 1)
// event under the worker's id, with traceCtx's span in its headers.
func (w *Worker) publishRunEvent(ctx, traceCtx context.Context, ev *cluster.RunEvent) error {
	seq := int64(0)
	if ev.Kind == "finished" {
		seq = 1
	}
	return publish(ctx, w.log, w.js, traceCtx, w.opts.ID, cluster.KindRun, ev.RunID, cluster.TypeRunEvent, ev, cluster.MsgID(ev.RunID, ev.Attempt, "run", seq))
}

// extendLease tells JetStream every AckWait/3 that the message is still
// being worked on, until the returned stop is called.
func (w *Worker) extendLease(msg jetstream.Msg, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(w.ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Warn("extending the ack deadline failed", "err", err)
				}
			}
		}
	}()
	return func() { close(done); <-stopped }
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
