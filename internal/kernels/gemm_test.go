package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// refGemm is a float64 reference of row-major C = alpha·op(A)·op(B) + beta·C.
func refGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := float64(alpha) * s
			if beta != 0 {
				v += float64(beta) * float64(c[i*ldc+j])
			}
			out[i*n+j] = v
		}
	}
	return out
}

func runCase(t *testing.T, be Backend, r *rand.Rand, transA, transB bool, m, n, k int, alpha, beta float32, pad int) []float32 {
	t.Helper()
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	lda, ldb, ldc := ac+pad, bc+pad, n+pad
	a := randSlice(r, ar*lda)
	b := randSlice(r, br*ldb)
	c := randSlice(r, m*ldc)
	want := refGemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	orig := append([]float32(nil), c...)
	be.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	tol := 1e-5 * math.Sqrt(float64(k)+1) * 4
	for i := 0; i < m; i++ {
		for j := 0; j < ldc; j++ {
			got := c[i*ldc+j]
			if j >= n {
				if got != orig[i*ldc+j] {
					t.Fatalf("padding of C overwritten at (%d,%d)", i, j)
				}
				continue
			}
			w := want[i*n+j]
			if math.Abs(float64(got)-w) > tol*(1+math.Abs(w)) {
				t.Fatalf("tA=%v tB=%v m=%d n=%d k=%d alpha=%v beta=%v pad=%d: C[%d,%d]=%v want %v",
					transA, transB, m, n, k, alpha, beta, pad, i, j, got, w)
			}
		}
	}
	return c
}

func TestSgemmRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 3, 17, 65, 130}
	be := Go()
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, m := range sizes {
				for _, n := range sizes {
					for _, k := range []int{1, 3, 17, 65, 130, 300} {
						if m*n*k > 130*130*130/2 && (m+n+k)%2 == 0 {
							continue
						}
						alpha := []float32{1, -0.5, 2}[(m+n+k)%3]
						beta := []float32{0, 1, 0.25}[(m*n+k)%3]
						pad := (m + k) % 3
						runCase(t, be, r, tA, tB, m, n, k, alpha, beta, pad)
					}
				}
			}
		}
	}
}

func TestSgemmLargeParallelDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	be := Go()
	for _, tc := range []struct{ m, n, k int }{{257, 263, 531}, {5, 700, 300}, {700, 3, 90}} {
		prev := runtime.GOMAXPROCS(1)
		r1 := rand.New(rand.NewPCG(9, uint64(tc.m)))
		c1 := runCase(t, be, r1, false, true, tc.m, tc.n, tc.k, 1.5, 0.5, 1)
		runtime.GOMAXPROCS(4)
		r2 := rand.New(rand.NewPCG(9, uint64(tc.m)))
		c2 := runCase(t, be, r2, false, true, tc.m, tc.n, tc.k, 1.5, 0.5, 1)
		runtime.GOMAXPROCS(prev)
		for i := range c1 {
			if math.Float32bits(c1[i]) != math.Float32bits(c2[i]) {
				t.Fatalf("%v: result differs between GOMAXPROCS 1 and 4 at %d", tc, i)
			}
		}
		_ = r
	}
}

func TestSgemmEdgeCases(t *testing.T) {
	be := Go()
	// beta = 0 overwrites NaN; k = 0 scales C by beta.
	c := []float32{float32(math.NaN()), 2}
	be.Sgemm(false, false, 1, 2, 0, 1, nil, 0, nil, 2, 0, c, 2)
	if c[0] != 0 || c[1] != 0 {
		t.Fatalf("k=0 beta=0: got %v", c)
	}
	c = []float32{1, 2}
	be.Sgemm(false, false, 1, 2, 0, 1, nil, 0, nil, 2, 3, c, 2)
	if c[0] != 3 || c[1] != 6 {
		t.Fatalf("k=0 beta=3: got %v", c)
	}
	be.Sgemm(false, false, 0, 0, 5, 1, nil, 5, nil, 0, 0, nil, 0) // no-op
}

func TestSetDefault(t *testing.T) {
	if Default().Name() != "go" {
		t.Fatalf("default backend %q", Default().Name())
	}
	SetDefault(nil)
	if Default().Name() != "go" {
		t.Fatalf("SetDefault(nil) gave %q", Default().Name())
	}
}

func BenchmarkSgemm(b *testing.B) {
	for _, n := range []int{256, 512, 1024} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			x, y, z := randSlice(r, n*n), randSlice(r, n*n), make([]float32, n*n)
			be := Default()
			b.ResetTimer()
			for range b.N {
				be.Sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n)
			}
			b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
