//go:build !amd64

package kernels

func vecCPU() bool { return false }

// The vector path is never enabled off amd64; these are unreachable.

func vaddAVX2(d, x, y *float32, n int)                  { panic("kernels: no AVX2") }
func vsubAVX2(d, x, y *float32, n int)                  { panic("kernels: no AVX2") }
func vmulAVX2(d, x, y *float32, n int)                  { panic("kernels: no AVX2") }
func vaddsAVX2(d, x *float32, c float32, n int)         { panic("kernels: no AVX2") }
func vsubsAVX2(d, x *float32, c float32, n int)         { panic("kernels: no AVX2") }
func vrsubsAVX2(d, x *float32, c float32, n int)        { panic("kernels: no AVX2") }
func vmulsAVX2(d, x *float32, c float32, n int)         { panic("kernels: no AVX2") }
func vreluAVX2(d, x *float32, n int)                    { panic("kernels: no AVX2") }
func vreluBackAVX2(d, gr, x *float32, n int)            { panic("kernels: no AVX2") }
func vaccF64AVX2(acc *float64, x *float32, n int)       { panic("kernels: no AVX2") }
func vsumF64AVX2(x *float32, n int, lanes *[16]float64) { panic("kernels: no AVX2") }
func adamAVX2(p, gr, m, v *float32, n, hi int, w1, b2, w2, eps, bc2, negStep float32) {
	panic("kernels: no AVX2")
}
func sgdAVX2(p, gr, buf *float32, n, flags int, wd, mom, damp, negLR float32) {
	panic("kernels: no AVX2")
}
