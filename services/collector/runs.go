package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/experiment"
)

// Kinds of run events.
const (
	kindStarted  = "started"
	kindFinished = "finished"
)

// logOpts makes every segment write happen in an explicit Flush: the
// collector acks after Flush, so it must know which write failed.
var logOpts = experiment.LogOptions{FlushRecords: 1 << 20, FlushInterval: 24 * time.Hour}

type metricKey struct {
	attempt int
	step    int64
	name    string
}

type spanKey struct {
	name  string
	start int64 // Unix ns
	dur   time.Duration
}

type batchKey struct {
	kind    byte // 'm' metrics, 't' telemetry
	attempt int
	seq     int64
}

// gap is what the collector knows of a finished attempt with fewer
// metric values stored than its worker reported publishing.
type gap struct {
	published int64 // RunEvent.Metrics of the attempt's "finished" event
	counted   int64 // of them, counted in the summary's dropped count
}

// tagMissing is the run tag that persists the gaps in run_summary.json
// (and run.json), atomically with the dropped count they are part of:
// "attempt:published:counted" entries separated by commas.
const tagMissing = "gorch.collector.missing"

func formatGaps(gaps map[int]gap) string {
	var parts []string
	for _, a := range slices.Sorted(maps.Keys(gaps)) {
		if g := gaps[a]; g.counted > 0 {
			parts = append(parts, fmt.Sprintf("%d:%d:%d", a, g.published, g.counted))
		}
	}
	return strings.Join(parts, ",")
}

// parseGaps reads a tagMissing value; malformed entries are skipped.
func parseGaps(s string) map[int]gap {
	out := map[int]gap{}
	for part := range strings.SplitSeq(s, ",") {
		f := strings.Split(part, ":")
		if len(f) != 3 {
			continue
		}
		a, err1 := strconv.Atoi(f[0])
		p, err2 := strconv.ParseInt(f[1], 10, 64)
		c, err3 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || a < 1 || p < 0 || c <= 0 {
			continue
		}
		out[a] = gap{published: p, counted: c}
	}
	return out
}

// runState is an open attempt of a run.
type runState struct {
	id      string
	attempt int
	rec     *experiment.Recorder
	seen    map[metricKey]struct{} // every stored metric of every attempt
	counts  map[int]int64          // stored metrics per attempt
	spans   map[spanKey]struct{}   // every stored telemetry span
	batches map[batchKey]struct{}  // batches applied by this process
	gaps    map[int]gap            // finished attempts with values counted as dropped
	dirty   bool                   // records since the last summary
	// final: the attempt had finished when it was reopened (for records
	// that arrived late); applyGroup rewrites its final summary and
	// closes it again.
	final bool
}

// settle brings the dropped count and tagMissing in line with what is
// stored: each gap's dropped values are max(0, published - stored). It
// reports whether anything changed.
func (st *runState) settle() bool {
	changed := false
	for a, g := range st.gaps {
		want := max(0, g.published-st.counts[a])
		switch {
		case want > g.counted:
			st.rec.AddDropped(uint64(want - g.counted))
			changed = true
		case want < g.counted:
			st.rec.RemoveDropped(uint64(g.counted - want))
			changed = true
		}
		if want == 0 {
			delete(st.gaps, a)
		} else {
			st.gaps[a] = gap{published: g.published, counted: want}
		}
	}
	if changed {
		st.rec.SetTag(tagMissing, formatGaps(st.gaps))
		st.dirty = true
	}
	return changed
}

// close flushes and closes the run's logs without finishing the attempt.
func (st *runState) close() error {
	err1 := st.rec.Metrics().Close()
	err2 := st.rec.Telemetry().Close()
	return errors.Join(err1, err2)
}

