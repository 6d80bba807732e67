package autograd

import (
	"container/heap"
	"fmt"
	"sync"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// BackwardOptions configures a backward pass.
type BackwardOptions struct {
	// Grad is the gradient of the output; nil means 1 for a one-element
	// output and is an error otherwise.
	Grad *tensor.Tensor
	// Workers is the number of goroutines that run backward nodes; 0 or 1
	// runs them sequentially on the calling goroutine.
	Workers int
}

// Backward computes the gradient of v (which must hold one element) with
// respect to every leaf that requires grad, accumulating into their Grad.
func (v *Variable) Backward() error { return v.BackwardWith(BackwardOptions{}) }

// BackwardWith runs a backward pass from v with the given options.
func (v *Variable) BackwardWith(opt BackwardOptions) error {
	const op = "backward"
	if v == nil || v.Data == nil {
		return errs.New(errs.Argument, op, "nil variable")
	}
	if !v.requiresGrad {
		return errs.New(errs.Argument, op, "variable does not require grad and has no grad_fn")
	}
	g := opt.Grad
	if g == nil {
		if v.Data.Numel() != 1 {
			return errs.New(errs.Shape, op, "grad can be implicitly created only for one-element outputs, got shape %v", v.Data.Shape())
		}
		var err error
		if g, err = tensor.Full(1, v.Data.Shape()...); err != nil {
			return err
		}
		v.Data.Scope().Adopt(g)
	} else if !tensor.EqualShape(g.Shape(), v.Data.Shape()) {
		return errs.New(errs.Shape, op, "gradient of shape %v for an output of shape %v", g.Shape(), v.Data.Shape())
	}
	if err := tensor.ValidateLayout(op, g); err != nil {
		return err
	}
	workers := max(opt.Workers, 1)
	p := plan(v)
	p.slots[v][0] = g
	p.pending[v] = 0
	p.push(v)
	return p.run(workers)
}

// pass is the state of one backward pass. Every variable reached from the
// root that requires grad is a task: a non-leaf runs its node's backward, a
// leaf accumulates into Grad.
type pass struct {
	mu      sync.Mutex
	cond    *sync.Cond
	slots   map[*Variable][]*tensor.Tensor // incoming gradient per edge, in edge order
	pending map[*Variable]int              // edges still to deliver
	edge    map[*node][]int                // for each node input, its slot in the input's list
	fresh   map[*tensor.Tensor]bool        // delivered gradients no one else shares (node.fresh)
	ready   readyHeap
	left    int // tasks not yet finished
	err     error
}

// plan discovers the graph below root and numbers its edges. Discovery is
// a deterministic depth-first walk, so slot order (and therefore the order
// in which gradients are summed) does not depend on scheduling.
func plan(root *Variable) *pass {
	p := &pass{
		slots:   map[*Variable][]*tensor.Tensor{root: {nil}},
		pending: map[*Variable]int{},
		edge:    map[*node][]int{},
		fresh:   map[*tensor.Tensor]bool{},
	}
	p.cond = sync.NewCond(&p.mu)
	seen := map[*Variable]bool{root: true}
	stack := []*Variable{root}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p.left++
		if v.node == nil {
			continue
		}
		idx := make([]int, len(v.node.inputs))
		for i, in := range v.node.inputs {
			if in == nil {
				idx[i] = -1
				continue
			}
			idx[i] = len(p.slots[in])
			p.slots[in] = append(p.slots[in], nil)
			p.pending[in]++
			if !seen[in] {
				seen[in] = true
				stack = append(stack, in)
			}
		}
		p.edge[v.node] = idx
	}
	return p
}

func (p *pass) push(v *Variable) { heap.Push(&p.ready, v) }

// run executes tasks until all are done or one fails.
func (p *pass) run(workers int) error {
	if workers == 1 {
		for p.ready.Len() > 0 && p.err == nil {
			p.exec(heap.Pop(&p.ready).(*Variable))
		}
		return p.err
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.mu.Lock()
			defer p.mu.Unlock()
			for {
				for p.ready.Len() == 0 && p.err == nil && p.left > 0 {
					p.cond.Wait()
				}
				if p.err != nil || p.left == 0 {
					return
				}
				v := heap.Pop(&p.ready).(*Variable)
				p.mu.Unlock()
				p.exec(v)
				p.mu.Lock()
			}
		}()
	}
	wg.Wait()
	return p.err
}

