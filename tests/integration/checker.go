package integration

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/experiment"
)

// Submitted is a run the test submitted: what was attempted.
type Submitted struct {
	ID        string
	Steps     int64 // optimizer steps the spec asks for
	CkptEvery int64 // checkpoint_every of the spec
}

// Observed is everything the checker compares, gathered after the runs
// ended (see [Gather]).
type Observed struct {
	// States holds every revision of each run's key in the runs bucket,
	// oldest first, as a watcher saw them while the test ran.
	States map[string][]cluster.RunState
	// Final is each run's state in the bucket at check time.
	Final map[string]cluster.RunState
	// CkptEvents are the checkpoint events the EVENTS stream acknowledged.
	CkptEvents []cluster.CheckpointEvent
	// Metrics are the metric records of every run in the store,
	// superseded ones included (ReadStoredMetrics).
	Metrics []experiment.Metric
	// Summaries are the run_summary.json objects in the store, by run.
	Summaries map[string]experiment.Summary
	// StoredKeys are the keys of every object under runs/ in the store.
	StoredKeys map[string]bool
}

// Report is the checker's verdict. The lists name each violation; the
// counts say how much was compared.
type Report struct {
	Runs           int   // runs submitted
	StepsAttempted int64 // sum of the specs' steps
	Terminal       int   // runs with exactly one terminal state
	Succeeded      int
	Failed         int
	Cancelled      int
	Records        int // metric records read from the store
	Resumed        int // records superseded by a later attempt's record of the same (run, step, name)
	Unique         int // records after dedup
	CkptAcked      int // checkpoint events in the stream
	CkptStored     int // newest acknowledged checkpoint per run found in the store

	Lost        []string // a step of a succeeded run without train/loss
	Duplicated  []string // one (run, attempt, step, name) recorded twice
	Unexpected  []string // records or states of runs never submitted, or steps out of range
	BadTerminal []string // not exactly one terminal state, or a summary that disagrees
	MissingCkpt []string // an acknowledged checkpoint (the newest of a run) not in the store
	Incomplete  []string // a succeeded run whose summary is not complete
}

// OK reports whether nothing was lost, duplicated, unexpected or
// wrongly terminated.
func (r *Report) OK() bool {
	return len(r.Lost)+len(r.Duplicated)+len(r.Unexpected)+len(r.BadTerminal)+len(r.MissingCkpt)+len(r.Incomplete) == 0
}

// String prints the counts and the first few violations of each kind.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "runs %d (succeeded %d, failed %d, cancelled %d, one terminal state %d), steps attempted %d\n",
		r.Runs, r.Succeeded, r.Failed, r.Cancelled, r.Terminal, r.StepsAttempted)
	fmt.Fprintf(&b, "records %d, superseded by a resumed attempt %d, unique after dedup %d; checkpoints acked %d, newest per run stored %d\n",
		r.Records, r.Resumed, r.Unique, r.CkptAcked, r.CkptStored)
	fmt.Fprintf(&b, "lost %d, duplicated %d, unexpected %d, bad terminal %d, missing checkpoints %d, incomplete summaries %d",
		len(r.Lost), len(r.Duplicated), len(r.Unexpected), len(r.BadTerminal), len(r.MissingCkpt), len(r.Incomplete))
	for _, l := range []struct {
		name string
		v    []string
	}{{"lost", r.Lost}, {"duplicated", r.Duplicated}, {"unexpected", r.Unexpected}, {"bad terminal", r.BadTerminal},
		{"missing checkpoint", r.MissingCkpt}, {"incomplete", r.Incomplete}} {
		for i, s := range l.v {
			if i == 10 {
				fmt.Fprintf(&b, "\n  %s: ... %d more", l.name, len(l.v)-i)
				break
			}
			fmt.Fprintf(&b, "\n  %s: %s", l.name, s)
		}
	}
	return b.String()
}

// metricKey names one value of a run, across attempts.
type metricKey struct {
	run  string
	step int64
	name string
}

