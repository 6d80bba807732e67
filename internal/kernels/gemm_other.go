//go:build !amd64

package kernels

func hasAVX512() bool { return false }
func hasAVX2() bool   { return false }

var avx512Backend, avx2Backend *packedBackend

func fmaPeakAVX512(iters int) { panic("kernels: no AVX-512 on this architecture") }
func fmaPeakAVX2(iters int)   { panic("kernels: no AVX2 on this architecture") }
