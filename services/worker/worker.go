package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/tracing"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
)

// Options configure a Worker. Zero values take the defaults noted.
type Options struct {
	ID           string           // worker ID; default <host>-<random>
	Slots        int              // concurrent runs; default 1
	Store        experiment.Store // where checkpoints go (required)
	PublishEvery time.Duration    // longest a metric waits before it is published; default 1s
	BatchSize    int              // metric points (or telemetry events) per batch; default 256
	Logger       *slog.Logger     // default slog.Default()
	Version      string           // reported in the heartbeat
	// TraceSteps: a train.step span every TraceSteps steps of a run; 0
	// takes GORCH_TRACE_STEPS (default 50), negative means none.
	TraceSteps int
	// MemoryLimit is the memory each attempt may use, in bytes: enforced
	// on attempt processes (Child), announced in the heartbeat and claims
	// (admission). 0 takes DefaultMemoryLimit(Slots); negative means none.
	MemoryLimit int64
	// Child, if set, runs every attempt in a child process of its own;
	// else attempts run in this process (a crash then ends the worker).
	Child *ChildOptions
}

// Stats are a worker's counters since it started.
type Stats struct {
	Active          int   // runs being trained
	Checkpoints     int64 // checkpoints written
	CheckpointBytes int64 // their bytes
}

// Tunables.
const (
	// idlePoll is how long a free slot sleeps when every queue is empty.
	idlePoll = 250 * time.Millisecond
	// retryDelay is the NakWithDelay of a run that goes back to the queue.
	retryDelay = time.Second
	// opTimeout bounds one NATS operation (publish, KV read or write).
	opTimeout = 10 * time.Second
)

// Worker trains runs from the RUNS work queue. Create it with New and
// start it with Run.
type Worker struct {
	opts    Options
	host    string
	log     *slog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	api     *coordAPI
	workers jetstream.KeyValue
	cons    []jetstream.Consumer // dispatch consumers, highest priority first
	ackWait time.Duration        // of the dispatch consumers
	hbEvery time.Duration        // a third of the workers bucket's TTL
	hooks   bool                 // TestHooksEnv=1: the fault tests' hooks act

	ckpts, ckptBytes atomic.Int64 // checkpoints written and their bytes

	// instance names this worker process in its claims (random): a
	// claim repeated by it after a lost reply gets the attempt it started.
	instance string

	mu     sync.Mutex
	active map[string]*activeRun // run ID -> the slot that claims or trains it
	// started: run ID -> the newest attempt this process started, until
	// the coordinator took that attempt's outcome (see cluster.ClaimInfo).
	started map[string]int
	// claimDrops: runs whose claim replies HookDropClaimReplies dropped.
	claimDrops map[string]bool
}

// Stats returns the worker's counters.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	n := len(w.active)
	w.mu.Unlock()
	return Stats{Active: n, Checkpoints: w.ckpts.Load(), CheckpointBytes: w.ckptBytes.Load()}
}

// activeRun is a run a slot holds: claims, then trains. Its fields are
// guarded by Worker.mu.
type activeRun struct {
	attempt int                     // 0 while claiming
	cancel  context.CancelCauseFunc // nil while claiming
	// msg is the newest delivery of the run's RUNS message: a delivery
	// that arrives while a slot holds the run only extends the lease of
	// the attempt the slot has (see Worker.hold).
	msg jetstream.Msg
}

// Causes of an attempt's context cancellation. Any other cause (the
// worker stopping) hands the run back.
var (
	errCancelRequested = errors.New("run cancelled")
	errLostOwnership   = errors.New("lost ownership of the run")
)

