package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/cputime"
	"github.com/gorch/gorch/internal/testutil"
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

// backends returns every backend this machine supports, by name; on
// AVX-512 both tiles ("avx512-12x32", "avx512-6x64"), whichever is the
// default on this CPU.
func backends(t testing.TB) map[string]Backend {
	out := map[string]Backend{}
	for _, name := range Available() {
		b, err := ByName(name)
		if err != nil {
			t.Fatalf("ByName(%q): %v", name, err)
		}
		if name == "avx512" {
			out["avx512-12x32"], out["avx512-6x64"] = avx512Tile12x32, avx512Tile6x64
			continue
		}
		out[name] = b
	}
	return out
}

func TestSgemmRandom(t *testing.T) {
	for name, be := range backends(t) {
		t.Run(name, func(t *testing.T) { testSgemmRandom(t, be, []int{1, 3, 17, 65, 130}, []int{1, 3, 17, 65, 130, 300}) })
	}
}

// TestSgemmOddSizes covers the sizes around the register tiles and blocking
// parameters of the assembly paths (12×32, 6×64, 6×16, kc 256, nc 512,
// row blocks of mcRows).
func TestSgemmOddSizes(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	for name, be := range backends(t) {
		t.Run(name, func(t *testing.T) {
			testSgemmRandom(t, be, []int{1, 3, 17, 33, 257}, []int{1, 33, 257, 513})
			r := rand.New(rand.NewPCG(5, 6))
			for _, tc := range []struct{ m, n, k int }{{13, 1030, 7}, {1, 2051, 3}, {25, 1025, 300}, {130, 65, 600}, {70, 127, 513}, {mcRows + 7, 129, 9}, {600, 64, 40}} {
				for _, tA := range []bool{false, true} {
					for _, tB := range []bool{false, true} {
						runCase(t, be, r, tA, tB, tc.m, tc.n, tc.k, 0.75, 0.5, 2)
					}
				}
			}
		})
	}
}

func testSgemmRandom(t *testing.T, be Backend, sizes, ks []int) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, m := range sizes {
				for _, n := range sizes {
					for _, k := range ks {
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
	testutil.Long(t, "large or exhaustive kernel checks")
	for name, be := range backends(t) {
		t.Run(name, func(t *testing.T) { testDeterministic(t, be) })
	}
}

func testDeterministic(t *testing.T, be Backend) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ m, n, k int }{{257, 263, 531}, {5, 700, 300}, {700, 3, 90}, {130, 1100, 260}, {40, 1500, 600}} {
		prev := runtime.GOMAXPROCS(1)
		r1 := rand.New(rand.NewPCG(9, uint64(tc.m)))
		c1 := runCase(t, be, r1, false, true, tc.m, tc.n, tc.k, 1.5, 0.5, 1)
		runtime.GOMAXPROCS(4)
		r2 := rand.New(rand.NewPCG(9, uint64(tc.m)))
		c2 := runCase(t, be, r2, false, true, tc.m, tc.n, tc.k, 1.5, 0.5, 1)
		runtime.GOMAXPROCS(3)
		r3 := rand.New(rand.NewPCG(9, uint64(tc.m)))
		c3 := runCase(t, WithThreads(be, 2), r3, false, true, tc.m, tc.n, tc.k, 1.5, 0.5, 1)
		runtime.GOMAXPROCS(prev)
		for i := range c1 {
			if math.Float32bits(c1[i]) != math.Float32bits(c2[i]) || math.Float32bits(c1[i]) != math.Float32bits(c3[i]) {
				t.Fatalf("%v: result differs between GOMAXPROCS 1, 4 and 3 (2 threads) at %d", tc, i)
			}
		}
		_ = r
	}
}

// TestParWorkers checks the size rule that keeps small and short products
// on the caller's goroutine (the threshold figures are in gemm_packed.go).
func TestParWorkers(t *testing.T) {
	for _, tc := range []struct{ m, n, k, max, want int }{
		{1024, 1024, 1024, 2, 2},
		{1024, 1024, 1024, 1, 1},
		{128, 128, 128, 2, 1},  // 4 MFLOP
		{192, 192, 192, 4, 1},  // 14 MFLOP
		{1024, 64, 64, 2, 1},   // 8 MFLOP
		{256, 256, 256, 2, 2},  // 34 MFLOP
		{1024, 192, 64, 2, 2},  // 25 MFLOP, tall
		{64, 256, 784, 2, 1},   // 26 MFLOP, 64 rows
		{64, 512, 512, 2, 1},   // 34 MFLOP, 64 rows
		{64, 1024, 1024, 2, 2}, // 134 MFLOP
		{96, 512, 512, 2, 2},   // 50 MFLOP, 96 rows
		{40, 1500, 600, 3, 3},  // 72 MFLOP
	} {
		if got := parWorkers(tc.m, tc.n, tc.k, tc.max); got != tc.want {
			t.Errorf("parWorkers(%d, %d, %d, %d) = %d, want %d", tc.m, tc.n, tc.k, tc.max, got, tc.want)
		}
	}
}

