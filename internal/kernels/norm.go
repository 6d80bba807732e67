package kernels

// LayerNorm rows in AVX-512 kernels, for rows whose length is a multiple of
// 16 with an affine weight (and, forward, a bias): a transformer's layer
// norms. They compute what pkg/tensor's per-row vector-kernel path
// computes — float32 arithmetic as PyTorch's CPU layer norm, sums in
// float64 — in the same order of float32 operations; only the order of
// the float64 additions differs. Four rows run at a time, their dependency
// chains interleaved (a row alone is a chain of two sums, a division and a
// square root). Each returns false, doing nothing, when it has no kernel
// for the call (the caller runs its own path).

func normOK(n int) bool {
	return n > 0 && n%16 == 0 && int(vecLevel.Load()) == vecAVX512 && normKernels
}

// LayerNormRows writes o = (x - mean)·rstd·w + b for the len(x)/n
// consecutive rows of n in x, with mean = float32(Σx/n) and rstd =
// float32(1/√(Σ(x - mean)²/n + eps)) of each row, its sums in float64 over
// the float32 values and centred squares; row i's go to mean[i] and
// rstd[i]. o must be as long as x, w and b n long.
func LayerNormRows(o, x, w, b []float32, n int, eps float32, mean, rstd []float32) bool {
	if !normOK(n) || len(x)%n != 0 || len(o) < len(x) || len(w) < n || len(b) < n || len(mean) < len(x)/n || len(rstd) < len(x)/n {
		return false
	}
	m, i := len(x)/n, 0
	for ; i+4 <= m; i += 4 {
		layerNormFwd4(o[i*n:(i+4)*n], x[i*n:(i+4)*n], w[:n], b[:n], n, eps, mean[i:i+4], rstd[i:i+4])
	}
	for ; i < m; i++ {
		mean[i], rstd[i] = layerNormFwd(o[i*n:(i+1)*n], x[i*n:(i+1)*n], w[:n], b[:n], eps)
	}
	return true
}

// LayerNormInputGradRows writes into o the input gradient of the len(g)/n
// consecutive rows of n in g, o = ((ĝ - x̂·b) - a)·rstd with ĝ = g·w, x̂ =
// (x - mean)·rstd, a = float32(Σĝ/n) and b = float32(Σĝ·x̂/n) per row (sums
// in float64). o and x must be as long as g, w n long.
func LayerNormInputGradRows(o, g, x, w []float32, n int, mean, rstd []float32) bool {
	if !normOK(n) || len(g)%n != 0 || len(o) < len(g) || len(x) < len(g) || len(w) < n || len(mean) < len(g)/n || len(rstd) < len(g)/n {
		return false
	}
	m, i := len(g)/n, 0
	for ; i+4 <= m; i += 4 {
		layerNormBwd4(o[i*n:(i+4)*n], g[i*n:(i+4)*n], x[i*n:(i+4)*n], w[:n], n, mean[i:i+4], rstd[i:i+4])
	}
	for ; i < m; i++ {
		layerNormBwd(o[i*n:(i+1)*n], g[i*n:(i+1)*n], x[i*n:(i+1)*n], w[:n], mean[i], rstd[i])
	}
	return true
}

// LayerNormWeightGradRows adds the len(g)/n rows' shares of the weight and
// bias gradients, in row order: sw[j] += float64((x[j] - mean)·rstd·g[j]),
// sb[j] += float64(g[j]), each a separate float64 addition (as
// VecAccumF64). x must be as long as g, sw and sb n long.
func LayerNormWeightGradRows(sw, sb []float64, g, x []float32, n int, mean, rstd []float32) bool {
	if !normOK(n) || len(g)%n != 0 || len(x) < len(g) || len(sw) < n || len(sb) < n || len(mean) < len(g)/n || len(rstd) < len(g)/n {
		return false
	}
	m, i := len(g)/n, 0
	for ; i+4 <= m; i += 4 {
		layerNormWB4(sw[:n], sb[:n], g[i*n:(i+4)*n], x[i*n:(i+4)*n], n, mean[i:i+4], rstd[i:i+4])
	}
	for ; i < m; i++ {
		layerNormWB(sw[:n], sb[:n], g[i*n:(i+1)*n], x[i*n:(i+1)*n], mean[i], rstd[i])
	}
	return true
}
