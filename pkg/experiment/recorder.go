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
// [NewRunID]), Created, Started, Host, Attempt (1), and the first attempt's
// entry in Attempts (from scratch); the status becomes running. run.json is
// written before Create returns.
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
	if run.Started.IsZero() {
		run.Started = now
	}
	run.Status = StatusRunning
	if run.Host == "" {
		run.Host, _ = os.Hostname()
	}
	if run.Attempt == 0 {
		run.Attempt = 1
	}
	if run.Attempt == 1 && len(run.Attempts) == 0 {
		run.attemptEntry(1).Started = run.Started
	}
	return start(ctx, store, run, nil, 0, opts, nil)
}

// Resume starts a new attempt of an existing run: the attempt number goes
// up by one, the status becomes running, the error is cleared, and the
// summary keeps rolling up the earlier attempts' records (read back from
// their segments) and their dropped count. Once the attempt knows the
// checkpoint it resumes from, call [Recorder.SetResume].
func Resume(ctx context.Context, store Store, runID string, opts LogOptions) (*Recorder, error) {
	return openAttempt(ctx, store, runID, -1, opts, nil, nil)
}

// openAttempt opens attempt of an existing run for writing; -1 is the
// attempt after the recorded one (Resume).
//
//   - attempt equal to the run's recorded attempt opens that attempt again
//     as it is (status, times and error kept), e.g. after the writer
//     restarted; new segments continue the numbering.
//   - a greater attempt starts that attempt: status running, error and
//     finish time cleared, Started now.
//   - a smaller attempt is an errs.Experiment error: the run has moved on.
//
// edit, if not nil, may change the run record before run.json is written;
// ID and Attempt are restored afterwards. onEvents sees the stored
// telemetry as it is read.
func openAttempt(ctx context.Context, store Store, runID string, attempt int, opts LogOptions,
	edit func(*Run), onEvents func([]TelemetryEvent)) (*Recorder, error) {
	const op = "experiment.openAttempt"
	rd := NewReader(store)
	run, err := rd.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	if attempt < 0 {
		attempt = run.Attempt + 1
	}
	switch {
	case attempt < run.Attempt:
		return nil, errs.New(errs.Experiment, op, "run %s: attempt %d is older than the recorded attempt %d", runID, attempt, run.Attempt)
	case attempt > run.Attempt:
		run.Attempt = attempt
		run.Status, run.Error, run.Started, run.Finished = StatusRunning, "", time.Now().UTC(), time.Time{}
	}
	if edit != nil {
		id, a := run.ID, run.Attempt
		edit(&run)
		run.ID, run.Attempt = id, a
	}
	arts, err := rd.Artifacts(ctx, runID)
	if err != nil {
		return nil, err
	}
	var lost uint64
	if s, err := rd.GetSummary(ctx, runID); err == nil {
		lost = s.Dropped - min(s.Missing, s.Dropped) // Missing is recomputed from what is stored
	} else if !IsNotFound(err) {
		return nil, err
	}
	return start(ctx, store, run, arts, lost, opts, onEvents)
}

func start(ctx context.Context, store Store, run Run, arts []Artifact, dropped uint64, opts LogOptions,
	onEvents func([]TelemetryEvent)) (*Recorder, error) {
	r := &Recorder{store: store, rollup: NewRollup(), run: run, artifacts: arts, prevDrops: dropped}
	r.rollup.SetAttempts(run.Attempts)
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
		if onEvents != nil {
			onEvents(batch)
		}
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

// SetResume records that this attempt resumed from the checkpoint taken
// after step (0: it started from scratch) and writes run.json at once.
// From then on readers and the summary treat what earlier attempts logged
// after step as superseded (see [Attempt]); call it before the attempt
// logs anything.
func (r *Recorder) SetResume(ctx context.Context, step int64) error {
	r.mu.Lock()
	e := r.run.attemptEntry(r.run.Attempt)
	e.ResumeStep, e.Started = step, r.run.Started
	run := r.run
	r.mu.Unlock()
	r.rollup.SetAttempts(run.Attempts)
	return r.putJSON(ctx, runKey(run.ID), run)
}

// SetLayout records a snapshot of the layout-validation counters (from
// a run's tensor.Scope) for the summary.
func (r *Recorder) SetLayout(stats map[string]OpStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.layout = stats
}

// missing counts the metric values that producers reported publishing
// (Attempt.Published) and the store lacks; r.mu is held.
func (r *Recorder) missing() uint64 {
	var n int64
	for _, a := range r.run.Attempts {
		n += max(0, a.Published-r.rollup.Stored(a.Attempt))
	}
	return uint64(n)
}

func (r *Recorder) summary() Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	missing := r.missing()
	dropped := r.prevDrops + r.metrics.Dropped() + r.telemetry.Dropped() + missing
	s := summarize(r.run, r.rollup, dropped, r.finished)
	s.Missing, s.Layout = missing, r.layout
	return s
}

// Flush writes every queued metric and telemetry event and returns the
// first I/O error either log has met. Unlike [Recorder.WriteSummary] it
// writes no summary.
func (r *Recorder) Flush() error {
	return firstErr(r.metrics.Flush(), r.telemetry.Flush())
}

// flushCtx is Flush with ctx for the writes of manual logs (an Ingest's).
func (r *Recorder) flushCtx(ctx context.Context) error {
	if !r.metrics.w.opts.Manual {
		return r.Flush()
	}
	return firstErr(r.metrics.w.writeManual(ctx, false), r.telemetry.w.writeManual(ctx, false))
}

// Artifacts returns a copy of the run's artifact list.
func (r *Recorder) Artifacts() []Artifact {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Artifact(nil), r.artifacts...)
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
	return r.finish(ctx, func(run *Run) {
		run.Status, run.Finished = status, time.Now().UTC()
		if runErr != nil {
			run.Error = runErr.Error()
		}
	})
}

// finish closes the logs, applies end to the run record, and writes
// run.json and the final summary. Later calls do nothing.
func (r *Recorder) finish(ctx context.Context, end func(*Run)) error {
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
	end(&r.run)
	r.endAttemptLocked()
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

// endAttemptLocked copies the attempt's outcome into its Attempts entry,
// if it has one; r.mu is held.
func (r *Recorder) endAttemptLocked() {
	for i := range r.run.Attempts {
		if r.run.Attempts[i].Attempt == r.run.Attempt {
			e := r.run.attemptEntry(r.run.Attempt)
			e.Started, e.Finished, e.Status = r.run.Started, r.run.Finished, r.run.Status
			return
		}
	}
}

func firstErr(errors ...error) error {
	for _, e := range errors {
		if e != nil {
			return e
		}
	}
	return nil
}
