package coordinator

import (
	"context"
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

func (c *Coordinator) submit(ctx context.Context, req *cluster.APIRequest) (*cluster.APIReply, error) {
	prio, err := cluster.ParsePriority(string(req.Priority))
	if err != nil {
		return nil, err
	}
	spec, err := train.ParseSpec("submitted spec", req.Spec)
	if err != nil {
		return nil, err
	}
	adm, err := c.admission(ctx)
	if err != nil {
		return nil, err
	}
	if err := adm.admit(spec, ""); err != nil {
		return nil, err
	}
	id, err := c.enqueue(ctx, spec, spec.Name, prio, "")
	if err != nil {
		return nil, err
	}
	return &cluster.APIReply{RunIDs: []string{id}}, nil
}

func (c *Coordinator) sweep(ctx context.Context, req *cluster.APIRequest) (*cluster.APIReply, error) {
	sw, runs, err := ParseSweep("submitted sweep", req.Sweep)
	if err != nil {
		return nil, err
	}
	p := sw.Priority
	if req.Priority != "" {
		p = req.Priority
	}
	prio, err := cluster.ParsePriority(string(p))
	if err != nil {
		return nil, err
	}
	adm, err := c.admission(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range runs { // all or nothing
		if err := adm.admit(r.Spec, r.Name); err != nil {
			return nil, err
		}
	}
	sweepID := "sweep-" + experiment.NewRunID()
	reply := &cluster.APIReply{}
	for _, r := range runs {
		id, err := c.enqueue(ctx, r.Spec, r.Name, prio, sweepID)
		if err != nil {
			// The runs already accepted stay accepted; say which they are.
			return reply, errs.Wrap(errs.KindOf(err), "sweep", err, "sweep %s: %d of %d runs submitted, then", sw.Name, len(reply.RunIDs), len(runs))
		}
		reply.RunIDs = append(reply.RunIDs, id)
	}
	c.log.Info("sweep submitted", "sweep", sw.Name, "id", sweepID, "runs", len(runs), "priority", prio)
	return reply, nil
}

// enqueue creates a run's queued state and dispatches it.
func (c *Coordinator) enqueue(ctx context.Context, spec *train.Spec, name string, prio cluster.Priority, sweepID string) (string, error) {
	const op = "submit"
	id := experiment.NewRunID() // one NATS subject token: no '.'
	subj := cluster.DispatchSubject(prio)
	// The run's trace starts here: the submit span is the root (or a child
	// of the client's span) of every span of every attempt.
	ctx, span := tracing.Tracer().Start(ctx, "submit", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(tracing.Messaging("send", subj)...),
		trace.WithAttributes(attribute.String("messaging.message.id", id), attribute.String("gorch.run.id", id),
			attribute.String("gorch.run.name", name), attribute.String("gorch.priority", string(prio))))
	defer span.End()
	if sweepID != "" {
		span.SetAttributes(attribute.String("gorch.sweep.id", sweepID))
	}
	now := c.now()
	st := cluster.RunState{RunID: id, Name: name, SweepID: sweepID, Priority: prio, Status: cluster.StateQueued, Submitted: now, Updated: now,
		TraceParent: tracing.TraceParent(ctx)}
	if est, err := train.EstimateMemory(spec); err == nil {
		st.MemoryEstimate = est.Total()
	}
	if _, err := cluster.CreateState(ctx, c.kv, st); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return "", err
	}
	body, err := cluster.Encode(cluster.TypeRunRequest, &cluster.RunRequest{
		RunID: id, Name: name, Spec: spec.JSON(), Priority: prio, SweepID: sweepID, Submitted: now,
	})
	if err == nil {
		msg := nats.NewMsg(subj)
		msg.Data = body
		tracing.Inject(ctx, msg.Header)
		_, err = c.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(cluster.StreamRuns))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		// No RunRequest will reach a worker: end the run here, so it does
		// not stay queued forever.
		perr := errs.Wrap(errs.Cluster, op, err, "dispatching run %s", id)
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, _, uerr := c.update(fctx, id, func(s *cluster.RunState) error {
			if s.Status != cluster.StateQueued || s.Attempt != 0 {
				return cluster.ErrStopUpdate
			}
			s.Status, s.Error, s.ErrorKind, s.RecordsFinal = cluster.StateFailed, perr.Error(), errs.Cluster.String(), true
			return nil
		}); uerr != nil {
			c.log.Error("run left queued without a dispatch message", "run", id, "err", uerr)
		}
		return "", perr
	}
	c.log.Info("run submitted", "run", id, "name", name, "priority", prio, "sweep", sweepID)
	return id, nil
}

