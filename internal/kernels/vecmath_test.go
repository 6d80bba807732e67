package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// geluInputs are values across GELU's range: random normals at several
// scales, the edges of the assembly's fast range (|x| ≈ 13.19, where
// exp(-x²/2) reaches the reference's float64 branch), zeros, tiny and huge
// values, infinities and NaN, at every offset in a vector.
func geluInputs() []float32 {
	rng := rand.New(rand.NewPCG(1, 2))
	var xs []float32
	for _, scale := range []float64{0.01, 0.3, 1, 3, 8, 20} {
		for range 4000 {
			xs = append(xs, float32(rng.NormFloat64()*scale))
		}
	}
	edge := float32(math.Sqrt(2 * 87))
	for _, v := range []float32{0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 1e-45, edge, -edge,
		math.Nextafter32(edge, 0), math.Nextafter32(edge, 100), -math.Nextafter32(edge, 100), 13, -13, 14, -14,
		1e30, -1e30, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.MaxFloat32, -math.MaxFloat32} {
		// Each special value alone in a block of ordinary ones, and in runs.
		for k := range 17 {
			xs = append(xs, float32(k)*0.1-0.8)
		}
		xs = append(xs, v, v, v)
	}
	return xs
}

// TestVecGeluBitIdentical checks every vector path against the Go
// reference, bit for bit, at every length up to 40 and on geluInputs.
func TestVecGeluBitIdentical(t *testing.T) {
	xs := geluInputs()
	g := make([]float32, len(xs))
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range g {
		g[i] = float32(rng.NormFloat64())
	}
	for _, path := range VecPaths() {
		prev, err := SetVecPath(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 40, len(xs)} {
			for _, off := range []int{0, 3} {
				if off+n > len(xs) {
					continue
				}
				x, gg := xs[off:off+n], g[off:off+n]
				fwd, back := make([]float32, n), make([]float32, n)
				VecGelu(fwd, x)
				VecGeluBackward(back, gg, x)
				for i := range n {
					if want := Gelu(x[i]); !sameBits(fwd[i], want) {
						t.Fatalf("%s: VecGelu(x=%v) = %v (%#x); the reference gives %v (%#x)", path, x[i], fwd[i], math.Float32bits(fwd[i]), want, math.Float32bits(want))
					}
					if want := gg[i] * GeluGrad(x[i]); !sameBits(back[i], want) {
						t.Fatalf("%s: VecGeluBackward(g=%v, x=%v) = %v; the reference gives %v", path, gg[i], x[i], back[i], want)
					}
				}
			}
		}
		SetVecPath(prev)
	}
}

// TestVecExpBitIdentical checks VecExp on every path against Expf, bit
// for bit, across and beyond the fast range [-87, 88], in place too.
func TestVecExpBitIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var xs []float32
	for range 20000 {
		xs = append(xs, float32(rng.Float64()*200-105))
	}
	for _, v := range []float32{-87, 88, math.Nextafter32(-87, -100), math.Nextafter32(88, 100), -103.9, -104, 0,
		float32(math.Copysign(0, -1)), 1e-40, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
		for k := range 13 {
			xs = append(xs, float32(k)-6)
		}
		xs = append(xs, v, v)
	}
	for _, path := range VecPaths() {
		prev, err := SetVecPath(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 8, 15, 16, 17, 33, len(xs) - 1} {
			x := xs[1 : 1+n]
			got := make([]float32, n)
			VecExp(got, x)
			inPlace := append([]float32(nil), x...)
			VecExp(inPlace, inPlace)
			for i := range n {
				want := Expf(x[i])
				if !sameBits(got[i], want) || !sameBits(inPlace[i], want) {
					t.Fatalf("%s: VecExp(%v) = %v (in place %v); Expf gives %v", path, x[i], got[i], inPlace[i], want)
				}
			}
		}
		SetVecPath(prev)
	}
}

// TestGeluAccuracy checks the reference against float64 erf over
// [-10, 10]: the error of A&S 7.1.26 (|erf error| < 1.5e-7, so Φ within
// 7.5e-8) scaled by |x|, plus a few float32 roundings of the result — as
// close as PyTorch's own float32 kernels, which use the same erf.
func TestGeluAccuracy(t *testing.T) {
	worstF, worstG := 0.0, 0.0
	for i := -200000; i <= 200000; i++ {
		x := float32(i) * 5e-5
		x64 := float64(x)
		cdf := 0.5 * (1 + math.Erf(x64/math.Sqrt2))
		pdf := math.Exp(-x64*x64/2) / math.Sqrt(2*math.Pi)
		wantF, wantG := x64*cdf, cdf+x64*pdf
		errF := math.Abs(float64(Gelu(x))-wantF) / (1e-7*(1+math.Abs(x64)) + 4e-7*math.Abs(wantF))
		errG := math.Abs(float64(GeluGrad(x))-wantG) / (2e-7*(1+x64*x64) + 4e-7*math.Abs(wantG))
		worstF, worstG = max(worstF, errF), max(worstG, errG)
		if errF > 1 || errG > 1 {
			t.Fatalf("x=%v: Gelu %v (want %v), GeluGrad %v (want %v)", x, Gelu(x), wantF, GeluGrad(x), wantG)
		}
	}
	t.Logf("worst error over the tolerance: GELU %.2f, gradient %.2f", worstF, worstG)
}

// BenchmarkVecGelu reports elements per second of each path on a
// 16 × 64 × 256 activation (the GPT benchmark's MLP hidden layer).
func BenchmarkVecGelu(b *testing.B) {
	n := 16 * 64 * 256
	x, g, dst := make([]float32, n), make([]float32, n), make([]float32, n)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range x {
		x[i], g[i] = float32(rng.NormFloat64()*2), float32(rng.NormFloat64())
	}
	for _, path := range VecPaths() {
		for _, dir := range []string{"fwd", "back"} {
			b.Run(path+"/"+dir, func(b *testing.B) {
				prev, _ := SetVecPath(path)
				defer SetVecPath(prev)
				for b.Loop() {
					if dir == "fwd" {
						VecGelu(dst, x)
					} else {
						VecGeluBackward(dst, g, x)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds()/1e6, "Melem/s")
			})
		}
	}
}
