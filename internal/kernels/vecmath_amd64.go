package kernels

//go:generate sh -c "python3 asmgen/vecmath.py > vecmath_amd64.s"

// Implemented in vecmath_amd64.s (see vecmath.go for the Go references):
// n is a multiple of the lane count (8 for AVX2, 16 for AVX-512); each
// returns how many elements it did, n unless a block needs the reference.

//go:noescape
func geluFwdAVX2(d, x *float32, n int, tab *uint32) int

//go:noescape
func geluBackAVX2(d, gr, x *float32, n int, tab *uint32) int

//go:noescape
func geluFwdAVX512(d, x *float32, n int, tab *uint32) int

//go:noescape
func geluBackAVX512(d, gr, x *float32, n int, tab *uint32) int

//go:noescape
func expfAVX2(d, x *float32, n int, tab *uint32) int

//go:noescape
func expfAVX512(d, x *float32, n int, tab *uint32) int
