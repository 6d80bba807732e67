package experiment

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"time"

	"github.com/gorch/gorch/pkg/errs"
)

// Ingest writes the records of runs trained elsewhere — by cluster
// workers, whose batches the cluster collector receives — as the same
// run.json, metric and telemetry segments, artifacts.json and
// run_summary.json that `gorch train` writes. It is told facts by their
// producer (an attempt started from step S, this batch of values, the
// attempt ended with this status after publishing N values) and keeps the
// records right whatever order they arrive in and however often:
//
//   - Batches are identified by (run, attempt, kind, seq) and applied once.
//     A producer never sends the same values under another seq. Values
//     already stored when a run is opened from the store (after a restart
//     or a failed write) are also matched one by one: (attempt, step,
//     name) for metrics, (name, start, duration) for telemetry.
//   - An attempt's "end" is applied when it arrives; values it reported
//     publishing that are not stored count as dropped (Summary.Missing)
//     until they arrive, which reopens the finished attempt from the
//     store, stores them and rewrites its final summary with the status,
//     error and times unchanged.
//   - Records of an older attempt that arrive while a newer one is open
//     keep their attempt number; readers and the summary decide which
//     values are in force from the attempts' resume steps ([Attempt]).
//
// What an Ingest has applied to a run reaches the store on [Ingest.Flush];
// until then nothing is promised. After a failed call or Flush, call
// [Ingest.Forget]: the next call for the run reopens it from what the
// store really holds. An Ingest is not safe for concurrent use: a writer
// that wants parallelism uses one Ingest per goroutine and sends each run
// to the same one.
type Ingest struct {
	store    Store
	rd       *Reader
	log      *slog.Logger
	runs     map[string]*ingestRun // open runs
	finished map[string]int        // run -> attempt whose end was applied, nothing missing
}

// AttemptStart says that an attempt began training elsewhere.
type AttemptStart struct {
	Attempt int
	Resume  int64     // the step of the checkpoint it resumed from; 0: from scratch
	Started time.Time // on the producer's clock
	Name    string
	Config  json.RawMessage // the run spec (kept as a JSON string if it is not JSON)
	Seed    uint64
	Host    string
	Worker  string // kept in the run's "worker" tag
	Version string // the producer's gorch version
}

// AttemptEnd says how an attempt that trained elsewhere ended.
type AttemptEnd struct {
	Attempt  int
	Status   Status // terminal
	Error    string
	Started  time.Time // on the producer's clock; zero: as recorded
	Finished time.Time // on the producer's clock; zero: now
	// Published is the number of metric values the producer published for
	// the attempt; those the store lacks count as dropped.
	Published int64
	Layout    map[string]OpStats
	Version   string
}

// maxFinished bounds the finished runs an Ingest remembers before it
// looks them up in the store again.
const maxFinished = 10000

// ingestOpts makes every segment write happen in Flush: the caller must
// know which records are stored.
var ingestOpts = LogOptions{Manual: true}

// NewIngest returns an Ingest writing to store; log receives a line per
// opened and finished attempt (nil: slog.Default()).
func NewIngest(store Store, log *slog.Logger) *Ingest {
	if log == nil {
		log = slog.Default()
	}
	return &Ingest{store: store, rd: NewReader(store), log: log, runs: map[string]*ingestRun{}, finished: map[string]int{}}
}

type batchKey struct {
	kind    byte // 'm' metrics, 't' telemetry
	attempt int
	seq     int64
}

type pointKey struct {
	step int64
	name string
}

type spanKey struct {
	name  string
	start int64 // Unix ns
	dur   time.Duration
}

// ingestRun is an open attempt of a run.
type ingestRun struct {
	id      string
	attempt int
	rec     *Recorder
	batches map[batchKey]struct{} // batches applied by this Ingest
	// Values stored when the run was opened, matched one by one: metric
	// values by attempt (of the attempts that had any), spans if the run
	// had any.
	points map[int]map[pointKey]struct{}
	spans  map[spanKey]struct{}
	// started: the attempt's start was applied (not just its records).
	started bool
	dirty   bool // records since the last summary
	// final: the attempt had ended when it was reopened (for records that
	// arrived late); Flush rewrites its final summary and forgets it.
	final bool
}