func TestSgemmEdgeCases(t *testing.T) {
	for name, be := range backends(t) {
		t.Run(name, func(t *testing.T) { testEdgeCases(t, be) })
	}
}

func testEdgeCases(t *testing.T, be Backend) {
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
	want := fromEnv().Name()
	if Default().Name() != want {
		t.Fatalf("default backend %q, want %q", Default().Name(), want)
	}
	SetDefault(Go())
	if Default().Name() != "go" {
		t.Fatalf("SetDefault(Go()) gave %q", Default().Name())
	}
	SetDefault(nil)
	if Default().Name() != want {
		t.Fatalf("SetDefault(nil) gave %q, want %q", Default().Name(), want)
	}
}

func TestByName(t *testing.T) {
	av := Available()
	if av[len(av)-1] != "go" {
		t.Fatalf("Available() = %v, want go last", av)
	}
	if _, err := ByName("sse9"); err == nil {
		t.Fatal(`ByName("sse9") succeeded`)
	}
	for _, name := range []string{"go", "avx2", "avx512"} {
		b, err := ByName(name)
		supported := slices.Contains(av, name)
		if (err == nil) != supported {
			t.Fatalf("ByName(%q) error %v, but Available() = %v", name, err, av)
		}
		if err == nil && b.Name() != name {
			t.Fatalf("ByName(%q).Name() = %q", name, b.Name())
		}
	}
	if os.Getenv(EnvKernel) == "" && Default().Name() != av[0] {
		t.Fatalf("default backend %q, want the fastest, %q", Default().Name(), av[0])
	}
}

// BenchmarkSgemm reports GFLOP/s of square C = A·B per backend; run with
// -cpu 1,2 for the thread scaling.
func BenchmarkSgemm(b *testing.B) {
	for _, name := range Available() {
		be, _ := ByName(name)
		for _, n := range []int{256, 512, 1024, 2048} {
			if name == "go" && n > 1024 {
				continue // minutes per iteration
			}
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 1))
				x, y, z := randSlice(r, n*n), randSlice(r, n*n), make([]float32, n*n)
				be.Sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n) // warm the pools
				b.ResetTimer()
				c0 := cputime.Process()
				for range b.N {
					be.Sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n)
				}
				reportFlops(b, 2*float64(n)*float64(n)*float64(n)*float64(b.N), c0)
			})
		}
	}
}

// BenchmarkFMAPeak measures the machine's FMA throughput with independent
// register-to-register FMAs, on every goroutine GOMAXPROCS allows, so GEMM
// figures can be read as a fraction of it.
func BenchmarkFMAPeak(b *testing.B) {
	type loop struct {
		name  string
		ok    bool
		run   func(int)
		flops float64 // per iteration
	}
	for _, l := range []loop{
		{"zmm", hasAVX512(), fmaPeakAVX512, 24 * 32},
		{"ymm", hasAVX2(), fmaPeakAVX2, 12 * 16},
	} {
		if !l.ok {
			continue
		}
		b.Run(l.name, func(b *testing.B) {
			const iters = 1 << 20
			p := runtime.GOMAXPROCS(0)
			b.ResetTimer()
			c0 := cputime.Process()
			for range b.N {
				var wg sync.WaitGroup
				for range p {
					wg.Add(1)
					go func() { defer wg.Done(); l.run(iters) }()
				}
				wg.Wait()
			}
			reportFlops(b, l.flops*iters*float64(p)*float64(b.N), c0)
		})
	}
}

// reportFlops reports flops per wall-clock second ("GFLOP/s") and, where the
// platform tells CPU time, per CPU second per goroutine slot
// ("GFLOP/s/cpu-thread"): the second is what each core achieved while it
// ran, which on a shared machine is steadier than the wall-clock figure.
func reportFlops(b *testing.B, flops float64, cpu0 time.Duration) {
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if c := cputime.Process() - cpu0; c > 0 && cpu0 > 0 {
		b.ReportMetric(flops/c.Seconds()/1e9, "GFLOP/s/cpu-thread")
	}
}
