package kernels

import "testing"

// BenchmarkKernel measures a micro-kernel alone on L1-resident packed
// operands: the ceiling the packed driver can approach.
func BenchmarkKernel(b *testing.B) {
	for _, be := range []*packedBackend{avx2Backend, avx512Backend} {
		if _, err := ByName(be.name); err != nil {
			continue
		}
		b.Run(be.name, func(b *testing.B) {
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
			for range b.N {
				be.kernel(k, &pa[0], &pb[0], &c[0], be.nr, 1)
			}
			b.ReportMetric(2*float64(k*be.mr*be.nr)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
