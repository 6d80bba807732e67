package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestSmallGemmMatchesGo compares SmallGemm with the Go backend's Sgemm
// for both layouts of A, row strides wider than the rows, every row tail
// (m mod 4) and column count up to past one 64-column block, and k = 0.
// C is filled with NaN first: every element must be overwritten.
func TestSmallGemmMatchesGo(t *testing.T) {
	if !smallKernels || !vecCPU512() {
		t.Skip("no AVX-512: SmallGemm has no kernels here (the callers' tests cover the fallback)")
	}
	prev, _ := SetVecPath("avx512")
	defer SetVecPath(prev)
	r := rand.New(rand.NewPCG(1, 2))
	for _, transA := range []bool{false, true} {
		for _, m := range []int{1, 2, 3, 4, 5, 7, 12, 16, 17, 33, 64} {
			for _, n := range []int{16, 32, 48, 64, 80, 128} {
				for _, k := range []int{0, 1, 16, 37, 64} {
					name := fmt.Sprintf("transA=%v/m=%d/n=%d/k=%d", transA, m, n, k)
					lda, ldb, ldc := k+3, n+5, n+2
					rows := m // A's stored rows
					if transA {
						lda, rows = m+1, k
					}
					a, b := randSlice(r, rows*lda), randSlice(r, k*ldb)
					got, want := make([]float32, m*ldc), make([]float32, m*ldc)
					for i := range got {
						got[i] = float32(math.NaN())
					}
					if !SmallGemm(transA, m, n, k, a, lda, b, ldb, got, ldc) {
						t.Fatalf("%s: SmallGemm declined", name)
					}
					Go().Sgemm(transA, false, m, n, k, 1, a, lda, b, ldb, 0, want, ldc)
					for i := range m {
						for j := range n {
							g, w := got[i*ldc+j], want[i*ldc+j]
							if math.Abs(float64(g-w)) > 1e-5*(1+math.Abs(float64(w))) || g != g {
								t.Fatalf("%s: C[%d,%d] = %v; want %v", name, i, j, g, w)
							}
						}
					}
				}
			}
		}
	}
}

// TestSmallGemmDeclines checks the cases SmallGemm leaves to Sgemm.
func TestSmallGemmDeclines(t *testing.T) {
	c := make([]float32, 64)
	if SmallGemm(false, 2, 8, 1, make([]float32, 2), 1, make([]float32, 8), 8, c, 8) {
		t.Errorf("SmallGemm with n = 8 ran; want false (n must be a multiple of 16)")
	}
	prev, _ := SetVecPath("go")
	defer SetVecPath(prev)
	if SmallGemm(false, 2, 16, 1, make([]float32, 2), 1, make([]float32, 16), 16, c, 16) {
		t.Errorf("SmallGemm on the go vector path ran; want false")
	}
}

// TestAttnSoftmaxRow checks the AVX-512 softmax row and its log-sum-exp
// against a float64 softmax of the float32-scaled scores: every row width up to 64 in a row
// of 64, scores spread wide enough that some exponents pass -87, a NaN
// score, and the gradient row against its float64 formula.
func TestAttnSoftmaxRow(t *testing.T) {
	if !smallKernels || !vecCPU512() {
		t.Skip("no AVX-512: the attention rows have no kernels here (pkg/tensor's tests cover the fallback)")
	}
	prev, _ := SetVecPath("avx512")
	defer SetVecPath(prev)
	r := rand.New(rand.NewPCG(3, 4))
	for _, spread := range []float64{1, 30} {
		for w := 1; w <= 64; w++ {
			const scale = 0.25
			row := randSlice(r, 64)
			for i := range row {
				row[i] *= float32(spread)
			}
			want, tol := make([]float64, 64), make([]float64, 64)
			m := math.Inf(-1)
			for _, x := range row[:w] {
				m = math.Max(m, float64(x*scale))
			}
			var sum float64
			for j, x := range row[:w] {
				want[j] = math.Exp(float64(x*scale) - m)
				sum += want[j]
				// float32 rounds the exponent's argument v: a relative
				// error of |v|·2^-24 in e^v, plus the rest's few ulps.
				tol[j] = 4e-7 * (1 + math.Abs(float64(x*scale)-m))
			}
			for j := range want[:w] {
				want[j] /= sum
			}
			got := append([]float32(nil), row...)
			lse, ok := AttnSoftmaxRowLSE(got, w, scale)
			if !ok {
				t.Fatalf("AttnSoftmaxRowLSE declined")
			}
			if wantLSE := m + math.Log(sum); math.Abs(float64(lse)-wantLSE) > 1e-6*(1+math.Abs(wantLSE)) {
				t.Fatalf("spread %v, w %d: lse = %v; want %v", spread, w, lse, wantLSE)
			}
			for j, g := range got {
				if math.Abs(float64(g)-want[j]) > tol[j]*want[j] && math.Abs(float64(g)-want[j]) > 1e-37 || g != g {
					t.Fatalf("spread %v, w %d: p[%d] = %v; want %v", spread, w, j, g, want[j])
				}
			}
			// The gradient row: dS = p·(dP - Σ p·dP)·scale.
			d := randSlice(r, 64)
			var delta float64
			for j, p := range got[:w] {
				delta += float64(p * d[j])
			}
			wantD := make([]float64, 64)
			for j, p := range got[:w] {
				wantD[j] = (float64(d[j]) - delta) * float64(p) * scale
			}
			if !AttnSoftmaxGradRow(got, d, w, scale) {
				t.Fatalf("AttnSoftmaxGradRow declined")
			}
			for j, g := range d {
				if math.Abs(float64(g)-wantD[j]) > 1e-6*(1+math.Abs(wantD[j])) || g != g {
					t.Fatalf("spread %v, w %d: dS[%d] = %v; want %v", spread, w, j, g, wantD[j])
				}
			}
		}
	}
	row := randSlice(r, 32)
	row[5] = float32(math.NaN())
	AttnSoftmaxRow(row, 20, 1)
	for j, g := range row[:20] {
		if g == g {
			t.Fatalf("row with a NaN score: p[%d] = %v; want NaN", j, g)
		}
	}
	if AttnSoftmaxRow(row, 20, -1) || AttnSoftmaxRow(row, 40, 1) {
		t.Errorf("AttnSoftmaxRow ran with scale <= 0 or w past the row; want false")
	}
}
