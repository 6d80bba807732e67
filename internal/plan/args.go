package plan

import (
	"fmt"
	"math"

	"github.com/gorch/gorch/pkg/tensor"
)

// args reads a node's arguments while its kernel is built. The first
// malformed argument sets err; later reads return zero values, so a builder
// reads everything and checks err once.
type args struct {
	g    *Graph
	node Node
	err  error
}

func (a *args) fail(format string, v ...any) {
	if a.err == nil {
		a.err = fmt.Errorf(format, v...)
	}
}

func (a *args) arg(i int) any {
	if i >= len(a.node.Args) {
		a.fail("argument %d missing (%d given)", i, len(a.node.Args))
		return nil
	}
	return a.node.Args[i]
}

// tensor reads argument i as a tensor reference.
func (a *args) tensor(i int) in {
	m, ok := a.arg(i).(map[string]any)
	if _, isRef := m["ref"]; !ok || !isRef {
		a.fail("argument %d: want a tensor, got %v", i, a.arg(i))
		return in{}
	}
	r, err := asRef(m)
	if err != nil {
		a.fail("argument %d: %v", i, err)
	}
	return in(r)
}

// optTensor reads argument i as a tensor reference or null (ok false).
func (a *args) optTensor(i int) (t in, ok bool) {
	if a.arg(i) == nil {
		return in{}, false
	}
	return a.tensor(i), true
}

// tensors reads argument i as a list of tensor references.
func (a *args) tensors(i int) []in {
	l, ok := a.arg(i).([]any)
	if !ok {
		a.fail("argument %d: want a list of tensors, got %v", i, a.arg(i))
		return nil
	}
	out := make([]in, len(l))
	for j, v := range l {
		m, ok := v.(map[string]any)
		if !ok {
			a.fail("argument %d[%d]: want a tensor, got %v", i, j, v)
			return nil
		}
		r, err := asRef(m)
		if err != nil {
			a.fail("argument %d[%d]: %v", i, j, err)
		}
		out[j] = in(r)
	}
	return out
}

func (a *args) num(i int) float64 {
	switch v := a.arg(i).(type) {
	case float64:
		return v
	case bool:
		if v {
			return 1
		}
		return 0
	case map[string]any:
		switch v["float"] {
		case "inf":
			return math.Inf(1)
		case "-inf":
			return math.Inf(-1)
		case "nan":
			return math.NaN()
		}
	}
	a.fail("argument %d: want a number, got %v", i, a.arg(i))
	return 0
}

// int reads argument i as an integer.
func (a *args) int(i int) int {
	v := a.num(i)
	if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
		a.fail("argument %d: want an integer, got %v", i, v)
	}
	return int(v)
}

// float reads argument i as a float32.
func (a *args) float(i int) float32 { return float32(a.num(i)) }

// bool reads argument i as a bool.
func (a *args) bool(i int) bool {
	v, ok := a.arg(i).(bool)
	if !ok {
		a.fail("argument %d: want a bool, got %v", i, a.arg(i))
	}
	return v
}

// optBool reads argument i as a bool; null is def.
func (a *args) optBool(i int, def bool) bool {
	if a.arg(i) == nil {
		return def
	}
	return a.bool(i)
}

// str reads argument i as a string; null is "".
func (a *args) str(i int) string {
	switch v := a.arg(i).(type) {
	case string:
		return v
	case nil:
		return ""
	}
	a.fail("argument %d: want a string, got %v", i, a.arg(i))
	return ""
}

// ints reads argument i as a list of integers; a single integer is a list
// of one (ATen's int[N] arguments accept both).
func (a *args) ints(i int) []int {
	switch v := a.arg(i).(type) {
	case float64:
		return []int{a.int(i)}
	case []any:
		out := make([]int, len(v))
		for j, x := range v {
			f, ok := x.(float64)
			if !ok || f != math.Trunc(f) {
				a.fail("argument %d[%d]: want an integer, got %v", i, j, x)
				return nil
			}
			out[j] = int(f)
		}
		return out
	case nil:
		return nil
	}
	a.fail("argument %d: want a list of integers, got %v", i, a.arg(i))
	return nil
}

// pair reads an ATen int[2] argument (one value means both); an empty list
// is def.
func (a *args) pair(i int, def [2]int) [2]int {
	v := a.ints(i)
	switch len(v) {
	case 0:
		return def
	case 1:
		return [2]int{v[0], v[0]}
	case 2:
		return [2]int{v[0], v[1]}
	}
	a.fail("argument %d: want 1 or 2 integers, got %v", i, v)
	return def
}

// bools reads argument i as a list of bools (an output mask).
func (a *args) bools(i int) []bool {
	l, ok := a.arg(i).([]any)
	if !ok {
		a.fail("argument %d: want a list of bools, got %v", i, a.arg(i))
		return nil
	}
	out := make([]bool, len(l))
	for j, x := range l {
		if out[j], ok = x.(bool); !ok {
			a.fail("argument %d[%d]: want a bool, got %v", i, j, x)
		}
	}
	return out
}

// scalar reads argument i as a number or a tensor (ATen's Tensor/Scalar
// overloads after tracing): isT says which.
func (a *args) scalar(i int) (t in, v float32, isT bool) {
	if m, ok := a.arg(i).(map[string]any); ok && m["ref"] != nil {
		return a.tensor(i), 0, true
	}
	return in{}, a.float(i), false
}

// meta returns the metadata of tensor argument t.
func (a *args) meta(t in) Meta {
	m, _ := a.g.meta(Ref(t))
	return m
}

// rank returns the rank of tensor argument t.
func (a *args) rank(t in) int { return len(a.meta(t).Shape) }

// in is a tensor input of a kernel: result I of slot Slot.
type in Ref

func (t in) get(s *state) *tensor.Tensor {
	r := s.env[t.Slot]
	if t.I >= len(r) {
		return nil
	}
	return r[t.I]
}
