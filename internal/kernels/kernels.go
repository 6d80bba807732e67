// Package kernels holds gorch's compute kernels behind a swappable Backend.
//
// The tensor package calls Default().Sgemm for every matrix product; a faster
// backend (assembly, SIMD) can be installed with SetDefault without touching
// callers.
package kernels

import "sync/atomic"

// Backend computes single-precision GEMM with row-major BLAS semantics:
//
//	C = alpha·op(A)·op(B) + beta·C
//
// op(A) is m×k: A is stored m×k (row stride lda) when transA is false and
// k×m when it is true; likewise op(B) is k×n, stored k×n or, with transB,
// n×k (row stride ldb). C is m×n with row stride ldc. When beta is 0, C is
// overwritten (NaNs in C do not propagate). Slices must be long enough for
// the described matrices; callers validate shapes.
//
// Implementations must be deterministic: the result must not depend on
// GOMAXPROCS or scheduling.
type Backend interface {
	Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	Name() string
}

type holder struct{ b Backend }

var def atomic.Pointer[holder]

func init() { def.Store(&holder{fromEnv()}) }

// Threaded is implemented by backends whose parallelism can be capped.
type Threaded interface {
	// WithThreads returns a backend that uses at most n goroutines per
	// call (n <= 0: GOMAXPROCS). Results must not change.
	WithThreads(n int) Backend
}

// WithThreads returns b capped to n goroutines per call if b supports it,
// else b. Callers that already run GEMMs in parallel use WithThreads(b, 1)
// to avoid nested parallelism.
func WithThreads(b Backend, n int) Backend {
	if t, ok := b.(Threaded); ok {
		return t.WithThreads(n)
	}
	return b
}

// Default returns the backend in use.
func Default() Backend { return def.Load().b }

// SetDefault installs b as the backend in use; nil restores the start-up
// choice (see EnvKernel).
func SetDefault(b Backend) {
	if b == nil {
		b = fromEnv()
	}
	def.Store(&holder{b})
}

// Go returns the pure-Go backend.
func Go() Backend { return goBackend{} }