// applyGroup applies one run's messages in order and flushes its logs.
func (c *Collector) applyGroup(ctx context.Context, id string, items []item) error {
	for _, it := range items {
		var err error
		switch v := it.v.(type) {
		case *cluster.RunEvent:
			if v.Kind == kindStarted {
				err = c.started(ctx, v)
			} else {
				err = c.finish(ctx, v)
			}
		case *cluster.MetricBatch:
			err = c.metrics(ctx, v)
		case *cluster.TelemetryBatch:
			err = c.telemetry(ctx, v)
		case *cluster.CheckpointEvent:
			err = c.checkpoint(ctx, v)
		}
		if err != nil {
			return err
		}
	}
	st := c.runs[id]
	if st == nil {
		return nil
	}
	if err := st.rec.Flush(); err != nil {
		return err
	}
	if len(st.gaps) > 0 {
		st.settle()
	}
	if !st.final {
		return nil
	}
	// Late records of a finished attempt are stored: rewrite its final
	// summary and forget the run again.
	delete(c.runs, id)
	if err := st.rec.Refinish(ctx); err != nil {
		return err
	}
	if len(st.gaps) == 0 {
		c.markFinished(id, st.attempt)
	}
	c.log.Info("finished run attempt updated with late records", "run", id, "attempt", st.attempt,
		"stored_metrics", len(st.seen), "still_missing", formatGaps(st.gaps))
	return nil
}

// openMode says why a run is being opened.
type openMode uint8

const (
	forData     openMode = iota // records: an older attempt's go to the current one
	forStarted                  // a "started" event: the attempt must match
	forFinished                 // a "finished" event: the attempt must match
)

// target returns the open state that records of attempt of run id go to,
// opening the run if needed, or nil if they are to be ignored (the attempt
// is finished, or a run event is stale).
func (c *Collector) target(ctx context.Context, id string, attempt int, mode openMode, ev *cluster.RunEvent) (*runState, error) {
	if a, ok := c.finished[id]; ok && attempt <= a {
		return nil, nil
	}
	if st := c.runs[id]; st != nil {
		switch {
		case attempt == st.attempt:
			return st, nil
		case attempt < st.attempt:
			if mode != forData {
				return nil, nil
			}
			return st, nil // a superseded attempt's late records keep their attempt number
		}
		// A newer attempt started without the open one finishing (its worker died).
		delete(c.runs, id)
		if err := st.close(); err != nil {
			return nil, err
		}
	}
	return c.open(ctx, id, attempt, mode, ev)
}

// open opens attempt of run id from the store: it creates the run, starts
// a new attempt, or reopens the current one (after a restart).
func (c *Collector) open(ctx context.Context, id string, attempt int, mode openMode, ev *cluster.RunEvent) (*runState, error) {
	var edit func(*experiment.Run)
	if ev != nil && ev.Kind == kindStarted {
		edit = func(r *experiment.Run) { fillRun(r, ev) }
	}
	run, err := c.rd.GetRun(ctx, id)
	var (
		rec   *experiment.Recorder
		sum   experiment.Summary
		final bool
	)
	switch {
	case experiment.IsNotFound(err):
		r := experiment.Run{ID: id, Attempt: attempt}
		if edit != nil {
			edit(&r)
			r.Created = ev.Time
		}
		rec, err = experiment.Create(ctx, c.store, r, logOpts)
	case err != nil:
		return nil, err
	default:
		if attempt < run.Attempt {
			if mode != forData {
				return nil, nil // a stale run event
			}
			attempt = run.Attempt
		}
		// The summary, not run.json, holds the gaps: it is written last,
		// in one piece with the dropped count that Reopen carries over.
		sum, err = c.rd.GetSummary(ctx, id)
		if err != nil && !experiment.IsNotFound(err) {
			return nil, err
		}
		summaryFinal := err == nil && sum.Run.Attempt == run.Attempt && sum.Status == run.Status
		if attempt == run.Attempt && run.Status.Terminal() {
			switch {
			case !summaryFinal && mode != forStarted:
				// run.json says finished but run_summary.json does not: the
				// "finished" event was not acked and comes again; store
				// records meanwhile.
			case summaryFinal && mode == forData && len(parseGaps(sum.Run.Tags[tagMissing])) > 0:
				// Records of a finished attempt that lacks some: reopen it
				// to add them, then rewrite its final summary.
				final = true
			default:
				if summaryFinal && len(parseGaps(sum.Run.Tags[tagMissing])) == 0 {
					c.markFinished(id, attempt)
				}
				return nil, nil
			}
		}
		rec, err = experiment.Reopen(ctx, c.store, id, attempt, logOpts, edit)
	}
	if err != nil {
		return nil, err
	}
	st := &runState{
		id: id, attempt: attempt, rec: rec, final: final,
		seen: map[metricKey]struct{}{}, counts: map[int]int64{}, spans: map[spanKey]struct{}{}, batches: map[batchKey]struct{}{},
		gaps: parseGaps(sum.Run.Tags[tagMissing]),
	}
	if final && len(sum.Layout) > 0 {
		rec.SetLayout(sum.Layout) // Reopen does not read the layout counters back
	}
	rec.SetTag(tagMissing, formatGaps(st.gaps))
	if err := c.rebuild(ctx, st); err != nil {
		_ = st.close()
		return nil, err
	}
	st.settle() // records stored after the summary was written
	c.runs[id] = st
	c.log.Info("run opened", "run", id, "attempt", attempt, "stored_metrics", len(st.seen), "finished", final)
	return st, nil
}

