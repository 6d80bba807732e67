package kernels

import (
	"os"

	"golang.org/x/sys/cpu"
)

//go:generate sh -c "python3 asmgen/gen.py > gemm_amd64.s"

// Micro-kernels and packing routines, one set per instruction set
// (asmgen/gen.py): AVX-512F with a 6×64 zmm tile (the AVX512W set) and a
// 12×32 one for products narrower than 64 columns, AVX2+FMA with a 6×16
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

// sgemmKernelAVX512W and its Set variant are the 6×64 counterparts (4 B
// vectors and 6 broadcasts per 24 FMAs, against 2 and 12 for the 12×32
// tile); their A slivers are the AVX2 set's 6-row packs.
//
//go:noescape
func sgemmKernelAVX512W(k int, a, b, c *float32, ldc int, alpha float32)

//go:noescape
func sgemmKernelAVX512WSet(k int, a, b, c *float32, ldc int, alpha float32)

// sgemmKernelAVX512WA and its Set variant read the 6 rows of A in place
// (a[r*lda + p]) instead of a packed sliver; bit-identical results.
//
//go:noescape
func sgemmKernelAVX512WA(k int, a *float32, lda int, b, c *float32, ldc int, alpha float32)

//go:noescape
func sgemmKernelAVX512WASet(k int, a *float32, lda int, b, c *float32, ldc int, alpha float32)

// sgemmKernelAVX512WAT and its Set variant read A in place where
// op(A) = Aᵀ: the sliver's k steps are rows of a, a[p*lda + r].
//
//go:noescape
func sgemmKernelAVX512WAT(k int, a *float32, lda int, b, c *float32, ldc int, alpha float32)

//go:noescape
func sgemmKernelAVX512WATSet(k int, a *float32, lda int, b, c *float32, ldc int, alpha float32)

// sgemmKernelAVX512A, sgemmKernelAVX2A and their Set variants are the
// 12×32 and 6×16 kernels reading A in place, as sgemmKernelAVX512WA;
// bit-identical results.
//
//go:noescape
func sgemmKernelAVX512A(k int, a *float32, lda int, b, c *float32, ldc int, alpha float32)

//go:noescape
func sgemmKernelAVX512ASet(k int, a *float32, lda int, b, c *float32, ldc int, alpha float32)

//go:noescape
func sgemmKernelAVX2A(k int, a *float32, lda int, b, c *float32, ldc int, alpha float32)

//go:noescape
func sgemmKernelAVX2ASet(k int, a *float32, lda int, b, c *float32, ldc int, alpha float32)

//go:noescape
func packBTransAVX512W(k8 int, b *float32, ldb int, dst *float32)