// openMode says why a run is being opened.
type openMode uint8

const (
	forData  openMode = iota // records: an older attempt's go to the current one
	forStart                 // a start: the attempt must not be older than the recorded one
	forEnd                   // an end: likewise
)

// Start applies an attempt's start: the first one creates the run, a later
// one starts that attempt (the previous one's producer died or handed it
// back). A repeated or stale start changes nothing, except that it fills
// in an attempt opened by its records before its start arrived.
func (in *Ingest) Start(ctx context.Context, runID string, s AttemptStart) error {
	if st := in.runs[runID]; st != nil && st.attempt >= s.Attempt {
		if st.attempt > s.Attempt || st.started {
			return nil // a duplicate, or a stale attempt
		}
		st.started = true // opened by its records, which arrived first
		return st.rec.editRun(ctx, func(r *Run) { applyStart(r, &s) })
	}
	st, err := in.target(ctx, runID, s.Attempt, forStart, func(r *Run) { applyStart(r, &s) })
	if st != nil {
		st.started = true
	}
	return err
}

// applyStart copies an attempt's start into a run record.
func applyStart(r *Run, s *AttemptStart) {
	if s.Name != "" {
		r.Name = s.Name
	}
	if len(s.Config) > 0 {
		if json.Valid(s.Config) {
			r.Config = s.Config
		} else {
			r.Config, _ = json.Marshal(string(s.Config)) // a spec that is not JSON is kept as a string
		}
	}
	r.Seed = s.Seed
	if s.Host != "" {
		r.Host = s.Host
	}
	if s.Version != "" {
		r.GorchVersion = s.Version
	}
	if s.Worker != "" {
		r.Tags = maps.Clone(r.Tags)
		if r.Tags == nil {
			r.Tags = map[string]string{}
		}
		r.Tags["worker"] = s.Worker
	}
	if !s.Started.IsZero() && r.Attempt == s.Attempt {
		r.Started = s.Started.UTC()
	}
	e := r.attemptEntry(s.Attempt)
	e.ResumeStep = s.Resume
	if !s.Started.IsZero() {
		e.Started = s.Started.UTC()
	}
}

// Metrics applies batch seq of an attempt's metric values (their Step,
// Name, Value and Time; Attempt is set here, Run is not used). resume is the
// attempt's resume step, which its batches carry in case they arrive
// before its start.
func (in *Ingest) Metrics(ctx context.Context, runID string, attempt int, seq, resume int64, ms []Metric) error {
	st, err := in.target(ctx, runID, attempt, forData, func(r *Run) {
		if r.Attempt == attempt {
			r.attemptEntry(attempt).ResumeStep = resume
		}
	})
	if err != nil || st == nil {
		return err
	}
	bk := batchKey{'m', attempt, seq}
	if _, dup := st.batches[bk]; dup {
		return nil
	}
	if !st.rec.knowsAttempt(attempt) {
		if err := st.rec.editRun(ctx, func(r *Run) { r.attemptEntry(attempt).ResumeStep = resume }); err != nil {
			return err
		}
	}
	for i := range ms {
		ms[i].Attempt = attempt // segment lines leave out the run
	}
	keep := unstored(ms, st.points[attempt], func(m Metric) pointKey { return pointKey{m.Step, m.Name} })
	st.batches[bk] = struct{}{}
	if len(keep) == 0 {
		return nil
	}
	st.dirty = true
	return st.rec.metrics.w.logAll(keep)
}

