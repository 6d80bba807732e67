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
	run, held := w.hold(req.RunID, msg)
	if !held {
		// Delivered again while a slot of this worker claims or trains
		// the run (the lease lapsed: NATS restarted, or was out of reach
		// past the ack wait). Another attempt would take the run from the
		// one this worker has: keep that one, which now extends this
		// delivery's lease and settles it.
		log.Warn("run message delivered again while this worker holds the run; keeping the attempt it has")
		if err := msg.InProgress(); err != nil {
			log.Warn("extending the ack deadline failed", "err", err)
		}
		return
	}
	defer w.release(req.RunID)
	reply, err := w.claim(ctx, log, run, &req)
	switch {
	case errors.Is(err, errs.Experiment): // the coordinator knows no such run
		w.deadLetter(bg, w.message(run), "nostate", "run has no state: "+err.Error())
		return
	case err != nil:
		log.Warn("claiming the run failed; retrying later", "err", err)
		if err := w.message(run).NakWithDelay(retryDelay); err != nil {
			log.Warn("handing the run message back failed; it returns after its ack wait", "err", err)
		}
		return
	case reply.Action != cluster.ActionTrain:
		w.settle(bg, log, w.message(run), reply)
		return
	}
	w.train(ctx, log, run, &req, reply.State)
}

// hold makes the calling slot the holder of run id, with msg, and
// returns the run; or, when another slot holds the run, hands that slot
// msg (the newer delivery) and returns false.
func (w *Worker) hold(id string, msg jetstream.Msg) (*activeRun, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a := w.active[id]; a != nil {
		a.msg = msg
		return a, false
	}
	a := &activeRun{msg: msg}
	w.active[id] = a
	return a, true
}

// release ends the calling slot's hold of run id.
func (w *Worker) release(id string) {
	w.mu.Lock()
	delete(w.active, id)
	w.mu.Unlock()
}

// message returns the newest delivery of run's RUNS message.
func (w *Worker) message(run *activeRun) jetstream.Msg {
	w.mu.Lock()
	defer w.mu.Unlock()
	return run.msg
}

// claim asks the coordinator for the next attempt of the run, with the
// message's lease extended meanwhile. A claim is idempotent for this
// process and message (cluster.ClaimInfo), so one that got no answer is
// retried as retry does: if the lost reply granted an attempt, the retry
// is answered with that attempt instead of using up another.
func (w *Worker) claim(ctx context.Context, log *slog.Logger, run *activeRun, req *cluster.RunRequest) (*cluster.WorkerReply, error) {
	stop := w.extendLease(run, log)
	defer stop()
	drops := w.claimReplyDrops(req)
	var reply *cluster.WorkerReply
	err := retry(ctx, log, "claiming the run", func() error {
		cr := &cluster.WorkerRequest{RunID: req.RunID, MemoryLimit: w.opts.MemoryLimit, Claim: &cluster.ClaimInfo{Instance: w.instance}}
		if md, err := w.message(run).Metadata(); err == nil {
			cr.Claim.Seq, cr.Claim.Delivered = md.Sequence.Stream, md.NumDelivered
		}
		w.mu.Lock()
		cr.Started = w.started[req.RunID]
		w.mu.Unlock()
		var err error
		// Not ctx: a claim that got through while the worker stops is
		// answered, and its attempt handed back at once (train).
		reply, err = w.api.call(context.WithoutCancel(ctx), cluster.WOpClaim, cr)
		if err == nil && drops > 0 {
			drops--
			log.Warn("test hook: dropped the claim's reply", "action", reply.Action, "attempt", reply.State.Attempt)
			reply, err = nil, errs.Wrap(errs.Cluster, cluster.WOpClaim, context.DeadlineExceeded, "run %s: no answer on %s (test hook)",
				req.RunID, cluster.WorkerAPISubject(w.opts.ID, cluster.WOpClaim))
		}
		return err
	})
	return reply, err
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
func (w *Worker) train(ctx context.Context, log *slog.Logger, run *activeRun, req *cluster.RunRequest, st cluster.RunState) {
	ctx, span := w.runSpan(ctx, w.message(run), req, st)
	defer span.End()
	bg := context.WithoutCancel(ctx)
	attempt := st.Attempt
	log = log.With("attempt", attempt)
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w.mu.Lock()
	run.attempt, run.cancel = attempt, cancel
	// From here on records of the attempt may be written: a claim by
	// this process must not be answered with it again.
	w.started[req.RunID] = attempt
	w.mu.Unlock()
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

	stopLease := w.extendLease(run, log)
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
	} else {
		// The attempt is over in the run state (or another one owns the run).
		w.mu.Lock()
		if w.started[req.RunID] == attempt {
			delete(w.started, req.RunID)
		}
		w.mu.Unlock()
	}
	if err == nil && reply != nil {
		log.Info("attempt ended", "outcome", res.Status, "status", reply.State.Status, "step", res.Step, "error", res.Error)
		w.settle(bg, log, w.message(run), reply)
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

// extendLease tells JetStream every AckWait/3 that run's message (its
// newest delivery) is still being worked on, until the returned stop is
// called.
func (w *Worker) extendLease(run *activeRun, log *slog.Logger) (stop func()) {
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
				if err := w.message(run).InProgress(); err != nil {
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
