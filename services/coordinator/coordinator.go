package coordinator

import (
	"context"
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

// QueueGroup is the NATS queue group every coordinator subscribes in.
const QueueGroup = "coordinator"

// Options configures a Coordinator. The zero value is usable.
type Options struct {
	// Logger receives one line per request that failed; nil means
	// slog.Default().
	Logger *slog.Logger
	// RequestTimeout bounds the work on one request (a large sweep is one
	// request); 0 means 2 minutes.
	RequestTimeout time.Duration
}

// Coordinator serves the run API. Create it with New and serve with Run.
type Coordinator struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	log  *slog.Logger
	opts Options
	now  func() time.Time
}

// New sets up the cluster layout (cluster.Setup, idempotent) and returns
// a coordinator using nc.
func New(nc *nats.Conn, opts Options) (*Coordinator, error) {
	const op = "coordinator.New"
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 2 * time.Minute
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, op, err, "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cluster.Setup(ctx, js); err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, cluster.BucketRuns)
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, op, err, "bucket %s", cluster.BucketRuns)
	}
	return &Coordinator{nc: nc, js: js, kv: kv, log: opts.Logger, opts: opts, now: func() time.Time { return time.Now().UTC() }}, nil
}

// Run serves requests until ctx is done, then drains its subscriptions
// and returns nil. It returns an error only when it cannot subscribe.
func (c *Coordinator) Run(ctx context.Context) error {
	handlers := map[string]func(context.Context, *cluster.APIRequest) (*cluster.APIReply, error){
		cluster.OpSubmit: c.submit,
		cluster.OpSweep:  c.sweep,
		cluster.OpCancel: c.cancel,
		cluster.OpStatus: c.status,
		cluster.OpList:   c.list,
	}
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Drain()
		}
	}()
	for op, h := range handlers {
		subj := cluster.APISubject(op)
		s, err := c.nc.QueueSubscribe(subj, QueueGroup, func(m *nats.Msg) { c.serve(ctx, op, h, m) })
		if err != nil {
			return errs.Wrap(errs.Cluster, "coordinator.Run", err, "subscribing to %s", subj)
		}
		subs = append(subs, s)
	}
	if err := c.nc.Flush(); err != nil {
		return errs.Wrap(errs.Cluster, "coordinator.Run", err, "subscribing")
	}
	c.log.Info("coordinator serving", "subjects", "api.{submit,sweep,cancel,status,list}", "queue", QueueGroup)
	<-ctx.Done()
	c.log.Info("coordinator stopping")
	return nil
}

// serve answers one request. It never panics on bad input: a malformed
// request or a failed operation becomes an APIReply with Error.
func (c *Coordinator) serve(ctx context.Context, op string, h func(context.Context, *cluster.APIRequest) (*cluster.APIReply, error), m *nats.Msg) {
	start := time.Now()
	if m.Reply == "" {
		c.log.Warn("request without a reply subject dropped", "op", op, "bytes", len(m.Data))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	ctx = tracing.Extract(ctx, m.Header) // a client's trace, if it sent one
	var reply *cluster.APIReply
	var req cluster.APIRequest
	err := cluster.Decode(m.Data, cluster.TypeAPIRequest, &req)
	if err == nil {
		reply, err = func() (r *cluster.APIReply, err error) {
			defer func() {
				if p := recover(); p != nil {
					err = errs.New(errs.Internal, "coordinator."+op, "panic: %v", p)
				}
			}()
			return h(ctx, &req)
		}()
	}
	if err != nil {
		if reply == nil {
			reply = &cluster.APIReply{}
		}
		reply.Error, reply.Kind = err.Error(), errs.KindOf(err).String()
		c.log.Warn("request failed", "op", op, "run", req.RunID, "kind", reply.Kind, "err", reply.Error)
	} else {
		c.log.Debug("request served", "op", op, "runs", len(reply.RunIDs), "states", len(reply.States), "took", time.Since(start))
	}
	b, err := cluster.Encode(cluster.TypeAPIReply, reply)
	if err != nil {
		c.log.Error("encoding reply", "op", op, "err", err)
		b, _ = cluster.Encode(cluster.TypeAPIReply, &cluster.APIReply{Error: err.Error(), Kind: errs.Internal.String()})
	}
	if err := m.Respond(b); err != nil {
		c.log.Warn("sending reply", "op", op, "err", err)
	}
}

func (c *Coordinator) submit(ctx context.Context, req *cluster.APIRequest) (*cluster.APIReply, error) {
	prio, err := cluster.ParsePriority(string(req.Priority))
	if err != nil {
		return nil, err
	}
	spec, err := train.ParseSpec("submitted spec", req.Spec)
	if err != nil {
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
		if _, _, uerr := cluster.UpdateState(fctx, c.kv, id, func(s *cluster.RunState) error {
			if s.Status != cluster.StateQueued || s.Attempt != 0 {
				return cluster.ErrStopUpdate
			}
			s.Status, s.Error, s.Updated = cluster.StateFailed, perr.Error(), c.now()
			return nil
		}); uerr != nil {
			c.log.Error("run left queued without a dispatch message", "run", id, "err", uerr)
		}
		return "", perr
	}
	c.log.Info("run submitted", "run", id, "name", name, "priority", prio, "sweep", sweepID)
	return id, nil
}

func checkRunID(id string) error {
	if !experiment.ValidRunID(id) {
		return errs.New(errs.Config, "", "invalid run id %q", id)
	}
	return nil
}

func (c *Coordinator) cancel(ctx context.Context, req *cluster.APIRequest) (*cluster.APIReply, error) {
	if err := checkRunID(req.RunID); err != nil {
		return nil, err
	}
	st, _, err := cluster.UpdateState(ctx, c.kv, req.RunID, func(s *cluster.RunState) error {
		switch {
		case cluster.Terminal(s.Status):
			return errs.New(errs.Experiment, "", "run %s already %s", s.RunID, s.Status)
		case s.Status == cluster.StateQueued:
			s.Status, s.Error = cluster.StateCancelled, "cancelled before it started"
		case s.CancelRequested:
			return cluster.ErrStopUpdate // already asked: just notify again
		default:
			s.CancelRequested = true
		}
		s.Updated = c.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if st.Status != cluster.StateCancelled {
		notice, err := cluster.Encode(cluster.TypeRunEvent, &cluster.RunEvent{RunID: st.RunID, Attempt: st.Attempt, Kind: "cancel", Worker: st.Worker, Time: c.now()})
		if err == nil {
			err = c.nc.Publish(cluster.ControlSubject(st.RunID), notice)
		}
		if err != nil {
			// The KV flag still stops the worker at its next state write.
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
	st, _, err := cluster.GetState(ctx, c.kv, req.RunID)
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
