package tensor

import (
	"sync"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
)

var (
	statMatmul = stat("matmul")
	statLinear = stat("linear")
)

// matrix is a 2-D operand ready for Sgemm: op(M) = rows×cols, read from
// data (starting at the matrix's first element) with leading dimension ld,
// transposed when trans is set.
type matrix struct {
	data  []float32
	ld    int
	trans bool
}

// asMatrix describes the rows×cols matrix at storage offset off with row
// stride rs and column stride cs as a GEMM operand without copying, if its
// layout allows: row-major (cs == 1) or column-major (rs == 1, the
// transpose of a row-major matrix).
func asMatrix(data []float32, off, rows, cols, rs, cs int) (matrix, bool) {
	// An empty view may carry any offset; nothing is read through it.
	off = min(off, len(data))
	if cols <= 1 {
		cs = 1
	}
	if rows <= 1 {
		if cs == 1 {
			rs = max(cols, 1)
		} else {
			rs = 1
		}
	}
	switch {
	case cs == 1 && rs >= cols:
		return matrix{data: data[off:], ld: max(rs, 1)}, true
	case rs == 1 && cs >= rows:
		return matrix{data: data[off:], ld: max(cs, 1), trans: true}, true
	}
	return matrix{}, false
}

// gemmable reports whether the last two dimensions of t can be passed to
// Sgemm without a copy.
func gemmable(t *Tensor) bool {
	r := len(t.shape)
	_, ok := asMatrix(t.storage.data, t.offset, t.shape[r-2], t.shape[r-1], t.strides[r-2], t.strides[r-1])
	return ok
}

// Matmul is torch.matmul: 1-D, 2-D and batched operands, batch dims broadcast.
//
// A 1-D first operand is treated as a row vector and a 1-D second operand as
// a column vector; the added dimension is removed from the result, so two
// 1-D operands give their dot product as a 0-dimensional tensor. Operands
// with three or more dimensions are stacks of matrices whose leading (batch)
// dimensions broadcast.
func Matmul(a, b *Tensor) (*Tensor, error) {
	if err := check(statMatmul, a, b); err != nil {
		return nil, err
	}
	ra, rb := len(a.shape), len(b.shape)
	if ra == 0 || rb == 0 {
		return nil, errs.New(errs.Shape, "matmul", "shapes %v and %v cannot be multiplied: both operands need at least 1 dimension", a.shape, b.shape)
	}
	// Promote 1-D operands to matrices (views, no copy).
	am, bm := a, b
	if ra == 1 {
		am = a.view([]int{1, a.shape[0]}, []int{0, a.strides[0]}, a.offset)
	}
	if rb == 1 {
		bm = b.view([]int{b.shape[0], 1}, []int{b.strides[0], 0}, b.offset)
	}
	m, k := am.shape[len(am.shape)-2], am.shape[len(am.shape)-1]
	k2, n := bm.shape[len(bm.shape)-2], bm.shape[len(bm.shape)-1]
	if k != k2 {
		return nil, errs.New(errs.Shape, "matmul", "shapes %v and %v cannot be multiplied", a.shape, b.shape)
	}
	aBatch, bBatch := am.shape[:len(am.shape)-2], bm.shape[:len(bm.shape)-2]
	batch, err := broadcastShape("matmul", aBatch, bBatch)
	if err != nil {
		return nil, errs.New(errs.Shape, "matmul", "shapes %v and %v cannot be multiplied: batch dimensions %v and %v cannot be broadcast", a.shape, b.shape, aBatch, bBatch)
	}
	outShape := append([]int(nil), batch...)
	if ra > 1 {
		outShape = append(outShape, m)
	}
	if rb > 1 {
		outShape = append(outShape, n)
	}
	if _, err := checkShape("matmul", outShape); err != nil {
		return nil, err
	}
	out := newUninit(scopeOf(a, b), outShape) // every product writes its C with beta = 0
	nb := 1
	for _, d := range batch {
		nb *= d
	}
	if nb == 0 || m == 0 || n == 0 {
		return out, nil
	}
	if !gemmable(am) {
		am = fromData(nil, am.copyData(), am.shape)
	}
	if !gemmable(bm) {
		bm = fromData(nil, bm.copyData(), bm.shape)
	}
	c := out.storage.data
	be := kernels.Default()

	// A 2-D right operand: fold A's batch dims into its rows when they are
	// uniformly strided, and do one GEMM.
	if len(bBatch) == 0 && len(aBatch) > 0 {
		if rs, ok := foldRows(am); ok {
			am2 := am.view([]int{nb * m, k}, []int{rs, am.strides[len(am.strides)-1]}, am.offset)
			if !gemmable(am2) {
				am2 = fromData(nil, am2.copyData(), am2.shape)
			}
			gemm2(be, am2, bm, c, n, 0)
			return out, nil
		}
	}

	aStr := broadcastStrides(aBatch, am.strides[:len(aBatch)], batch)
	bStr := broadcastStrides(bBatch, bm.strides[:len(bBatch)], batch)
	aOff, bOff := batchOffsets(batch, aStr, am.offset), batchOffsets(batch, bStr, bm.offset)
	one := func(i int) {
		ai := am.view(am.shape[len(aBatch):], am.strides[len(aBatch):], aOff[i])
		bi := bm.view(bm.shape[len(bBatch):], bm.strides[len(bBatch):], bOff[i])
		gemm2(be, ai, bi, c[i*m*n:(i+1)*m*n], n, 0)
	}
	// Many small products: run whole products in parallel (each output
	// matrix is written by one goroutine, so results are deterministic).
	if nb > 1 && 2*m*n*k < 1<<18 && nb*m*n*k >= 1<<16 {
		be = kernels.WithThreads(be, 1)
		parallelFor(nb, one)
		return out, nil
	}
	for i := 0; i < nb; i++ {
		one(i)
	}
	return out, nil
}