// rebuild fills the dedup sets from the run's stored segments.
func (c *Collector) rebuild(ctx context.Context, st *runState) error {
	for m, err := range c.rd.ReadMetrics(ctx, st.id) {
		if err != nil {
			return err
		}
		k := metricKey{m.Attempt, m.Step, m.Name}
		if _, dup := st.seen[k]; !dup {
			st.seen[k] = struct{}{}
			st.counts[m.Attempt]++
		}
	}
	for e, err := range c.rd.ReadTelemetry(ctx, st.id) {
		if err != nil {
			return err
		}
		st.spans[spanKey{e.Name, e.Start.UnixNano(), e.Duration}] = struct{}{}
	}
	return nil
}

// fillRun copies a "started" event into a run record.
func fillRun(r *experiment.Run, ev *cluster.RunEvent) {
	if ev.Name != "" {
		r.Name = ev.Name
	}
	if len(ev.Spec) > 0 {
		if json.Valid(ev.Spec) {
			r.Config = json.RawMessage(ev.Spec)
		} else {
			r.Config, _ = json.Marshal(string(ev.Spec)) // a spec that is not JSON is kept as a string
		}
	}
	r.Seed = ev.Seed
	if ev.Host != "" {
		r.Host = ev.Host
	}
	if ev.Worker != "" {
		r.Tags = maps.Clone(r.Tags)
		if r.Tags == nil {
			r.Tags = map[string]string{}
		}
		r.Tags["worker"] = ev.Worker
	}
}

func (c *Collector) started(ctx context.Context, ev *cluster.RunEvent) error {
	if st := c.runs[ev.RunID]; st != nil && st.attempt >= ev.Attempt {
		return nil // a duplicate, or a stale attempt
	}
	_, err := c.target(ctx, ev.RunID, ev.Attempt, forStarted, ev)
	return err
}

