package tensor

import (
	"fmt"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
)

var (
	statSum    = stat("sum")
	statMean   = stat("mean")
	statMax    = stat("max")
	statArgmax = stat("argmax")
	statSumTo  = stat("sum_to")
)

// checkIn is check plus a guard that every input's shape is non-negative.
// validLayout stops at the first zero-size dimension, so sizes after it are
// not otherwise validated, and a negative size would reach an allocation.
func checkIn(s *opStat, ts ...*Tensor) error {
	if err := check(s, ts...); err != nil {
		return err
	}
	for i, t := range ts {
		for d, n := range t.shape {
			if n < 0 {
				scopeOf(ts...).counter(s).fail()
				return &errs.TorchError{Kind: errs.Layout, Op: s.name,
					Msg: fmt.Sprintf("input %d: negative size %d in dimension %d of shape %v", i, n, d, t.shape)}
			}
		}
	}
	return nil
}

// reduceDim normalises dim for a reduction. A 0-d tensor accepts 0 and -1,
// as in PyTorch, and reduces over its single element.
func reduceDim(op string, dim, rank int) (int, error) {
	if rank == 0 {
		if dim == 0 || dim == -1 {
			return 0, nil
		}
		return 0, errs.New(errs.Argument, op, "dimension %d out of range [-1, 0] for a 0-dimensional tensor", dim)
	}
	return normDim(op, dim, rank)
}

// reduceMask returns which dimensions of shape dims reduces; empty dims
// means every dimension. Repeated dims are an error.
func reduceMask(op string, shape, dims []int) ([]bool, error) {
	r := len(shape)
	mask := make([]bool, r)
	if len(dims) == 0 {
		for i := range mask {
			mask[i] = true
		}
		return mask, nil
	}
	seen0 := false
	for _, dim := range dims {
		d, err := reduceDim(op, dim, r)
		if err != nil {
			return nil, err
		}
		if r == 0 {
			if seen0 {
				return nil, errs.New(errs.Argument, op, "dimension %d appears more than once in dims %v", dim, dims)
			}
			seen0 = true
			continue
		}
		if mask[d] {
			return nil, errs.New(errs.Argument, op, "dimension %d appears more than once in dims %v", dim, dims)
		}
		mask[d] = true
	}
	return mask, nil
}

// sumKernel sums t into a fresh float64 buffer of outN elements. ostr gives,
// for each dimension of t, the stride of the output along it (0 along
// reduced dimensions), so element idx of t is added to acc[Σ idx·ostr].
func sumKernel(t *Tensor, ostr []int, outN int) []float64 {
	acc := make([]float64, outN)
	if outN == 0 || t.Numel() == 0 {
		return acc
	}
	src := t.storage.data
	if t.IsContiguous() && sumContiguous(acc, src[t.offset:t.offset+t.Numel()], t.shape, ostr) {
		return acc
	}
	p := newRowPlan(t.shape, ostr, t.strides)
	n := p.n
	p.each([]int{0, t.offset}, func(offs []int) {
		o, s := offs[0], offs[1]
		so, si := p.inner[0], p.inner[1]
		switch {
		case so == 0 && si == 1:
			acc[o] += sum64(src[s : s+n])
		case so == 0:
			var a float64
			for range n {
				a += float64(src[s])
				s += si
			}
			acc[o] += a
		case so == 1 && si == 1:
			kernels.VecAccumF64(acc[o:o+n], src[s:s+n])
		default:
			for range n {
				acc[o] += float64(src[s])
				o += so
				s += si
			}
		}
	})
	return acc
}

// sumContiguous handles the hot layouts of a contiguous input x: reducing
// a suffix of the dimensions (row sums, e.g. over the last dim of [N, C])
// or a prefix (column sums, e.g. bias gradients over dim 0 of [N, C]). It
// reports false for any other pattern. Size-1 dimensions are ignored.
func sumContiguous(acc []float64, x []float32, shape, ostr []int) bool {
	// Classify the non-trivial dims as kept (k) or reduced (r) in order and
	// count the changes between the two.
	first, changes, prev := byte(0), 0, byte(0)
	for i, d := range shape {
		if d == 1 {
			continue
		}
		c := byte('k')
		if ostr[i] == 0 {
			c = 'r'
		}
		if first == 0 {
			first = c
		} else if c != prev {
			changes++
		}
		prev = c
	}
	outN := len(acc)
	switch {
	case changes > 1:
		return false
	case first == 'r' && changes == 1: // reduced prefix: column sums
		for r := 0; r+outN <= len(x); r += outN {
			kernels.VecAccumF64(acc, x[r:r+outN])
		}
	default: // reduced suffix, or everything kept or reduced: row sums
		inner := len(x) / outN
		for o := range acc {
			acc[o] = sum64(x[o*inner : (o+1)*inner])
		}
	}
	return true
}

