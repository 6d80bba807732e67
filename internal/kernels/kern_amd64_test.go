package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gorch/gorch/internal/cputime"
	"github.com/gorch/gorch/internal/testutil"
)

// BenchmarkKernel measures a micro-kernel alone on L1-resident packed
// operands: the ceiling the packed driver can approach.
func BenchmarkKernel(b *testing.B) {
	for _, be := range []*packedBackend{avx2Backend, avx512Tile12x32, avx512Tile6x64} {
		if _, err := ByName(be.name); err != nil {
			continue
		}
		b.Run(fmt.Sprintf("%s-%dx%d", be.name, be.mr, be.nr), func(b *testing.B) {
			const k = 256
			pa := make([]float32, k*be.mr)
			pb := make([]float32, k*be.nr)
			c := make([]float32, be.mr*be.nr)
			for i := range pa {
				pa[i] = 1e-3
			}
			for i := range pb {
				pb[i] = 1e-3
			}
			c0 := cputime.Process()
			for range b.N {
				be.kernel(k, &pa[0], &pb[0], &c[0], be.nr, 1)
			}
			reportFlops(b, 2*float64(k*be.mr*be.nr)*float64(b.N), c0)
		})
	}
}

// TestFastPathsBitIdentical checks that the driver's fast paths (B read in
// place by kernelS, A read in place by kernelA, assembly packing) give
// exactly the bits of the legacy packing path, on the training shapes and
// odd ones, for every assembly backend this CPU runs.
func TestFastPathsBitIdentical(t *testing.T) {
	testutil.Long(t, "large or exhaustive kernel checks")
	for _, be := range []*packedBackend{avx512Tile12x32, avx512Tile6x64, avx2Backend} {
		if _, err := ByName(be.name); err == nil {
			t.Run(fmt.Sprintf("%s-%dx%d", be.name, be.mr, be.nr), func(t *testing.T) { testFastPaths(t, be) })
		}
	}
}

func testFastPaths(t *testing.T, be *packedBackend) {
	shapes := [][3]int{{64, 256, 784}, {256, 256, 784}, {64, 10, 256}, {256, 784, 64}, {64, 784, 256},
		{16, 25, 576}, {32, 400, 64}, {25, 576, 16}, {400, 64, 32}, {7, 33, 9}, {13, 17, 300}, {6, 16, 8}, {600, 70, 21}, {1, 1, 1},
		{301, 200, 1023}, {100, 130, 1100}, // one k step up to kcMax (k%8 ≠ 0), and two
		{190, 64, 1030}, {1027, 128, 300}, {61, 120, 77}, // Aᵀ in place (n ≤ 128)
		{1030, 48, 200}, {515, 40, 513}, // A in place by the 12×32 and 6×16 tiles (m > directBMaxM)
		{96, 64, 300}, {97, 130, 40}, {200, 300, 50}} // around directBMaxMA and 4·nr columns
	for _, sh := range shapes {
		m, n, k := sh[0], sh[1], sh[2]
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				var got [2][]float32
				for i, legacy := range []bool{true, false} {
					prev := SetLegacyGemm(legacy)
					rr := rand.New(rand.NewPCG(uint64(m*n), uint64(k)))
					got[i] = runCase(t, be, rr, tA, tB, m, n, k, 0.75, 0.5, 3)
					SetLegacyGemm(prev)
				}
				for i := range got[0] {
					if math.Float32bits(got[0][i]) != math.Float32bits(got[1][i]) {
						t.Fatalf("m=%d n=%d k=%d tA=%v tB=%v: element %d: legacy %v, fast %v", m, n, k, tA, tB, i, got[0][i], got[1][i])
					}
				}
			}
		}
	}
}

// BenchmarkSgemmTrain measures the GEMMs of the MLP (784-256-10, batch 64
// and 256) and LeNet conv training steps on the default backend, legacy
// driver vs fast paths side by side (results are bit-identical).
func BenchmarkSgemmTrain(b *testing.B) {
	be := Default()
	for _, s := range []struct {
		name    string
		tA, tB  bool
		m, n, k int
	}{
		{"mlp64/fc1_fwd_x.wT", false, true, 64, 256, 784},
		{"mlp64/fc2_fwd_h.wT", false, true, 64, 10, 256},
		{"mlp64/fc1_dw_gT.x", true, false, 256, 784, 64},
		{"mlp64/fc1_dx_g.w", false, false, 64, 784, 256},
		{"mlp64/fc2_dw_gT.h", true, false, 10, 256, 64},
		{"mlp64/fc2_dx_g.w", false, false, 64, 256, 10},
		{"mlp256/fc1_fwd_x.wT", false, true, 256, 256, 784},
		{"mlp256/fc1_dw_gT.x", true, false, 256, 784, 256},
		{"mlp256/fc1_dx_g.w", false, false, 256, 784, 256},
		{"conv1/fwd_chunk32", false, false, 16, 32 * 576, 25},
		{"conv2/fwd_chunk32", false, false, 32, 32 * 64, 400},
		{"conv1/dw_sample", false, true, 16, 25, 576},
		{"conv2/dw_sample", false, true, 32, 400, 64},
		{"conv1/dcols_sample", true, false, 25, 576, 16},
		{"conv2/dcols_sample", true, false, 400, 64, 32},
		{"conv2/dcols_chunk8", true, false, 400, 8 * 64, 32},
		{"square/1024", false, false, 1024, 1024, 1024},
	} {
		ar, ac := s.m, s.k
		if s.tA {
			ar, ac = ac, ar
		}
		br, bc := s.k, s.n
		if s.tB {
			br, bc = bc, br
		}
		r := rand.New(rand.NewPCG(1, 2))
		x, y, z := randSlice(r, ar*ac), randSlice(r, br*bc), make([]float32, s.m*s.n)
		for _, legacy := range []bool{true, false} {
			mode := "fast"
			if legacy {
				mode = "legacy"
			}
			b.Run(s.name+"/"+mode, func(b *testing.B) {
				prev := SetLegacyGemm(legacy)
				defer SetLegacyGemm(prev)
				be.Sgemm(s.tA, s.tB, s.m, s.n, s.k, 1, x, ac, y, bc, 0, z, s.n)
				b.ResetTimer()
				c0 := cputime.Process()
				for range b.N {
					be.Sgemm(s.tA, s.tB, s.m, s.n, s.k, 1, x, ac, y, bc, 0, z, s.n)
				}
				reportFlops(b, 2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N), c0)
			})
		}
	}
}

// TestAVX512TileIsWide checks that the AVX-512 backend is the 6×64 tile on
// every CPU, whatever its vendor (the 12×32 tile only with
// GORCH_AVX512_TILE=12x32, and for narrow products as its narrow).
func TestAVX512TileIsWide(t *testing.T) {
	want := avx512Tile6x64
	if os.Getenv(EnvAVX512Tile) == "12x32" {
		want = avx512Tile12x32
	}
	if avx512Backend != want {
		t.Fatalf("AVX-512 backend has the %d×%d tile; want %d×%d", avx512Backend.mr, avx512Backend.nr, want.mr, want.nr)
	}
	if avx512Tile6x64.narrow != avx512Tile12x32 {
		t.Fatalf("the 6×64 backend's narrow products do not go to the 12×32 tile")
	}
}
