package kernels

import "math"

// SmallGemm sets C = op(A)·B for the small products of attention heads
// (64×64×16 and the like), where the packed GEMM driver's packing and
// blocking cost more than the arithmetic: an AVX-512 kernel reads A and B
// in place, 4 rows of C by up to 64 columns at a time, with one FMA chain
// per element over k. op(A) is m×k: A is stored m×k with row stride lda,
// or, with transA, k×m (row stride lda). B is k×n (row stride ldb) and C
// m×n (row stride ldc); C is overwritten. It does nothing and returns
// false when it has no kernel for the call (n not a multiple of 16, or the
// vector path is not AVX-512: see SetVecPath); the caller then uses a
// Backend's Sgemm. Callers validate shapes; slices too short for the
// described matrices panic.
func SmallGemm(transA bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) bool {
	if !SmallGemmOK(n) {
		return false
	}
	if m == 0 || n == 0 {
		return true
	}
	rs, cs := lda, 1 // element strides of A(r, p)
	if transA {
		rs, cs = 1, lda
	}
	if k > 0 && (len(a) <= (m-1)*rs+(k-1)*cs || len(b) <= (k-1)*ldb+n-1) || len(c) <= (m-1)*ldc+n-1 {
		panic("kernels: SmallGemm operand too short")
	}
	for i := 0; i < m; i += 4 {
		mr := min(4, m-i)
		for j := 0; j < n; j += 64 {
			nb := min(4, (n-j)/16)
			var ai, bj *float32 // nil when k is 0: the kernel reads nothing
			if k > 0 {
				ai, bj = &a[i*rs], &b[j]
			}
			smallKernel(mr, nb, k, ai, rs*4, cs*4, bj, ldb*4, &c[i*ldc+j], ldc*4)
		}
	}
	return true
}

// SmallGemmOK reports whether SmallGemm runs (rather than declines) for
// products n columns wide.
func SmallGemmOK(n int) bool {
	return n%16 == 0 && int(vecLevel.Load()) == vecAVX512 && smallKernels
}

// AttnSoftmaxRow replaces the first w scores of row by softmax(scale·s)
// and zeroes the rest of row, in float32 as PyTorch's CPU flash attention
// computes it (scale, subtract the row's maximum, exponentiate with
// Expf's operations, normalise), with the sum of the exponentials in
// float64; exponents below -87 count as -87 (e^-87 is 1.6e-38, nothing
// next to the maximum's 1). A NaN score makes the row NaN. It returns
// false, doing nothing, without the AVX-512 path or for scale <= 0 (the
// caller computes the row itself).
func AttnSoftmaxRow(row []float32, w int, scale float32) bool {
	_, ok := AttnSoftmaxRowLSE(row, w, scale)
	return ok
}

// AttnSoftmaxRowLSE is AttnSoftmaxRow that also returns the row's
// log-sum-exp, log Σ exp(scale·s) over the first w scores, computed as
// m + log(sum) in float64 from the float32 maximum m of scale·s and the
// float64 sum of the exponentials (the logsumexp that flash attention
// hands to its backward pass).
func AttnSoftmaxRowLSE(row []float32, w int, scale float32) (lse float32, ok bool) {
	wr := (w + 15) &^ 15
	if int(vecLevel.Load()) != vecAVX512 || !smallKernels || !(scale > 0) || w <= 0 || wr > len(row) {
		return 0, false
	}
	sum, m := attnSoftmax(row, w, wr, scale)
	VecMulScalar(row[:w], row[:w], float32(1/sum))
	clear(row[w:])
	return float32(float64(m) + math.Log(sum)), true
}

// AttnSoftmaxGradRow turns a row d of dP, the gradient of attention
// probabilities p whose first w entries are unmasked (the rest zero), into
// the gradient of the scores, dS = p·(dP - Σ p·dP)·scale, zero from w on,
// in float32 with the sum in float64. It returns false, doing nothing,
// without the AVX-512 path. The entries of d up to w rounded up to 16 must
// be finite numbers.
func AttnSoftmaxGradRow(p, d []float32, w int, scale float32) bool {
	wr := (w + 15) &^ 15
	if int(vecLevel.Load()) != vecAVX512 || !smallKernels || w <= 0 || wr > len(p) || wr > len(d) {
		return false
	}
	attnSoftmaxGrad(p, d, wr, scale)
	clear(d[w:])
	return true
}