// Check compares what was submitted with what the cluster acknowledged
// and what the store recorded. It is a pure function of its inputs.
func Check(subs []Submitted, obs *Observed) *Report {
	r := &Report{Runs: len(subs), Records: len(obs.Metrics), CkptAcked: len(obs.CkptEvents)}
	byID := map[string]Submitted{}
	for _, s := range subs {
		byID[s.ID] = s
		r.StepsAttempted += s.Steps
	}

	// Acknowledged: exactly one terminal state per run, and the summary
	// agrees with it.
	for _, s := range subs {
		hist := obs.States[s.ID]
		final, ok := obs.Final[s.ID]
		entered, left := 0, false
		for i, st := range hist {
			switch {
			case cluster.Terminal(st.Status) && (i == 0 || !cluster.Terminal(hist[i-1].Status)):
				entered++
			case i > 0 && cluster.Terminal(hist[i-1].Status) && st.Status != hist[i-1].Status:
				left = true
			}
		}
		switch {
		case !ok:
			r.BadTerminal = append(r.BadTerminal, s.ID+": no state in the runs bucket")
			continue
		case !cluster.Terminal(final.Status):
			r.BadTerminal = append(r.BadTerminal, fmt.Sprintf("%s: ends %s, not terminal", s.ID, final.Status))
			continue
		case entered != 1 || left:
			r.BadTerminal = append(r.BadTerminal, fmt.Sprintf("%s: entered a terminal state %d times (left one: %v) in %s",
				s.ID, entered, left, statusTrail(hist)))
			continue
		case final.Attempt > cluster.MaxAttempts:
			r.BadTerminal = append(r.BadTerminal, fmt.Sprintf("%s: %d attempts, more than %d", s.ID, final.Attempt, cluster.MaxAttempts))
			continue
		}
		r.Terminal++
		switch final.Status {
		case cluster.StateSucceeded:
			r.Succeeded++
		case cluster.StateFailed:
			r.Failed++
		case cluster.StateCancelled:
			r.Cancelled++
		}
		sum, hasSum := obs.Summaries[s.ID]
		switch {
		case final.Attempt == 0 && hasSum:
			r.BadTerminal = append(r.BadTerminal, fmt.Sprintf("%s: never started but has a summary (%s)", s.ID, sum.Status))
		case final.Attempt > 0 && !hasSum:
			r.BadTerminal = append(r.BadTerminal, fmt.Sprintf("%s: %s after %d attempts but no run_summary.json", s.ID, final.Status, final.Attempt))
		case hasSum && string(sum.Status) != final.Status:
			r.BadTerminal = append(r.BadTerminal, fmt.Sprintf("%s: summary says %s, the runs bucket %s", s.ID, sum.Status, final.Status))
		case hasSum && final.Status == cluster.StateSucceeded && !sum.Complete:
			r.Incomplete = append(r.Incomplete, fmt.Sprintf("%s: complete=false, dropped %d", s.ID, sum.Dropped))
		}
	}
	for id := range obs.States {
		if _, ok := byID[id]; !ok {
			r.Unexpected = append(r.Unexpected, "state of unsubmitted run "+id)
		}
	}

	// Recorded: dedup by (run, attempt, step, name) within an attempt,
	// then keep the latest attempt per (run, step, name).
	seen := map[metricKey]int{} // -> latest attempt recorded
	within := map[metricKey]map[int]bool{}
	unexpectedRuns := map[string]bool{}
	for _, m := range obs.Metrics {
		sub, ok := byID[m.Run]
		switch {
		case !ok:
			unexpectedRuns[m.Run] = true
			continue
		case m.Step < 1 || m.Step > sub.Steps:
			r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s attempt %d: %s at step %d, outside 1..%d", m.Run, m.Attempt, m.Name, m.Step, sub.Steps))
			continue
		}
		k := metricKey{m.Run, m.Step, m.Name}
		if within[k] == nil {
			within[k] = map[int]bool{}
		}
		if within[k][m.Attempt] {
			r.Duplicated = append(r.Duplicated, fmt.Sprintf("%s attempt %d: %s at step %d", m.Run, m.Attempt, m.Name, m.Step))
			continue
		}
		within[k][m.Attempt] = true
		if prev, ok := seen[k]; ok {
			r.Resumed++ // one of the two is superseded
			seen[k] = max(prev, m.Attempt)
			continue
		}
		seen[k] = m.Attempt
	}
	r.Unique = len(seen)
	for id := range unexpectedRuns {
		r.Unexpected = append(r.Unexpected, "records of unsubmitted run "+id)
	}
	for _, s := range subs {
		if obs.Final[s.ID].Status != cluster.StateSucceeded {
			continue
		}
		for step := int64(1); step <= s.Steps; step++ {
			if _, ok := seen[metricKey{s.ID, step, "train/loss"}]; !ok {
				r.Lost = append(r.Lost, fmt.Sprintf("%s: train/loss at step %d", s.ID, step))
			}
		}
	}

	// Checkpoints: the newest one acknowledged per run must be stored
	// (older ones may be pruned by keep_last).
	newest := map[string]cluster.CheckpointEvent{}
	for _, ev := range obs.CkptEvents {
		if _, ok := byID[ev.RunID]; !ok {
			r.Unexpected = append(r.Unexpected, fmt.Sprintf("checkpoint event of unsubmitted run %s (step %d)", ev.RunID, ev.Step))
			continue
		}
		if cur, ok := newest[ev.RunID]; !ok || ev.Step > cur.Step {
			newest[ev.RunID] = ev
		}
	}
	for id, ev := range newest {
		if obs.StoredKeys[ev.Key] {
			r.CkptStored++
		} else {
			r.MissingCkpt = append(r.MissingCkpt, fmt.Sprintf("%s: %s (step %d, attempt %d)", id, ev.Key, ev.Step, ev.Attempt))
		}
	}
	for _, l := range [][]string{r.Lost, r.Duplicated, r.Unexpected, r.BadTerminal, r.MissingCkpt, r.Incomplete} {
		slices.Sort(l)
	}
	return r
}

