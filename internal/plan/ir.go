package plan

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// Graph is a plan's source: a partition of an ATen graph in the order its
// nodes run. Value slots number the inputs first (0 to len(Inputs)-1), then
// one slot per node; a node's slot holds its results (one tensor, or the
// elements of a tuple or list).
type Graph struct {
	Inputs  []Meta `json:"inputs"`
	Nodes   []Node `json:"nodes"`
	Outputs []Ref  `json:"outputs"`
}

// Meta describes a tensor: its dtype (PyTorch's name, "float32", "int64",
// "bool", ...), shape and strides in elements. A size of -1 is a symbolic
// dimension (only in graphs given to Check); nil strides mean contiguous.
type Meta struct {
	Dtype   string `json:"dtype"`
	Shape   []int  `json:"shape"`
	Strides []int  `json:"strides,omitempty"`
}

// Node is one ATen operator call: the OpOverload's name as PyTorch prints it
// ("aten.addmm.default"), every schema argument in order (defaults filled
// in), and the metadata of each result.
//
// An argument is a JSON literal (number, bool, string, null, or a list of
// them), a non-finite float {"float": "inf" | "-inf" | "nan"}, or a tensor
// reference {"ref": slot, "i": index}; a list of tensors is a list of
// references.
type Node struct {
	Op   string `json:"op"`
	Args []any  `json:"args"`
	Out  []Meta `json:"out"`
}

// Ref names result I of value slot Slot.
type Ref struct {
	Slot int `json:"ref"`
	I    int `json:"i"`
}

// Parse decodes a graph and checks that every reference points at an
// earlier slot.
func Parse(data []byte) (*Graph, error) {
	var g Graph
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, errs.Wrap(errs.Argument, "plan.Parse", err, "bad graph")
	}
	for i, n := range g.Nodes {
		if err := checkRefs(n.Args, len(g.Inputs)+i); err != nil {
			return nil, errs.Wrap(errs.Argument, "plan.Parse", err, "node %d (%s)", i, n.Op)
		}
	}
	for i, r := range g.Outputs {
		if err := g.checkRef(r, len(g.Inputs)+len(g.Nodes)); err != nil {
			return nil, errs.Wrap(errs.Argument, "plan.Parse", err, "output %d", i)
		}
	}
	return &g, nil
}

// checkRefs checks the references in args against the slots before slot.
func checkRefs(args []any, slot int) error {
	for _, a := range args {
		switch v := a.(type) {
		case map[string]any:
			if _, ok := v["ref"]; !ok {
				continue
			}
			r, err := asRef(v)
			if err != nil {
				return err
			}
			if r.Slot < 0 || r.Slot >= slot || r.I < 0 {
				return fmt.Errorf("reference %d[%d] is not an earlier value", r.Slot, r.I)
			}
		case []any:
			if err := checkRefs(v, slot); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *Graph) checkRef(r Ref, slots int) error {
	if r.Slot < 0 || r.Slot >= slots || r.I < 0 {
		return fmt.Errorf("reference %d[%d] is not a value of the graph", r.Slot, r.I)
	}
	if m, ok := g.meta(r); !ok || m.Dtype == "" {
		return fmt.Errorf("reference %d[%d] has no tensor metadata", r.Slot, r.I)
	}
	return nil
}

// meta returns the metadata of the tensor r names.
func (g *Graph) meta(r Ref) (Meta, bool) {
	if r.Slot < len(g.Inputs) {
		if r.I != 0 {
			return Meta{}, false
		}
		return g.Inputs[r.Slot], true
	}
	n := g.Nodes[r.Slot-len(g.Inputs)]
	if r.I >= len(n.Out) {
		return Meta{}, false
	}
	return n.Out[r.I], true
}

// asRef decodes a tensor reference {"ref": slot, "i": index}.
func asRef(m map[string]any) (Ref, error) {
	s, ok1 := m["ref"].(float64)
	i, ok2 := m["i"].(float64)
	if _, has := m["i"]; !has {
		i, ok2 = 0, true
	}
	if !ok1 || !ok2 || s != float64(int(s)) || i != float64(int(i)) {
		return Ref{}, fmt.Errorf("bad tensor reference %v", m)
	}
	return Ref{Slot: int(s), I: int(i)}, nil
}

// Contiguous returns the strides of a C-contiguous tensor of shape.
func Contiguous(shape []int) []int {
	st := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = acc
		acc *= max(shape[i], 1)
	}
	return st
}

// Extent returns how many elements from the first one a tensor of this
// layout reaches (0 when it has none).
func (m Meta) Extent() int {
	st := m.Strides
	if st == nil {
		st = Contiguous(m.Shape)
	}
	n := 1
	for i, s := range m.Shape {
		if s == 0 {
			return 0
		}
		n += (s - 1) * st[i]
	}
	return n
}

// Numel returns the number of elements.
func (m Meta) Numel() int {
	n := 1
	for _, s := range m.Shape {
		n *= s
	}
	return n
}

// validate checks that m is a concrete layout: sizes and strides not
// negative, one stride per dimension, at most tensor.MaxRank dimensions,
// and an element count that fits an int.
func (m Meta) validate() error {
	if len(m.Shape) > tensor.MaxRank {
		return fmt.Errorf("%d dimensions (at most %d)", len(m.Shape), tensor.MaxRank)
	}
	if m.Strides != nil && len(m.Strides) != len(m.Shape) {
		return fmt.Errorf("%d strides for shape %v", len(m.Strides), m.Shape)
	}
	n := 1
	for i, s := range m.Shape {
		if s < 0 || (m.Strides != nil && m.Strides[i] < 0) {
			return fmt.Errorf("negative size or stride in shape %v strides %v", m.Shape, m.Strides)
		}
		if s > 0 && n > math.MaxInt32/s {
			return fmt.Errorf("shape %v has too many elements", m.Shape)
		}
		n *= s
	}
	if m.Strides != nil && m.Extent() > math.MaxInt32 {
		return fmt.Errorf("strides %v reach too far", m.Strides)
	}
	return nil
}

// equalShape reports whether shape matches m's (symbolic sizes match any).
func (m Meta) equalShape(shape []int) bool {
	return slices.Equal(m.Shape, shape)
}
