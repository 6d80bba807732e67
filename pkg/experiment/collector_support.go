package experiment

import (
	"context"
	"time"

	"github.com/gorch/gorch/pkg/errs"
)

// This file holds what a writer other than the training process — the
// cluster collector — needs on top of [Create] and [Resume]: opening a
// given attempt of a run again (after a restart, without bumping the
// attempt), logging records with the time and attempt they were produced
// with, and reading back what a recorder has recorded.

// Reopen opens attempt of an existing run for writing.
//
//   - attempt equal to the run's recorded attempt opens that attempt again
//     as it is (status, times and error kept), e.g. after the writer
//     restarted; new segments continue the numbering.
//   - attempt greater than the recorded one starts that attempt, as
//     [Resume] does for the next one: status running, error and finish time
//     cleared, Started now.
//   - a smaller attempt is an errs.Experiment error: the run has moved on.
//
// edit, if not nil, may change the run record (name, host, tags, ...)
// before run.json is written; ID and Attempt are restored afterwards. As
// with Resume, the summary keeps rolling up every attempt's stored records
// and the dropped count of run_summary.json.
func Reopen(ctx context.Context, store Store, runID string, attempt int, opts LogOptions, edit func(*Run)) (*Recorder, error) {
	const op = "experiment.Reopen"
	rd := NewReader(store)
	run, err := rd.GetRun(ctx, runID)
	if err != nil {
		return nil, err
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
	var dropped uint64
	if s, err := rd.GetSummary(ctx, runID); err == nil {
		dropped = s.Dropped
	} else if !IsNotFound(err) {
		return nil, err
	}
	return start(ctx, store, run, arts, dropped, opts)
}

// LogMetrics queues metrics as they were produced elsewhere: each keeps
// its step, name, value, time and attempt (a zero attempt becomes the
// recorder's, a zero time now); Run is set to the recorder's run. Like
// [MetricsLogger.Log] it blocks while the queue is full; the metrics reach
// the store on the next flush (see [MetricsLogger.Flush]).
func (r *Recorder) LogMetrics(ms []Metric) error {
	for _, m := range ms {
		m.Run = r.run.ID
		if m.Attempt == 0 {
			m.Attempt = r.run.Attempt
		}
		if m.Time.IsZero() {
			m.Time = time.Now()
		}
		if err := r.metrics.w.log(m); err != nil {
			return err
		}
	}
	return nil
}

// Flush writes every queued metric and telemetry event and returns the
// first I/O error either log has met. Unlike [Recorder.WriteSummary] it
// writes no summary.
func (r *Recorder) Flush() error {
	return firstErr(r.metrics.Flush(), r.telemetry.Flush())
}

// Artifacts returns a copy of the run's artifact list.
func (r *Recorder) Artifacts() []Artifact {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Artifact(nil), r.artifacts...)
}

// AddDropped counts n records as lost although they never passed through
// this recorder, e.g. values a remote producer reported publishing that
// never arrived. The summary's dropped count includes them (and complete
// is then false).
func (r *Recorder) AddDropped(n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prevDrops += n
}