// statusTrail writes a state history as "queued/0 running/1 ...".
func statusTrail(h []cluster.RunState) string {
	var parts []string
	for _, st := range h {
		parts = append(parts, fmt.Sprintf("%s/%d", st.Status, st.Attempt))
	}
	return strings.Join(parts, " ")
}

// Gather reads what Check needs from the cluster and the store: the final
// run states, the checkpoint events in the EVENTS stream, and every
// record of every run under runs/ in the store, with the state history
// log recorded.
func Gather(ctx context.Context, js jetstream.JetStream, store experiment.Store, log *StateLog) (*Observed, error) {
	obs := &Observed{Final: map[string]cluster.RunState{}, Summaries: map[string]experiment.Summary{}, StoredKeys: map[string]bool{}}
	kv, err := js.KeyValue(ctx, cluster.BucketRuns)
	if err != nil {
		return nil, err
	}
	all, err := cluster.ListStates(ctx, kv)
	if err != nil {
		return nil, err
	}
	for _, st := range all {
		obs.Final[st.RunID] = st
	}
	obs.States = log.Snapshot(obs.Final, 5*time.Second)

	cons, err := js.OrderedConsumer(ctx, cluster.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{cluster.EventFilter(cluster.KindCheckpoint, ">")}})
	if err != nil {
		return nil, err
	}
	err = drain(ctx, cons, func(m jetstream.Msg) error {
		var ev cluster.CheckpointEvent
		if err := cluster.Decode(m.Data(), cluster.TypeCheckpoint, &ev); err != nil {
			return fmt.Errorf("checkpoint event on %s: %w", m.Subject(), err)
		}
		obs.CkptEvents = append(obs.CkptEvents, ev)
		return nil
	})
	if err != nil {
		return nil, err
	}

	keys, err := store.List(ctx, "runs/")
	if err != nil {
		return nil, err
	}
	runIDs := map[string]bool{}
	for _, k := range keys {
		obs.StoredKeys[k] = true
		if parts := strings.SplitN(k, "/", 3); len(parts) == 3 {
			runIDs[parts[1]] = true
		}
	}
	rd := experiment.NewReader(store)
	for _, id := range slices.Sorted(maps.Keys(runIDs)) {
		if obs.StoredKeys["runs/"+id+"/run_summary.json"] {
			sum, err := rd.GetSummary(ctx, id)
			if err != nil {
				return nil, err
			}
			obs.Summaries[id] = sum
		}
		for m, err := range rd.ReadStoredMetrics(ctx, id) {
			if err != nil {
				return nil, err
			}
			obs.Metrics = append(obs.Metrics, m)
		}
	}
	slices.SortStableFunc(obs.Metrics, func(a, b experiment.Metric) int {
		return cmp.Or(cmp.Compare(a.Run, b.Run), cmp.Compare(a.Attempt, b.Attempt), cmp.Compare(a.Step, b.Step))
	})
	return obs, nil
}

// StateLog records every revision of every run's key in the runs bucket,
// as the history the checker judges terminal states by.
type StateLog struct {
	mu  sync.Mutex
	w   jetstream.KeyWatcher
	m   map[string][]cluster.RunState
	rev uint64 // newest revision recorded
}

// WatchStates starts recording the runs bucket; Stop ends it.
func WatchStates(ctx context.Context, kv jetstream.KeyValue) (*StateLog, error) {
	l := &StateLog{m: map[string][]cluster.RunState{}}
	return l, l.watch(ctx, kv, jetstream.IgnoreDeletes())
}

