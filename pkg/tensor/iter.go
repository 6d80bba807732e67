package tensor

import "github.com/gorch/gorch/pkg/errs"

// rowPlan walks the elements of one or more operands that share a shape,
// one innermost row at a time. Adjacent dimensions that are laid out
// contiguously in every operand are merged first, so contiguous tensors
// are walked as a single row.
type rowPlan struct {
	n     int     // row length
	inner []int   // stride along the row, per operand
	outer []int   // sizes of the outer dimensions
	ostr  [][]int // outer strides, per operand
}

func newRowPlan(shape []int, strides ...[]int) rowPlan {
	k := len(strides)
	// Drop size-1 dims and merge compatible neighbours.
	var sh []int
	st := make([][]int, k)
	for d := 0; d < len(shape); d++ {
		if shape[d] == 1 {
			continue
		}
		if len(sh) > 0 {
			last := len(sh) - 1
			merge := true
			for o := 0; o < k; o++ {
				if st[o][last] != strides[o][d]*shape[d] {
					merge = false
					break
				}
			}
			if merge {
				sh[last] *= shape[d]
				for o := 0; o < k; o++ {
					st[o][last] = strides[o][d]
				}
				continue
			}
		}
		sh = append(sh, shape[d])
		for o := 0; o < k; o++ {
			st[o] = append(st[o], strides[o][d])
		}
	}
	p := rowPlan{n: 1, inner: make([]int, k), ostr: make([][]int, k)}
	if len(sh) > 0 {
		last := len(sh) - 1
		p.n = sh[last]
		for o := 0; o < k; o++ {
			p.inner[o] = st[o][last]
			p.ostr[o] = st[o][:last]
		}
		p.outer = sh[:last]
	}
	for _, d := range shape {
		if d == 0 {
			p.n = 0
		}
	}
	return p
}

// each calls fn once per row with the storage offset of the row's first
// element in each operand. offs is reused between calls.
func (p *rowPlan) each(base []int, fn func(offs []int)) {
	if p.n == 0 {
		return
	}
	k := len(base)
	offs := append([]int(nil), base...)
	if len(p.outer) == 0 {
		fn(offs)
		return
	}
	idx := make([]int, len(p.outer))
	for {
		fn(offs)
		// Odometer increment over the outer dims.
		d := len(idx) - 1
		for ; d >= 0; d-- {
			idx[d]++
			for o := 0; o < k; o++ {
				offs[o] += p.ostr[o][d]
			}
			if idx[d] < p.outer[d] {
				break
			}
			for o := 0; o < k; o++ {
				offs[o] -= p.ostr[o][d] * idx[d]
			}
			idx[d] = 0
		}
		if d < 0 {
			return
		}
	}
}

// copyData returns t's elements in row-major order in a fresh slice.
func (t *Tensor) copyData() []float32 {
	dst := make([]float32, t.Numel())
	p := newRowPlan(t.shape, contiguousStrides(t.shape), t.strides)
	src := t.storage.data
	p.each([]int{0, t.offset}, func(offs []int) {
		d := dst[offs[0] : offs[0]+p.n]
		s, step := offs[1], p.inner[1]
		if step == 1 {
			copy(d, src[s:s+p.n])
			return
		}
		for i := range d {
			d[i] = src[s]
			s += step
		}
	})
	return dst
}

// broadcastShape returns the shape that a and b broadcast to.
func broadcastShape(op string, a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			return nil, errs.New(errs.Shape, op, "shapes %v and %v cannot be broadcast", a, b)
		}
	}
	return out, nil
}

// BroadcastShapes returns the shape that the given shapes broadcast to,
// following NumPy's rules.
func BroadcastShapes(shapes ...[]int) ([]int, error) {
	out := []int{}
	for _, s := range shapes {
		var err error
		if out, err = broadcastShape("broadcast_shapes", out, s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// broadcastStrides returns t's strides aligned to out, with stride 0 along
// broadcast dimensions. out must be a valid broadcast target of t's shape.
func broadcastStrides(shape, strides, out []int) []int {
	bs := make([]int, len(out))
	off := len(out) - len(shape)
	for i := range shape {
		if shape[i] != 1 || out[off+i] == 1 {
			bs[off+i] = strides[i]
		}
	}
	return bs
}