// New checks opts, binds to the cluster's dispatch consumers and buckets
// (made by `gorch setup`; a missing one is a one-line error naming it)
// and returns a worker on nc. Binding gives up when ctx ends or after 30 s.
func New(ctx context.Context, nc *nats.Conn, opts Options) (*Worker, error) {
	const op = "worker.New"
	if opts.Store == nil {
		return nil, errs.New(errs.Config, op, "a store is required")
	}
	if opts.Slots < 0 || opts.BatchSize < 0 || opts.PublishEvery < 0 {
		return nil, errs.New(errs.Config, op, "slots, batch size and publish interval must not be negative")
	}
	if opts.Slots == 0 {
		opts.Slots = 1
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = 256
	}
	if opts.PublishEvery == 0 {
		opts.PublishEvery = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.TraceSteps == 0 {
		opts.TraceSteps = tracing.StepsFromEnv()
	}
	switch {
	case opts.MemoryLimit == 0:
		opts.MemoryLimit = DefaultMemoryLimit(opts.Slots)
	case opts.MemoryLimit < 0:
		opts.MemoryLimit = 0
	}
	if opts.Child != nil && len(opts.Child.Command) == 0 {
		return nil, errs.New(errs.Config, op, "child attempts need a command")
	}
	host, _ := os.Hostname()
	if opts.ID == "" {
		opts.ID = DefaultID()
	} else if !cluster.ValidID(opts.ID) {
		return nil, errs.New(errs.Config, op, "worker ID %q: use letters, digits, '-' and '_'", opts.ID)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, op, err, "")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w := &Worker{opts: opts, host: host, log: opts.Logger.With("worker", opts.ID), nc: nc, js: js,
		api: &coordAPI{nc: nc, worker: opts.ID}, active: map[string]*activeRun{}, started: map[string]int{},
		hooks: os.Getenv(TestHooksEnv) == "1", instance: randomHex(8)}
	for _, p := range cluster.Priorities {
		c, err := cluster.BindConsumer(ctx, js, cluster.StreamRuns, cluster.DispatchConsumer(p))
		if err != nil {
			return nil, err
		}
		w.cons = append(w.cons, c)
		w.ackWait = c.CachedInfo().Config.AckWait
	}
	if w.workers, err = cluster.BindKV(ctx, js, cluster.BucketWorkers); err != nil {
		return nil, err
	}
	w.hbEvery = cluster.HeartbeatEvery
	if st, err := w.workers.Status(ctx); err == nil && st.TTL() > 0 {
		w.hbEvery = st.TTL() / 3
	}
	if w.ackWait <= 0 {
		w.ackWait = cluster.AckWait
	}
	return w, nil
}

// DefaultID is a new worker ID: <hostname>-<6 random hex digits>.
func DefaultID() string {
	host, _ := os.Hostname()
	return keySafe(host) + "-" + randomHex(3)
}

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// keySafe maps s to a KV-key-safe token.
func keySafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// ID returns the worker's ID.
func (w *Worker) ID() string { return w.opts.ID }

// Run serves until ctx is cancelled. Then every slot finishes its current
// step, checkpoints, hands its run back to the queue, and Run returns nil.
// It returns an error only if it cannot start (subscribing failed).
func (w *Worker) Run(ctx context.Context) error {
	const op = "worker.Run"
	sub, err := w.nc.Subscribe(cluster.ControlSubject(w.opts.ID), func(m *nats.Msg) {
		var c cluster.Control
		if err := cluster.Decode(m.Data, cluster.TypeControl, &c); err != nil {
			w.log.Warn("ignoring an undecodable control notice", "err", err)
			return
		}
		w.cancelRun(c.RunID, c.Attempt, errCancelRequested)
	})
	if err != nil {
		return errs.Wrap(errs.Cluster, op, err, "subscribing to %s", cluster.ControlSubject(w.opts.ID))
	}
	defer func() { _ = sub.Unsubscribe() }()

	hbCtx, stopHB := context.WithCancel(ctx)
	var hbDone sync.WaitGroup
	hbDone.Go(func() { w.heartbeats(hbCtx) })

	w.log.Info("worker started", "slots", w.opts.Slots, "ack_wait", w.ackWait, "memory_limit", w.opts.MemoryLimit,
		"attempts", map[bool]string{true: "child processes", false: "in process"}[w.opts.Child != nil])
	var slots sync.WaitGroup
	for range w.opts.Slots {
		slots.Go(func() { w.slot(ctx) })
	}
	slots.Wait()
	stopHB()
	hbDone.Wait()
	dctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := w.workers.Delete(dctx, cluster.WorkerKey(w.opts.ID)); err != nil {
		w.log.Warn("removing the heartbeat key failed; it expires with the bucket's TTL", "err", err)
	}
	w.log.Info("worker stopped")
	return nil
}

// cancelRun cancels the active run id with cause, if this worker trains
// its attempt (0: any attempt).
func (w *Worker) cancelRun(id string, attempt int, cause error) {
	w.mu.Lock()
	a := w.active[id]
	var cancel context.CancelCauseFunc
	if a != nil && (attempt == 0 || attempt == a.attempt) {
		cancel = a.cancel // nil while the slot claims the run
	}
	w.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
}

// heartbeats puts the worker's info into the workers bucket every
// hbEvery until ctx is cancelled.
func (w *Worker) heartbeats(ctx context.Context) {
	t := time.NewTicker(w.hbEvery)
	defer t.Stop()
	for {
		w.mu.Lock()
		info := cluster.WorkerInfo{ID: w.opts.ID, Host: w.host, Slots: w.opts.Slots, Busy: len(w.active),
			MemoryLimit: w.opts.MemoryLimit, Version: w.opts.Version, Seen: time.Now().UTC()}
		for id := range w.active {
			info.Runs = append(info.Runs, id)
		}
		w.mu.Unlock()
		if b, err := msgpack.Marshal(&info); err == nil {
			pctx, cancel := context.WithTimeout(ctx, opTimeout)
			if _, err := w.workers.Put(pctx, cluster.WorkerKey(w.opts.ID), b); err != nil && ctx.Err() == nil {
				w.log.Warn("heartbeat failed", "err", err)
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// slot fetches and trains one run at a time until ctx is cancelled.
func (w *Worker) slot(ctx context.Context) {
	for ctx.Err() == nil {
		msg := w.fetch(ctx)
		if msg == nil {
			select {
			case <-ctx.Done():
			case <-time.After(idlePoll):
			}
			continue
		}
		if ctx.Err() != nil {
			_ = msg.Nak() // fetched while stopping: hand it straight back
			return
		}
		w.handle(ctx, msg)
	}
}

// fetch returns one message from the highest priority queue that has one,
// or nil.
func (w *Worker) fetch(ctx context.Context) jetstream.Msg {
	for i, c := range w.cons {
		if ctx.Err() != nil {
			return nil
		}
		batch, err := c.FetchNoWait(1)
		if err != nil {
			w.log.Warn("fetch failed", "priority", cluster.Priorities[i], "err", err)
			continue
		}
		var got jetstream.Msg
		for m := range batch.Messages() {
			got = m
		}
		if got != nil {
			return got
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
			w.log.Warn("fetch failed", "priority", cluster.Priorities[i], "err", err)
		}
	}
	return nil
}
