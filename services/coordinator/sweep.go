package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/train"
)

// MaxSweepRuns bounds how many runs one sweep may expand to.
const MaxSweepRuns = 10000

// Sweep is a sweep file: a base run spec and the hyperparameters to vary.
// Paths are dotted JSON keys of the run spec (optimizer.lr, model.name,
// batch_size, model.hidden, tags.group ...).
//
//	name: lr-vs-model
//	priority: low            # high, normal (default) or low
//	base:                    # a run spec, as for `gorch submit`
//	  model: {name: mlp}
//	  dataset: {name: blobs}
//	  optimizer: {name: adam, lr: 0.001}
//	  steps: 200
//	  batch_size: 64
//	grid:                    # every combination, paths in sorted order,
//	  model.name: [mlp, cnn] # the last path varying fastest
//	  optimizer.lr: [0.001, 0.01]
//	random:                  # and/or: trials drawn reproducibly from seed
//	  trials: 4
//	  seed: 7
//	  params:
//	    optimizer.weight_decay: {log_uniform: [1.0e-5, 1.0e-2]}
//	    optimizer.momentum: {uniform: [0.8, 0.99]}
//	    batch_size: {choice: [32, 64, 128]}
//
// With both grid and random, every grid point is combined with every
// trial (grid points × trials runs). A uniform or log_uniform draw for an
// integer field is rounded to the nearest integer.
type Sweep struct {
	Name     string                       `json:"name"`
	Priority cluster.Priority             `json:"priority,omitempty"`
	Base     json.RawMessage              `json:"base"`
	Grid     map[string][]json.RawMessage `json:"grid,omitempty"`
	Random   *RandomSearch                `json:"random,omitempty"`
}

// RandomSearch draws Trials settings of Params from a generator seeded
// with Seed: the same file always expands to the same runs.
type RandomSearch struct {
	Trials int                     `json:"trials"`
	Seed   uint64                  `json:"seed"`
	Params map[string]Distribution `json:"params"`
}

// Distribution is exactly one of: uniform [a, b], log-uniform [a, b]
// (0 < a), or a choice among listed values.
type Distribution struct {
	Uniform    []float64         `json:"uniform,omitempty"`
	LogUniform []float64         `json:"log_uniform,omitempty"`
	Choice     []json.RawMessage `json:"choice,omitempty"`
}

// SweepRun is one expanded run of a sweep.
type SweepRun struct {
	Name   string            // "<sweep>-<i>", i from 0
	Params map[string]string // the varied paths and their values (JSON)
	Spec   *train.Spec       // validated, defaults filled in
}

