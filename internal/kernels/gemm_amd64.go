package kernels

import "golang.org/x/sys/cpu"

//go:generate sh -c "python3 asmgen/gen.py > gemm_amd64.s"

// sgemmKernelAVX512 adds alpha times the product of a packed 12-row A
// sliver and a packed 32-column B panel, both k deep, into the 12×32 tile of
// C at c (row stride ldc elements). Requires AVX512F.
//
//go:noescape
func sgemmKernelAVX512(k int, a, b, c *float32, ldc int, alpha float32)

// sgemmKernelAVX2 is the 6×16 AVX2+FMA counterpart of sgemmKernelAVX512.
//
//go:noescape
func sgemmKernelAVX2(k int, a, b, c *float32, ldc int, alpha float32)

// sgemmKernelAVX2S is sgemmKernelAVX2 reading B in place: b[p*ldb + j]
// (j < 16) instead of a packed panel; bit-identical results.
//
//go:noescape
func sgemmKernelAVX2S(k int, a, b *float32, ldb int, c *float32, ldc int, alpha float32)

// packBTransAVX2 packs a 16-column panel of op(B) = Bᵀ, 8·k8 steps deep:
// dst[p*16 + c] = b[c*ldb + p].
//
//go:noescape
func packBTransAVX2(k8 int, b *float32, ldb int, dst *float32)

// packA6AVX2 packs a full 6-row sliver of op(A) = A, 8·k8 steps deep:
// dst[p*6 + r] = a[r*lda + p]; writes 2 floats past dst[48·k8-1].
//
//go:noescape
func packA6AVX2(k8 int, a *float32, lda int, dst *float32)

// fmaPeakAVX512 runs iters iterations of 24 independent zmm FMAs
// (24·32 flops each); fmaPeakAVX2 runs 12 ymm FMAs (12·16 flops).
func fmaPeakAVX512(iters int)
func fmaPeakAVX2(iters int)

func hasAVX512() bool { return cpu.X86.HasAVX512F }
func hasAVX2() bool   { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

var (
	avx512Backend = &packedBackend{name: "avx512", mr: 12, nr: 32, kc: 256, nc: 1024, kernel: sgemmKernelAVX512}
	avx2Backend   = &packedBackend{name: "avx2", mr: 6, nr: 16, kc: 256, nc: 1024, kernel: sgemmKernelAVX2,
		kernelS: sgemmKernelAVX2S, packT: packBTransAVX2, packA6: packA6AVX2}
)
