package kernels

import "golang.org/x/sys/cpu"

//go:generate sh -c "python3 asmgen/gen.py > gemm_amd64.s"

// Micro-kernels and packing routines, one set per instruction set
// (asmgen/gen.py): AVX-512F with a 12×32 zmm tile, AVX2+FMA with a 6×16
// ymm tile. Shapes in the comments use mr×nr for the tile.

// sgemmKernelAVX512 adds alpha times the product of a packed 12-row A
// sliver and a packed 32-column B panel, both k deep, into the 12×32 tile of
// C at c (row stride ldc elements).
//
//go:noescape
func sgemmKernelAVX512(k int, a, b, c *float32, ldc int, alpha float32)

// sgemmKernelAVX2 is the 6×16 AVX2+FMA counterpart of sgemmKernelAVX512.
//
//go:noescape
func sgemmKernelAVX2(k int, a, b, c *float32, ldc int, alpha float32)

// The Set variants assign C = alpha·(A·B) without reading C: the first k
// step of a product with beta = 0 needs no cleared C.
//
//go:noescape
func sgemmKernelAVX512Set(k int, a, b, c *float32, ldc int, alpha float32)

//go:noescape
func sgemmKernelAVX2Set(k int, a, b, c *float32, ldc int, alpha float32)

//go:noescape
func sgemmKernelAVX512SSet(k int, a, b *float32, ldb int, c *float32, ldc int, alpha float32)

//go:noescape
func sgemmKernelAVX2SSet(k int, a, b *float32, ldb int, c *float32, ldc int, alpha float32)

// packARows12AVX512 and packARows6AVX2 pack a full mr-row sliver of
// op(A) = Aᵀ, k steps deep: dst[p*mr + r] = a[p*lda + r].
//
//go:noescape
func packARows12AVX512(k int, a *float32, lda int, dst *float32)

//go:noescape
func packARows6AVX2(k int, a *float32, lda int, dst *float32)

// sgemmKernelAVX512S and sgemmKernelAVX2S read B in place, b[p*ldb + j]
// (j < nr), instead of a packed panel; bit-identical results.
//
//go:noescape
func sgemmKernelAVX512S(k int, a, b *float32, ldb int, c *float32, ldc int, alpha float32)

//go:noescape
func sgemmKernelAVX2S(k int, a, b *float32, ldb int, c *float32, ldc int, alpha float32)

// packBTransAVX512 and packBTransAVX2 pack an nr-column panel of
// op(B) = Bᵀ, 8·k8 steps deep: dst[p*nr + c] = b[c*ldb + p].
//
//go:noescape
func packBTransAVX512(k8 int, b *float32, ldb int, dst *float32)

//go:noescape
func packBTransAVX2(k8 int, b *float32, ldb int, dst *float32)

// packA12AVX512 and packA6AVX2 pack a full mr-row sliver of op(A) = A,
// 8·k8 steps deep: dst[p*mr + r] = a[r*lda + p]. They write up to 4 floats
// past dst[8·mr·k8-1], which must exist.
//
//go:noescape
func packA12AVX512(k8 int, a *float32, lda int, dst *float32)

//go:noescape
func packA6AVX2(k8 int, a *float32, lda int, dst *float32)

// packATab12AVX512 and packATab6AVX2 are packA12AVX512 and packA6AVX2
// with row r at base + offs[r] bytes.
//
//go:noescape
func packATab12AVX512(k8 int, base *float32, offs *int, dst *float32)

//go:noescape
func packATab6AVX2(k8 int, base *float32, offs *int, dst *float32)

// packBRowsAVX512 and packBRowsAVX2 pack a full nr-column panel of
// op(B) = B, k steps deep: dst[p*nr + c] = b[p*ldb + c].
//
//go:noescape
func packBRowsAVX512(k int, b *float32, ldb int, dst *float32)

//go:noescape
func packBRowsAVX2(k int, b *float32, ldb int, dst *float32)

// Direct-convolution kernels (asmgen/gen.py; see conv.go): convFwd adds an
// mr×8nb tile of W·image, reading the image through a table of tap offsets;
// convBwdData adds a tile of Wᵀ·gout into the input gradient through a
// table of row offsets. The AVX512 ones use 32 ymm registers (AVX-512VL).

//go:noescape
func convFwdAVX2_1x4(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)

//go:noescape
func convBwdDataAVX2_1x4(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)

//go:noescape
func convFwdAVX2_2x4(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)

//go:noescape
func convBwdDataAVX2_2x4(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)

//go:noescape
func convFwdAVX2_3x4(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)

//go:noescape
func convBwdDataAVX2_3x4(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)

//go:noescape
func convFwdAVX2_1x6(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)

