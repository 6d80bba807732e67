package tensor

import (
	"math"

	"github.com/gorch/gorch/pkg/errs"
)

var (
	statConcat      = stat("concat")
	statStack       = stat("stack")
	statWhere       = stat("where")
	statIndexSelect = stat("index_select")
	statIndexAdd    = stat("index_add")
	statGather      = stat("gather")
	statScatterAdd  = stat("scatter_add")
)

// moveInto copies (or, with add, accumulates) the elements of the view
// shape/sstr/soff of src into dst at doff with strides dstr.
func moveInto(dst []float32, doff int, dstr []int, src []float32, shape, sstr []int, soff int, add bool) {
	p := newRowPlan(shape, dstr, sstr)
	n := p.n
	p.each([]int{doff, soff}, func(offs []int) {
		o, s, so, si := offs[0], offs[1], p.inner[0], p.inner[1]
		switch {
		case so == 1 && si == 1 && !add:
			copy(dst[o:o+n], src[s:s+n])
		case so == 1 && si == 1:
			d, x := dst[o:o+n], src[s:s+n]
			for i := range d {
				d[i] += x[i]
			}
		case add:
			for range n {
				dst[o] += src[s]
				o += so
				s += si
			}
		default:
			for range n {
				dst[o] = src[s]
				o += so
				s += si
			}
		}
	})
}

// without returns s with element i removed.
func without(s []int, i int) []int {
	return append(append(make([]int, 0, len(s)-1), s[:i]...), s[i+1:]...)
}

