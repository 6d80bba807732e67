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

// fmaPeakAVX512 runs iters iterations of 24 independent zmm FMAs
// (24·32 flops each); fmaPeakAVX2 runs 12 ymm FMAs (12·16 flops).
func fmaPeakAVX512(iters int)
func fmaPeakAVX2(iters int)

func hasAVX512() bool { return cpu.X86.HasAVX512F }
func hasAVX2() bool   { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

var (
	avx512Backend = &packedBackend{name: "avx512", mr: 12, nr: 32, kc: 256, nc: 1024, kernel: sgemmKernelAVX512}
	avx2Backend   = &packedBackend{name: "avx2", mr: 6, nr: 16, kc: 256, nc: 1024, kernel: sgemmKernelAVX2}
)
