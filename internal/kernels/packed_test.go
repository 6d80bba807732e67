package kernels

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/gorch/gorch/internal/testutil"
)

// refKernel returns a pure-Go micro-kernel with the assembly kernels'
// contract (C[0:mr, 0:nr] += alpha·Σ_p a[p*mr+r]·b[p*nr+j]), so the packed
// driver can be tested with every tile shape, including 12×32 on machines
// without AVX-512.
func refKernel(mr, nr int) func(k int, a, b, c *float32, ldc int, alpha float32) {
	return func(k int, a, b, c *float32, ldc int, alpha float32) {
		as := unsafe.Slice(a, k*mr)
		bs := unsafe.Slice(b, k*nr)
		cs := unsafe.Slice(c, (mr-1)*ldc+nr)
		for r := 0; r < mr; r++ {
			for j := 0; j < nr; j++ {
				var s float32
				for p := 0; p < k; p++ {
					s += as[p*mr+r] * bs[p*nr+j]
				}
				cs[r*ldc+j] += alpha * s
			}
		}
	}
}

// TestPackedDriverTiles runs the packed driver with Go kernels of the
// assembly tile shapes (whatever the CPU supports) and odd blockings.
func TestPackedDriverTiles(t *testing.T) {
	testutil.Long(t, "large or exhaustive kernel checks")
	for _, be := range []*packedBackend{
		{name: "ref12x32", mr: 12, nr: 32, kc: 256, nc: 1024},
		{name: "ref6x16", mr: 6, nr: 16, kc: 256, nc: 1024},
		{name: "ref6x64", mr: 6, nr: 64, kc: 256, nc: 512},
		{name: "ref6x64-small", mr: 6, nr: 64, kc: 9, nc: 128},
		{name: "ref12x32-small", mr: 12, nr: 32, kc: 7, nc: 64},
	} {
		be.kernel = refKernel(be.mr, be.nr)
		t.Run(be.name, func(t *testing.T) {
			testSgemmRandom(t, be, []int{1, 13, 33, 70, 130}, []int{1, 9, 40})
			r := rand.New(rand.NewPCG(7, 8))
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					runCase(t, be, r, tA, tB, 37, 1100, 20, -1.25, 0.5, 3)
				}
			}
			testDeterministic(t, be)
			testEdgeCases(t, be)
		})
	}
}
