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

// gemmOperands draws op(A) m×k, op(B) k×n and C m×n, each row padded by
// pad elements.
func gemmOperands(r *rand.Rand, transA, transB bool, m, n, k, pad int) (a, b, c []float32, lda, ldb, ldc int) {
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	lda, ldb, ldc = ac+pad, bc+pad, n+pad
	return randSlice(r, ar*lda), randSlice(r, br*ldb), randSlice(r, m*ldc), lda, ldb, ldc
}

func runCase(t *testing.T, be Backend, r *rand.Rand, transA, transB bool, m, n, k int, alpha, beta float32, pad int) []float32 {
	t.Helper()
	a, b, c, lda, ldb, ldc := gemmOperands(r, transA, transB, m, n, k, pad)
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
	// The products run on the pipelined driver (run) or, with several
	// workers, as owned rectangles (runOwned) where A is read in place (or
	// B, m ≤ 96). Each must give the same bits
	// at 1, 2, 3 and 4 workers.
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	for _, tc := range []struct {
		tA, tB  bool
		m, n, k int
	}{
		{false, true, 257, 263, 531}, {false, true, 5, 700, 300}, {false, true, 700, 3, 90},
		{false, true, 130, 1100, 260}, {false, true, 40, 1500, 600},
		{false, false, 40, 1500, 600}, {false, false, 389, 520, 1100}, {false, false, 1030, 200, 70},
		{true, false, 389, 520, 1100}, {true, true, 300, 700, 130},
	} {
		for _, beta := range []float32{0.5, 0} {
			// The 1-worker result is checked against the float64
			// reference, the others against its bits.
			runtime.GOMAXPROCS(1)
			r := rand.New(rand.NewPCG(9, uint64(tc.m)))
			want := runCase(t, be, r, tc.tA, tc.tB, tc.m, tc.n, tc.k, 1.5, beta, 1)
			for _, procs := range []int{4, 3, 2} {
				runtime.GOMAXPROCS(procs)
				b := be
				if procs == 3 {
					b = WithThreads(be, 2)
				}
				r := rand.New(rand.NewPCG(9, uint64(tc.m)))
				c := sgemmCase(b, r, tc.tA, tc.tB, tc.m, tc.n, tc.k, 1.5, beta, 1)
				for j := range c {
					if math.Float32bits(want[j]) != math.Float32bits(c[j]) {
						t.Fatalf("%+v beta=%v: result differs between 1 worker and GOMAXPROCS %d at %d", tc, beta, procs, j)
					}
				}
			}
		}
	}
}

// sgemmCase runs runCase's product on the same operands without checking it.
func sgemmCase(be Backend, r *rand.Rand, transA, transB bool, m, n, k int, alpha, beta float32, pad int) []float32 {
	a, b, c, lda, ldb, ldc := gemmOperands(r, transA, transB, m, n, k, pad)
	be.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	return c
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

// TestOwnedTasks checks that the rectangles of runOwned cover every tile of
// C exactly once, start on tile boundaries, and that the rule leaves
// products with few panels or many more rows than columns to the
// pipelined driver.
func TestOwnedTasks(t *testing.T) {
	be := &packedBackend{mr: 6, nr: 64, kc: 512, nc: 256, owned: true}
	for _, tc := range []struct {
		m, n, workers   int
		directA, direct bool
		want            bool // owned
	}{
		{1024, 1024, 2, true, false, true},
		{2048, 2048, 2, true, false, true},
		{1000, 1000, 2, true, false, true},
		{1030, 520, 3, true, false, true},
		{40, 1500, 4, false, true, true},
		{389, 520, 2, false, false, false}, // A packed
		{1024, 1024, 1, true, false, false},
		{1024, 192, 2, true, false, false}, // 3 panels
		{1024, 256, 2, true, false, false}, // 4 rows per column
		{1024, 512, 2, true, false, true},
	} {
		g := &packedGemm{be: be, m: tc.m, n: tc.n, kc: be.kc, nc: be.nc, directA: tc.directA, direct: tc.direct}
		rs := g.ownedTasks(tc.workers)
		if (rs != nil) != tc.want {
			t.Errorf("ownedTasks(%d×%d, %d workers) = %d rectangles, want owned %v", tc.m, tc.n, tc.workers, len(rs), tc.want)
			continue
		}
		seen := make([]int, tc.m*tc.n)
		for _, r := range rs {
			if r.i0%be.mr != 0 || r.j0%be.nr != 0 || r.i1 <= r.i0 || r.j1 <= r.j0 || r.i1 > tc.m || r.j1 > tc.n ||
				r.i1 != tc.m && r.i1%be.mr != 0 || r.j1 != tc.n && r.j1%be.nr != 0 {
				t.Fatalf("%d×%d: rectangle %+v is off the tile grid", tc.m, tc.n, r)
			}
			for i := r.i0; i < r.i1; i++ {
				for j := r.j0; j < r.j1; j++ {
					seen[i*tc.n+j]++
				}
			}
		}
		for i, c := range seen {
			if rs != nil && c != 1 {
				t.Fatalf("%d×%d: element (%d, %d) in %d rectangles, want 1", tc.m, tc.n, i/tc.n, i%tc.n, c)
			}
		}
	}
}