// Telemetry applies batch seq of an attempt's telemetry events.
func (in *Ingest) Telemetry(ctx context.Context, runID string, attempt int, seq int64, es []TelemetryEvent) error {
	st, err := in.target(ctx, runID, attempt, forData, nil)
	if err != nil || st == nil {
		return err
	}
	bk := batchKey{'t', attempt, seq}
	if _, dup := st.batches[bk]; dup {
		return nil
	}
	keep := unstored(es, st.spans, func(e TelemetryEvent) spanKey { return spanKey{e.Name, e.Start.UnixNano(), e.Duration} })
	st.batches[bk] = struct{}{}
	if len(keep) == 0 {
		return nil
	}
	st.dirty = true
	return st.rec.telemetry.w.logAll(keep)
}

// unstored returns the items whose key is not in stored (the values found
// in the store when the run was opened): items itself when stored is nil,
// else a new slice.
func unstored[T any, K comparable](items []T, stored map[K]struct{}, key func(T) K) []T {
	if stored == nil {
		return items
	}
	keep := items[:0:0]
	for _, it := range items {
		if _, dup := stored[key(it)]; !dup {
			keep = append(keep, it)
		}
	}
	return keep
}

// Checkpoint adds a checkpoint of an attempt to the run's artifacts,
// unless an identical entry is there.
func (in *Ingest) Checkpoint(ctx context.Context, runID string, attempt int, a Artifact) error {
	st, err := in.target(ctx, runID, attempt, forData, nil)
	if err != nil || st == nil {
		return err
	}
	for _, x := range st.rec.Artifacts() {
		if x.Name == a.Name && x.Key == a.Key && x.Size == a.Size && x.Step == a.Step && x.Checksum == a.Checksum {
			return nil
		}
	}
	st.dirty = true
	return st.rec.AddArtifact(ctx, a)
}

// End applies an attempt's end: it stores what is pending, and writes
// run.json and the final summary with the producer's status, error and
// times. A repeated or stale end changes nothing.
func (in *Ingest) End(ctx context.Context, runID string, e AttemptEnd) error {
	const op = "experiment.Ingest.End"
	if !e.Status.Terminal() {
		return errs.New(errs.Argument, op, "status %q is not terminal", e.Status)
	}
	st, err := in.target(ctx, runID, e.Attempt, forEnd, nil)
	if err != nil || st == nil {
		return err
	}
	if err := st.rec.flushCtx(ctx); err != nil {
		return err
	}
	st.rec.setPublished(e.Attempt, e.Published)
	if st.final {
		return nil // a repeated end of a reopened attempt: Flush rewrites the summary
	}
	if n := st.rec.rollup.Stored(e.Attempt); e.Published > n {
		in.log.Warn("fewer metric values stored than the producer published; summary incomplete until they arrive",
			"run", runID, "attempt", e.Attempt, "published", e.Published, "stored", n)
	}
	if len(e.Layout) > 0 {
		st.rec.SetLayout(e.Layout)
	}
	delete(in.runs, runID) // after the end the logs are closed, whatever happens
	if err := st.rec.endRemote(ctx, &e); err != nil {
		return err
	}
	in.markEnded(runID, st)
	in.log.Info("run attempt finished", "run", runID, "attempt", e.Attempt, "status", e.Status)
	return nil
}

// Flush stores everything applied to the run since the last Flush. A
// finished attempt reopened for late records gets its final summary
// rewritten and is closed again.
func (in *Ingest) Flush(ctx context.Context, runID string) error {
	st := in.runs[runID]
	if st == nil {
		return nil
	}
	if err := st.rec.flushCtx(ctx); err != nil {
		return err
	}
	if !st.final {
		return nil
	}
	delete(in.runs, runID)
	if err := st.rec.refinish(ctx); err != nil {
		return err
	}
	in.markEnded(runID, st)
	in.log.Info("finished run attempt updated with late records", "run", runID, "attempt", st.attempt,
		"still_missing", st.rec.missingNow())
	return nil
}

