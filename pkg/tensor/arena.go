package tensor

import (
	"math"
	"os"
	"sync"
)

// EnvArenaPoison names the environment variable that, set to 1, makes
// [Arena.Reset] fill every storage it takes back with NaN, so a tensor kept
// past the end of its step shows up as NaN instead of silently changing.
const EnvArenaPoison = "GORCH_ARENA_POISON"

// Arena recycles the storages of the tensors that operations create in a
// scope, step after step, in place of fresh (zeroed, garbage-collected)
// memory. A training loop attaches one to its scope ([Scope.SetArena]) and
// calls [Arena.Reset] at the start of every step: the storages handed out
// since the previous Reset (activations, intermediate gradients, the
// parameters' Grad) become free, and the next step's operations take them
// again by length. Operations that overwrite every element of their output
// (matrix products, element-wise and linear ops, Clone) take them without
// clearing; the others clear them, as fresh memory would be.
//
// The contract is PyTorch's zero_grad(set_to_none=True) extended to every
// intermediate tensor: nothing an operation in the scope created may be
// used after the next Reset. Parameters, optimizer state, tensors made by
// constructors (Zeros, New, Randn) and tensors adopted into the scope are
// not arena memory and are never recycled. Storages left unused through a
// whole step are dropped at the next Reset, so an arena holds at most about
// two steps' worth of memory whatever the shapes.
//
// An Arena is safe for concurrent use (a parallel backward pass allocates
// from several goroutines); Reset must not run concurrently with the step.
type Arena struct {
	mu     sync.Mutex
	free   map[int][][]float32 // by length, taken back by the last Reset
	used   [][]float32         // handed out since the last Reset
	poison bool
}

// NewArena returns an empty arena. With GORCH_ARENA_POISON=1 in the
// environment its Reset fills recycled storages with NaN.
func NewArena() *Arena {
	return &Arena{free: map[int][][]float32{}, poison: os.Getenv(EnvArenaPoison) == "1"}
}

// Reset makes every storage handed out since the previous Reset free for
// reuse; tensors on them must no longer be used.
func (a *Arena) Reset() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.free) // what the last step did not take again
	nan := float32(math.NaN())
	for i, d := range a.used {
		if a.poison {
			for j := range d {
				d[j] = nan
			}
		}
		a.free[len(d)] = append(a.free[len(d)], d)
		a.used[i] = nil
	}
	a.used = a.used[:0]
}

// get returns a storage of n elements, recycled when one of that length is
// free; zero clears a recycled one (fresh memory is already zero).
func (a *Arena) get(n int, zero bool) []float32 {
	a.mu.Lock()
	var d []float32
	if l := a.free[n]; len(l) > 0 {
		d = l[len(l)-1]
		l[len(l)-1] = nil
		a.free[n] = l[:len(l)-1]
	}
	fresh := d == nil
	if fresh {
		d = make([]float32, n)
	}
	a.used = append(a.used, d)
	a.mu.Unlock()
	if zero && !fresh {
		clear(d)
	}
	return d
}

// SetArena makes operations in s take their outputs' storages from a (nil:
// fresh memory) and returns the previous arena.
func (s *Scope) SetArena(a *Arena) (prev *Arena) { return s.arena.Swap(a) }

// alloc returns the storage of a new n-element tensor in scope sc: from
// sc's arena when it has one, else fresh. zero asks for zeroed elements;
// without it the caller must write every element.
func alloc(sc *Scope, n int, zero bool) []float32 {
	if sc != nil {
		if a := sc.arena.Load(); a != nil {
			return a.get(n, zero)
		}
	}
	return make([]float32, n)
}