func (c *Collector) finish(ctx context.Context, ev *cluster.RunEvent) error {
	st, err := c.target(ctx, ev.RunID, ev.Attempt, forFinished, nil)
	if err != nil || st == nil {
		return err
	}
	if err := st.rec.Flush(); err != nil {
		return err
	}
	// The shortfall is counted as dropped, and taken back when the
	// missing values arrive later (see settle).
	st.gaps[ev.Attempt] = gap{published: ev.Metrics, counted: st.gaps[ev.Attempt].counted}
	st.settle()
	if st.final {
		return nil // a repeated "finished" of a reopened attempt: applyGroup rewrites the summary
	}
	if n := st.counts[ev.Attempt]; ev.Metrics > n {
		c.log.Warn("fewer metric values stored than the worker published; summary incomplete until they arrive",
			"run", ev.RunID, "attempt", ev.Attempt, "published", ev.Metrics, "stored", n)
	}
	if len(ev.Layout) > 0 {
		var layout map[string]experiment.OpStats
		if err := json.Unmarshal(ev.Layout, &layout); err != nil {
			c.log.Warn("ignoring undecodable layout counters", "run", ev.RunID, "err", err)
		} else {
			st.rec.SetLayout(layout)
		}
	}
	var runErr error
	if ev.Error != "" {
		runErr = errors.New(ev.Error)
	}
	delete(c.runs, ev.RunID) // after Finish the logs are closed, whatever happens
	if err := st.rec.Finish(ctx, experiment.Status(ev.Status), runErr); err != nil {
		return err
	}
	if len(st.gaps) == 0 {
		c.markFinished(ev.RunID, ev.Attempt)
	} else {
		delete(c.finished, ev.RunID) // late records go through the store (open)
	}
	c.log.Info("run attempt finished", "run", ev.RunID, "attempt", ev.Attempt, "status", ev.Status)
	return nil
}

func (c *Collector) metrics(ctx context.Context, b *cluster.MetricBatch) error {
	st, err := c.target(ctx, b.RunID, b.Attempt, forData, nil)
	if err != nil || st == nil {
		return err
	}
	bk := batchKey{'m', b.Attempt, b.Seq}
	if _, dup := st.batches[bk]; dup {
		return nil
	}
	ms := make([]experiment.Metric, 0, len(b.Points))
	for _, p := range b.Points {
		k := metricKey{b.Attempt, p.Step, p.Name}
		if _, dup := st.seen[k]; dup {
			continue
		}
		st.seen[k] = struct{}{}
		st.counts[b.Attempt]++
		ms = append(ms, experiment.Metric{Attempt: b.Attempt, Step: p.Step, Name: p.Name, Value: p.Value, Time: p.Time})
	}
	st.batches[bk] = struct{}{}
	if len(ms) == 0 {
		return nil
	}
	st.dirty = true
	return st.rec.LogMetrics(ms)
}

func (c *Collector) telemetry(ctx context.Context, b *cluster.TelemetryBatch) error {
	st, err := c.target(ctx, b.RunID, b.Attempt, forData, nil)
	if err != nil || st == nil {
		return err
	}
	bk := batchKey{'t', b.Attempt, b.Seq}
	if _, dup := st.batches[bk]; dup {
		return nil
	}
	for _, e := range b.Events {
		k := spanKey{e.Name, e.Start.UnixNano(), e.Duration}
		if _, dup := st.spans[k]; dup {
			continue
		}
		st.spans[k] = struct{}{}
		st.dirty = true
		if err := st.rec.Telemetry().Record(experiment.TelemetryEvent{Name: e.Name, Start: e.Start.UTC(), Duration: e.Duration, Tags: e.Tags}); err != nil {
			return err
		}
	}
	st.batches[bk] = struct{}{}
	return nil
}

func (c *Collector) checkpoint(ctx context.Context, e *cluster.CheckpointEvent) error {
	st, err := c.target(ctx, e.RunID, e.Attempt, forData, nil)
	if err != nil || st == nil {
		return err
	}
	a := experiment.Artifact{
		Name: "checkpoints/" + path.Base(e.Key), Kind: experiment.ArtifactCheckpoint,
		Key: e.Key, Size: e.Size, Checksum: e.SHA256, Step: e.Step, Time: e.Time.UTC(),
	}
	for _, x := range st.rec.Artifacts() {
		if x.Name == a.Name && x.Key == a.Key && x.Size == a.Size && x.Step == a.Step && x.Checksum == a.Checksum {
			return nil
		}
	}
	st.dirty = true
	return st.rec.AddArtifact(ctx, a)
}
