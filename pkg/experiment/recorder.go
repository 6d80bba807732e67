package experiment

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"time"

	"github.com/gorch/gorch/pkg/errs"
)

// Recorder owns the records of one attempt of one run: it writes run.json,
// runs the metrics logger and telemetry recorder, keeps artifacts.json, and
// writes run_summary.json. Only one Recorder may own a run at a time.
type Recorder struct {
	store     Store
	rollup    *Rollup
	metrics   *MetricsLogger
	telemetry *TelemetryRecorder

	mu        sync.Mutex
	run       Run
	layout    map[string]OpStats
	artifacts []Artifact
	prevDrops uint64 // dropped records of earlier attempts
	finished  bool
}

// Create starts a new run. Empty fields of run are filled in: ID (a
// [NewRunID]), Created, Started, Host, Attempt (1); the status becomes
// running. run.json is written before Create returns.
func Create(ctx context.Context, store Store, run Run, opts LogOptions) (*Recorder, error) {
	const op = "experiment.Create"
	now := time.Now().UTC()
	if run.ID == "" {
		run.ID = NewRunID()
	}
	if err := checkRunID(op, run.ID); err != nil {
		return nil, err
	}
	if _, err := store.Get(ctx, runKey(run.ID)); err == nil {
		return nil, errs.New(errs.Experiment, op, "run %s already exists", run.ID)
	} else if !IsNotFound(err) {
		return nil, err
	}
	if run.Created.IsZero() {
		run.Created = now
	}
	run.Started, run.Status = now, StatusRunning
	if run.Host == "" {
		run.Host, _ = os.Hostname()
	}
	if run.Attempt == 0 {
		run.Attempt = 1
	}
	return start(ctx, store, run, nil, 0, opts)
}

// Resume starts a new attempt of an existing run: the attempt number goes
// up by one, the status becomes running, the error is cleared, and the
// summary keeps rolling up the earlier attempts' records (read back from
// their segments) and their dropped count.
func Resume(ctx context.Context, store Store, runID string, opts LogOptions) (*Recorder, error) {
	rd := NewReader(store)
	run, err := rd.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	arts, err := rd.Artifacts(ctx, runID)
	if err != nil {
		return nil, err
	}
	var dropped uint64
	if s, err := rd.GetSummary(ctx, runID); err == nil {
		dropped = s.Dropped
	} else if !IsNotFound(err) {
		return nil, err
	}
	run.Attempt++
	run.Status, run.Error, run.Started, run.Finished = StatusRunning, "", time.Now().UTC(), time.Time{}
	return start(ctx, store, run, arts, dropped, opts)
}

func start(ctx context.Context, store Store, run Run, arts []Artifact, dropped uint64, opts LogOptions) (*Recorder, error) {
	r := &Recorder{store: store, rollup: NewRollup(), run: run, artifacts: arts, prevDrops: dropped}
	rd := NewReader(store)
	for batch, err := range rd.metricBatches(ctx, run.ID) {
		if err != nil {
			return nil, err
		}
		r.rollup.AddMetrics(batch)
	}
	for batch, err := range rd.eventBatches(ctx, run.ID) {
		if err != nil {
			return nil, err
		}
		r.rollup.AddEvents(batch)
	}
	if err := r.putJSON(ctx, runKey(run.ID), run); err != nil {
		return nil, err
	}
	var err error
	if r.metrics, err = NewMetricsLogger(ctx, store, run.ID, run.Attempt, opts, r.rollup.AddMetrics); err != nil {
		return nil, err
	}
	if r.telemetry, err = NewTelemetryRecorder(ctx, store, run.ID, opts, r.rollup.AddEvents); err != nil {
		r.metrics.Close()
		return nil, err
	}
	return r, nil
}

func (r *Recorder) putJSON(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return errs.Wrap(errs.Internal, "experiment.Recorder", err, "encode %s", key)
	}
	return r.store.Put(ctx, key, append(b, '\n'))
}

// ID returns the run's ID.
func (r *Recorder) ID() string { return r.run.ID }

// Run returns a copy of the run record.
func (r *Recorder) Run() Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.run
}

// Metrics returns the run's metrics logger.
func (r *Recorder) Metrics() *MetricsLogger { return r.metrics }

// Telemetry returns the run's telemetry recorder.
func (r *Recorder) Telemetry() *TelemetryRecorder { return r.telemetry }

// Log logs a metric value; see [MetricsLogger.Log].
func (r *Recorder) Log(step int64, name string, value float64) error {
	return r.metrics.Log(step, name, value)
}

// Start starts a scoped telemetry timer; see [TelemetryRecorder.Start].
func (r *Recorder) Start(name string, tags ...string) *Timer { return r.telemetry.Start(name, tags...) }

// SetLayout records a snapshot of the layout-validation counters (from
// a run's tensor.Scope) for the summary.
func (r *Recorder) SetLayout(stats map[string]OpStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.layout = stats
}

func (r *Recorder) dropped() uint64 {
	return r.prevDrops + r.metrics.Dropped() + r.telemetry.Dropped()
}

func (r *Recorder) summary() Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := summarize(r.run, r.rollup, r.dropped(), r.finished)
	s.Layout = r.layout
	return s
}

// WriteSummary flushes the logs and writes run_summary.json as of now, with
// complete false until the run has finished. It returns the first error.
func (r *Recorder) WriteSummary(ctx context.Context) error {
	err1 := r.metrics.Flush()
	err2 := r.telemetry.Flush()
	err3 := r.putJSON(ctx, summaryKey(r.run.ID), r.summary())
	return firstErr(err1, err2, err3)
}

// Finish ends the attempt: it closes the logs, sets the final status (and
// runErr's message, if any), and writes run.json and run_summary.json. The
// summary is written even when closing the logs failed; it then says
// complete=false. Finish returns the first error; later calls do nothing.
func (r *Recorder) Finish(ctx context.Context, status Status, runErr error) error {
	const op = "experiment.Recorder.Finish"
	if !status.Terminal() {
		return errs.New(errs.Argument, op, "status %q is not terminal", status)
	}
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	err1 := r.metrics.Close()
	err2 := r.telemetry.Close()
	r.mu.Lock()
	r.finished = true
	r.run.Status = status
	r.run.Finished = time.Now().UTC()
	if runErr != nil {
		r.run.Error = runErr.Error()
	}
	run := r.run
	r.mu.Unlock()
	err3 := r.putJSON(ctx, runKey(run.ID), run)
	s := r.summary()
	if err1 != nil || err2 != nil || err3 != nil {
		s.Complete = false
	}
	err4 := r.putJSON(ctx, summaryKey(run.ID), s)
	return firstErr(err1, err2, err3, err4)
}

func firstErr(errors ...error) error {
	for _, e := range errors {
		if e != nil {
			return e
		}
	}
	return nil
}