// exec runs one task: sums its slots in edge order, then either
// accumulates into a leaf or runs the node's backward and delivers the
// results. In parallel mode it is called without p.mu held.
func (p *pass) exec(v *Variable) {
	err := p.execTask(v)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil && p.err == nil {
		p.err = err
	}
	p.left--
	p.cond.Broadcast()
}

func (p *pass) execTask(v *Variable) (err error) {
	defer func() {
		if r := recover(); r != nil {
			op := "leaf"
			if v.node != nil {
				op = v.node.op
			}
			err = errs.New(errs.Internal, "backward", "%s backward panicked: %v", op, r)
		}
	}()
	p.mu.Lock()
	slots := p.slots[v]
	delete(p.slots, v)
	// A sum of several slots is a new tensor; a single slot is unshared
	// when a fresh node delivered it.
	owned := len(slots) > 1 || p.fresh[slots[0]]
	for _, s := range slots {
		delete(p.fresh, s)
	}
	p.mu.Unlock()
	g, err := sumSlots(slots)
	if err != nil {
		return err
	}
	if v.node == nil {
		return accumulate(v, g, owned)
	}
	grads, err := v.node.backward(g)
	if err != nil {
		return errs.Wrap(errs.KindOf(err), v.node.op+".backward", err, "")
	}
	if len(grads) != len(v.node.inputs) {
		return errs.New(errs.Internal, v.node.op+".backward", "returned %d gradients for %d inputs", len(grads), len(v.node.inputs))
	}
	idx := p.edge[v.node]
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, in := range v.node.inputs {
		if in == nil {
			continue
		}
		gi := grads[i]
		if gi == nil {
			return errs.New(errs.Internal, v.node.op+".backward", "no gradient for input %d", i)
		}
		if !tensor.EqualShape(gi.Shape(), in.Data.Shape()) {
			return errs.New(errs.Internal, v.node.op+".backward", "gradient of shape %v for input %d of shape %v", gi.Shape(), i, in.Data.Shape())
		}
		p.slots[in][idx[i]] = gi
		if v.node.fresh {
			p.fresh[gi] = true
		}
		if p.pending[in]--; p.pending[in] == 0 {
			p.push(in)
		}
	}
	return nil
}

// sumSlots adds the gradients of every edge in slot order.
func sumSlots(slots []*tensor.Tensor) (*tensor.Tensor, error) {
	g := slots[0]
	for _, s := range slots[1:] {
		var err error
		if g, err = tensor.Add(g, s); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// accumulate adds g into leaf v's Grad, keeping Grad contiguous and owned:
// the first gradient is copied unless owned says nothing else shares it
// and it is a whole contiguous storage, in which case it is kept.
func accumulate(v *Variable, g *tensor.Tensor, owned bool) error {
	var err error
	if v.Grad == nil {
		if owned && g.IsContiguous() && g.Offset() == 0 && g.Storage().Len() == g.Numel() {
			v.Grad = g
			return nil
		}
		v.Grad, err = g.Clone()
		return err
	}
	if !tensor.EqualShape(v.Grad.Shape(), g.Shape()) {
		return errs.New(errs.Shape, "backward", "existing grad of shape %v cannot accumulate a gradient of shape %v", v.Grad.Shape(), g.Shape())
	}
	v.Grad, err = tensor.Add(v.Grad, g)
	return err
}

// readyHeap orders ready tasks by the creation order of their node, most
// recent first (leaves last), as PyTorch does; this keeps memory low.
type readyHeap []*Variable

func (h readyHeap) Len() int { return len(h) }
func (h readyHeap) Less(i, j int) bool {
	return key(h[i]) > key(h[j])
}
func (h readyHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *readyHeap) Push(x any)   { *h = append(*h, x.(*Variable)) }
func (h *readyHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

func key(v *Variable) uint64 {
	if v.node == nil {
		return 0
	}
	return v.node.seq
}

func (n *node) String() string { return fmt.Sprintf("%s#%d", n.op, n.seq) }
