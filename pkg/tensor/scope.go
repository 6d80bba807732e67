package tensor

import (
	"sync"
	"sync/atomic"
)

// Scope is the engine state of one unit of work, such as a training run:
// the layout-validation counters of its operations and its grad mode.
//
// A tensor belongs to at most one scope, through its storage, so views
// share it. An operation counts its layout checks in the scope of its first
// input that has one, and its output joins that scope. A run adopts its
// parameters ([Scope.Adopt]); activations, gradients and views made from
// them follow. Operations on tensors in no scope are not counted and always
// record graphs. Two runs in one process have separate scopes and never see
// each other's counters or grad mode, whichever goroutines run them.
type Scope struct {
	counts [maxOps]opCount
	noGrad atomic.Int32
	arena  atomic.Pointer[Arena] // storages of new tensors; nil: fresh memory
}

// opCount holds one operation's counters in one scope; its methods do
// nothing on nil (an operation in no scope).
type opCount struct{ checks, failures atomic.Uint64 }

func (c *opCount) check() {
	if c != nil {
		c.checks.Add(1)
	}
}

func (c *opCount) fail() {
	if c != nil {
		c.failures.Add(1)
	}
}

// OpStats counts the layout validations of one operation.
type OpStats struct {
	Checks   uint64 `json:"checks"`   // inputs validated
	Failures uint64 `json:"failures"` // inputs rejected
}

// NewScope returns an empty scope with recording on.
func NewScope() *Scope { return &Scope{} }

// Adopt makes every tensor in ts (and every view of its storage) belong to
// s. Call it before the tensors are shared with other goroutines.
func (s *Scope) Adopt(ts ...*Tensor) {
	for _, t := range ts {
		if t != nil && t.storage != nil {
			t.storage.scope = s
		}
	}
}

// Scope returns the scope t belongs to, or nil.
func (t *Tensor) Scope() *Scope {
	if t == nil || t.storage == nil {
		return nil
	}
	return t.storage.scope
}

// scopeOf returns the scope of the first of ts that has one, or nil: the
// scope an operation on ts counts in and puts its output in.
func scopeOf(ts ...*Tensor) *Scope {
	for _, t := range ts {
		if s := t.Scope(); s != nil {
			return s
		}
	}
	return nil
}

// NoGrad runs fn with graph recording off for operations in s, from any
// goroutine, and returns fn's error. Scopes nest; on a nil scope fn runs
// with recording unchanged.
func (s *Scope) NoGrad(fn func() error) error {
	if s == nil {
		return fn()
	}
	s.noGrad.Add(1)
	defer s.noGrad.Add(-1)
	return fn()
}

// GradEnabled reports whether operations in s record graphs: true outside
// [Scope.NoGrad], and always for the nil scope.
func (s *Scope) GradEnabled() bool { return s == nil || s.noGrad.Load() == 0 }

// LayoutStats returns a snapshot of the layout-validation counters of every
// operation that has run at least one check in s.
func (s *Scope) LayoutStats() map[string]OpStats {
	out := make(map[string]OpStats)
	if s == nil {
		return out
	}
	for id, name := range opNames() {
		c := &s.counts[id]
		if n := c.checks.Load(); n > 0 {
			out[name] = OpStats{Checks: n, Failures: c.failures.Load()}
		}
	}
	return out
}

// counter returns op's counters in s, nil for the nil scope.
func (s *Scope) counter(op *opStat) *opCount {
	if s == nil {
		return nil
	}
	return &s.counts[op.id]
}

// maxOps bounds the operation names a scope counts; names past it share
// the last slot, "other".
const maxOps = 512

// opStat names an operation whose layout checks scopes count.
type opStat struct {
	name string
	id   int // index into Scope.counts
}

// ops registers operation names once; lookups are lock-free.
var ops struct {
	byName sync.Map // name -> *opStat
	mu     sync.Mutex
	names  []string // by id
}

// stat returns the descriptor of the named operation, registering it once.
func stat(name string) *opStat {
	if s, ok := ops.byName.Load(name); ok {
		return s.(*opStat)
	}
	ops.mu.Lock()
	defer ops.mu.Unlock()
	if s, ok := ops.byName.Load(name); ok {
		return s.(*opStat)
	}
	id := len(ops.names)
	if id == maxOps-1 {
		ops.names = append(ops.names, "other")
	}
	if id >= maxOps-1 {
		return &opStat{name: name, id: maxOps - 1}
	}
	ops.names = append(ops.names, name)
	s := &opStat{name: name, id: id}
	ops.byName.Store(name, s)
	return s
}

// opNames returns the registered names, by id.
func opNames() []string {
	ops.mu.Lock()
	defer ops.mu.Unlock()
	return ops.names[:len(ops.names):len(ops.names)]
}