// ParseSweep reads a sweep from YAML or JSON, strictly (unknown keys are
// errors), expands it and validates every run's spec. source names the
// input in error messages. An invalid expanded spec fails the whole sweep
// with one line naming the run, the values it was given and the field.
func ParseSweep(source string, b []byte) (*Sweep, []SweepRun, error) {
	const op = "sweep"
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, nil, errs.New(errs.Config, op, "%s: %s", source, strings.TrimPrefix(strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "), "yaml: "))
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return nil, nil, errs.New(errs.Config, op, "%s: empty sweep", source)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var sw Sweep
	if err := dec.Decode(&sw); err != nil {
		return nil, nil, errs.New(errs.Config, op, "%s: %s", source, describeJSONError(err))
	}
	runs, err := sw.Expand()
	if err != nil {
		return nil, nil, errs.Wrap(errs.Config, op, err, "%s", source)
	}
	return &sw, runs, nil
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q: cannot use %s as %s", te.Field, te.Value, te.Type)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return strings.Replace(msg, "unknown field", "unknown key", 1)
}

// param is one varied path with its candidate values.
type param struct {
	path string
	kind reflect.Kind // of the spec field at path
}

// Expand returns the runs of the sweep, in a deterministic order, each
// with a validated spec.
func (sw *Sweep) Expand() ([]SweepRun, error) {
	if sw.Name == "" {
		return nil, fmt.Errorf(`missing "name"`)
	}
	if _, err := cluster.ParsePriority(string(sw.Priority)); err != nil {
		return nil, fmt.Errorf(`"priority": unknown priority %q (want high, normal or low)`, sw.Priority)
	}
	if len(bytes.TrimSpace(sw.Base)) == 0 || bytes.Equal(bytes.TrimSpace(sw.Base), []byte("null")) {
		return nil, fmt.Errorf(`missing "base" (a run spec)`)
	}
	var base map[string]any
	if err := unmarshalNumbers(sw.Base, &base); err != nil {
		return nil, fmt.Errorf(`"base" must be a run spec (a mapping): %s`, describeJSONError(err))
	}
	if len(sw.Grid) == 0 && sw.Random == nil {
		return nil, fmt.Errorf(`nothing to vary: give "grid" and/or "random"`)
	}

	// Grid points: the cartesian product, paths sorted, last fastest.
	gridPaths := slices.Sorted(maps.Keys(sw.Grid))
	points := []map[string]json.RawMessage{{}}
	for _, p := range gridPaths {
		if _, err := specField(p); err != nil {
			return nil, fmt.Errorf("grid %q: %v", p, err)
		}
		vals := sw.Grid[p]
		if len(vals) == 0 {
			return nil, fmt.Errorf("grid %q: no values", p)
		}
		if len(points)*len(vals) > MaxSweepRuns {
			return nil, fmt.Errorf("grid expands to more than %d runs", MaxSweepRuns)
		}
		var next []map[string]json.RawMessage
		for _, pt := range points {
			for _, v := range vals {
				np := make(map[string]json.RawMessage, len(pt)+1)
				for k, x := range pt {
					np[k] = x
				}
				np[p] = v
				next = append(next, np)
			}
		}
		points = next
	}

	// Random trials: drawn once, path by path in sorted order.
	trials := []map[string]json.RawMessage{{}}
	if r := sw.Random; r != nil {
		var err error
		if trials, err = r.draw(sw.Grid); err != nil {
			return nil, err
		}
	}
	if len(points)*len(trials) > MaxSweepRuns {
		return nil, fmt.Errorf("sweep expands to %d runs, more than %d", len(points)*len(trials), MaxSweepRuns)
	}

	var runs []SweepRun
	for _, pt := range points {
		for _, tr := range trials {
			name := fmt.Sprintf("%s-%d", sw.Name, len(runs))
			set := map[string]json.RawMessage{"name": json.RawMessage(strconv.Quote(name))}
			for k, v := range pt {
				set[k] = v
			}
			for k, v := range tr {
				set[k] = v
			}
			spec, err := buildSpec(base, set)
			params := map[string]string{}
			for k, v := range set {
				if k != "name" {
					params[k] = string(v)
				}
			}
			if err != nil {
				return nil, fmt.Errorf("run %s (%s): %v", name, fmtParams(params), err)
			}
			runs = append(runs, SweepRun{Name: name, Params: params, Spec: spec})
		}
	}
	return runs, nil
}

func (r *RandomSearch) draw(grid map[string][]json.RawMessage) ([]map[string]json.RawMessage, error) {
	if r.Trials <= 0 {
		return nil, fmt.Errorf(`random "trials" must be positive, got %d`, r.Trials)
	}
	if r.Trials > MaxSweepRuns {
		return nil, fmt.Errorf(`random "trials" %d is more than %d`, r.Trials, MaxSweepRuns)
	}
	if len(r.Params) == 0 {
		return nil, fmt.Errorf(`random: no "params"`)
	}
	paths := slices.Sorted(maps.Keys(r.Params))
	var ps []param
	for _, p := range paths {
		if _, dup := grid[p]; dup {
			return nil, fmt.Errorf("random %q: already varied by grid", p)
		}
		t, err := specField(p)
		if err != nil {
			return nil, fmt.Errorf("random %q: %v", p, err)
		}
		d := r.Params[p]
		n := 0
		for _, set := range []bool{d.Uniform != nil, d.LogUniform != nil, d.Choice != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("random %q: give exactly one of uniform, log_uniform or choice", p)
		}
		switch {
		case d.Uniform != nil && (len(d.Uniform) != 2 || !(d.Uniform[0] <= d.Uniform[1])):
			return nil, fmt.Errorf("random %q: uniform wants [low, high] with low <= high, got %v", p, d.Uniform)
		case d.LogUniform != nil && (len(d.LogUniform) != 2 || !(0 < d.LogUniform[0] && d.LogUniform[0] <= d.LogUniform[1])):
			return nil, fmt.Errorf("random %q: log_uniform wants [low, high] with 0 < low <= high, got %v", p, d.LogUniform)
		case d.Choice != nil && len(d.Choice) == 0:
			return nil, fmt.Errorf("random %q: choice has no values", p)
		}
		ps = append(ps, param{path: p, kind: t.Kind()})
	}
	rng := rand.New(rand.NewPCG(r.Seed, 0x67_6f_72_63_68)) // "gorch"
	out := make([]map[string]json.RawMessage, r.Trials)
	for i := range out {
		out[i] = map[string]json.RawMessage{}
		for _, p := range ps {
			d := r.Params[p.path]
			var v json.RawMessage
			switch {
			case d.Choice != nil:
				v = d.Choice[rng.IntN(len(d.Choice))]
			case d.Uniform != nil:
				v = number(d.Uniform[0]+rng.Float64()*(d.Uniform[1]-d.Uniform[0]), p.kind)
			default:
				lo, hi := math.Log(d.LogUniform[0]), math.Log(d.LogUniform[1])
				v = number(math.Exp(lo+rng.Float64()*(hi-lo)), p.kind)
			}
			out[i][p.path] = v
		}
	}
	return out, nil
}

// number formats a drawn value for a field of kind k: rounded for
// integer fields, shortest round-trip otherwise.
func number(x float64, k reflect.Kind) json.RawMessage {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return json.RawMessage(strconv.FormatInt(int64(math.Round(x)), 10))
	}
	return json.RawMessage(strconv.FormatFloat(x, 'g', -1, 64))
}

var specType = reflect.TypeFor[train.Spec]()

// specField returns the type of the run-spec field at a dotted path, or
// an error naming the first unknown key.
func specField(path string) (reflect.Type, error) {
	t := specType
	keys := strings.Split(path, ".")
	for i, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("malformed path")
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := jsonField(t, k)
			if !ok {
				return nil, fmt.Errorf("unknown field %q in the run spec", strings.Join(keys[:i+1], "."))
			}
			t = f
		case reflect.Map:
			t = t.Elem()
		default:
			return nil, fmt.Errorf("%q is a %s, not a mapping", strings.Join(keys[:i], "."), t.Kind())
		}
	}
	if path == "name" {
		return nil, fmt.Errorf(`runs are named "<sweep>-<i>"; "name" cannot be varied`)
	}
	return t, nil
}