//go:noescape
func packBRowsAVX512W(k int, b *float32, ldb int, dst *float32)

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
	// avx512Tile12x32 runs the products narrower than 64 columns (the
	// 6×64 backend's narrow); it was the whole AVX-512 backend on AMD
	// until the 6×64 driver read A in place and ran owned rectangles
	// (on a Zen 4 EPYC 6×64 is now +13–15 % at 1024³ and 2048³, 1 and 2
	// threads; bench/README.md). Like the 6×64 tile it reads A in place where
	// op(A) = A and B is packed (kernelA; on the Ice Lake Xeon +3–14 % on
	// MLP and GPT shapes, 1024³ even, and +29–62 % on Intel's products of
	// 32–48 columns, whose A was packed for one or two panels); Aᵀ in place
	// measured even there, so it is not generated (bench/README.md).
	avx512Tile12x32 = &packedBackend{name: "avx512", mr: 12, nr: 32, kc: 256, nc: 512,
		kernel: sgemmKernelAVX512, kernelSet: sgemmKernelAVX512Set, kernelS: sgemmKernelAVX512S, kernelSSet: sgemmKernelAVX512SSet,
		kernelA: sgemmKernelAVX512A, kernelASet: sgemmKernelAVX512ASet,
		packT: packBTransAVX512, packA: packA12AVX512, packARows: packARows12AVX512, packRows: packBRowsAVX512,
		packATab: packATab12AVX512}
	// avx512Tile6x64 is the AVX-512 backend on every CPU. Intel's two
	// 512-bit FMA units the 12×32 tile cannot keep busy: on an Ice Lake
	// Xeon the 6×64 kernel alone on packed operands runs ~13 % faster (10 loads per
	// 24 FMAs instead of 14; bench/README.md). Its k steps are deeper (kc 512, half the
	// C tile loads and stores; nc 256 keeps a step's B block at 512 KiB):
	// +3 % at 1024³ there; products up to k = 1024 run as one k step (kcMax:
	// C written once; +1–4 % at 1024³ and the MLP's k = 784). It always packs
	// B (no kernelS): reading 64-float rows in place was slower there for
	// every shape measured, 256–768 square (−3 to −19 %, worst at the
	// power-of-two 512) and the MLP's (−1 to −10 %). It reads A in place
	// instead (kernelA, op(A) = A): +4.5 % at 1024³, +9–13 % on MLP and GPT
	// shapes; and Aᵀ for products of up to 128 columns (kernelAT: +16–37 %
	// on GPT weight-gradient shapes; bench/README.md). With several
	// workers its products run as owned rectangles (1024³ +3–9 % at 2
	// threads, 2048³ +1–7 %); the 12×32 and 6×16 tiles, whose k steps are
	// shallower, keep the pipelined phases (owned: −3 to −5 % at 1024³ and
	// 2048³ on the Ice Lake Xeon).
	avx512Tile6x64 = &packedBackend{name: "avx512", mr: 6, nr: 64, kc: 512, nc: 256, kcMax: 1024, owned: true,
		kernel: sgemmKernelAVX512W, kernelSet: sgemmKernelAVX512WSet,
		kernelA: sgemmKernelAVX512WA, kernelASet: sgemmKernelAVX512WASet,
		kernelAT: sgemmKernelAVX512WAT, kernelATSet: sgemmKernelAVX512WATSet,
		packT: packBTransAVX512W, packA: packA6AVX2, packARows: packARows6AVX2, packRows: packBRowsAVX512W,
		packATab: packATab6AVX2, narrow: avx512Tile12x32}
	// avx512Backend is the one ByName("avx512") returns (see init).
	avx512Backend = avx512Tile6x64
	// avx2Backend reads A in place as well (kernelA: +4–14 % on GPT
	// shapes with m > directBMaxM on the Ice Lake Xeon, 1024³ +1–2 %).
	// Both tiles read B in place instead only for products of at most
	// directBMaxMA rows and 4·nr columns.
	avx2Backend = &packedBackend{name: "avx2", mr: 6, nr: 16, kc: 256, nc: 512,
		kernel: sgemmKernelAVX2, kernelSet: sgemmKernelAVX2Set, kernelS: sgemmKernelAVX2S, kernelSSet: sgemmKernelAVX2SSet,
		kernelA: sgemmKernelAVX2A, kernelASet: sgemmKernelAVX2ASet,
		packT: packBTransAVX2, packA: packA6AVX2, packARows: packARows6AVX2, packRows: packBRowsAVX2,
		packATab: packATab6AVX2, conv: convAVX2}
)

// EnvAVX512Tile names the environment variable that picks the AVX-512
// GEMM tile: "12x32", else 6x64 (the default, on Intel and AMD alike). It
// is an A/B hook for benchmarks. The tiles' k steps differ (kc 256 and
// 512), so results may differ in the last bits between them.
const EnvAVX512Tile = "GORCH_AVX512_TILE"

func init() {
	for _, be := range []*packedBackend{avx512Tile12x32, avx512Tile6x64} {
		be.conv = convAVX2
		if hasAVX512VL() {
			be.conv = convAVX512
		}
	}
	if os.Getenv(EnvAVX512Tile) == "12x32" {
		avx512Backend = avx512Tile12x32
	}
}
