package tensor

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/gorch/gorch/pkg/errs"
)

// OpStats counts the layout validations of one operation.
type OpStats struct {
	Checks   uint64 `json:"checks"`   // inputs validated
	Failures uint64 `json:"failures"` // inputs rejected
}

type opStat struct {
	name     string
	checks   atomic.Uint64
	failures atomic.Uint64
}

var (
	statsMu sync.Mutex
	stats   = map[string]*opStat{}
)

// stat returns the counters of the named operation, creating them once.
func stat(name string) *opStat {
	statsMu.Lock()
	defer statsMu.Unlock()
	s, ok := stats[name]
	if !ok {
		s = &opStat{name: name}
		stats[name] = s
	}
	return s
}

// LayoutStats returns a snapshot of the layout-validation counters of every
// operation that has run at least one check since the last reset.
func LayoutStats() map[string]OpStats {
	statsMu.Lock()
	defer statsMu.Unlock()
	out := make(map[string]OpStats)
	for name, s := range stats {
		c := s.checks.Load()
		if c == 0 {
			continue
		}
		out[name] = OpStats{Checks: c, Failures: s.failures.Load()}
	}
	return out
}

// LayoutStatsTotal sums a snapshot of the counters.
func LayoutStatsTotal(m map[string]OpStats) OpStats {
	var t OpStats
	for _, s := range m {
		t.Checks += s.Checks
		t.Failures += s.Failures
	}
	return t
}

// ResetLayoutStats sets every layout-validation counter to zero.
func ResetLayoutStats() {
	statsMu.Lock()
	defer statsMu.Unlock()
	for _, s := range stats {
		s.checks.Store(0)
		s.failures.Store(0)
	}
}

// layoutOpNames lists the operations with counters, sorted (for tests).
func layoutOpNames() []string {
	statsMu.Lock()
	defer statsMu.Unlock()
	names := make([]string, 0, len(stats))
	for n := range stats {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// validLayout is the general strided check: rank, sizes, strides, element
// count and bounds of every reachable element.
func (t *Tensor) validLayout() error {
	if t.storage == nil {
		return fmt.Errorf("tensor has no storage")
	}
	r := len(t.shape)
	if r > MaxRank {
		return fmt.Errorf("rank %d exceeds the maximum %d", r, MaxRank)
	}
	if len(t.strides) != r {
		return fmt.Errorf("shape %v and strides %v differ in rank", t.shape, t.strides)
	}
	if t.offset < 0 {
		return fmt.Errorf("negative offset %d", t.offset)
	}
	empty := false
	for i := 0; i < r; i++ {
		if t.shape[i] < 0 {
			return fmt.Errorf("negative size %d in dimension %d of shape %v", t.shape[i], i, t.shape)
		}
		if t.strides[i] < 0 {
			return fmt.Errorf("negative stride %d in dimension %d", t.strides[i], i)
		}
		empty = empty || t.shape[i] == 0
	}
	if empty {
		if t.offset > len(t.storage.data) {
			return fmt.Errorf("offset %d is past the end of a storage of %d", t.offset, len(t.storage.data))
		}
		return nil // no reachable elements
	}
	n := 1
	last := t.offset // largest reachable storage index
	for i := 0; i < r; i++ {
		d, s := t.shape[i], t.strides[i]
		if n > math.MaxInt64/d {
			return fmt.Errorf("element count of shape %v overflows", t.shape)
		}
		n *= d
		if s != 0 && d-1 > (math.MaxInt64-last)/s {
			return fmt.Errorf("reachable index of shape %v, strides %v overflows", t.shape, t.strides)
		}
		last += (d - 1) * s
	}
	if last >= len(t.storage.data) {
		return fmt.Errorf("shape %v, strides %v, offset %d reach element %d of a storage of %d",
			t.shape, t.strides, t.offset, last, len(t.storage.data))
	}
	return nil
}

// check validates the layout of every input of an operation, counting the
// checks and failures under the operation's name.
func check(s *opStat, ts ...*Tensor) error {
	for i, t := range ts {
		s.checks.Add(1)
		if t == nil {
			s.failures.Add(1)
			return errs.New(errs.Argument, s.name, "input %d is nil", i)
		}
		if err := t.validLayout(); err != nil {
			s.failures.Add(1)
			return &errs.TorchError{Kind: errs.Layout, Op: s.name, Msg: fmt.Sprintf("input %d: %v", i, err)}
		}
	}
	return nil
}

// ValidateLayout runs the general strided check on t, counted under op.
func ValidateLayout(op string, t *Tensor) error { return check(stat(op), t) }
