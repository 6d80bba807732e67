package worker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/tracing"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/train"
)

// Ticket is one attempt's assignment: everything the code that trains it
// needs, handed over by the worker's supervisor (as JSON on an attempt
// child's stdin).
type Ticket struct {
	Worker     string               `json:"worker"`
	Host       string               `json:"host"`
	Request    cluster.RunRequest   `json:"request"`
	Attempt    int                  `json:"attempt"`
	Resume     *cluster.ResumePoint `json:"resume,omitempty"`
	TotalSteps int64                `json:"total_steps,omitempty"`
	// AckWait is the dispatch consumers' ack deadline: the attempt reports
	// progress (and learns of a lost lease) every AckWait/3.
	AckWait      time.Duration `json:"ack_wait"`
	PublishEvery time.Duration `json:"publish_every"`
	BatchSize    int           `json:"batch_size"`
	TraceSteps   int           `json:"trace_steps"`
	// TraceParent is the supervisor's run span, the parent of the
	// attempt's spans.
	TraceParent string `json:"trace_parent,omitempty"`
	// MemoryLimit is the attempt's memory limit in bytes (0: none).
	MemoryLimit int64 `json:"memory_limit,omitempty"`
	// TestHooks enables the fault tests' hooks (spec tags gorch.test.*).
	TestHooks bool `json:"test_hooks,omitempty"`
}

// Outcomes of an attempt (Result.Status) besides the terminal statuses
// succeeded, failed and cancelled.
const (
	outcomeInterrupted = "interrupted" // stopped (worker stopping) and checkpointed: hand it back
	outcomeLost        = "lost"        // another attempt owns the run now: write nothing
)

// Result is how an attempt ended, reported to the supervisor.
type Result struct {
	Status    string `json:"status"` // succeeded, failed, cancelled, interrupted or lost
	Error     string `json:"error,omitempty"`
	Kind      string `json:"kind,omitempty"` // errs.Kind name of Error
	Retryable bool   `json:"retryable,omitempty"`
	// Step is the last step trained; Metrics the metric points
	// published; Layout the layout counters (JSON).
	Step    int64           `json:"step"`
	Metrics int64           `json:"metrics"`
	Layout  json.RawMessage `json:"layout,omitempty"`
	// Checkpoints and CheckpointBytes count the checkpoints written.
	Checkpoints     int64 `json:"checkpoints,omitempty"`
	CheckpointBytes int64 `json:"checkpoint_bytes,omitempty"`
	// Started and Finished are when training started and ended, on the
	// worker's clock (zero if it never got that far).
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// PeakRSS is an attempt process's peak resident memory.
	PeakRSS int64 `json:"peak_rss,omitempty"`
}

// failure is the Result of an attempt that failed with err.
func failure(err error) Result {
	return Result{Status: cluster.StateFailed, Error: err.Error(), Kind: errs.KindOf(err).String(), Retryable: errs.Retryable(err)}
}

// attemptEnv is what an attempt trains with: a connection as its worker,
// the store and a logger.
type attemptEnv struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	store experiment.Store
	log   *slog.Logger
}

// runAttempt trains the attempt t and says how it ended. Cancelling ctx
// with errCancelRequested ends it cancelled, with any other cause hands
// it back (interrupted); both checkpoint first. It never panics for a
// panic in training: that is a failed attempt (errs.Internal).
func runAttempt(ctx context.Context, env attemptEnv, t *Ticket) (res Result) {
	log := env.log.With("run", t.Request.RunID, "attempt", t.Attempt)
	spec, err := train.ParseSpec("run "+t.Request.RunID+" spec", t.Request.Spec)
	if err != nil {
		return failure(err)
	}
	if ctx.Err() != nil { // cancelled or stopped before it started
		if errors.Is(context.Cause(ctx), errCancelRequested) {
			return Result{Status: cluster.StateCancelled, Step: resumeStep(t.Resume)}
		}
		return Result{Status: outcomeInterrupted, Step: resumeStep(t.Resume)}
	}
	ctx = tracing.FromTraceParent(ctx, t.TraceParent)
	rctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	api := &coordAPI{nc: env.nc, worker: t.Worker}
	sink := newClusterSink(env, api, t, spec, stop, log)
	defer func() {
		if p := recover(); p != nil {
			res = failure(errs.New(errs.Internal, "train", "panic: %v", p))
		}
		sink.mu.Lock()
		res.Step, res.Metrics, res.Layout = sink.lastStep, sink.metricN, sink.layout
		res.Started, res.Finished = sink.startedAt, sink.endedAt
		sink.mu.Unlock()
		res.Checkpoints, res.CheckpointBytes = sink.ckpts.Load(), sink.ckptBytes.Load()
	}()
	// The first report also learns of a cancel sent before the attempt
	// was registered.
	prog := &progressReporter{api: api, sink: sink, every: t.AckWait / 3, total: t.TotalSteps, stop: stop, log: log}
	prog.report(rctx, 0, spec.Steps)
	log.Info("training", "name", t.Request.Name, "resume_step", resumeStep(t.Resume))
	_, runErr := train.Run(rctx, spec, sink, train.Options{Progress: func(p train.Progress) { prog.report(rctx, p.Step, p.Total) },
		TraceSteps: t.TraceSteps})
	switch cause := context.Cause(rctx); {
	case errors.Is(cause, errLostOwnership):
		return Result{Status: outcomeLost, Error: errLostOwnership.Error()}
	case runErr == nil:
		return Result{Status: cluster.StateSucceeded}
	case rctx.Err() != nil && errors.Is(cause, errCancelRequested):
		return Result{Status: cluster.StateCancelled}
	case rctx.Err() != nil:
		return Result{Status: outcomeInterrupted, Error: runErr.Error()}
	}
	return failure(runErr)
}

func resumeStep(r *cluster.ResumePoint) int64 {
	if r == nil {
		return 0
	}
	return r.Step
}

// progressReporter sends an attempt's progress to the coordinator at most
// every `every` (and whenever the total changes), and stops the attempt
// when the answer says the run was cancelled or is not this attempt's.
type progressReporter struct {
	api   *coordAPI
	sink  *ClusterSink
	every time.Duration
	total int64
	stop  context.CancelCauseFunc
	log   *slog.Logger
	last  atomic.Int64 // unix ns of the last report
}

func (p *progressReporter) report(ctx context.Context, step, total int) {
	now := time.Now()
	if int64(total) == p.total && now.Sub(time.Unix(0, p.last.Load())) < p.every {
		return
	}
	p.last.Store(now.UnixNano())
	if total > 0 {
		p.total = int64(total)
	}
	r, err := p.api.call(context.WithoutCancel(ctx), cluster.WOpProgress, &cluster.WorkerRequest{RunID: p.sink.runID,
		Attempt: p.sink.attempt, Step: int64(step), Total: int64(total)})
	switch {
	case errors.Is(err, errNotOwner):
		p.log.Warn("lost ownership of the run; stopping", "err", err)
		p.stop(errLostOwnership)
	case err != nil:
		p.log.Debug("progress report failed", "err", err) // the next one may get through
	case r.State.CancelRequested:
		p.stop(errCancelRequested)
	}
}
