package kernels

//go:generate sh -c "python3 asmgen/small.py > small_amd64.s"

const smallKernels = true

// smallKernel runs the mr×(16·nb) micro-kernel of SmallGemm
// (small_amd64.s): C = Σ over p < k of A(r, p)·B[p, :], with A(r, p) at a
// + r·rs + p·cs and B, C rows ldb and ldc apart (all strides in bytes).
func smallKernel(mr, nb, k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int) {
	smallMK[mr-1][nb-1](k, a, rs, cs, b, ldb, c, ldc)
}

var smallMK = [4][4]func(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int){
	{smallMK1x1, smallMK1x2, smallMK1x3, smallMK1x4},
	{smallMK2x1, smallMK2x2, smallMK2x3, smallMK2x4},
	{smallMK3x1, smallMK3x2, smallMK3x3, smallMK3x4},
	{smallMK4x1, smallMK4x2, smallMK4x3, smallMK4x4},
}

// Implemented in small_amd64.s.

//go:noescape
func smallMK1x1(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK1x2(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK1x3(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK1x4(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK2x1(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK2x2(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK2x3(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK2x4(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK3x1(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK3x2(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK3x3(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK3x4(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK4x1(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK4x2(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK4x3(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func smallMK4x4(k int, a *float32, rs, cs int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func attnSoftmaxAVX512(row *float32, w, wr int, scale float32, tab *uint32) (sum float64, m float32)

//go:noescape
func attnSoftmaxGradAVX512(p, d *float32, wr int, scale float32)

func attnSoftmax(row []float32, w, wr int, scale float32) (sum float64, m float32) {
	return attnSoftmaxAVX512(&row[0], w, wr, scale, &geluTable512[0])
}

func attnSoftmaxGrad(p, d []float32, wr int, scale float32) {
	attnSoftmaxGradAVX512(&p[0], &d[0], wr, scale)
}
