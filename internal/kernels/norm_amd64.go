package kernels

//go:generate sh -c "python3 asmgen/norm.py > norm_amd64.s"

const normKernels = true

// Implemented in norm_amd64.s; n is a multiple of 16.

//go:noescape
func layerNormFwdAVX512(o, x, w, b *float32, n int, nf, eps float64, stats *[2]float32)

//go:noescape
func layerNormBwdAVX512(o, gr, x, w *float32, n int, nf float64, mean, rstd float32)

//go:noescape
func layerNormWBAVX512(sw, sb *float64, gr, x *float32, n int, mean, rstd float32)

func layerNormFwd(o, x, w, b []float32, eps float32) (mean, rstd float32) {
	var st [2]float32
	layerNormFwdAVX512(&o[0], &x[0], &w[0], &b[0], len(x), float64(len(x)), float64(eps), &st)
	return st[0], st[1]
}

func layerNormBwd(o, g, x, w []float32, mean, rstd float32) {
	layerNormBwdAVX512(&o[0], &g[0], &x[0], &w[0], len(g), float64(len(g)), mean, rstd)
}

func layerNormWB(sw, sb []float64, g, x []float32, mean, rstd float32) {
	layerNormWBAVX512(&sw[0], &sb[0], &g[0], &x[0], len(g), mean, rstd)
}

//go:noescape
func layerNormFwd4AVX512(o, x, w, b *float32, n int, nf, eps float64, stats *[8]float32)

//go:noescape
func layerNormBwd4AVX512(o, gr, x, w *float32, n int, nf float64, stats *[8]float32)

//go:noescape
func layerNormWB4AVX512(sw, sb *float64, gr, x *float32, n int, stats *[8]float32)

func layerNormFwd4(o, x, w, b []float32, n int, eps float32, mean, rstd []float32) {
	var st [8]float32
	layerNormFwd4AVX512(&o[0], &x[0], &w[0], &b[0], n, float64(n), float64(eps), &st)
	copy(mean[:4], st[:4])
	copy(rstd[:4], st[4:])
}

func layerNormBwd4(o, g, x, w []float32, n int, mean, rstd []float32) {
	var st [8]float32
	copy(st[:4], mean[:4])
	copy(st[4:], rstd[:4])
	layerNormBwd4AVX512(&o[0], &g[0], &x[0], &w[0], n, float64(n), &st)
}

func layerNormWB4(sw, sb []float64, g, x []float32, n int, mean, rstd []float32) {
	var st [8]float32
	copy(st[:4], mean[:4])
	copy(st[4:], rstd[:4])
	layerNormWB4AVX512(&sw[0], &sb[0], &g[0], &x[0], n, &st)
}