// sum64 sums x in float64 in a fixed order of 16 lane sums (see
// kernels.VecSumF64): the same result on every path, machine and
// GOMAXPROCS.
func sum64(x []float32) float64 { return kernels.VecSumF64(x) }

// reduceShapes returns the output shape of reducing t over mask, and the
// output strides aligned to t's dimensions (0 along reduced ones).
func reduceShapes(shape []int, mask []bool, keepDim bool) (out, ostr []int) {
	ks := make([]int, len(shape))
	for i, d := range shape {
		if mask[i] {
			ks[i] = 1
		} else {
			ks[i] = d
			out = append(out, d)
		}
	}
	ostr = contiguousStrides(ks)
	for i := range ostr {
		if mask[i] {
			ostr[i] = 0
		}
	}
	if keepDim {
		out = ks
	}
	if out == nil {
		out = []int{}
	}
	return out, ostr
}

func toF32(acc []float64, scale float64) []float32 {
	out := make([]float32, len(acc))
	for i, v := range acc {
		out[i] = float32(v * scale)
	}
	return out
}

func sumMean(s *opStat, t *Tensor, dims []int, keepDim, mean bool) (*Tensor, error) {
	if err := checkIn(s, t); err != nil {
		return nil, err
	}
	mask, err := reduceMask(s.name, t.shape, dims)
	if err != nil {
		return nil, err
	}
	shape, ostr := reduceShapes(t.shape, mask, keepDim)
	outN, count := 1, 1
	for i, d := range t.shape {
		if mask[i] {
			count *= d
		} else {
			outN *= d
		}
	}
	acc := sumKernel(t, ostr, outN)
	scale := 1.0
	if mean {
		scale = 1 / float64(count) // +Inf for an empty reduction: 0·Inf = NaN, as PyTorch
	}
	return fromData(t.Scope(), toF32(acc, scale), shape), nil
}

// Sum reduces t over dims (all dims when dims is empty), keeping reduced dims
// as size 1 when keepDim is set. Negative dims count from the end; a
// repeated dim is an error. Accumulation is in float64.
func Sum(t *Tensor, dims []int, keepDim bool) (*Tensor, error) {
	return sumMean(statSum, t, dims, keepDim, false)
}

// Mean averages t over dims (all dims when dims is empty). The mean of an
// empty reduction is NaN, as in PyTorch.
func Mean(t *Tensor, dims []int, keepDim bool) (*Tensor, error) {
	return sumMean(statMean, t, dims, keepDim, true)
}

// argmaxKernel scans t along dim d and returns, per position of the other
// dimensions (in row-major order), the maximum and its first index. NaN
// wins over every number (the first NaN is reported). t.shape[d] must be > 0.
func argmaxKernel(t *Tensor, d int, wantVals, wantIdx bool) (vals, idx []float32) {
	r := len(t.shape)
	n, step := 1, 0
	var oshape, istr []int
	for i := 0; i < r; i++ {
		if i == d {
			n, step = t.shape[i], t.strides[i]
			continue
		}
		oshape = append(oshape, t.shape[i])
		istr = append(istr, t.strides[i])
	}
	outN := 1
	for _, v := range oshape {
		outN *= v
	}
	if wantVals {
		vals = make([]float32, outN)
	}
	if wantIdx {
		idx = make([]float32, outN)
	}
	if outN == 0 {
		return vals, idx
	}
	src := t.storage.data
	p := newRowPlan(oshape, contiguousStrides(oshape), istr)
	p.each([]int{0, t.offset}, func(offs []int) {
		o, base := offs[0], offs[1]
		for range p.n {
			best, bi := src[base], 0
			if best == best {
				s := base
				for j := 1; j < n; j++ {
					s += step
					v := src[s]
					if v > best {
						best, bi = v, j
					} else if v != v {
						best, bi = v, j
						break
					}
				}
			}
			if vals != nil {
				vals[o] = best
			}
			if idx != nil {
				idx[o] = float32(bi)
			}
			o += p.inner[0]
			base += p.inner[1]
		}
	})
	return vals, idx
}

