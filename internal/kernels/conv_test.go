package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// convRef computes the forward output, input gradient and weight gradient
// of a stride-1, unpadded convolution in float64.
func convRef(s ConvShape, x, w, bias, gout []float32) (out, gx, gw []float64) {
	oh, ow, K := s.oh(), s.ow(), s.k()
	out, gx, gw = make([]float64, s.N*s.O*oh*ow), make([]float64, len(x)), make([]float64, len(w))
	for n := range s.N {
		for o := range s.O {
			for i := range oh {
				for j := range ow {
					acc := 0.0
					if bias != nil {
						acc = float64(bias[o])
					}
					g := float64(gout[((n*s.O+o)*oh+i)*ow+j])
					for c := range s.C {
						for kh := range s.KH {
							for kw := range s.KW {
								xi := ((n*s.C+c)*s.H+i+kh)*s.W + j + kw
								wi := o*K + (c*s.KH+kh)*s.KW + kw
								acc += float64(x[xi]) * float64(w[wi])
								gx[xi] += float64(w[wi]) * g
								gw[wi] += float64(x[xi]) * g
							}
						}
					}
					out[((n*s.O+o)*oh+i)*ow+j] = acc
				}
			}
		}
	}
	return out, gx, gw
}

func near(t *testing.T, what string, got []float32, want []float64, k int) {
	t.Helper()
	tol := 1e-5 * math.Sqrt(float64(k)+1) * 4
	for i, w := range want {
		if math.Abs(float64(got[i])-w) > tol*(1+math.Abs(w)) {
			t.Fatalf("%s: element %d = %v; want %v", what, i, got[i], w)
		}
	}
}

// TestConvKernels checks the direct convolution of every assembly backend
// against the float64 reference, on LeNet's layers and shapes that leave
// rows to the Go code and need narrower tiles, and that the results do not
// depend on the thread count.
func TestConvKernels(t *testing.T) {
	shapes := []ConvShape{
		{N: 3, C: 1, H: 28, W: 28, O: 16, KH: 5, KW: 5},  // LeNet conv1
		{N: 3, C: 16, H: 12, W: 12, O: 32, KH: 5, KW: 5}, // LeNet conv2
		{N: 2, C: 3, H: 10, W: 17, O: 5, KH: 2, KW: 10},
		{N: 1, C: 2, H: 9, W: 40, O: 13, KH: 3, KW: 1},
		{N: 2, C: 7, H: 4, W: 8, O: 1, KH: 1, KW: 1},
	}
	for _, name := range Available() {
		be, _ := ByName(name)
		for _, s := range shapes {
			if !ConvFast(be, s) {
				continue
			}
			t.Run(fmt.Sprintf("%s/%v", name, s), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(s.C), uint64(s.O)))
				x, w := randSlice(r, s.N*s.C*s.H*s.W), randSlice(r, s.O*s.k())
				bias, gout := randSlice(r, s.O), randSlice(r, s.N*s.O*s.l())
				wantOut, wantGX, wantGW := convRef(s, x, w, bias, gout)
				var runs [2][3][]float32
				for i, procs := range []int{1, 3} {
					prev := runtime.GOMAXPROCS(procs)
					out, gx, gw := make([]float32, len(wantOut)), make([]float32, len(x)), make([]float32, len(w))
					ConvForward(be, s, x, w, bias, out, false)
					ConvBackwardData(be, s, w, gout, gx)
					ConvBackwardWeight(be, s, x, gout, gw)
					runtime.GOMAXPROCS(prev)
					runs[i] = [3][]float32{out, gx, gw}
				}
				near(t, "forward", runs[0][0], wantOut, s.k())
				near(t, "input gradient", runs[0][1], wantGX, s.O*s.KH*s.KW)
				near(t, "weight gradient", runs[0][2], wantGW, s.N*s.l())
				for k, what := range []string{"forward", "input gradient", "weight gradient"} {
					for i := range runs[0][k] {
						if math.Float32bits(runs[0][k][i]) != math.Float32bits(runs[1][k][i]) {
							t.Fatalf("%s differs between 1 and 3 threads at %d", what, i)
						}
					}
				}
			})
		}
	}
}
