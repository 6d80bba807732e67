package tensor

import (
	"github.com/gorch/gorch/pkg/errs"
)

var (
	statItem       = stat("item")
	statAt         = stat("at")
	statView       = stat("view")
	statReshape    = stat("reshape")
	statTranspose  = stat("transpose")
	statPermute    = stat("permute")
	statNarrow     = stat("narrow")
	statSlice      = stat("slice")
	statSelect     = stat("select")
	statExpand     = stat("expand")
	statSqueeze    = stat("squeeze")
	statUnsqueeze  = stat("unsqueeze")
	statFlatten    = stat("flatten")
	statContiguous = stat("contiguous")
	statClone      = stat("clone")
)

func (t *Tensor) view(shape, strides []int, offset int) *Tensor {
	return &Tensor{storage: t.storage, shape: shape, strides: strides, offset: offset}
}

// inferShape resolves a single -1 in shape against numel.
func inferShape(op string, shape []int, numel int) ([]int, error) {
	out := append([]int(nil), shape...)
	infer := -1
	n := 1
	for i, d := range out {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, errs.New(errs.Argument, op, "only one dimension can be inferred in shape %v", shape)
			}
			infer = i
		case d < 0:
			return nil, errs.New(errs.Argument, op, "invalid size %d in shape %v", d, shape)
		default:
			n *= d
		}
	}
	if infer >= 0 {
		if n == 0 || numel%n != 0 {
			return nil, errs.New(errs.Shape, op, "shape %v is invalid for input of size %d", shape, numel)
		}
		out[infer] = numel / n
		n = numel
	}
	if n != numel {
		return nil, errs.New(errs.Shape, op, "shape %v is invalid for input of size %d", shape, numel)
	}
	if _, err := checkShape(op, out); err != nil {
		return nil, err
	}
	return out, nil
}

// viewStrides computes strides that let a tensor of oldShape/oldStrides be
// viewed as newShape without copying, as PyTorch's computeStride does. It
// returns nil if no such strides exist.
func viewStrides(oldShape, oldStrides, newShape []int) []int {
	newStrides := make([]int, len(newShape))
	numel := 1
	for _, d := range oldShape {
		numel *= d
	}
	if numel == 0 {
		if EqualShape(oldShape, newShape) {
			return append([]int(nil), oldStrides...)
		}
		return contiguousStrides(newShape)
	}
	viewD := len(newShape) - 1
	chunkBase := 0
	if len(oldStrides) > 0 {
		chunkBase = oldStrides[len(oldStrides)-1]
	}
	tensorNumel, viewNumel := 1, 1
	for d := len(oldShape) - 1; d >= 0; d-- {
		tensorNumel *= oldShape[d]
		if d == 0 || (oldShape[d-1] != 1 && oldStrides[d-1] != tensorNumel*chunkBase) {
			for viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] == 1) {
				newStrides[viewD] = viewNumel * chunkBase
				viewNumel *= newShape[viewD]
				viewD--
			}
			if viewNumel != tensorNumel {
				return nil
			}
			if d > 0 {
				chunkBase = oldStrides[d-1]
				tensorNumel, viewNumel = 1, 1
			}
		}
	}
	if viewD != -1 {
		return nil
	}
	return newStrides
}

// View returns a tensor with the given shape sharing t's storage. One size
// may be -1 and is inferred. It fails if t's strides do not allow the view;
// use Reshape, which copies in that case.
func (t *Tensor) View(shape ...int) (*Tensor, error) {
	if err := check(statView, t); err != nil {
		return nil, err
	}
	ns, err := inferShape("view", shape, t.Numel())
	if err != nil {
		return nil, err
	}
	st := viewStrides(t.shape, t.strides, ns)
	if st == nil {
		return nil, errs.New(errs.Layout, "view", "size %v is not compatible with strides %v of shape %v; use Reshape", ns, t.strides, t.shape)
	}
	return t.view(ns, st, t.offset), nil
}

// Reshape returns t with the given shape: a view when t's strides allow it,
// a contiguous copy otherwise. One size may be -1 and is inferred.
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	if err := check(statReshape, t); err != nil {
		return nil, err
	}
	ns, err := inferShape("reshape", shape, t.Numel())
	if err != nil {
		return nil, err
	}
	if st := viewStrides(t.shape, t.strides, ns); st != nil {
		return t.view(ns, st, t.offset), nil
	}
	return fromData(t.Scope(), t.copyData(), ns), nil
}

// Transpose returns a view with dimensions d0 and d1 swapped.
func (t *Tensor) Transpose(d0, d1 int) (*Tensor, error) {
	if err := check(statTranspose, t); err != nil {
		return nil, err
	}
	r := len(t.shape)
	a, err := normDim("transpose", d0, r)
	if err != nil {
		return nil, err
	}
	b, err := normDim("transpose", d1, r)
	if err != nil {
		return nil, err
	}
	sh, st := t.Shape(), t.Strides()
	sh[a], sh[b] = sh[b], sh[a]
	st[a], st[b] = st[b], st[a]
	return t.view(sh, st, t.offset), nil
}

