//go:build !amd64

package kernels

// The vector paths are never enabled off amd64; these are unreachable.
func geluFwdAVX2(d, x *float32, n int, tab *uint32) int        { panic("kernels: no AVX2") }
func geluBackAVX2(d, gr, x *float32, n int, tab *uint32) int   { panic("kernels: no AVX2") }
func geluFwdAVX512(d, x *float32, n int, tab *uint32) int      { panic("kernels: no AVX-512") }
func geluBackAVX512(d, gr, x *float32, n int, tab *uint32) int { panic("kernels: no AVX-512") }
func expfAVX2(d, x *float32, n int, tab *uint32) int           { panic("kernels: no AVX2") }
func expfAVX512(d, x *float32, n int, tab *uint32) int         { panic("kernels: no AVX-512") }
