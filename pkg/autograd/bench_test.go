package autograd

import (
	"fmt"
	"testing"
)

// BenchmarkBackward runs the backward pass of a wide graph (16 parallel
// branches over a 256x512 hidden layer) with 1 and 2 workers.
func BenchmarkBackward(b *testing.B) {
	x := randn(1, 256, 512)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			w1 := Param(randn(2, 512, 512))
			w2 := Param(randn(3, 64, 512))
			for b.Loop() {
				b.StopTimer()
				loss := deepGraph(nil, w1, w2, x)
				w1.Grad, w2.Grad = nil, nil
				b.StartTimer()
				if err := loss.BackwardWith(BackwardOptions{Workers: workers}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
