package integration

import (
	"strings"
	"testing"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/experiment"
)

// TestCheckerFindsViolations feeds the checker hand-made histories: a
// clean resumed run, and one of each violation it must report.
func TestCheckerFindsViolations(t *testing.T) {
	metrics := func(run string, attempt int, from, to int64) []experiment.Metric {
		var out []experiment.Metric
		for s := from; s <= to; s++ {
			out = append(out, experiment.Metric{Run: run, Attempt: attempt, Step: s, Name: "train/loss"})
		}
		return out
	}
	ok := func(id string, attempts int) ([]cluster.RunState, cluster.RunState) {
		h := []cluster.RunState{{RunID: id, Status: cluster.StateQueued}}
		for a := 1; a <= attempts; a++ {
			h = append(h, cluster.RunState{RunID: id, Status: cluster.StateRunning, Attempt: a})
		}
		final := cluster.RunState{RunID: id, Status: cluster.StateSucceeded, Attempt: attempts}
		return append(h, final), final
	}
	base := func() ([]Submitted, *Observed) {
		subs := []Submitted{{ID: "a", Steps: 10, CkptEvery: 5}}
		h, final := ok("a", 2)
		obs := &Observed{
			States:     map[string][]cluster.RunState{"a": h},
			Final:      map[string]cluster.RunState{"a": final},
			CkptEvents: []cluster.CheckpointEvent{{RunID: "a", Attempt: 1, Step: 5, Key: "runs/a/checkpoints/5"}},
			// Attempt 1 got to step 7, attempt 2 resumed after the checkpoint at 5.
			Metrics:    append(metrics("a", 1, 1, 7), metrics("a", 2, 6, 10)...),
			Summaries:  map[string]experiment.Summary{"a": {Status: experiment.StatusSucceeded, Complete: true}},
			StoredKeys: map[string]bool{"runs/a/checkpoints/5": true},
		}
		return subs, obs
	}
	cases := []struct {
		name   string
		mutate func(subs []Submitted, o *Observed) []Submitted
		want   string // substring of the report; "" means OK
	}{
		{"clean resumed run", nil, ""},
		{"lost step", func(s []Submitted, o *Observed) []Submitted {
			o.Metrics = append(metrics("a", 1, 1, 5), metrics("a", 2, 7, 10)...)
			return s
		}, "lost: a: train/loss at step 6"},
		{"duplicate within an attempt", func(s []Submitted, o *Observed) []Submitted {
			o.Metrics = append(o.Metrics, metrics("a", 2, 8, 8)...)
			return s
		}, "duplicated: a attempt 2: train/loss at step 8"},
		{"unsubmitted run", func(s []Submitted, o *Observed) []Submitted {
			o.Metrics = append(o.Metrics, metrics("ghost", 1, 1, 1)...)
			return s
		}, "unexpected: records of unsubmitted run ghost"},
		{"two terminal states", func(s []Submitted, o *Observed) []Submitted {
			h := o.States["a"]
			o.States["a"] = append(h[:len(h)-1:len(h)-1], cluster.RunState{Status: cluster.StateFailed}, cluster.RunState{Status: cluster.StateRunning}, h[len(h)-1])
			return s
		}, "entered a terminal state 2 times"},
		{"not terminal", func(s []Submitted, o *Observed) []Submitted {
			o.Final["a"] = cluster.RunState{RunID: "a", Status: cluster.StateRunning, Attempt: 2}
			return s
		}, "ends running, not terminal"},
		{"summary disagrees", func(s []Submitted, o *Observed) []Submitted {
			o.Summaries["a"] = experiment.Summary{Status: experiment.StatusFailed}
			return s
		}, "summary says failed"},
		{"checkpoint not stored", func(s []Submitted, o *Observed) []Submitted {
			o.StoredKeys = nil
			return s
		}, "missing checkpoint: a: runs/a/checkpoints/5"},
		{"submitted run never recorded", func(s []Submitted, o *Observed) []Submitted {
			return append(s, Submitted{ID: "b", Steps: 3})
		}, "b: no state in the runs bucket"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			subs, obs := base()
			if c.mutate != nil {
				subs = c.mutate(subs, obs)
			}
			r := Check(subs, obs)
			switch {
			case c.want == "" && !r.OK():
				t.Errorf("Check = violations, want OK:\n%s", r)
			case c.want != "" && (r.OK() || !strings.Contains(r.String(), c.want)):
				t.Errorf("Check report lacks %q:\n%s", c.want, r)
			}
			if c.want == "" && (r.Unique != 10 || r.Resumed != 2) {
				t.Errorf("clean run: unique %d, superseded %d; want 10 and 2", r.Unique, r.Resumed)
			}
		})
	}
}

// TestPivotRejectsDuplicates: Pivot fails, as pandas does, on a second
// value at a (step, name), and tables one value per cell otherwise.
func TestPivotRejectsDuplicates(t *testing.T) {
	ms := []experiment.Metric{{Step: 1, Name: "loss", Value: 2}, {Step: 1, Name: "lr", Value: 0.1}, {Step: 2, Name: "loss", Value: 1}}
	p, err := Pivot(ms)
	if err != nil || len(p) != 2 || p[1]["lr"] != 0.1 || p[2]["loss"] != 1 {
		t.Errorf("Pivot = %v, %v; want 2 steps", p, err)
	}
	if _, err := Pivot(append(ms, experiment.Metric{Step: 2, Name: "loss", Attempt: 2})); err == nil {
		t.Error("Pivot accepted two values of loss at step 2")
	}
}