// Concat joins tensors along an existing dim, like torch.cat. All tensors
// must have the same rank and agree in every other dimension; as in
// PyTorch, 1-D empty tensors (shape [0]) are skipped.
func Concat(ts []*Tensor, dim int) (*Tensor, error) {
	if len(ts) == 0 {
		return nil, errs.New(errs.Argument, "concat", "expects a non-empty list of tensors")
	}
	if err := checkIn(statConcat, ts...); err != nil {
		return nil, err
	}
	var parts []*Tensor
	for _, t := range ts {
		if len(t.shape) == 1 && t.shape[0] == 0 {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return newContiguous(scopeOf(ts...), []int{0}), nil
	}
	ref := parts[0]
	r := len(ref.shape)
	if r == 0 {
		return nil, errs.New(errs.Shape, "concat", "zero-dimensional tensors cannot be concatenated")
	}
	d, err := normDim("concat", dim, r)
	if err != nil {
		return nil, err
	}
	shape := append([]int(nil), ref.shape...)
	shape[d] = 0
	for i, t := range parts {
		if len(t.shape) != r {
			return nil, errs.New(errs.Shape, "concat", "tensor %d has shape %v, of a different rank than shape %v", i, t.shape, ref.shape)
		}
		for j := range t.shape {
			if j != d && t.shape[j] != ref.shape[j] {
				return nil, errs.New(errs.Shape, "concat", "shapes %v and %v differ outside dimension %d", ref.shape, t.shape, d)
			}
		}
		shape[d] += t.shape[d]
		if shape[d] < 0 {
			return nil, errs.New(errs.Argument, "concat", "concatenated size of dimension %d overflows", d)
		}
	}
	if _, err := checkShape("concat", shape); err != nil {
		return nil, err
	}
	out := newUninit(scopeOf(ts...), shape) // the parts cover it
	if out.Numel() == 0 {
		return out, nil
	}
	at := 0
	for _, t := range parts {
		if t.Numel() > 0 {
			moveInto(out.storage.data, at*out.strides[d], out.strides, t.storage.data, t.shape, t.strides, t.offset, false)
		}
		at += t.shape[d]
	}
	return out, nil
}

// Stack joins tensors of equal shape along a new dim, which may range over
// [-rank-1, rank], like torch.stack.
func Stack(ts []*Tensor, dim int) (*Tensor, error) {
	if len(ts) == 0 {
		return nil, errs.New(errs.Argument, "stack", "expects a non-empty list of tensors")
	}
	if err := checkIn(statStack, ts...); err != nil {
		return nil, err
	}
	ref := ts[0].shape
	for i, t := range ts {
		if !EqualShape(t.shape, ref) {
			return nil, errs.New(errs.Shape, "stack", "tensor %d has shape %v, tensor 0 has shape %v", i, t.shape, ref)
		}
	}
	r := len(ref)
	if r+1 > MaxRank {
		return nil, errs.New(errs.Argument, "stack", "rank %d would exceed the maximum %d", r+1, MaxRank)
	}
	d, err := normDim("stack", dim, r+1)
	if err != nil {
		return nil, err
	}
	shape := append(append(append(make([]int, 0, r+1), ref[:d]...), len(ts)), ref[d:]...)
	if _, err := checkShape("stack", shape); err != nil {
		return nil, err
	}
	out := newContiguous(scopeOf(ts...), shape)
	if out.Numel() == 0 {
		return out, nil
	}
	dstr := without(out.strides, d)
	for i, t := range ts {
		moveInto(out.storage.data, i*out.strides[d], dstr, t.storage.data, t.shape, t.strides, t.offset, false)
	}
	return out, nil
}

// Where returns a where cond != 0 (NaN counts as true), b elsewhere; the
// three tensors broadcast together.
func Where(cond, a, b *Tensor) (*Tensor, error) {
	if err := checkIn(statWhere, cond, a, b); err != nil {
		return nil, err
	}
	shape, err := BroadcastShapes(cond.shape, a.shape, b.shape)
	if err != nil {
		return nil, errs.New(errs.Shape, "where", "shapes %v (cond), %v and %v cannot be broadcast", cond.shape, a.shape, b.shape)
	}
	if _, err := checkShape("where", shape); err != nil {
		return nil, err
	}
	out := newContiguous(scopeOf(cond, a, b), shape)
	if out.Numel() == 0 {
		return out, nil
	}
	dst, cs, as, bs := out.storage.data, cond.storage.data, a.storage.data, b.storage.data
	p := newRowPlan(shape, out.strides,
		broadcastStrides(cond.shape, cond.strides, shape),
		broadcastStrides(a.shape, a.strides, shape),
		broadcastStrides(b.shape, b.strides, shape))
	p.each([]int{0, cond.offset, a.offset, b.offset}, func(offs []int) {
		o, c, x, y := offs[0], offs[1], offs[2], offs[3]
		sc, sx, sy := p.inner[1], p.inner[2], p.inner[3]
		for i := range dst[o : o+p.n] {
			if cs[c] != 0 {
				dst[o+i] = as[x]
			} else {
				dst[o+i] = bs[y]
			}
			c += sc
			x += sx
			y += sy
		}
	})
	return out, nil
}

// toIndex converts an index element to an int in [0, size).
func toIndex(op string, v float32, size int) (int, error) {
	f := float64(v)
	if f != math.Trunc(f) || math.IsInf(f, 0) { // NaN fails the first test
		return 0, errs.New(errs.Argument, op, "index %v is not an integer", v)
	}
	if f < 0 || f >= float64(size) {
		return 0, errs.New(errs.Argument, op, "index %v out of range [0, %d)", v, size)
	}
	return int(f), nil
}

// readIndex validates a 1-D index tensor against a dimension of size size.
func readIndex(op string, index *Tensor, size int) ([]int, error) {
	if len(index.shape) != 1 {
		return nil, errs.New(errs.Shape, op, "index must be 1-dimensional, got shape %v", index.shape)
	}
	return readIndices(op, index, size)
}

// readIndices validates an index tensor of any shape whose values must be
// integers in [0, size).
func readIndices(op string, index *Tensor, size int) ([]int, error) {
	vals := values(index)
	out := make([]int, len(vals))
	for i, v := range vals {
		k, err := toIndex(op, v, size)
		if err != nil {
			return nil, err
		}
		out[i] = k
	}
	return out, nil
}

// IndexSelect picks entries of t along dim at the integer positions in
// index, a 1-D tensor of integral values in [0, size of dim).
func IndexSelect(t *Tensor, dim int, index *Tensor) (*Tensor, error) {
	if err := checkIn(statIndexSelect, t, index); err != nil {
		return nil, err
	}
	d, err := normDim("index_select", dim, len(t.shape))
	if err != nil {
		return nil, err
	}
	idx, err := readIndex("index_select", index, t.shape[d])
	if err != nil {
		return nil, err
	}
	shape := t.Shape()
	shape[d] = len(idx)
	out := newContiguous(scopeOf(t, index), shape)
	if out.Numel() == 0 {
		return out, nil
	}
	sub, sstr, dstr := without(t.shape, d), without(t.strides, d), without(out.strides, d)
	for j, k := range idx {
		moveInto(out.storage.data, j*out.strides[d], dstr, t.storage.data, sub, sstr, t.offset+k*t.strides[d], false)
	}
	return out, nil
}

// IndexAdd returns a copy of t with src's slices added at index along dim
// (the adjoint of IndexSelect): out[..., index[j], ...] += src[..., j, ...].
// src must have t's shape with dim resized to len(index); repeated indices
// accumulate.
func IndexAdd(t *Tensor, dim int, index, src *Tensor) (*Tensor, error) {
	if err := checkIn(statIndexAdd, t, index, src); err != nil {
		return nil, err
	}
	d, err := normDim("index_add", dim, len(t.shape))
	if err != nil {
		return nil, err
	}
	idx, err := readIndex("index_add", index, t.shape[d])
	if err != nil {
		return nil, err
	}
	want := t.Shape()
	want[d] = len(idx)
	if !EqualShape(src.shape, want) {
		return nil, errs.New(errs.Shape, "index_add", "source of shape %v does not match shape %v (tensor %v with dimension %d of size %d)", src.shape, want, t.shape, d, len(idx))
	}
	out := fromData(scopeOf(t, index, src), values(t), t.shape)
	if src.Numel() == 0 {
		return out, nil
	}
	sub, dstr, sstr := without(t.shape, d), without(out.strides, d), without(src.strides, d)
	for j, k := range idx {
		moveInto(out.storage.data, k*out.strides[d], dstr, src.storage.data, sub, sstr, src.offset+j*src.strides[d], true)
	}
	return out, nil
}

// scatterPrep validates Gather/ScatterAdd operands: index has t's rank and
// fits inside t outside dim (and inside src everywhere, when src is given).
func scatterPrep(op string, t *Tensor, dim int, index, src *Tensor) (int, error) {
	r := len(t.shape)
	if r == 0 {
		return 0, errs.New(errs.Shape, op, "expects a tensor of at least 1 dimension, got shape %v", t.shape)
	}
	d, err := normDim(op, dim, r)
	if err != nil {
		return 0, err
	}
	if len(index.shape) != r {
		return 0, errs.New(errs.Shape, op, "index of shape %v must have the rank of the tensor's shape %v", index.shape, t.shape)
	}
	for i, n := range index.shape {
		if i != d && n > t.shape[i] {
			return 0, errs.New(errs.Shape, op, "index of shape %v exceeds the tensor's shape %v in dimension %d", index.shape, t.shape, i)
		}
	}
	if src != nil {
		if len(src.shape) != r {
			return 0, errs.New(errs.Shape, op, "source of shape %v must have the rank of the tensor's shape %v", src.shape, t.shape)
		}
		for i, n := range index.shape {
			if n > src.shape[i] {
				return 0, errs.New(errs.Shape, op, "index of shape %v exceeds the source's shape %v in dimension %d", index.shape, src.shape, i)
			}
		}
	}
	return d, nil
}

// Gather picks t[..., index[i,j,..], ...] along dim, like torch.gather:
// index has t's rank, is no larger than t outside dim, and the result has
// index's shape.
func Gather(t *Tensor, dim int, index *Tensor) (*Tensor, error) {
	if err := checkIn(statGather, t, index); err != nil {
		return nil, err
	}
	d, err := scatterPrep("gather", t, dim, index, nil)
	if err != nil {
		return nil, err
	}
	out := newContiguous(scopeOf(t, index), index.shape)
	if out.Numel() == 0 {
		return out, nil
	}
	size, step := t.shape[d], t.strides[d]
	tstr := append([]int(nil), t.strides...)
	tstr[d] = 0
	dst, ts, is := out.storage.data, t.storage.data, index.storage.data
	var bad error
	p := newRowPlan(index.shape, out.strides, tstr, index.strides)
	p.each([]int{0, t.offset, index.offset}, func(offs []int) {
		if bad != nil {
			return
		}
		o, s, x := offs[0], offs[1], offs[2]
		for range p.n {
			k, err := toIndex("gather", is[x], size)
			if err != nil {
				bad = err
				return
			}
			dst[o] = ts[s+k*step]
			o += p.inner[0]
			s += p.inner[1]
			x += p.inner[2]
		}
	})
	if bad != nil {
		return nil, bad
	}
	return out, nil
}

// ScatterAdd returns a copy of t with src added at index along dim, like
// torch.scatter_add (the adjoint of Gather): for every position p of index,
// out[p with dim replaced by index[p]] += src[p].
func ScatterAdd(t *Tensor, dim int, index, src *Tensor) (*Tensor, error) {
	if err := checkIn(statScatterAdd, t, index, src); err != nil {
		return nil, err
	}
	d, err := scatterPrep("scatter_add", t, dim, index, src)
	if err != nil {
		return nil, err
	}
	out := fromData(scopeOf(t, index, src), values(t), t.shape)
	if index.Numel() == 0 {
		return out, nil
	}
	size, step := t.shape[d], out.strides[d]
	ostr := append([]int(nil), out.strides...)
	ostr[d] = 0
	dst, ss, is := out.storage.data, src.storage.data, index.storage.data
	var bad error
	p := newRowPlan(index.shape, ostr, src.strides, index.strides)
	p.each([]int{0, src.offset, index.offset}, func(offs []int) {
		if bad != nil {
			return
		}
		o, s, x := offs[0], offs[1], offs[2]
		for range p.n {
			k, err := toIndex("scatter_add", is[x], size)
			if err != nil {
				bad = err
				return
			}
			dst[o+k*step] += ss[s]
			o += p.inner[0]
			s += p.inner[1]
			x += p.inner[2]
		}
	})
	if bad != nil {
		return nil, bad
	}
	return out, nil
}