// Rewatch replaces the watcher by a new one (after the NATS server
// restarted, which ends a watch) that replays the bucket's history and
// records only revisions newer than the newest one recorded.
func (l *StateLog) Rewatch(ctx context.Context, kv jetstream.KeyValue) error {
	l.mu.Lock()
	old, rev := l.w, l.rev
	l.mu.Unlock()
	_ = old.Stop()
	_ = rev // revisions up to it are skipped by the watch loop
	return l.watch(ctx, kv, jetstream.IgnoreDeletes(), jetstream.IncludeHistory())
}

func (l *StateLog) watch(ctx context.Context, kv jetstream.KeyValue, opts ...jetstream.WatchOpt) error {
	w, err := kv.Watch(ctx, cluster.RunKey("*"), opts...)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.w = w
	l.mu.Unlock()
	go func() {
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			var st cluster.RunState
			if err := msgpack.Unmarshal(e.Value(), &st); err != nil {
				st = cluster.RunState{RunID: strings.TrimPrefix(e.Key(), "run."), Status: "malformed"}
			}
			l.mu.Lock()
			if e.Revision() > l.rev { // a resumed watch repeats nothing
				l.rev = e.Revision()
				l.m[st.RunID] = append(l.m[st.RunID], st)
			}
			l.mu.Unlock()
		}
	}()
	return nil
}

// Backfill appends, for each run id, the revisions of its key still in
// the bucket's history (the last few) that are newer than every revision
// recorded: a stand-in for a watch that stopped delivering (after a NATS
// restart the test process's watch does not resume).
func (l *StateLog) Backfill(ctx context.Context, kv jetstream.KeyValue, ids []string) error {
	l.mu.Lock()
	from := l.rev
	l.mu.Unlock()
	for _, id := range ids {
		hist, err := kv.History(ctx, cluster.RunKey(id))
		if err != nil {
			return err
		}
		for _, e := range hist {
			var st cluster.RunState
			if e.Revision() <= from || msgpack.Unmarshal(e.Value(), &st) != nil {
				continue
			}
			l.mu.Lock()
			if e.Revision() > l.rev || e.Revision() > from {
				l.m[st.RunID] = append(l.m[st.RunID], st)
			}
			l.mu.Unlock()
		}
	}
	return nil
}

// Stop ends the recording.
func (l *StateLog) Stop() {
	l.mu.Lock()
	w := l.w
	l.mu.Unlock()
	_ = w.Stop()
}

// History returns a copy of the recorded revisions of run id.
func (l *StateLog) History(id string) []cluster.RunState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.m[id])
}

// Snapshot returns a copy of the log once its newest revision of every
// run in final is the final state (the watcher may trail the bucket by a
// moment), or after timeout.
func (l *StateLog) Snapshot(final map[string]cluster.RunState, timeout time.Duration) map[string][]cluster.RunState {
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		caught := true
		for id, f := range final {
			h := l.m[id]
			if len(h) == 0 || h[len(h)-1].Status != f.Status || !h[len(h)-1].Updated.Equal(f.Updated) {
				caught = false
				break
			}
		}
		if caught || time.Now().After(deadline) {
			out := make(map[string][]cluster.RunState, len(l.m))
			for id, h := range l.m {
				out[id] = slices.Clone(h)
			}
			l.mu.Unlock()
			return out
		}
		l.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}

// Pivot arranges metric values as a table, step by name, as pandas'
// df.pivot(index="step", columns="name", values="value") does, and fails
// as it does on a second value for a (step, name).
func Pivot(ms []experiment.Metric) (map[int64]map[string]float64, error) {
	out := map[int64]map[string]float64{}
	for _, m := range ms {
		row := out[m.Step]
		if row == nil {
			row = map[string]float64{}
			out[m.Step] = row
		}
		if _, dup := row[m.Name]; dup {
			return nil, fmt.Errorf("index contains duplicate entries, cannot reshape: step %d, %s (attempt %d)", m.Step, m.Name, m.Attempt)
		}
		row[m.Name] = m.Value
	}
	return out, nil
}

// drain hands each message cons has to each, in order, until the consumer
// has nothing pending. An empty fetch is not the end: a stream whose leader
// moved, or a loaded machine, can take longer than one fetch's wait to
// deliver (the checker once stopped early there and reported checkpoints
// as missing that it had not read).
func drain(ctx context.Context, cons jetstream.Consumer, each func(jetstream.Msg) error) error {
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if err := each(m); err != nil {
				return err
			}
		}
		if n > 0 {
			continue
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending == 0 {
			return nil
		}
	}
}