// foldRows reports whether t [..., m, k] can be viewed as [prod(...)*m, k]
// and returns the row stride of that view.
func foldRows(t *Tensor) (int, bool) {
	r := len(t.shape)
	rs := t.strides[r-2]
	if t.shape[r-2] == 1 {
		rs = -1 // unknown yet
	}
	inner := t.shape[r-2]
	for d := r - 3; d >= 0; d-- {
		if t.shape[d] == 1 {
			continue
		}
		if rs == -1 {
			rs = t.strides[d]
		} else if t.strides[d] != rs*inner {
			return 0, false
		}
		inner *= t.shape[d]
	}
	if rs == -1 {
		rs = t.shape[r-1]
	}
	return rs, true
}

// batchOffsets lists the storage offset of every batch element, in row-major order.
func batchOffsets(batch, strides []int, base int) []int {
	nb := 1
	for _, d := range batch {
		nb *= d
	}
	offs := make([]int, 0, nb)
	idx := make([]int, len(batch))
	off := base
	for i := 0; i < nb; i++ {
		offs = append(offs, off)
		for d := len(batch) - 1; d >= 0; d-- {
			idx[d]++
			off += strides[d]
			if idx[d] < batch[d] {
				break
			}
			off -= strides[d] * idx[d]
			idx[d] = 0
		}
	}
	return offs
}

// gemm2 computes C = A·B + beta·C for 2-D views a [m,k], b [k,n] whose layouts
// are gemmable, into c with row stride ldc.
func gemm2(be kernels.Backend, a, b *Tensor, c []float32, ldc int, beta float32) {
	m, k, n := a.shape[0], a.shape[1], b.shape[1]
	am, _ := asMatrix(a.storage.data, a.offset, m, k, a.strides[0], a.strides[1])
	bm, _ := asMatrix(b.storage.data, b.offset, k, n, b.strides[0], b.strides[1])
	if k == 0 {
		am.data, bm.data = nil, nil
	}
	be.Sgemm(am.trans, bm.trans, m, n, k, 1, am.data, am.ld, bm.data, bm.ld, beta, c, ldc)
}

