package experiment

import (
	"context"
	"maps"
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

// RemoveDropped takes back n records counted as lost with [Recorder.AddDropped]
// (or carried over from an earlier summary by [Reopen] or [Resume]) that
// have since been stored after all. The count never goes below zero.
func (r *Recorder) RemoveDropped(n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prevDrops -= min(n, r.prevDrops)
}

// SetTag sets tag key of the run record to value, or deletes it if value
// is empty. The change reaches run.json and run_summary.json with the next
// summary or Finish.
func (r *Recorder) SetTag(key, value string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if value == "" {
		if _, ok := r.run.Tags[key]; !ok {
			return
		}
		r.run.Tags = maps.Clone(r.run.Tags)
		delete(r.run.Tags, key)
		if len(r.run.Tags) == 0 {
			r.run.Tags = nil
		}
		return
	}
	r.run.Tags = maps.Clone(r.run.Tags)
	if r.run.Tags == nil {
		r.run.Tags = map[string]string{}
	}
	r.run.Tags[key] = value
}

// Refinish ends a recorder opened with [Reopen] on an attempt that had
// already finished (its recorded status is terminal), e.g. to add records
// that arrived late: it closes the logs and writes run.json and the final
// run_summary.json again with the attempt's status, error and finish time
// unchanged. As with [Recorder.Finish], the summary is written even when
// closing the logs failed, and then says complete=false. Refinish returns
// the first error; later calls (and calls after Finish) do nothing.
func (r *Recorder) Refinish(ctx context.Context) error {
	const op = "experiment.Recorder.Refinish"
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return nil
	}
	if !r.run.Status.Terminal() {
		st := r.run.Status
		r.mu.Unlock()
		return errs.New(errs.Argument, op, "run %s attempt %d has status %q; Refinish needs a finished attempt", r.run.ID, r.run.Attempt, st)
	}
	r.mu.Unlock()
	err1 := r.metrics.Close()
	err2 := r.telemetry.Close()
	r.mu.Lock()
	r.finished = true
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
