package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMaxPool2x2 checks every vector path against a direct scalar
// reference, with ties, NaNs and infinities, on plane sizes that use the
// 8-wide rows, the paired 4-wide rows and the scalar remainders.
func TestMaxPool2x2(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][2]int{{24, 24}, {8, 8}, {9, 9}, {5, 17}, {2, 8}, {3, 8}, {24, 20}, {7, 34}, {1, 4}} {
		h, w := sz[0], sz[1]
		src := make([]float32, h*w)
		for i := range src {
			switch r.IntN(8) {
			case 0:
				src[i] = float32(math.NaN())
			case 1:
				src[i] = float32(math.Inf(-1))
			case 2:
				src[i] = 1 // ties
			default:
				src[i] = float32(r.NormFloat64())
			}
		}
		oh, ow := h/2, w/2
		want, wantIdx := make([]float32, oh*ow), make([]float32, oh*ow)
		for i := range oh {
			for j := range ow {
				best, bi := float32(math.Inf(-1)), 2*i*w+2*j
				for _, k := range []int{2*i*w + 2*j, 2*i*w + 2*j + 1, (2*i+1)*w + 2*j, (2*i+1)*w + 2*j + 1} {
					if v := src[k]; v > best || v != v {
						best, bi = v, k
					}
				}
				want[i*ow+j], wantIdx[i*ow+j] = best, float32(bi)
			}
		}
		for _, path := range VecPaths() {
			t.Run(fmt.Sprintf("%dx%d/%s", h, w, path), func(t *testing.T) {
				prev, _ := SetVecPath(path)
				defer SetVecPath(prev)
				got, idx := make([]float32, oh*ow), make([]float32, oh*ow)
				if oh*ow > 0 {
					MaxPool2x2(src, h, w, got, idx)
				}
				for i := range want {
					if !sameBits(got[i], want[i]) || idx[i] != wantIdx[i] {
						t.Fatalf("output %d = %v at %v; want %v at %v", i, got[i], idx[i], want[i], wantIdx[i])
					}
				}
			})
		}
	}
}
