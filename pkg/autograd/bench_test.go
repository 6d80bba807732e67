package autograd

import (
	"fmt"
	"testing"

	"github.com/gorch/gorch/pkg/tensor"
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

// BenchmarkOpWhileNoGrad times a recorded op on a run's variables, alone
// and while another goroutine keeps a different run's scope in NoGrad: the
// two must cost the same, since grad mode is a field of the scope, not a
// lookup of the calling goroutine.
func BenchmarkOpWhileNoGrad(b *testing.B) {
	mine, theirs := tensor.NewScope(), tensor.NewScope()
	x := Param(randn(1, 64))
	mine.Adopt(x.Data)
	for _, busy := range []bool{false, true} {
		b.Run(fmt.Sprintf("other_in_nograd=%v", busy), func(b *testing.B) {
			stop, started := make(chan struct{}), make(chan struct{})
			done := make(chan error, 1)
			if busy {
				go func() { done <- theirs.NoGrad(func() error { close(started); <-stop; return nil }) }()
				<-started
			}
			for b.Loop() {
				if y, err := Add(x, x); err != nil || !y.RequiresGrad() {
					b.Fatalf("Add = %v, %v; want a recorded variable", y, err)
				}
			}
			close(stop)
			if busy {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
