package coordinator

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/tracing"
	"github.com/gorch/gorch/pkg/errs"
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

// Coordinator serves the run API to clients, the worker API to workers
// and the records-final notice to the collector; it is the only writer of
// the runs bucket. Create it with New and serve with Run.
type Coordinator struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	kv      jetstream.KeyValue // runs
	workers jetstream.KeyValue
	log     *slog.Logger
	opts    Options
	now     func() time.Time
	cache   workerCache // live workers, for admission
}

// New binds to the cluster's RUNS stream and buckets (made by `gorch
// setup`) and returns a coordinator using nc. A missing stream or bucket
// is a one-line error naming it. Binding gives up when ctx ends or after
// 30 s.
func New(ctx context.Context, nc *nats.Conn, opts Options) (*Coordinator, error) {
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
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := cluster.BindStream(ctx, js, cluster.StreamRuns); err != nil {
		return nil, err
	}
	c := &Coordinator{nc: nc, js: js, log: opts.Logger, opts: opts, now: func() time.Time { return time.Now().UTC() }}
	if c.kv, err = cluster.BindKV(ctx, js, cluster.BucketRuns); err != nil {
		return nil, err
	}
	if c.workers, err = cluster.BindKV(ctx, js, cluster.BucketWorkers); err != nil {
		return nil, err
	}
	return c, nil
}

// Run serves requests until ctx is done, then drains its subscriptions
// and returns nil. It returns an error only when it cannot subscribe.
func (c *Coordinator) Run(ctx context.Context) error {
	const op = "coordinator.Run"
	api := map[string]func(context.Context, *cluster.APIRequest) (*cluster.APIReply, error){
		cluster.OpSubmit:  c.submit,
		cluster.OpSweep:   c.sweep,
		cluster.OpCancel:  c.cancel,
		cluster.OpStatus:  c.status,
		cluster.OpList:    c.list,
		cluster.OpWorkers: c.listWorkers,
	}
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Drain()
		}
	}()
	subscribe := func(subj string, h nats.MsgHandler) error {
		s, err := c.nc.QueueSubscribe(subj, QueueGroup, h)
		if err != nil {
			return errs.Wrap(errs.Cluster, op, err, "subscribing to %s", subj)
		}
		subs = append(subs, s)
		return nil
	}
	for name, h := range api {
		if err := subscribe(cluster.APISubject(name), func(m *nats.Msg) { c.serveAPI(ctx, name, h, m) }); err != nil {
			return err
		}
	}
	if err := subscribe(cluster.WorkerAPISubject("*", "*"), func(m *nats.Msg) { c.serveWorker(ctx, m) }); err != nil {
		return err
	}
	if err := subscribe(cluster.CollectorFinalSubject, func(m *nats.Msg) { c.serveFinal(ctx, m) }); err != nil {
		return err
	}
	if err := c.nc.Flush(); err != nil {
		return errs.Wrap(errs.Cluster, op, err, "subscribing")
	}
	var bg sync.WaitGroup
	bg.Go(func() { c.watchWorkers(ctx) })
	defer bg.Wait()
	c.log.Info("coordinator serving", "subjects", "api.>, wapi.*.*, "+cluster.CollectorFinalSubject, "queue", QueueGroup)
	<-ctx.Done()
	c.log.Info("coordinator stopping")
	return nil
}

// guard runs h, turning a panic into an errs.Internal error: one bad
// request never ends the coordinator.
func guard[T any](op string, h func() (T, error)) (r T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errs.New(errs.Internal, "coordinator."+op, "panic: %v", p)
		}
	}()
	return h()
}

// respond encodes v as typ and answers m.
func (c *Coordinator) respond(m *nats.Msg, op, typ string, v any) {
	b, err := cluster.Encode(typ, v)
	if err != nil {
		c.log.Error("encoding reply", "op", op, "err", err)
		return
	}
	if err := m.Respond(b); err != nil {
		c.log.Warn("sending reply", "op", op, "err", err)
	}
}

// serveAPI answers one client request. It never panics on bad input: a
// malformed request or a failed operation becomes an APIReply with Error.
func (c *Coordinator) serveAPI(ctx context.Context, op string, h func(context.Context, *cluster.APIRequest) (*cluster.APIReply, error), m *nats.Msg) {
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
		reply, err = guard(op, func() (*cluster.APIReply, error) { return h(ctx, &req) })
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
	c.respond(m, op, cluster.TypeAPIReply, reply)
}
