//go:build !amd64

package kernels

const smallKernels = false

func smallKernel(mr, nb, k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int) {
	panic("kernels: no small GEMM kernels")
}

func attnSoftmax(row []float32, w, wr int, scale float32) (sum float64, m float32) {
	panic("kernels: no attention softmax kernels")
}

func attnSoftmaxGrad(p, d []float32, wr int, scale float32) {
	panic("kernels: no attention softmax kernels")
}
