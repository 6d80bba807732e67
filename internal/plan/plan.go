package plan

import (
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// Plan is a compiled graph: one kernel per node, arguments decoded and
// checked once, run on fresh inputs as often as needed. A Plan holds no
// tensors between runs and may be run by several goroutines at once.
type Plan struct {
	inputs  []Meta
	outputs []Meta
	outRefs []Ref
	steps   []step
	slots   int
	random  bool
	// arenas holds the scopes of RunWith, each with a tensor.Arena that
	// keeps the storages of one run for the next (one per concurrent run).
	arenas sync.Pool
}

// arenaScope is a scope whose operations allocate from its arena.
type arenaScope struct {
	scope *tensor.Scope
	arena *tensor.Arena
}

// step runs one node into its slot and then drops the slots whose last
// reader it was.
type step struct {
	op   string
	run  kernel
	slot int
	free []int
}

// kernel computes a node's results.
type kernel func(s *state) ([]*tensor.Tensor, error)

// state is one run's values.
type state struct {
	env  [][]*tensor.Tensor
	seed uint64
	r    *tensor.RNG
}

// rng returns the run's random number generator, seeded on first use.
func (s *state) rng() *tensor.RNG {
	if s.r == nil {
		s.r = tensor.NewRNG(s.seed)
	}
	return s.r
}

// Ops returns the names of the ATen operators plans support, sorted.
func Ops() []string {
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Check reports, per node of g, why a plan cannot run it ("" when it can):
// an unknown operator, a dtype gorch does not compute in, or an argument
// value the engine lacks (a dilated convolution, say). Shapes may be
// symbolic (-1): Check looks at dtypes, ranks and constant arguments only.
func Check(g *Graph) []string {
	reasons := make([]string, len(g.Nodes))
	for i, n := range g.Nodes {
		if _, err := buildNode(g, n); err != nil {
			reasons[i] = err.Error()
		}
	}
	return reasons
}

// Compile builds the plan of g, whose input and output metadata are
// concrete. It fails on the first node Check would refuse.
func Compile(g *Graph) (*Plan, error) {
	const op = "plan.Compile"
	for i, m := range g.Inputs {
		if err := m.validate(); err != nil {
			return nil, errs.New(errs.Argument, op, "input %d: %v", i, err)
		}
		if err := checkDtype(m.Dtype, true); err != nil {
			return nil, errs.New(errs.Unsupported, op, "input %d: %v", i, err)
		}
	}
	p := &Plan{inputs: g.Inputs, slots: len(g.Inputs) + len(g.Nodes), outRefs: g.Outputs}
	for i, n := range g.Nodes {
		k, err := buildNode(g, n)
		if err != nil {
			return nil, errs.New(errs.Unsupported, op, "node %d (%s): %v", i, n.Op, err)
		}
		p.steps = append(p.steps, step{op: n.Op, run: k, slot: len(g.Inputs) + i})
		p.random = p.random || registry[n.Op].random
	}
	for _, r := range g.Outputs {
		if err := g.checkRef(r, p.slots); err != nil {
			return nil, errs.New(errs.Argument, op, "%v", err)
		}
		m, _ := g.meta(r)
		if err := m.validate(); err != nil {
			return nil, errs.New(errs.Argument, op, "output %v: %v", r, err)
		}
		if err := checkDtype(m.Dtype, true); err != nil {
			return nil, errs.New(errs.Unsupported, op, "output %v: %v", r, err)
		}
		p.outputs = append(p.outputs, m)
	}
	p.planFrees(g)
	return p, nil
}

// planFrees lets each step drop the values no later step or output reads,
// so a run holds only live activations.
func (p *Plan) planFrees(g *Graph) {
	last := make([]int, p.slots) // index of the last step reading a slot; -1: none
	for i := range last {
		last[i] = -1
	}
	for i, n := range g.Nodes {
		forRefs(n.Args, func(r Ref) { last[r.Slot] = i })
	}
	for _, r := range g.Outputs {
		last[r.Slot] = len(g.Nodes)
	}
	for slot, i := range last {
		if i >= 0 && i < len(p.steps) {
			p.steps[i].free = append(p.steps[i].free, slot)
		}
	}
}

func forRefs(args []any, f func(Ref)) {
	for _, a := range args {
		switch v := a.(type) {
		case map[string]any:
			if _, isRef := v["ref"]; !isRef {
				continue
			}
			if r, err := asRef(v); err == nil {
				f(r)
			}
		case []any:
			forRefs(v, f)
		}
	}
}

// Inputs returns the metadata of the plan's inputs.
func (p *Plan) Inputs() []Meta { return p.inputs }

// Outputs returns the metadata of the plan's outputs.
func (p *Plan) Outputs() []Meta { return p.outputs }

// Random reports whether the plan draws random numbers (dropout), so a
// caller passes a fresh seed to each run.
func (p *Plan) Random() bool { return p.random }

// Run executes the plan on inputs, whose shapes must be the plan's, and
// returns its outputs, of the declared shapes (not necessarily their
// strides). seed seeds the random operators.
func (p *Plan) Run(inputs []*tensor.Tensor, seed uint64) ([]*tensor.Tensor, error) {
	return p.run(inputs, seed)
}

// RunWith executes the plan like Run and hands its outputs to consume,
// which must be done with them when it returns: the run's intermediate
// tensors and outputs live in storages the plan recycles for the next run
// (a tensor.Arena), so a plan run repeatedly allocates nothing after its
// first runs and leaves no garbage. The inputs join the run's tensor scope
// (tensor.Scope.Adopt) for the duration; pass tensors made for this call.
// RunWith returns consume's error.
func (p *Plan) RunWith(inputs []*tensor.Tensor, seed uint64, consume func(outs []*tensor.Tensor) error) error {
	as, _ := p.arenas.Get().(*arenaScope)
	if as == nil {
		as = &arenaScope{scope: tensor.NewScope(), arena: tensor.NewArena()}
		as.scope.SetArena(as.arena)
	}
	defer p.arenas.Put(as)
	as.arena.Reset()
	as.scope.Adopt(inputs...)
	outs, err := p.run(inputs, seed)
	if err != nil {
		return err
	}
	return consume(outs)
}

func (p *Plan) run(inputs []*tensor.Tensor, seed uint64) ([]*tensor.Tensor, error) {
	const op = "plan.Run"
	if len(inputs) != len(p.inputs) {
		return nil, errs.New(errs.Argument, op, "%d inputs; the plan takes %d", len(inputs), len(p.inputs))
	}
	s := &state{env: make([][]*tensor.Tensor, p.slots), seed: seed}
	for i, t := range inputs {
		if t == nil || !slices.Equal(t.Shape(), p.inputs[i].Shape) {
			return nil, errs.New(errs.Shape, op, "input %d: shape %v; the plan takes %v", i, shapeOf(t), p.inputs[i].Shape)
		}
		s.env[i] = []*tensor.Tensor{t}
	}
	for i, st := range p.steps {
		r, err := st.run(s)
		if err != nil {
			return nil, errs.Wrap(errs.KindOf(err), op, err, "node %d (%s)", i, st.op)
		}
		s.env[st.slot] = r
		for _, slot := range st.free {
			s.env[slot] = nil
		}
	}
	outs := make([]*tensor.Tensor, len(p.outRefs))
	for j, ref := range p.outRefs {
		outs[j] = in(ref).get(s)
	}
	for j, t := range outs {
		if t == nil || !p.outputs[j].equalShape(t.Shape()) {
			return nil, errs.New(errs.Shape, op, "output %d: shape %v; the graph declares %v", j, shapeOf(t), p.outputs[j].Shape)
		}
	}
	return outs, nil
}

func shapeOf(t *tensor.Tensor) any {
	if t == nil {
		return "none"
	}
	return t.Shape()
}

// buildNode checks node n's dtypes and builds its kernel.
func buildNode(g *Graph, n Node) (kernel, error) {
	spec, ok := registry[n.Op]
	if !ok {
		return nil, fmt.Errorf("operator %s is not implemented by gorch", n.Op)
	}
	if err := spec.checkDtypes(g, n); err != nil {
		return nil, err
	}
	a := &args{g: g, node: n}
	k := spec.build(a)
	if a.err != nil {
		return nil, a.err
	}
	return k, nil
}

// checkDtypes refuses tensors gorch does not compute in: only float32 data,
// and integer or bool tensors where the operator takes indices or masks.
func (o opSpec) checkDtypes(g *Graph, n Node) error {
	for i, a := range n.Args {
		var err error
		forRefs([]any{a}, func(r Ref) {
			if m, ok := g.meta(r); !ok {
				err = fmt.Errorf("argument %d: reference %d[%d] has no tensor metadata", i, r.Slot, r.I)
			} else if e := checkDtype(m.Dtype, o.anyType || slices.Contains(o.ints, i)); e != nil && err == nil {
				err = fmt.Errorf("argument %d: %v", i, e)
			}
		})
		if err != nil {
			return err
		}
	}
	for i, m := range n.Out {
		if m.Dtype == "" { // no tensor here (an output_mask left it out)
			continue
		}
		if err := checkDtype(m.Dtype, o.anyType || slices.Contains(o.intOuts, i)); err != nil {
			return fmt.Errorf("result %d: %v", i, err)
		}
	}
	return nil
}

// integerDtypes are the dtypes a plan converts to float32 on input (exact
// up to 2^24) and back on output.
var integerDtypes = map[string]bool{"int64": true, "int32": true, "int16": true, "int8": true, "uint8": true, "bool": true}

func checkDtype(d string, intOK bool) error {
	switch {
	case d == "float32":
		return nil
	case integerDtypes[d] && intOK:
		return nil
	case integerDtypes[d]:
		return fmt.Errorf("%s tensor where gorch takes float32", d)
	}
	return fmt.Errorf("%s tensors are not supported (gorch computes in float32)", d)
}

// IsInteger reports whether tensors of dtype d are integers or bools, which
// a plan holds as float32.
func IsInteger(d string) bool { return integerDtypes[d] }