// T returns the transpose of a tensor of at most 2 dimensions.
func (t *Tensor) T() (*Tensor, error) {
	if t != nil && len(t.shape) > 2 {
		return nil, errs.New(errs.Argument, "t", "expects a tensor of at most 2 dimensions, got shape %v", t.shape)
	}
	if t != nil && len(t.shape) < 2 {
		if err := check(statTranspose, t); err != nil {
			return nil, err
		}
		return t.view(t.Shape(), t.Strides(), t.offset), nil
	}
	return t.Transpose(0, 1)
}

// Permute returns a view with the dimensions reordered: dimension i of the
// result is dimension dims[i] of t.
func (t *Tensor) Permute(dims ...int) (*Tensor, error) {
	if err := check(statPermute, t); err != nil {
		return nil, err
	}
	r := len(t.shape)
	if len(dims) != r {
		return nil, errs.New(errs.Argument, "permute", "%d dimensions %v for a tensor of shape %v", len(dims), dims, t.shape)
	}
	seen := make([]bool, r)
	sh, st := make([]int, r), make([]int, r)
	for i, d := range dims {
		nd, err := normDim("permute", d, r)
		if err != nil {
			return nil, err
		}
		if seen[nd] {
			return nil, errs.New(errs.Argument, "permute", "dimension %d repeats in %v", d, dims)
		}
		seen[nd] = true
		sh[i], st[i] = t.shape[nd], t.strides[nd]
	}
	return t.view(sh, st, t.offset), nil
}

// Narrow returns a view of length elements of dimension dim starting at start.
func (t *Tensor) Narrow(dim, start, length int) (*Tensor, error) {
	if err := check(statNarrow, t); err != nil {
		return nil, err
	}
	d, err := normDim("narrow", dim, len(t.shape))
	if err != nil {
		return nil, err
	}
	size := t.shape[d]
	if start < 0 {
		start += size
	}
	if start < 0 || length < 0 || start > size || length > size-start {
		return nil, errs.New(errs.Argument, "narrow", "start %d, length %d out of range for dimension %d of size %d", start, length, d, size)
	}
	sh := t.Shape()
	sh[d] = length
	off := t.offset
	if length > 0 {
		off += start * t.strides[d]
	}
	return t.view(sh, t.Strides(), off), nil
}

// Slice returns a view of elements start, start+step, ... (before end) of
// dimension dim, like t[..., start:end:step] in Python. Negative start and
// end count from the end; out-of-range bounds are clamped; step must be
// positive.
func (t *Tensor) Slice(dim, start, end, step int) (*Tensor, error) {
	if err := check(statSlice, t); err != nil {
		return nil, err
	}
	d, err := normDim("slice", dim, len(t.shape))
	if err != nil {
		return nil, err
	}
	if step <= 0 {
		return nil, errs.New(errs.Argument, "slice", "step must be positive, got %d", step)
	}
	size := t.shape[d]
	clampIdx := func(i int) int {
		if i < 0 {
			i += size
		}
		return min(max(i, 0), size)
	}
	start, end = clampIdx(start), clampIdx(end)
	n := 0
	if end > start {
		n = (end - start + step - 1) / step
	}
	sh, st := t.Shape(), t.Strides()
	sh[d] = n
	off := t.offset
	if n > 0 {
		off += start * t.strides[d]
	}
	st[d] *= step
	return t.view(sh, st, off), nil
}

// Select returns the view t[..., index, ...] along dim, which is removed.
func (t *Tensor) Select(dim, index int) (*Tensor, error) {
	if err := check(statSelect, t); err != nil {
		return nil, err
	}
	d, err := normDim("select", dim, len(t.shape))
	if err != nil {
		return nil, err
	}
	size := t.shape[d]
	if index < 0 {
		index += size
	}
	if index < 0 || index >= size {
		return nil, errs.New(errs.Argument, "select", "index %d out of range for dimension %d of size %d", index, d, size)
	}
	sh := append(t.Shape()[:d:d], t.shape[d+1:]...)
	st := append(t.Strides()[:d:d], t.strides[d+1:]...)
	return t.view(sh, st, t.offset+index*t.strides[d]), nil
}

