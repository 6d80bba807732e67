package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestLayerNormRowsMatchFloat64 checks the one-row AVX-512 kernels against
// float64 formulas, for row lengths 16 to 96, inputs with a mean far from
// zero (the centred variance must not cancel) and the weight and bias
// gradients accumulated over several rows.
func TestLayerNormRowsMatchFloat64(t *testing.T) {
	if !normKernels || !vecCPU512() {
		t.Skip("no AVX-512: the layer norm rows have no kernels here (pkg/tensor's tests cover the fallback)")
	}
	prev, _ := SetVecPath("avx512")
	defer SetVecPath(prev)
	r := rand.New(rand.NewPCG(7, 8))
	const eps = 1e-5
	near := func(what string, n int, j int, got float32, want, scale float64) {
		t.Helper()
		if math.Abs(float64(got)-want) > 2e-6*scale || got != got {
			t.Fatalf("n %d: %s[%d] = %v; want %v", n, what, j, got, want)
		}
	}
	for _, n := range []int{16, 32, 64, 96} {
		for _, offset := range []float32{0, 30} {
			w, b := randSlice(r, n), randSlice(r, n)
			sw, sb := make([]float64, n), make([]float64, n)
			wantSW, wantSB := make([]float64, n), make([]float64, n)
			for range 3 {
				x, g := randSlice(r, n), randSlice(r, n)
				for j := range x {
					x[j] += offset
				}
				var mean, ss float64
				for _, v := range x {
					mean += float64(v)
				}
				mean /= float64(n)
				for _, v := range x {
					ss += (float64(v) - mean) * (float64(v) - mean)
				}
				rstd := 1 / math.Sqrt(ss/float64(n)+eps)
				o := make([]float32, n)
				m32, r32 := layerNormFwd(o, x, w, b, eps)
				near("mean", n, 0, m32, mean, 1+math.Abs(mean))
				near("rstd", n, 0, r32, rstd, rstd*(1+math.Abs(mean)))
				xh := make([]float64, n)
				for j, v := range x {
					xh[j] = (float64(v) - mean) * rstd
					near("out", n, j, o[j], xh[j]*float64(w[j])+float64(b[j]), (1+math.Abs(mean))*(1+math.Abs(float64(w[j]))))
				}
				// Input gradient: rstd·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂)).
				var a, bb float64
				for j := range g {
					gh := float64(g[j]) * float64(w[j])
					a += gh
					bb += gh * xh[j]
				}
				a, bb = a/float64(n), bb/float64(n)
				gx := make([]float32, n)
				layerNormBwd(gx, g, x, w, m32, r32)
				for j := range g {
					want := rstd * (float64(g[j])*float64(w[j]) - a - xh[j]*bb)
					near("grad", n, j, gx[j], want, rstd*(1+math.Abs(mean))*(1+math.Abs(float64(w[j]))))
				}
				layerNormWB(sw, sb, g, x, m32, r32)
				for j := range g {
					wantSW[j] += float64(g[j]) * xh[j]
					wantSB[j] += float64(g[j])
				}
			}
			for j := range sw {
				near("weight grad", n, j, float32(sw[j]), wantSW[j], 3*(1+float64(offset)))
				near("bias grad", n, j, float32(sb[j]), wantSB[j], 3)
			}
		}
	}
	z := make([]float32, 48)
	if LayerNormRows(z, z, z, z, 24, eps, z, z) || LayerNormInputGradRows(z, z, z, z, 24, z, z) || LayerNormWeightGradRows(make([]float64, 24), make([]float64, 24), z, z, 24, z, z) {
		t.Errorf("a layer norm kernel ran on rows of 24; want false (rows must be a multiple of 16)")
	}
}

// TestLayerNormRowsMatchRow checks that LayerNormRows and its backward
// (the four-row kernels, then one-row ones for the tail) give exactly the
// one-row kernels' results, for row counts with every tail.
func TestLayerNormRowsMatchRow(t *testing.T) {
	if !normKernels || !vecCPU512() {
		t.Skip("no AVX-512: the layer norm rows have no kernels here (pkg/tensor's tests cover the fallback)")
	}
	prev, _ := SetVecPath("avx512")
	defer SetVecPath(prev)
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{16, 64} {
		for m := 1; m <= 9; m++ {
			x, g, w, b := randSlice(r, m*n), randSlice(r, m*n), randSlice(r, n), randSlice(r, n)
			o, mean, rstd := make([]float32, m*n), make([]float32, m), make([]float32, m)
			if !LayerNormRows(o, x, w, b, n, 1e-5, mean, rstd) {
				t.Fatalf("LayerNormRows declined")
			}
			gx, sw, sb := make([]float32, m*n), make([]float64, n), make([]float64, n)
			LayerNormInputGradRows(gx, g, x, w, n, mean, rstd)
			LayerNormWeightGradRows(sw, sb, g, x, n, mean, rstd)
			o1, gx1, sw1, sb1 := make([]float32, n), make([]float32, n), make([]float64, n), make([]float64, n)
			for i := range m {
				mu, rs := layerNormFwd(o1, x[i*n:(i+1)*n], w, b, 1e-5)
				if mu != mean[i] || rs != rstd[i] {
					t.Fatalf("n %d, m %d, row %d: mean, rstd = %v, %v; one row at a time %v, %v", n, m, i, mean[i], rstd[i], mu, rs)
				}
				layerNormBwd(gx1, g[i*n:(i+1)*n], x[i*n:(i+1)*n], w, mu, rs)
				layerNormWB(sw1, sb1, g[i*n:(i+1)*n], x[i*n:(i+1)*n], mu, rs)
				for j := range n {
					if o[i*n+j] != o1[j] || gx[i*n+j] != gx1[j] {
						t.Fatalf("n %d, m %d, row %d: out, grad [%d] = %v, %v; one row at a time %v, %v", n, m, i, j, o[i*n+j], gx[i*n+j], o1[j], gx1[j])
					}
				}
			}
			for j := range n {
				if sw[j] != sw1[j] || sb[j] != sb1[j] {
					t.Fatalf("n %d, m %d: weight, bias grad [%d] = %v, %v; one row at a time %v, %v", n, m, j, sw[j], sb[j], sw1[j], sb1[j])
				}
			}
		}
	}
}