func jsonField(t reflect.Type, key string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == key && name != "-" {
			return f.Type, true
		}
	}
	return nil, false
}

// buildSpec sets the dotted paths in a copy of base and validates the
// result as a run spec.
func buildSpec(base map[string]any, set map[string]json.RawMessage) (*train.Spec, error) {
	doc := deepCopy(base).(map[string]any)
	for _, path := range slices.Sorted(maps.Keys(set)) {
		var v any
		if err := unmarshalNumbers(set[path], &v); err != nil {
			return nil, fmt.Errorf("%s: malformed value %s", path, set[path])
		}
		m := doc
		keys := strings.Split(path, ".")
		for i, k := range keys[:len(keys)-1] {
			switch sub := m[k].(type) {
			case map[string]any:
				m = sub
			case nil:
				n := map[string]any{}
				m[k] = n
				m = n
			default:
				return nil, fmt.Errorf("%s: base has %q = %v, not a mapping", path, strings.Join(keys[:i+1], "."), sub)
			}
		}
		m[keys[len(keys)-1]] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	s, err := train.ParseSpec("spec", b)
	if err != nil {
		msg := err.Error() // "spec: spec: field ...": keep "field ..."
		for strings.HasPrefix(msg, "spec: ") {
			msg = strings.TrimPrefix(msg, "spec: ")
		}
		return nil, errors.New(msg)
	}
	return s, nil
}

// unmarshalNumbers decodes JSON keeping numbers as written (a uint64 seed
// must not pass through float64).
func unmarshalNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}

func fmtParams(p map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, k+"="+p[k])
	}
	return strings.Join(parts, " ")
}