//go:noescape
func convBwdDataAVX2_1x6(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)

//go:noescape
func convFwdAVX2_2x6(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)

//go:noescape
func convBwdDataAVX2_2x6(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)

//go:noescape
func convFwdAVX2_1x12(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)

//go:noescape
func convBwdDataAVX2_1x12(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)

//go:noescape
func convFwdAVX512_1x8(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)

//go:noescape
func convBwdDataAVX512_1x8(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)

//go:noescape
func convFwdAVX512_2x8(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)

//go:noescape
func convBwdDataAVX512_2x8(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)

//go:noescape
func convFwdAVX512_3x8(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)

//go:noescape
func convBwdDataAVX512_3x8(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)

//go:noescape
func convFwdAVX512_1x12(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)

//go:noescape
func convBwdDataAVX512_1x12(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)

//go:noescape
func convFwdAVX512_2x12(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)

//go:noescape
func convBwdDataAVX512_2x12(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)

//go:noescape
func convFwdAVX512_1x16(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)

//go:noescape
func convBwdDataAVX512_1x16(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)

var (
	convAVX512 = []convTile{
		{nb: 1, mr: 8, fwd: convFwdAVX512_1x8, bwd: convBwdDataAVX512_1x8},
		{nb: 2, mr: 8, fwd: convFwdAVX512_2x8, bwd: convBwdDataAVX512_2x8},
		{nb: 3, mr: 8, fwd: convFwdAVX512_3x8, bwd: convBwdDataAVX512_3x8},
		{nb: 1, mr: 12, fwd: convFwdAVX512_1x12, bwd: convBwdDataAVX512_1x12},
		{nb: 2, mr: 12, fwd: convFwdAVX512_2x12, bwd: convBwdDataAVX512_2x12},
		{nb: 1, mr: 16, fwd: convFwdAVX512_1x16, bwd: convBwdDataAVX512_1x16},
	}
	convAVX2 = []convTile{
		{nb: 1, mr: 4, fwd: convFwdAVX2_1x4, bwd: convBwdDataAVX2_1x4},
		{nb: 2, mr: 4, fwd: convFwdAVX2_2x4, bwd: convBwdDataAVX2_2x4},
		{nb: 3, mr: 4, fwd: convFwdAVX2_3x4, bwd: convBwdDataAVX2_3x4},
		{nb: 1, mr: 6, fwd: convFwdAVX2_1x6, bwd: convBwdDataAVX2_1x6},
		{nb: 2, mr: 6, fwd: convFwdAVX2_2x6, bwd: convBwdDataAVX2_2x6},
		{nb: 1, mr: 12, fwd: convFwdAVX2_1x12, bwd: convBwdDataAVX2_1x12},
	}
)

// maxPool2x2AVX2 is the vector body of MaxPool2x2 (see gen.py for the
// arguments).
//
//go:noescape
func maxPool2x2AVX2(n int, x *float32, s1, rowb, adv int, out, idx *float32, i0 *[8]float32, k *[3]float32)

// fmaPeakAVX512 runs iters iterations of 24 independent zmm FMAs
// (24·32 flops each); fmaPeakAVX2 runs 12 ymm FMAs (12·16 flops).
func fmaPeakAVX512(iters int)
func fmaPeakAVX2(iters int)

func hasAVX512() bool { return cpu.X86.HasAVX512F }

// hasAVX512VL reports whether the 32-register ymm conv kernels can run.
func hasAVX512VL() bool { return cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL }
func hasAVX2() bool     { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

var (
	avx512Backend = &packedBackend{name: "avx512", mr: 12, nr: 32, kc: 256, nc: 512,
		kernel: sgemmKernelAVX512, kernelSet: sgemmKernelAVX512Set, kernelS: sgemmKernelAVX512S, kernelSSet: sgemmKernelAVX512SSet,
		packT: packBTransAVX512, packA: packA12AVX512, packARows: packARows12AVX512, packRows: packBRowsAVX512,
		packATab: packATab12AVX512}
	avx2Backend = &packedBackend{name: "avx2", mr: 6, nr: 16, kc: 256, nc: 512,
		kernel: sgemmKernelAVX2, kernelSet: sgemmKernelAVX2Set, kernelS: sgemmKernelAVX2S, kernelSSet: sgemmKernelAVX2SSet,
		packT: packBTransAVX2, packA: packA6AVX2, packARows: packARows6AVX2, packRows: packBRowsAVX2,
		packATab: packATab6AVX2, conv: convAVX2}
)

func init() {
	avx512Backend.conv = convAVX2
	if hasAVX512VL() {
		avx512Backend.conv = convAVX512
	}
}