// Forget drops what the Ingest holds of a run (after a failed call or
// Flush); the next call for it reopens it from the store.
func (in *Ingest) Forget(runID string) {
	if st := in.runs[runID]; st != nil {
		_ = st.close() // its error is the one being handled
		delete(in.runs, runID)
	}
}

// WriteSummaries rewrites run_summary.json of every open run with new
// records since its last one. A run whose run.json says its attempt ended
// while its summary does not yet (an end that failed half-way and comes
// again) is skipped: only that end writes its final summary. It returns
// the runs whose summary could not be written, with the errors.
func (in *Ingest) WriteSummaries(ctx context.Context) map[string]error {
	var failed map[string]error
	for id, st := range in.runs {
		if !st.dirty || st.rec.Run().Status.Terminal() {
			continue
		}
		if err := st.rec.WriteSummary(ctx); err != nil {
			if failed == nil {
				failed = map[string]error{}
			}
			failed[id] = err
			continue
		}
		st.dirty = false
	}
	return failed
}

// Close writes the summaries of the open runs and closes their logs
// without ending their attempts: a later Ingest reopens them. It returns
// the first error.
func (in *Ingest) Close(ctx context.Context) error {
	var first error
	for _, err := range in.WriteSummaries(ctx) {
		first = cmpErr(first, err)
	}
	for id, st := range in.runs {
		first = cmpErr(first, st.close())
		delete(in.runs, id)
	}
	return first
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// markEnded remembers that a run's attempt ended with nothing missing, so
// its redeliveries are ignored without reading the store.
func (in *Ingest) markEnded(id string, st *ingestRun) {
	if st.rec.missingNow() > 0 {
		delete(in.finished, id) // late records go through the store (open)
		return
	}
	if len(in.finished) >= maxFinished {
		clear(in.finished) // forgotten runs are looked up in the store
	}
	in.finished[id] = st.attempt
}

// close flushes and closes the run's logs without ending the attempt.
func (st *ingestRun) close() error {
	return firstErr(st.rec.metrics.Close(), st.rec.telemetry.Close())
}

// target returns the open state that records of attempt of run id go to,
// opening the run if needed, or nil if they are to be ignored (the attempt
// ended with nothing missing, or an event is stale). edit, if not nil,
// changes the run record when the run is opened.
func (in *Ingest) target(ctx context.Context, id string, attempt int, mode openMode, edit func(*Run)) (*ingestRun, error) {
	if a, ok := in.finished[id]; ok && attempt <= a {
		return nil, nil
	}
	if st := in.runs[id]; st != nil {
		switch {
		case attempt == st.attempt:
			return st, nil
		case attempt < st.attempt:
			if mode != forData {
				return nil, nil
			}
			return st, nil // a superseded attempt's late records keep their attempt number
		}
		// A newer attempt started without the open one ending (its producer died).
		delete(in.runs, id)
		if err := st.close(); err != nil {
			return nil, err
		}
	}
	return in.open(ctx, id, attempt, mode, edit)
}

// open opens attempt of run id from the store: it creates the run, starts
// a new attempt, or reopens the current one (after a restart).
func (in *Ingest) open(ctx context.Context, id string, attempt int, mode openMode, edit func(*Run)) (*ingestRun, error) {
	run, err := in.rd.GetRun(ctx, id)
	var (
		rec   *Recorder
		final bool
		spans map[spanKey]struct{}
	)
	onEvents := func(es []TelemetryEvent) {
		if spans == nil {
			spans = map[spanKey]struct{}{}
		}
		for _, e := range es {
			spans[spanKey{e.Name, e.Start.UnixNano(), e.Duration}] = struct{}{}
		}
	}
	switch {
	case IsNotFound(err):
		r := Run{ID: id, Attempt: attempt}
		if edit != nil {
			edit(&r)
			r.Created = r.Started
		}
		rec, err = Create(ctx, in.store, r, ingestOpts)
	case err != nil:
		return nil, err
	default:
		if attempt < run.Attempt {
			if mode != forData {
				return nil, nil // a stale event
			}
			attempt = run.Attempt
		}
		var sum Summary
		sum, err = in.rd.GetSummary(ctx, id)
		if err != nil && !IsNotFound(err) {
			return nil, err
		}
		summaryFinal := err == nil && sum.Run.Attempt == run.Attempt && sum.Status == run.Status
		if attempt == run.Attempt && run.Status.Terminal() {
			switch {
			case !summaryFinal && mode != forStart:
				// run.json says ended but run_summary.json does not: the end
				// was not flushed and comes again; store records meanwhile.
			case summaryFinal && mode == forData && sum.Missing > 0:
				// Records of an ended attempt that lacks some: reopen it to
				// add them, then rewrite its final summary.
				final = true
			default:
				if summaryFinal && sum.Missing == 0 {
					in.finished[id] = attempt
				}
				return nil, nil
			}
		}
		rec, err = openAttempt(ctx, in.store, id, attempt, ingestOpts, edit, onEvents)
		if err == nil && final && len(sum.Layout) > 0 {
			rec.SetLayout(sum.Layout) // run.json does not keep the layout counters
		}
	}
	if err != nil {
		return nil, err
	}
	st := &ingestRun{id: id, attempt: attempt, rec: rec, final: final, batches: map[batchKey]struct{}{}, spans: spans}
	stored := 0
	rec.rollup.eachPoint(func(name string, attempt int, step int64) {
		if st.points == nil {
			st.points = map[int]map[pointKey]struct{}{}
		}
		if st.points[attempt] == nil {
			st.points[attempt] = map[pointKey]struct{}{}
		}
		st.points[attempt][pointKey{step, name}] = struct{}{}
		stored++
	})
	in.runs[id] = st
	in.log.Info("run opened", "run", id, "attempt", attempt, "stored_metrics", stored, "finished", final)
	return st, nil
}

// The Recorder's side of an Ingest.

// knowsAttempt reports whether the run record has an entry for attempt.
func (r *Recorder) knowsAttempt(attempt int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.run.Attempts {
		if a.Attempt == attempt {
			return true
		}
	}
	return false
}

// editRun changes the run record (not its ID or attempt) and writes
// run.json.
func (r *Recorder) editRun(ctx context.Context, edit func(*Run)) error {
	r.mu.Lock()
	id, a := r.run.ID, r.run.Attempt
	edit(&r.run)
	r.run.ID, r.run.Attempt = id, a
	run := r.run
	r.mu.Unlock()
	r.rollup.SetAttempts(run.Attempts)
	return r.putJSON(ctx, runKey(run.ID), run)
}

// setPublished records how many metric values attempt's producer
// published; the summary counts those not stored as dropped.
func (r *Recorder) setPublished(attempt int, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.run.attemptEntry(attempt).Published = n
}

// missingNow returns Summary.Missing as of now.
func (r *Recorder) missingNow() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.missing()
}

// endRemote ends the attempt with the producer's outcome and times.
func (r *Recorder) endRemote(ctx context.Context, e *AttemptEnd) error {
	return r.finish(ctx, func(run *Run) {
		run.Status, run.Error = e.Status, e.Error
		if !e.Started.IsZero() {
			run.Started = e.Started.UTC()
		}
		run.Finished = e.Finished.UTC()
		if e.Finished.IsZero() {
			run.Finished = time.Now().UTC()
		}
		if e.Version != "" {
			run.GorchVersion = e.Version
		}
	})
}

// refinish ends an attempt reopened after it had ended (for records that
// arrived late): it writes run.json and the final summary again with the
// attempt's status, error and times unchanged.
func (r *Recorder) refinish(ctx context.Context) error {
	const op = "experiment.Recorder.refinish"
	if st := r.Run().Status; !st.Terminal() {
		return errs.New(errs.Argument, op, "run %s has status %q; refinish needs an ended attempt", r.run.ID, st)
	}
	return r.finish(ctx, func(*Run) {})
}
