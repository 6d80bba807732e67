package coordinator

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

const sweepBase = `
base:
  model: {name: mlp}
  dataset: {name: blobs}
  optimizer: {name: adam, lr: 0.001}
  steps: 20
  batch_size: 32
  seed: 18446744073709551615
`

// runParams renders each run as "name p1=v1 p2=v2" for comparison.
func runParams(runs []SweepRun) []string {
	var out []string
	for _, r := range runs {
		out = append(out, strings.TrimSpace(r.Name+" "+fmtParams(r.Params)))
	}
	return out
}

func TestExpandGrid(t *testing.T) {
	cases := []struct {
		name string
		grid string
		want []string
	}{
		{"one path", "grid: {optimizer.lr: [0.1, 0.01, 0.001]}",
			[]string{"s-0 optimizer.lr=0.1", "s-1 optimizer.lr=0.01", "s-2 optimizer.lr=0.001"}},
		{"2x2, sorted paths, last fastest", "grid:\n  optimizer.lr: [0.1, 0.01]\n  model.name: [mlp, cnn]\n  dataset.name: [fashion-mnist]",
			[]string{
				`s-0 dataset.name="fashion-mnist" model.name="mlp" optimizer.lr=0.1`,
				`s-1 dataset.name="fashion-mnist" model.name="mlp" optimizer.lr=0.01`,
				`s-2 dataset.name="fashion-mnist" model.name="cnn" optimizer.lr=0.1`,
				`s-3 dataset.name="fashion-mnist" model.name="cnn" optimizer.lr=0.01`,
			}},
		{"missing intermediate mapping and a list value", "grid:\n  schedule.name: [cosine]\n  model.hidden: [[64], [128, 64]]",
			[]string{`s-0 model.hidden=[64] schedule.name="cosine"`, `s-1 model.hidden=[128,64] schedule.name="cosine"`}},
		{"map field", "grid: {tags.group: [a, b]}", []string{`s-0 tags.group="a"`, `s-1 tags.group="b"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, runs, err := ParseSweep("test", []byte("name: s\n"+sweepBase+c.grid))
			if err != nil {
				t.Fatal(err)
			}
			if got := runParams(runs); !reflect.DeepEqual(got, c.want) {
				t.Errorf("runs = %q, want %q", got, c.want)
			}
			for _, r := range runs {
				if r.Spec.Name != r.Name || r.Spec.Seed != 18446744073709551615 {
					t.Errorf("%s: spec name %q seed %d, want the run name and the base's seed", r.Name, r.Spec.Name, r.Spec.Seed)
				}
			}
		})
	}
	// The specs carry the values.
	_, runs, _ := ParseSweep("test", []byte("name: s\n"+sweepBase+"grid: {optimizer.lr: [0.5], model.hidden: [[7, 5]]}"))
	if s := runs[0].Spec; s.Optimizer.LR != 0.5 || !reflect.DeepEqual(s.Model.Hidden, []int{7, 5}) || s.Optimizer.Name != "adam" {
		t.Errorf("spec = %+v", s)
	}
}

func TestExpandRandomReproducible(t *testing.T) {
	sweep := func(seed int) string {
		return fmt.Sprintf("name: r\n%srandom:\n  trials: 5\n  seed: %d\n  params:\n"+
			"    optimizer.lr: {log_uniform: [1.0e-4, 1.0e-1]}\n"+
			"    optimizer.momentum: {uniform: [0.5, 0.9]}\n"+
			"    batch_size: {uniform: [16, 128]}\n"+
			"    model.name: {choice: [mlp, cnn]}\n"+
			"    dataset.name: {choice: [fashion-mnist]}\n", sweepBase, seed)
	}
	_, a, err := ParseSweep("a", []byte(sweep(7)))
	if err != nil {
		t.Fatal(err)
	}
	_, b, _ := ParseSweep("b", []byte(sweep(7)))
	_, other, _ := ParseSweep("c", []byte(sweep(8)))
	if len(a) != 5 || !reflect.DeepEqual(runParams(a), runParams(b)) {
		t.Fatalf("seed 7 twice: %q vs %q", runParams(a), runParams(b))
	}
	if reflect.DeepEqual(runParams(a), runParams(other)) {
		t.Errorf("seeds 7 and 8 drew the same trials %q", runParams(a))
	}
	for _, r := range a {
		s := r.Spec
		if !(1e-4 <= s.Optimizer.LR && s.Optimizer.LR <= 1e-1) || !(0.5 <= s.Optimizer.Momentum && s.Optimizer.Momentum <= 0.9) ||
			!(16 <= s.BatchSize && s.BatchSize <= 128) || (s.Model.Name != "mlp" && s.Model.Name != "cnn") {
			t.Errorf("%s: draw out of range: %s", r.Name, fmtParams(r.Params))
		}
	}
	// Grid x random: every grid point with every trial.
	_, both, err := ParseSweep("both", []byte(sweep(7)+"grid: {optimizer.name: [sgd, adam]}"))
	if err != nil {
		t.Fatal(err)
	}
	if len(both) != 10 || both[0].Spec.Optimizer.Name != "sgd" || both[5].Spec.Optimizer.Name != "adam" ||
		both[0].Spec.Optimizer.LR != both[5].Spec.Optimizer.LR {
		t.Errorf("grid x random = %q", runParams(both))
	}
}

func TestExpandErrors(t *testing.T) {
	cases := []struct {
		name, sweep, want string
	}{
		{"unknown path", "name: s\n" + sweepBase + "grid: {optimizer.lrr: [1]}", `grid "optimizer.lrr": unknown field "optimizer.lrr"`},
		{"path through a scalar", "name: s\n" + sweepBase + "grid: {batch_size.x: [1]}", `"batch_size" is a int, not a mapping`},
		{"wrong type", "name: s\n" + sweepBase + "grid: {optimizer.lr: [0.1, fast]}", `run s-1 (optimizer.lr="fast"): field "optimizer.lr": cannot use string as float64`},
		{"invalid value", "name: s\n" + sweepBase + "grid: {optimizer.lr: [-1]}", `run s-0 (optimizer.lr=-1): field "optimizer.lr": must be positive`},
		{"invalid base", "name: s\nbase: {model: {name: mlp}}\ngrid: {optimizer.lr: [1]}", `field "dataset.name": missing`},
		{"unknown sweep key", "name: s\n" + sweepBase + "grids: {}", `unknown key "grids"`},
		{"no name", sweepBase + "grid: {optimizer.lr: [1]}", `missing "name"`},
		{"nothing varied", "name: s\n" + sweepBase, "nothing to vary"},
		{"empty grid values", "name: s\n" + sweepBase + "grid: {optimizer.lr: []}", `grid "optimizer.lr": no values`},
		{"bad priority", "name: s\npriority: urgent\n" + sweepBase + "grid: {optimizer.lr: [1]}", `unknown priority "urgent"`},
		{"two distributions", "name: s\n" + sweepBase + "random: {trials: 2, params: {optimizer.lr: {uniform: [0, 1], choice: [1]}}}", "exactly one of"},
		{"log_uniform from 0", "name: s\n" + sweepBase + "random: {trials: 2, params: {optimizer.lr: {log_uniform: [0, 1]}}}", "0 < low <= high"},
		{"no trials", "name: s\n" + sweepBase + "random: {params: {optimizer.lr: {uniform: [0.1, 1]}}}", `"trials" must be positive`},
		{"path in grid and random", "name: s\n" + sweepBase + "grid: {optimizer.lr: [1]}\nrandom: {trials: 1, params: {optimizer.lr: {uniform: [0.1, 1]}}}", "already varied by grid"},
		{"name varied", "name: s\n" + sweepBase + "grid: {name: [a]}", `"name" cannot be varied`},
		{"not yaml", "name: [", "test:"},
		{"too many runs", "name: s\n" + sweepBase + "random: {trials: 100001, params: {optimizer.lr: {uniform: [0.1, 1]}}}", "more than 10000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ParseSweep("test", []byte(c.sweep))
			if !errors.Is(err, errs.Config) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("ParseSweep = %v, want a one-line config error containing %q", err, c.want)
			}
		})
	}
}
