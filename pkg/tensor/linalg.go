package tensor

import (
	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
)

var (
	statAddmm = stat("addmm")
	statBmm   = stat("bmm")
)

// Addmm returns beta·input + alpha·(m1·m2) for matrices m1 [n, k] and m2
// [k, m], with input broadcast to [n, m], as torch.addmm. With beta 0 the
// input is not read (NaN in it does not propagate), as in PyTorch.
func Addmm(input, m1, m2 *Tensor, beta, alpha float32) (*Tensor, error) {
	s := statAddmm
	if err := checkIn(s, input, m1, m2); err != nil {
		return nil, err
	}
	if len(m1.shape) != 2 || len(m2.shape) != 2 || m1.shape[1] != m2.shape[0] {
		return nil, errs.New(errs.Shape, s.name, "matrices of shapes %v and %v cannot be multiplied", m1.shape, m2.shape)
	}
	n, m := m1.shape[0], m2.shape[1]
	if shape, err := broadcastShape(s.name, input.shape, []int{n, m}); err != nil || !EqualShape(shape, []int{n, m}) {
		return nil, errs.New(errs.Shape, s.name, "input of shape %v cannot be broadcast to [%d %d]", input.shape, n, m)
	}
	if alpha != 1 {
		var err error
		if m1, err = MulScalar(m1, alpha); err != nil {
			return nil, err
		}
	}
	newOut := newContiguous
	if beta != 0 { // beta·input is copied over every element below
		newOut = newUninit
	}
	out := newOut(scopeOf(input, m1, m2), []int{n, m})
	if n == 0 || m == 0 {
		return out, nil
	}
	// Like Linear: the output starts as beta·input and the GEMM adds into
	// it, so the sum costs no extra pass.
	c := out.storage.data
	var gemmBeta float32
	if beta != 0 {
		moveInto(c, 0, out.strides, input.storage.data, out.shape, broadcastStrides(input.shape, input.strides, out.shape), input.offset, false)
		if beta != 1 {
			for i := range c {
				c[i] *= beta
			}
		}
		gemmBeta = 1
	}
	if m1.shape[1] == 0 {
		return out, nil
	}
	if !gemmable(m1) {
		m1 = fromData(nil, m1.copyData(), m1.shape)
	}
	if !gemmable(m2) {
		m2 = fromData(nil, m2.copyData(), m2.shape)
	}
	gemm2(kernels.Default(), m1, m2, c, m, gemmBeta)
	return out, nil
}

// Bmm multiplies two stacks of matrices, a [B, n, k] and b [B, k, m], as
// torch.bmm (no broadcasting; Matmul broadcasts).
func Bmm(a, b *Tensor) (*Tensor, error) {
	s := statBmm
	if err := checkIn(s, a, b); err != nil {
		return nil, err
	}
	if len(a.shape) != 3 || len(b.shape) != 3 || a.shape[0] != b.shape[0] || a.shape[2] != b.shape[1] {
		return nil, errs.New(errs.Shape, s.name, "batches of shapes %v and %v cannot be multiplied", a.shape, b.shape)
	}
	return Matmul(a, b)
}
