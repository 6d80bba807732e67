package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/services/coordinator"
)

// demoSweep is the sweep of `gorch up --demo`: two models by two learning
// rates on Fashion-MNIST, short enough for a laptop (evaluated on the
// test split at the end).
func demoSweep(steps int) []byte {
	return fmt.Appendf(nil, `name: demo
priority: high
base:
  model: {name: mlp}
  dataset: {name: fashion-mnist}
  optimizer: {name: adam, lr: 0.001}
  steps: %d
  batch_size: 64
  seed: 1
  checkpoint_every: %d
  log_every: %d
grid:
  model.name: [mlp, cnn]
  optimizer.lr: [0.001, 0.003]
`, steps, max(steps/6, 1), max(steps/6, 1))
}

// demoSummaryWait bounds how long the demo waits for the collector's final
// summaries after every run ended.
const demoSummaryWait = time.Minute

// runDemo queues the demo sweep on lc, shows its progress on progress
// until every run is terminal, waits for the final run records and prints
// the results table on out. It fails unless every run succeeded with a
// complete record.
func runDemo(ctx context.Context, lc *localCluster, store experiment.Store, steps int, out, progress io.Writer) error {
	const op = "demo"
	sweep := demoSweep(steps)
	_, runs, err := coordinator.ParseSweep("demo sweep", sweep)
	if err != nil {
		return err // a bug: the demo sweep is fixed
	}
	ids, err := coordinator.NewClient(lc.nc).Sweep(ctx, sweep)
	if err != nil {
		return err
	}
	if len(ids) != len(runs) {
		return errs.New(errs.Cluster, op, "the coordinator accepted %d of the sweep's %d runs", len(ids), len(runs))
	}
	kv, err := lc.js.KeyValue(ctx, cluster.BucketRuns)
	if err != nil {
		return errs.Wrap(errs.Cluster, op, err, "bucket %s", cluster.BucketRuns)
	}
	fmt.Fprintf(progress, "demo: %d Fashion-MNIST runs queued (sweep %q, %d steps each); Ctrl-C stops\n", len(ids), "demo", steps)

	// Progress: poll the runs bucket every second until all are terminal.
	states := make([]cluster.RunState, len(ids))
	pp := newRunProgress(progress)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		done := true
		for i, id := range ids {
			if st, _, err := cluster.GetState(ctx, kv, id); err == nil {
				states[i] = st
			} else if states[i].RunID == "" {
				states[i] = cluster.RunState{RunID: id, Name: runs[i].Name, Status: cluster.StateQueued}
			}
			done = done && cluster.Terminal(states[i].Status)
		}
		pp.show(states)
		if done {
			break
		}
		select {
		case <-ctx.Done():
			return errs.New(errs.Cluster, op, "interrupted before the sweep finished; its runs resume on the next 'gorch up --data-dir %s'", dataDir())
		case err := <-lc.failed:
			return err
		case <-tick.C:
		}
	}

	// The records: wait until the collector has written every run's
	// final summary.
	rd := experiment.NewReader(store)
	sums := make([]experiment.Summary, len(ids))
	final := make([]bool, len(ids))
	deadline := time.Now().Add(demoSummaryWait)
	for {
		all := true
		for i, id := range ids {
			if final[i] {
				continue
			}
			s, err := rd.GetSummary(ctx, id)
			st := states[i]
			final[i] = err == nil && string(s.Status) == st.Status && s.Run.Attempt == st.Attempt &&
				(s.Status != experiment.StatusSucceeded || s.Complete)
			sums[i] = s
			all = all && final[i]
		}
		if all || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return errs.New(errs.Cluster, op, "interrupted while waiting for the run records")
		case <-time.After(200 * time.Millisecond):
		}
	}

	tw := newTable(out)
	row(tw, "RUN", "NAME", "MODEL", "LR", "STATUS", "TEST ACC", "DURATION", "CHECKPOINT")
	bad := 0
	for i, st := range states {
		s := sums[i]
		acc := "-"
		if m, ok := s.Metrics["eval/accuracy"]; ok && m.Count > 0 {
			acc = fmt.Sprintf("%.2f%%", 100*m.Last)
		}
		status := st.Status
		if !final[i] {
			status += " (record incomplete)"
		}
		if st.Status != cluster.StateSucceeded || !final[i] {
			bad++
		}
		dur := "-"
		if !s.Run.Finished.IsZero() {
			dur = fmtDuration(s.Run.Finished.Sub(s.Run.Created)) // from the first start: Started is the last attempt's
		}
		spec := runs[i].Spec
		row(tw, st.RunID, orDash(st.Name), spec.Model.Name, fmtFloat(spec.Optimizer.LR), status, acc, dur, orDash(resumeKey(st)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if bad > 0 {
		return errs.New(errs.Training, op, "%d of %d demo runs did not succeed with a complete record (see 'gorch runs show RUN_ID --data-dir %s')", bad, len(ids), dataDir())
	}
	fmt.Fprintf(out, "all %d runs succeeded; records and checkpoints are under %s (try 'gorch runs list --data-dir %s')\n", len(ids), dataDir(), dataDir())
	return nil
}

// resumeKey is the key of a run's resume point, or "".
func resumeKey(st cluster.RunState) string {
	if st.Resume == nil {
		return ""
	}
	return st.Resume.Key
}

// runProgress shows one line per run: redrawn in place on a terminal,
// and otherwise printed for the runs whose line changed.
type runProgress struct {
	w     io.Writer
	tty   bool
	drawn int               // lines on screen (terminal)
	last  map[string]string // run -> last line printed (plain)
}

func newRunProgress(w io.Writer) *runProgress {
	p := &runProgress{w: w, last: map[string]string{}}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func progressLine(st cluster.RunState) string {
	status := st.Status
	if st.CancelRequested && !cluster.Terminal(status) {
		status += " (cancelling)"
	}
	line := fmt.Sprintf("%-10s %-12s step %-9s attempt %d", orDash(st.Name), status, fmtStep(st), st.Attempt)
	if st.Worker != "" && !cluster.Terminal(st.Status) {
		line += "  on " + st.Worker
	}
	if st.Error != "" {
		line += "  error: " + st.Error
	}
	return line
}

func (p *runProgress) show(states []cluster.RunState) {
	if p.tty {
		var b strings.Builder
		if p.drawn > 0 {
			fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
		}
		for _, st := range states {
			fmt.Fprintf(&b, "\r%s\x1b[K\n", progressLine(st))
		}
		p.drawn = len(states)
		io.WriteString(p.w, b.String())
		return
	}
	for _, st := range states {
		line := progressLine(st)
		if p.last[st.RunID] != line {
			p.last[st.RunID] = line
			fmt.Fprintln(p.w, line)
		}
	}
}
