//go:build !amd64

package kernels

func hasAVX512() bool { return false }
func hasAVX2() bool   { return false }

var avx512Backend, avx512Tile12x32, avx512Tile6x64, avx2Backend *packedBackend

func fmaPeakAVX512(iters int) { panic("kernels: no AVX-512 on this architecture") }
func fmaPeakAVX2(iters int)   { panic("kernels: no AVX2 on this architecture") }

func hasAVX512VL() bool { return false }

func maxPool2x2AVX2(n int, x *float32, s1, rowb, adv int, out, idx *float32, i0 *[8]float32, k *[3]float32) {
	panic("kernels: no AVX2 on this architecture")
}