// parallelFor calls fn(i) for i in [0, n) on up to workers() goroutines,
// each taking a contiguous share.
func parallelFor(n int, fn func(i int)) {
	w := min(workers(), n)
	if w <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	per := (n + w - 1) / w
	for lo := 0; lo < n; lo += per {
		hi := min(n, lo+per)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// workers is how many goroutines an operation may use: GOMAXPROCS, or the
// thread cap of the default kernel backend (gorch_set_num_threads and
// benchmarks' thread counts set it) when lower.
func workers() int { return kernels.Threads(kernels.Default()) }

// Linear returns x·wᵀ + b for x [..., in], w [out, in] and b [out] or nil.
// w is passed to the GEMM transposed, never copied when its rows or columns
// are contiguous.
func Linear(x, w, b *Tensor) (*Tensor, error) { return linear(x, w, b, false) }

// LinearReLU returns max(x·wᵀ + b, 0), Linear followed by Relu with the
// ReLU applied to the GEMM's output while it is still in cache.
func LinearReLU(x, w, b *Tensor) (*Tensor, error) { return linear(x, w, b, true) }

func linear(x, w, b *Tensor, relu bool) (*Tensor, error) {
	var err error
	if b != nil {
		err = check(statLinear, x, w, b)
	} else {
		err = check(statLinear, x, w)
	}
	if err != nil {
		return nil, err
	}
	if len(x.shape) == 0 {
		return nil, errs.New(errs.Shape, "linear", "input of shape %v needs at least 1 dimension", x.shape)
	}
	if len(w.shape) != 2 {
		return nil, errs.New(errs.Shape, "linear", "weight of shape %v is not 2-dimensional", w.shape)
	}
	in, outF := x.shape[len(x.shape)-1], w.shape[0]
	if w.shape[1] != in {
		return nil, errs.New(errs.Shape, "linear", "input of shape %v and weight of shape %v cannot be multiplied", x.shape, w.shape)
	}
	if b != nil && (len(b.shape) != 1 || b.shape[0] != outF) {
		return nil, errs.New(errs.Shape, "linear", "bias of shape %v does not match weight of shape %v", b.shape, w.shape)
	}
	outShape := append(append([]int(nil), x.shape[:len(x.shape)-1]...), outF)
	out := newUninit(scopeOf(x, w, b), outShape) // the GEMM writes C with beta = 0
	rows := 1
	for _, d := range x.shape[:len(x.shape)-1] {
		rows *= d
	}
	if rows == 0 || outF == 0 {
		return out, nil
	}
	c := out.storage.data
	// x as [rows, in].
	xm := x
	if len(x.shape) == 1 {
		xm = x.view([]int{1, in}, []int{0, x.strides[0]}, x.offset)
	} else if rs, ok := foldRows(x); ok {
		xm = x.view([]int{rows, in}, []int{rs, x.strides[len(x.strides)-1]}, x.offset)
	} else {
		xm = fromData(nil, x.copyData(), []int{rows, in})
	}
	if !gemmable(xm) {
		xm = fromData(nil, xm.copyData(), xm.shape)
	}
	wt := w.view([]int{in, outF}, []int{w.strides[1], w.strides[0]}, w.offset)
	if !gemmable(wt) {
		wt = fromData(nil, wt.copyData(), wt.shape)
	}
	gemm2(kernels.Default(), xm, wt, c, outF, 0)
	// Bias and ReLU in one pass over C, a row at a time while it is in L1.
	if b != nil || relu {
		var bd []float32
		if b != nil {
			bd = b.Data()
		}
		for i := range rows {
			row := c[i*outF : (i+1)*outF]
			if bd != nil {
				kernels.VecAdd(row, row, bd)
			}
			if relu {
				kernels.VecRelu(row, row)
			}
		}
	}
	return out, nil
}
