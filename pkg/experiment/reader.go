package experiment

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"iter"
	"slices"
	"strings"

	"github.com/gorch/gorch/pkg/errs"
)

// Reader reads run records from a [Store]. It never writes.
type Reader struct {
	store Store
}

// NewReader returns a reader over store.
func NewReader(store Store) *Reader { return &Reader{store: store} }

func (rd *Reader) getJSON(ctx context.Context, op, key string, v any) error {
	b, err := rd.store.Get(ctx, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errs.Wrap(errs.Experiment, op, err, "corrupt %s", key)
	}
	return nil
}

// GetRun reads run.json.
func (rd *Reader) GetRun(ctx context.Context, runID string) (Run, error) {
	const op = "experiment.Reader.GetRun"
	var r Run
	if err := checkRunID(op, runID); err != nil {
		return r, err
	}
	err := rd.getJSON(ctx, op, runKey(runID), &r)
	return r, err
}

// GetSummary reads run_summary.json.
func (rd *Reader) GetSummary(ctx context.Context, runID string) (Summary, error) {
	const op = "experiment.Reader.GetSummary"
	var s Summary
	if err := checkRunID(op, runID); err != nil {
		return s, err
	}
	err := rd.getJSON(ctx, op, summaryKey(runID), &s)
	return s, err
}

// Artifacts reads artifacts.json; a run without one has no artifacts.
func (rd *Reader) Artifacts(ctx context.Context, runID string) ([]Artifact, error) {
	const op = "experiment.Reader.Artifacts"
	if err := checkRunID(op, runID); err != nil {
		return nil, err
	}
	var a []Artifact
	if err := rd.getJSON(ctx, op, artifactsKey(runID), &a); err != nil && !IsNotFound(err) {
		return nil, err
	}
	return a, nil
}

// ListRuns returns the summary of every run, oldest first. It reads one
// object per run: run_summary.json, or run.json for a run that has not
// written a summary yet (its summary then has only Run and Status, and
// complete=false). It never reads metric or telemetry segments.
func (rd *Reader) ListRuns(ctx context.Context) ([]Summary, error) {
	dirs, err := rd.store.ListDir(ctx, "runs/")
	if err != nil {
		return nil, err
	}
	out := make([]Summary, 0, len(dirs))
	for _, d := range dirs {
		id, ok := strings.CutSuffix(strings.TrimPrefix(d, "runs/"), "/")
		if !ok || !ValidRunID(id) {
			continue
		}
		s, err := rd.GetSummary(ctx, id)
		if IsNotFound(err) {
			var r Run
			if r, err = rd.GetRun(ctx, id); err == nil {
				s = Summary{Run: r, Status: r.Status}
			}
		}
		if IsNotFound(err) {
			continue // a directory without records, e.g. a run being created
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// ReadMetrics yields the run's metric values in force: one value per
// (step, name). Values that a later attempt superseded (see [Attempt]) are
// left out; [Reader.ReadStoredMetrics] yields them too. The values of a
// run with one attempt stream in store order; a resumed run is read whole
// and its values come in step order (in store order within a step). A run
// with no metrics yields nothing; iteration stops after the first error.
func (rd *Reader) ReadMetrics(ctx context.Context, runID string) iter.Seq2[Metric, error] {
	return func(yield func(Metric, error) bool) {
		run, err := rd.GetRun(ctx, runID)
		if err != nil && !IsNotFound(err) { // segments without run.json read as stored
			yield(Metric{}, err)
			return
		}
		sp := newSupersession(run.Attempts)
		if !sp.active() {
			for m, err := range rd.ReadStoredMetrics(ctx, runID) {
				if !yield(m, err) || err != nil {
					return
				}
			}
			return
		}
		type key struct {
			step int64
			name string
		}
		var ms []Metric
		at := map[key]int{} // at a resume step: the latest attempt's value per name
		for m, err := range rd.ReadStoredMetrics(ctx, runID) {
			switch {
			case err != nil:
				yield(m, err)
				return
			case sp.superseded(m.Attempt, m.Step):
				continue
			case sp.bound(m.Step):
				k := key{m.Step, m.Name}
				if i, ok := at[k]; ok {
					if m.Attempt >= ms[i].Attempt {
						ms[i] = m
					}
					continue
				}
				at[k] = len(ms)
			}
			ms = append(ms, m)
		}
		slices.SortStableFunc(ms, func(a, b Metric) int { return cmp.Compare(a.Step, b.Step) })
		for _, m := range ms {
			if !yield(m, nil) {
				return
			}
		}
	}
}

// ReadStoredMetrics yields every metric value stored for the run,
// superseded ones included, in store order.
func (rd *Reader) ReadStoredMetrics(ctx context.Context, runID string) iter.Seq2[Metric, error] {
	return flatten(rd.metricBatches(ctx, runID))
}

// ReadTelemetry yields every telemetry event of the run, in order.
func (rd *Reader) ReadTelemetry(ctx context.Context, runID string) iter.Seq2[TelemetryEvent, error] {
	return flatten(rd.eventBatches(ctx, runID))
}

// metricBatches yields the run's metric segments, each line's run filled
// in from runID when the line leaves it out.
func (rd *Reader) metricBatches(ctx context.Context, runID string) iter.Seq2[[]Metric, error] {
	return func(yield func([]Metric, error) bool) {
		for batch, err := range readSegments[Metric](ctx, rd.store, "experiment.Reader.ReadMetrics", runID, metricsPrefix) {
			for i := range batch {
				if batch[i].Run == "" {
					batch[i].Run = runID
				}
			}
			if !yield(batch, err) || err != nil {
				return
			}
		}
	}
}

func (rd *Reader) eventBatches(ctx context.Context, runID string) iter.Seq2[[]TelemetryEvent, error] {
	return readSegments[TelemetryEvent](ctx, rd.store, "experiment.Reader.ReadTelemetry", runID, telemetryPrefix)
}

// readSegments yields the records of each segment under prefix(runID), in
// segment order.
func readSegments[T any](ctx context.Context, store Store, op, runID string, prefix func(string) string) iter.Seq2[[]T, error] {
	return func(yield func([]T, error) bool) {
		if err := checkRunID(op, runID); err != nil {
			yield(nil, err)
			return
		}
		p := prefix(runID)
		keys, err := store.List(ctx, p)
		if err != nil {
			yield(nil, err)
			return
		}
		for _, k := range keys {
			if _, ok := segmentSeq(p, k); !ok {
				continue
			}
			b, err := store.Get(ctx, k)
			if err != nil {
				yield(nil, err)
				return
			}
			var batch []T
			for line := range bytes.Lines(b) {
				line = bytes.TrimSpace(line)
				if len(line) == 0 {
					continue
				}
				var v T
				if err := json.Unmarshal(line, &v); err != nil {
					yield(nil, errs.Wrap(errs.Experiment, op, err, "corrupt line in %s", k))
					return
				}
				batch = append(batch, v)
			}
			if !yield(batch, nil) {
				return
			}
		}
	}
}

func flatten[T any](batches iter.Seq2[[]T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for batch, err := range batches {
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, v := range batch {
				if !yield(v, nil) {
					return
				}
			}
		}
	}
}
