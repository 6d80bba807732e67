//go:build !amd64

package kernels

func vecCPU() bool    { return false }
func vecCPU512() bool { return false }

// The vector paths are never enabled off amd64; these are unreachable.
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
func vaddAVX512(d, x, y *float32, n int)                  { panic("kernels: no AVX512") }
func vsubAVX512(d, x, y *float32, n int)                  { panic("kernels: no AVX512") }
func vmulAVX512(d, x, y *float32, n int)                  { panic("kernels: no AVX512") }
func vaddsAVX512(d, x *float32, c float32, n int)         { panic("kernels: no AVX512") }
func vsubsAVX512(d, x *float32, c float32, n int)         { panic("kernels: no AVX512") }
func vrsubsAVX512(d, x *float32, c float32, n int)        { panic("kernels: no AVX512") }
func vmulsAVX512(d, x *float32, c float32, n int)         { panic("kernels: no AVX512") }
func vreluAVX512(d, x *float32, n int)                    { panic("kernels: no AVX512") }
func vreluBackAVX512(d, gr, x *float32, n int)            { panic("kernels: no AVX512") }
func vaccF64AVX512(acc *float64, x *float32, n int)       { panic("kernels: no AVX512") }
func vsumF64AVX512(x *float32, n int, lanes *[16]float64) { panic("kernels: no AVX512") }
func adamAVX512(p, gr, m, v *float32, n, hi int, w1, b2, w2, eps, bc2, negStep float32) {
	panic("kernels: no AVX512")
}
func sgdAVX512(p, gr, buf *float32, n, flags int, wd, mom, damp, negLR float32) {
	panic("kernels: no AVX512")
}
