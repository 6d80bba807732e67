//go:build !amd64

package kernels

const normKernels = false

func layerNormFwd(o, x, w, b []float32, eps float32) (mean, rstd float32) {
	panic("kernels: no layer norm kernels")
}

func layerNormBwd(o, g, x, w []float32, mean, rstd float32) { panic("kernels: no layer norm kernels") }

func layerNormWB(sw, sb []float64, g, x []float32, mean, rstd float32) {
	panic("kernels: no layer norm kernels")
}

func layerNormFwd4(o, x, w, b []float32, n int, eps float32, mean, rstd []float32) {
	panic("kernels: no layer norm kernels")
}

func layerNormBwd4(o, g, x, w []float32, n int, mean, rstd []float32) {
	panic("kernels: no layer norm kernels")
}

func layerNormWB4(sw, sb []float64, g, x []float32, n int, mean, rstd []float32) {
	panic("kernels: no layer norm kernels")
}