// Expand returns a view of t broadcast to shape; size-1 dimensions stretch
// with stride 0, and -1 keeps a dimension's size. New leading dimensions
// may be added.
func (t *Tensor) Expand(shape ...int) (*Tensor, error) {
	if err := check(statExpand, t); err != nil {
		return nil, err
	}
	if len(shape) < len(t.shape) {
		return nil, errs.New(errs.Shape, "expand", "shape %v has fewer dimensions than the tensor's %v", shape, t.shape)
	}
	if _, err := checkShape("expand", nonNeg(shape)); err != nil {
		return nil, err
	}
	off := len(shape) - len(t.shape)
	sh, st := make([]int, len(shape)), make([]int, len(shape))
	for i, want := range shape {
		j := i - off
		if j < 0 {
			if want < 0 {
				return nil, errs.New(errs.Argument, "expand", "size -1 not allowed in a new leading dimension, shape %v", shape)
			}
			sh[i] = want
			continue
		}
		have := t.shape[j]
		switch {
		case want == -1 || want == have:
			sh[i], st[i] = have, t.strides[j]
		case have == 1 && want >= 0:
			sh[i] = want
		default:
			return nil, errs.New(errs.Shape, "expand", "cannot expand shape %v to %v", t.shape, shape)
		}
	}
	return t.view(sh, st, t.offset), nil
}

func nonNeg(shape []int) []int {
	out := make([]int, len(shape))
	for i, d := range shape {
		out[i] = max(d, 0)
	}
	return out
}

// BroadcastTo returns a view of t broadcast to shape (NumPy semantics).
func (t *Tensor) BroadcastTo(shape ...int) (*Tensor, error) { return t.Expand(shape...) }

// Squeeze returns a view with the given size-1 dimensions removed; with no
// dims, every size-1 dimension is removed. A named dimension whose size is
// not 1 is left in place, as in PyTorch.
func (t *Tensor) Squeeze(dims ...int) (*Tensor, error) {
	if err := check(statSqueeze, t); err != nil {
		return nil, err
	}
	drop := make([]bool, len(t.shape))
	if len(dims) == 0 {
		for i, d := range t.shape {
			drop[i] = d == 1
		}
	}
	for _, dim := range dims {
		d, err := normDim("squeeze", dim, len(t.shape))
		if err != nil {
			return nil, err
		}
		drop[d] = t.shape[d] == 1
	}
	var sh, st []int
	for i := range t.shape {
		if !drop[i] {
			sh = append(sh, t.shape[i])
			st = append(st, t.strides[i])
		}
	}
	return t.view(sh, st, t.offset), nil
}

// Unsqueeze returns a view with a size-1 dimension inserted at dim, which
// may range over [-rank-1, rank].
func (t *Tensor) Unsqueeze(dim int) (*Tensor, error) {
	if err := check(statUnsqueeze, t); err != nil {
		return nil, err
	}
	r := len(t.shape)
	if r+1 > MaxRank {
		return nil, errs.New(errs.Argument, "unsqueeze", "rank %d would exceed the maximum %d", r+1, MaxRank)
	}
	d, err := normDim("unsqueeze", dim, r+1)
	if err != nil {
		return nil, err
	}
	st := 1
	if d < r {
		st = t.strides[d] * t.shape[d]
	}
	sh := append(append(t.Shape()[:d:d], 1), t.shape[d:]...)
	sts := append(append(t.Strides()[:d:d], st), t.strides[d:]...)
	return t.view(sh, sts, t.offset), nil
}

// Flatten merges dimensions start..end (inclusive) into one; a view when
// strides allow, a copy otherwise.
func (t *Tensor) Flatten(start, end int) (*Tensor, error) {
	if err := check(statFlatten, t); err != nil {
		return nil, err
	}
	r := len(t.shape)
	if r == 0 {
		return t.Reshape(1)
	}
	s, err := normDim("flatten", start, r)
	if err != nil {
		return nil, err
	}
	e, err := normDim("flatten", end, r)
	if err != nil {
		return nil, err
	}
	if s > e {
		return nil, errs.New(errs.Argument, "flatten", "start dimension %d is after end dimension %d", start, end)
	}
	n := 1
	for _, d := range t.shape[s : e+1] {
		n *= d
	}
	sh := append(append(t.Shape()[:s:s], n), t.shape[e+1:]...)
	return t.Reshape(sh...)
}

// Contiguous returns t if it is contiguous, otherwise a contiguous copy.
func (t *Tensor) Contiguous() (*Tensor, error) {
	if err := check(statContiguous, t); err != nil {
		return nil, err
	}
	if t.IsContiguous() {
		return t, nil
	}
	return fromData(t.Scope(), t.copyData(), t.shape), nil
}

// Clone returns a contiguous copy of t with its own storage.
func (t *Tensor) Clone() (*Tensor, error) {
	if err := check(statClone, t); err != nil {
		return nil, err
	}
	sc := t.Scope()
	if !t.IsContiguous() {
		return fromData(sc, t.copyData(), t.shape), nil
	}
	out := newUninit(sc, t.shape)
	copy(out.storage.data, t.storage.data[t.offset:])
	return out, nil
}
