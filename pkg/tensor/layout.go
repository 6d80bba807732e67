package tensor

import (
	"fmt"
	"math"

	"github.com/gorch/gorch/pkg/errs"
)

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
// checks and failures in the scope of the inputs (see [Scope]).
func check(s *opStat, ts ...*Tensor) error {
	c := scopeOf(ts...).counter(s)
	for i, t := range ts {
		c.check()
		if t == nil {
			c.fail()
			return errs.New(errs.Argument, s.name, "input %d is nil", i)
		}
		if err := t.validLayout(); err != nil {
			c.fail()
			return &errs.TorchError{Kind: errs.Layout, Op: s.name, Msg: fmt.Sprintf("input %d: %v", i, err)}
		}
	}
	return nil
}

// ValidateLayout runs the general strided check on t, counted under op in
// t's scope.
func ValidateLayout(op string, t *Tensor) error { return check(stat(op), t) }