// admission is what the coordinator knows of the workers' memory
// limits when a run is submitted: the largest limit of a live worker, 0
// if some worker has none or no worker is known (the claim decides).
type admission struct{ limit int64 }

func (c *Coordinator) admission(ctx context.Context) (admission, error) {
	live, err := c.workersNow(ctx)
	if err != nil {
		return admission{}, err
	}
	var a admission
	for _, w := range live {
		if w.MemoryLimit <= 0 {
			return admission{}, nil
		}
		a.limit = max(a.limit, w.MemoryLimit)
	}
	return a, nil
}

// admit refuses a spec whose memory estimate exceeds every live worker's
// limit, with one line naming both.
func (a admission) admit(spec *train.Spec, name string) error {
	if a.limit == 0 {
		return nil
	}
	est, err := train.EstimateMemory(spec)
	if err != nil {
		return err
	}
	who := "every worker"
	if name != "" {
		who = "every worker (run " + name + ")"
	}
	return train.Admit(est, a.limit, who)
}

func checkRunID(id string) error {
	if !experiment.ValidRunID(id) {
		return errs.New(errs.Config, "", "invalid run id %q", id)
	}
	return nil
}

// cancel ends a queued or orphaned run at once; a running one gets
// CancelRequested and a notice to its worker, which ends it cancelled.
func (c *Coordinator) cancel(ctx context.Context, req *cluster.APIRequest) (*cluster.APIReply, error) {
	if err := checkRunID(req.RunID); err != nil {
		return nil, err
	}
	st, _, err := c.update(ctx, req.RunID, func(s *cluster.RunState) error {
		switch {
		case cluster.Terminal(s.Status):
			return errs.New(errs.Experiment, "", "run %s already %s", s.RunID, s.Status)
		case s.Status == cluster.StateQueued:
			s.Status, s.Error, s.RecordsFinal = cluster.StateCancelled, "cancelled before it started", true
		case s.Status == cluster.StateOrphaned:
			// Its worker is gone: nobody would end it, or record it. The
			// RUNS message, redelivered, finds it terminal and is dropped.
			s.Status, s.Error, s.RecordsFinal = cluster.StateCancelled, "cancelled while its worker was gone", true
		case s.CancelRequested:
			return cluster.ErrStopUpdate // already asked: just notify again
		default:
			s.CancelRequested = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if st.Status == cluster.StateRunning {
		notice, err := cluster.Encode(cluster.TypeControl, &cluster.Control{RunID: st.RunID, Attempt: st.Attempt})
		if err == nil {
			err = c.nc.Publish(cluster.ControlSubject(st.Worker), notice)
		}
		if err != nil {
			// The flag still stops the worker at its next request.
			c.log.Warn("cancel notice not sent", "run", st.RunID, "err", err)
		}
	}
	c.log.Info("run cancel", "run", st.RunID, "status", st.Status, "cancel_requested", st.CancelRequested)
	return &cluster.APIReply{RunIDs: []string{st.RunID}, States: []cluster.RunState{st}}, nil
}

func (c *Coordinator) status(ctx context.Context, req *cluster.APIRequest) (*cluster.APIReply, error) {
	if err := checkRunID(req.RunID); err != nil {
		return nil, err
	}
	st, _, err := c.getState(ctx, req.RunID)
	if err != nil {
		return nil, err
	}
	return &cluster.APIReply{States: []cluster.RunState{st}}, nil
}

func (c *Coordinator) list(ctx context.Context, _ *cluster.APIRequest) (*cluster.APIReply, error) {
	states, err := cluster.ListStates(ctx, c.kv)
	if err != nil {
		return nil, err
	}
	return &cluster.APIReply{States: states}, nil
}
