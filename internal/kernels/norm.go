package kernels

// LayerNorm rows in one AVX-512 kernel each, for rows whose length is a
// multiple of 16 with both an affine weight and a bias (a transformer's
// layer norms). They compute what pkg/tensor's per-row vector-kernel path
// computes — float32 arithmetic as PyTorch's CPU layer norm, sums in
// float64 — in the same order of float32 operations; only the order of
// the float64 additions differs. Each returns false, doing nothing, when it
// has no kernel for the call (the caller runs its own path).

func normOK(n int) bool {
	return n > 0 && n%16 == 0 && int(vecLevel.Load()) == vecAVX512 && normKernels
}

// LayerNormRow writes o = (x - mean)·rstd·w + b for one row x and returns
// mean = float32(Σx/n) and rstd = float32(1/√(Σ(x - mean)²/n + eps)), the
// sums in float64 over the float32 values and centred squares. o, w and b
// must be as long as x.
func LayerNormRow(o, x, w, b []float32, eps float32) (mean, rstd float32, ok bool) {
	n := len(x)
	if !normOK(n) || len(o) < n || len(w) < n || len(b) < n {
		return 0, 0, false
	}
	mean, rstd = layerNormFwd(o[:n], x, w[:n], b[:n], eps)
	return mean, rstd, true
}

// LayerNormInputGradRow writes the input gradient of one row, o = ((ĝ -
// x̂·b) - a)·rstd with ĝ = g·w, x̂ = (x - mean)·rstd, a = float32(Σĝ/n) and
// b = float32(Σĝ·x̂/n) (sums in float64). o, x and w must be as long as g.
func LayerNormInputGradRow(o, g, x, w []float32, mean, rstd float32) bool {
	n := len(g)
	if !normOK(n) || len(o) < n || len(x) < n || len(w) < n {
		return false
	}
	layerNormBwd(o[:n], g, x[:n], w[:n], mean, rstd)
	return true
}

// LayerNormWeightGradRow adds one row's share of the weight and bias
// gradients: sw[j] += float64((x[j] - mean)·rstd·g[j]), sb[j] +=
// float64(g[j]), each a separate float64 addition (as VecAccumF64). sw, sb
// and x must be as long as g.
func LayerNormWeightGradRow(sw, sb []float64, g, x []float32, mean, rstd float32) bool {
	n := len(g)
	if !normOK(n) || len(sw) < n || len(sb) < n || len(x) < n {
		return false
	}
	layerNormWB(sw[:n], sb[:n], g, x[:n], mean, rstd)
	return true
}
