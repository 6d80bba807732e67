package kernels

import "golang.org/x/sys/cpu"

// vecCPU reports whether the AVX2 elementwise kernels can run (AVX2 with
// OS support for the ymm state; FMA is not used).
func vecCPU() bool { return cpu.X86.HasAVX && cpu.X86.HasAVX2 }

// Implemented in vec_amd64.s; n is a multiple of 8 (4 for vaccF64AVX2, 16
// for vsumF64AVX2) and at least that.

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
