package kernels

import "golang.org/x/sys/cpu"

//go:generate sh -c "python3 asmgen/vec.py > vec_amd64.s"

// vecCPU reports whether the AVX2 elementwise kernels can run (AVX2 with
// OS support for the ymm state; FMA is not used); vecCPU512 whether the
// AVX-512 ones can (AVX-512F with OS support for the zmm state).
func vecCPU() bool    { return cpu.X86.HasAVX && cpu.X86.HasAVX2 }
func vecCPU512() bool { return cpu.X86.HasAVX512F }

// Implemented in vec_amd64.s (see vec.go for each function's Go
// reference); n is a multiple of the lane count: 8 for AVX2, 16 for
// AVX-512 (4 and 8 for vaccF64, 16 for vsumF64).

//go:noescape
func vaddAVX2(d, x, y *float32, n int)

//go:noescape
func vsubAVX2(d, x, y *float32, n int)

//go:noescape
func vmulAVX2(d, x, y *float32, n int)

//go:noescape
func vaddsAVX2(d, x *float32, c float32, n int)

//go:noescape
func vsubsAVX2(d, x *float32, c float32, n int)

//go:noescape
func vrsubsAVX2(d, x *float32, c float32, n int)

//go:noescape
func vmulsAVX2(d, x *float32, c float32, n int)

//go:noescape
func vreluAVX2(d, x *float32, n int)

//go:noescape
func vreluBackAVX2(d, gr, x *float32, n int)

//go:noescape
func vaccF64AVX2(acc *float64, x *float32, n int)

//go:noescape
func vsumF64AVX2(x *float32, n int, lanes *[16]float64)

//go:noescape
func adamAVX2(p, gr, m, v *float32, n, hi int, w1, b2, w2, eps, bc2, negStep float32)

//go:noescape
func sgdAVX2(p, gr, buf *float32, n, flags int, wd, mom, damp, negLR float32)

//go:noescape
func vaddAVX512(d, x, y *float32, n int)

//go:noescape
func vsubAVX512(d, x, y *float32, n int)

//go:noescape
func vmulAVX512(d, x, y *float32, n int)

//go:noescape
func vaddsAVX512(d, x *float32, c float32, n int)

//go:noescape
func vsubsAVX512(d, x *float32, c float32, n int)

//go:noescape
func vrsubsAVX512(d, x *float32, c float32, n int)

//go:noescape
func vmulsAVX512(d, x *float32, c float32, n int)

//go:noescape
func vreluAVX512(d, x *float32, n int)

//go:noescape
func vreluBackAVX512(d, gr, x *float32, n int)

//go:noescape
func vaccF64AVX512(acc *float64, x *float32, n int)

//go:noescape
func vsumF64AVX512(x *float32, n int, lanes *[16]float64)

//go:noescape
func adamAVX512(p, gr, m, v *float32, n, hi int, w1, b2, w2, eps, bc2, negStep float32)

//go:noescape
func sgdAVX512(p, gr, buf *float32, n, flags int, wd, mom, damp, negLR float32)