// argmaxPrep validates a Max/Argmax call and returns the normalised dim and
// the output shape.
func argmaxPrep(s *opStat, t *Tensor, dim int, keepDim bool) (int, []int, error) {
	if err := checkIn(s, t); err != nil {
		return 0, nil, err
	}
	d, err := reduceDim(s.name, dim, len(t.shape))
	if err != nil {
		return 0, nil, err
	}
	if len(t.shape) == 0 {
		return 0, []int{}, nil
	}
	if t.shape[d] == 0 {
		return 0, nil, errs.New(errs.Shape, s.name, "cannot reduce dimension %d of size 0 in shape %v: the operation has no identity", d, t.shape)
	}
	mask := make([]bool, len(t.shape))
	mask[d] = true
	shape, _ := reduceShapes(t.shape, mask, keepDim)
	return d, shape, nil
}

// asRank1 views a 0-d tensor as shape [1] so kernels can treat dim 0.
func asRank1(t *Tensor) *Tensor {
	if len(t.shape) > 0 {
		return t
	}
	return &Tensor{storage: t.storage, shape: []int{1}, strides: []int{1}, offset: t.offset}
}

// Max returns the maximum values of t along dim and their indices (as
// float32 values), like torch.max(t, dim, keepdim). Ties report the first
// index; NaN propagates (the first NaN and its index are reported).
func Max(t *Tensor, dim int, keepDim bool) (values, indices *Tensor, err error) {
	d, shape, err := argmaxPrep(statMax, t, dim, keepDim)
	if err != nil {
		return nil, nil, err
	}
	v, i := argmaxKernel(asRank1(t), d, true, true)
	return fromData(t.Scope(), v, shape), fromData(t.Scope(), i, shape), nil
}

// MaxAll returns the maximum over all elements as a 0-d tensor. NaN
// propagates. An empty tensor is an error.
func MaxAll(t *Tensor) (*Tensor, error) {
	if err := checkIn(statMax, t); err != nil {
		return nil, err
	}
	if t.Numel() == 0 {
		return nil, errs.New(errs.Shape, "max", "cannot take the maximum of an empty tensor of shape %v", t.shape)
	}
	src := t.storage.data
	best := src[t.offset]
	p := newRowPlan(t.shape, t.strides)
	p.each([]int{t.offset}, func(offs []int) {
		if best != best {
			return
		}
		s, step := offs[0], p.inner[0]
		for range p.n {
			v := src[s]
			if v > best {
				best = v
			} else if v != v {
				best = v
				return
			}
			s += step
		}
	})
	return fromData(t.Scope(), []float32{best}, nil), nil
}

// Argmax returns the indices (as float32) of the maxima of t along dim.
// Ties report the first index; a NaN counts as the maximum.
func Argmax(t *Tensor, dim int, keepDim bool) (*Tensor, error) {
	d, shape, err := argmaxPrep(statArgmax, t, dim, keepDim)
	if err != nil {
		return nil, err
	}
	_, i := argmaxKernel(asRank1(t), d, false, true)
	return fromData(t.Scope(), i, shape), nil
}

// SumTo sums t over broadcast dimensions so the result has shape shape
// (the reverse of broadcasting; used for gradients): leading dimensions t
// has beyond shape are summed away, and dimensions where shape has size 1
// are summed with the size kept. shape must broadcast to t's shape.
func SumTo(t *Tensor, shape []int) (*Tensor, error) {
	if err := checkIn(statSumTo, t); err != nil {
		return nil, err
	}
	outN, err := checkShape("sum_to", shape)
	if err != nil {
		return nil, err
	}
	r, k := len(t.shape), len(shape)
	if k > r {
		return nil, errs.New(errs.Shape, "sum_to", "shape %v has more dimensions than the tensor's shape %v", shape, t.shape)
	}
	for i, want := range shape {
		if have := t.shape[r-k+i]; want != have && want != 1 {
			return nil, errs.New(errs.Shape, "sum_to", "tensor of shape %v cannot be summed to shape %v", t.shape, shape)
		}
	}
	sh := append([]int(nil), shape...)
	if k == r && EqualShape(sh, t.shape) {
		return fromData(t.Scope(), values(t), sh), nil
	}
	ostr := broadcastStrides(sh, contiguousStrides(sh), t.shape)
	// broadcastStrides keeps the stride of a size-1 target dim only when t's
	// size there is also 1, so summed dims get stride 0.
	return fromData(t.Scope(), toF32(sumKernel(t, ostr, outN), 1), sh), nil
}

// values returns a fresh row-major copy of t's elements. Unlike ToSlice it
// never touches the storage of an empty tensor, whose offset is unchecked.
func values(t *Tensor) []float32 {
	if t.Numel() == 0 {
		return []float32{}
	}
	return t.ToSlice()
}
