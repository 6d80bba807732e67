package tensor

import (
	"math"
	"math/bits"
	"sync"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
)

var (
	statConv2d            = stat("conv2d")
	statConv2dBackward    = stat("conv2d_backward")
	statMaxPool2d         = stat("max_pool2d")
	statMaxPool2dBackward = stat("max_pool2d_backward")
	statAvgPool2d         = stat("avg_pool2d")
	statAvgPool2dBackward = stat("avg_pool2d_backward")
)

// Conv2dOptions configures a 2-D convolution. Zero strides mean 1.
type Conv2dOptions struct {
	Stride  [2]int // (height, width)
	Padding [2]int // zero padding on each side (height, width)
}

// Pool2dOptions configures 2-D pooling. A zero Stride means Stride = Kernel.
type Pool2dOptions struct {
	Kernel  [2]int
	Stride  [2]int
	Padding [2]int
}

// maxSpatial bounds kernel sizes, strides and paddings so that index
// arithmetic cannot overflow.
const maxSpatial = 1 << 30

// window is the geometry of a 2-D sliding window over [N, C, H, W].
type window struct {
	n, c, h, w     int
	kh, kw         int
	sh, sw, ph, pw int
	oh, ow         int
}

// finish computes the output extent of the window, rejecting inputs smaller than the kernel.
func (g *window) finish(op string, inShape []int) error {
	if g.h+2*g.ph < g.kh || g.w+2*g.pw < g.kw {
		return errs.New(errs.Shape, op, "input of shape %v with padding (%d, %d) is smaller than the %dx%d kernel",
			inShape, g.ph, g.pw, g.kh, g.kw)
	}
	g.oh = (g.h+2*g.ph-g.kh)/g.sh + 1
	g.ow = (g.w+2*g.pw-g.kw)/g.sw + 1
	if g.oh <= 0 || g.ow <= 0 {
		return errs.New(errs.Shape, op, "input of shape %v gives an empty %dx%d output", inShape, g.oh, g.ow)
	}
	return nil
}

// dataOf returns t's elements in row-major order (aliased when contiguous),
// or nil for an empty tensor, whose offset need not lie in its storage.
func dataOf(t *Tensor) []float32 {
	if t.Numel() == 0 {
		return nil
	}
	return t.Data()
}

// nonEmptyPlane rejects inputs with zero height or width.
func nonEmptyPlane(op string, shape []int) error {
	if shape[2] == 0 || shape[3] == 0 {
		return errs.New(errs.Shape, op, "input of shape %v has an empty spatial plane", shape)
	}
	return nil
}

func checkSpatial(op, what string, v [2]int, minV int) error {
	for _, x := range v {
		if x < minV || x > maxSpatial {
			return errs.New(errs.Argument, op, "%s %v out of range: each must be in [%d, %d]", what, v, minV, maxSpatial)
		}
	}
	return nil
}

func convWindow(op string, x, w *Tensor, opt Conv2dOptions) (window, error) {
	var g window
	if len(x.shape) != 4 {
		return g, errs.New(errs.Shape, op, "input of shape %v is not 4-dimensional [N, C, H, W]", x.shape)
	}
	if len(w.shape) != 4 {
		return g, errs.New(errs.Shape, op, "weight of shape %v is not 4-dimensional [O, C, KH, KW]", w.shape)
	}
	if x.shape[1] != w.shape[1] {
		return g, errs.New(errs.Shape, op, "input of shape %v and weight of shape %v have different channel counts", x.shape, w.shape)
	}
	if err := checkSpatial(op, "stride", opt.Stride, 0); err != nil {
		return g, err
	}
	if err := checkSpatial(op, "padding", opt.Padding, 0); err != nil {
		return g, err
	}
	if w.shape[2] < 1 || w.shape[3] < 1 {
		return g, errs.New(errs.Argument, op, "weight of shape %v has an empty kernel", w.shape)
	}
	if err := nonEmptyPlane(op, x.shape); err != nil {
		return g, err
	}
	g = window{n: x.shape[0], c: x.shape[1], h: x.shape[2], w: x.shape[3], kh: w.shape[2], kw: w.shape[3],
		sh: opt.Stride[0], sw: opt.Stride[1], ph: opt.Padding[0], pw: opt.Padding[1]}
	if g.sh == 0 {
		g.sh = 1
	}
	if g.sw == 0 {
		g.sw = 1
	}
	if err := g.finish(op, x.shape); err != nil {
		return g, err
	}
	_, err := checkShape(op, []int{g.n, w.shape[0], g.oh, g.ow})
	if err == nil {
		_, err = checkShape(op, []int{g.c * g.kh * g.kw, g.oh * g.ow})
	}
	return g, err
}

// pointwise reports whether the convolution is a plain 1x1 product, where
// the input plane is its own im2col matrix.
func (g *window) pointwise() bool {
	return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0
}

// im2col writes the [C·KH·KW, OH·OW] patch matrix of one sample x [C, H, W]
// into cols, row r at cols[r*ld+off:][:OH·OW].
func (g *window) im2col(x, cols []float32, ld, off int) {
	L := g.oh * g.ow
	for c := 0; c < g.c; c++ {
		plane := x[c*g.h*g.w : (c+1)*g.h*g.w]
		for ki := 0; ki < g.kh; ki++ {
			for kj := 0; kj < g.kw; kj++ {
				row := cols[((c*g.kh+ki)*g.kw+kj)*ld+off:][:L]
				// With stride 1, output columns [lo, hi) of every row read
				// src[lo+iw : hi+iw]; the rest is padding.
				iw0 := kj - g.pw
				lo, hi := min(max(-iw0, 0), g.ow), min(max(g.w-iw0, 0), g.ow)
				lo = min(lo, hi)
				for oh := 0; oh < g.oh; oh++ {
					dst := row[oh*g.ow : (oh+1)*g.ow]
					ih := oh*g.sh - g.ph + ki
					if ih < 0 || ih >= g.h {
						clear(dst)
						continue
					}
					src := plane[ih*g.w : (ih+1)*g.w]
					iw := iw0
					if g.sw == 1 {
						if lo > 0 {
							clear(dst[:lo])
						}
						// An element loop: rows are short, where copy's call costs more than the move.
						d, sv := dst[lo:hi], src[lo+iw:hi+iw]
						for i := range d {
							d[i] = sv[i]
						}
						if hi < g.ow {
							clear(dst[hi:])
						}
						continue
					}
					for ow := range dst {
						if iw >= 0 && iw < g.w {
							dst[ow] = src[iw]
						} else {
							dst[ow] = 0
						}
						iw += g.sw
					}
				}
			}
		}
	}
}

// col2im adds the patch-matrix gradient cols (row r at cols[r*ld+off:])
// back into one sample's input gradient gx [C, H, W], in a fixed order.
func (g *window) col2im(cols, gx []float32, ld, off int) {
	L := g.oh * g.ow
	for c := 0; c < g.c; c++ {
		plane := gx[c*g.h*g.w : (c+1)*g.h*g.w]
		for ki := 0; ki < g.kh; ki++ {
			for kj := 0; kj < g.kw; kj++ {
				row := cols[((c*g.kh+ki)*g.kw+kj)*ld+off:][:L]
				for oh := 0; oh < g.oh; oh++ {
					ih := oh*g.sh - g.ph + ki
					if ih < 0 || ih >= g.h {
						continue
					}
					src := row[oh*g.ow : (oh+1)*g.ow]
					dst := plane[ih*g.w : (ih+1)*g.w]
					iw := kj - g.pw
					if g.sw == 1 {
						lo, hi := min(max(-iw, 0), g.ow), min(max(g.w-iw, 0), g.ow)
						if lo < hi {
							d := dst[lo+iw : hi+iw]
							for i, v := range src[lo:hi] {
								d[i] += v
							}
						}
						continue
					}
					for _, v := range src {
						if iw >= 0 && iw < g.w {
							dst[iw] += v
						}
						iw += g.sw
					}
				}
			}
		}
	}
}

// parallelChunks runs fn(i) for i in [0, n) on up to workers() goroutines
// when the total work (in multiply-adds) is large enough to pay for them.
func parallelChunks(n int, work float64, fn func(i int)) {
	if n <= 1 || work < 1<<17 || workers() == 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	parallelFor(n, fn)
}

// gemmBackend returns the GEMM backend for work split into chunks that run
// in parallel: single-threaded GEMMs when the chunks already occupy the
// cores, so goroutines are not nested.
func gemmBackend(chunks int) kernels.Backend {
	be := kernels.Default()
	if chunks >= workers() {
		be = kernels.WithThreads(be, 1)
	}
	return be
}

// Conv2dReLU is Conv2d followed by Relu, the ReLU applied to each sample's
// output while it is still in cache.
func Conv2dReLU(x, w, b *Tensor, opt Conv2dOptions) (*Tensor, error) {
	return conv2d(x, w, b, opt, true)
}

// Conv2d convolves x [N, C, H, W] with w [O, C, KH, KW], adding b [O] (or nil).
// Stride-1, unpadded convolutions whose output rows are a multiple of 8
// wide run on the backend's direct-convolution kernels (no im2col matrix,
// see kernels.ConvForward); others lower each sample to an im2col matrix
// and one GEMM. Samples run in parallel; results do not depend on
// GOMAXPROCS.
func Conv2d(x, w, b *Tensor, opt Conv2dOptions) (*Tensor, error) { return conv2d(x, w, b, opt, false) }

func conv2d(x, w, b *Tensor, opt Conv2dOptions, relu bool) (*Tensor, error) {
	var err error
	if b != nil {
		err = check(statConv2d, x, w, b)
	} else {
		err = check(statConv2d, x, w)
	}
	if err != nil {
		return nil, err
	}
	g, err := convWindow("conv2d", x, w, opt)
	if err != nil {
		return nil, err
	}
	o := w.shape[0]
	if b != nil && (len(b.shape) != 1 || b.shape[0] != o) {
		return nil, errs.New(errs.Shape, "conv2d", "bias of shape %v does not match weight of shape %v", b.shape, w.shape)
	}
	out := newContiguous(scopeOf(x, w, b), []int{g.n, o, g.oh, g.ow})
	if out.Numel() == 0 {
		return out, nil
	}
	xd, wd, od := dataOf(x), dataOf(w), out.storage.data
	var bias []float32
	if b != nil {
		bias = dataOf(b)
	}
	if s, be, ok := g.direct(o); ok {
		kernels.ConvForward(be, s, xd, wd, bias, od, relu)
		return out, nil
	}
	g.im2colForward(xd, wd, bias, od, o)
	if relu {
		kernels.VecRelu(od, od)
	}
	return out, nil
}

// im2colForward is conv2d's general path: each sample lowered to an
// im2col matrix, grouped samples per GEMM.
func (g *window) im2colForward(xd, wd, bias, od []float32, o int) {
	K, L := g.c*g.kh*g.kw, g.oh*g.ow
	chunks := min(g.n, workers())
	per := (g.n + chunks - 1) / chunks
	chunks = (g.n + per - 1) / per
	be := gemmBackend(chunks)
	// Samples per GEMM: im2col matrices of a group sit side by side as one
	// [K, cnt·L] operand (at most convGroupFloats), so the weights are packed
	// once per group and the GEMM is wide. 1x1 convolutions need no im2col
	// and run one GEMM per sample.
	grp := 1
	if !g.pointwise() {
		grp = max(1, min(per, convGroupFloats/max(K*L, o*L)))
	}
	parallelChunks(chunks, float64(g.n)*float64(o)*float64(K)*float64(L), func(ci int) {
		n0, n1 := ci*per, min(g.n, (ci+1)*per)
		if grp == 1 {
			var cols []float32
			if !g.pointwise() {
				cols = make([]float32, K*L)
			}
			for n := n0; n < n1; n++ {
				xn := xd[n*g.c*g.h*g.w : (n+1)*g.c*g.h*g.w]
				src := xn
				if cols != nil {
					g.im2col(xn, cols, L, 0)
					src = cols
				}
				on := od[n*o*L : (n+1)*o*L]
				var beta float32
				if bias != nil {
					for oc := 0; oc < o; oc++ {
						fill(on[oc*L:(oc+1)*L], bias[oc])
					}
					beta = 1
				}
				be.Sgemm(false, false, o, L, K, 1, wd, K, src, L, beta, on, L)
			}
			return
		}
		colsBuf, tmpBuf := getScratch(K*min(grp, n1-n0)*L), getScratch(o*min(grp, n1-n0)*L)
		defer putScratch(colsBuf)
		defer putScratch(tmpBuf)
		cols, tmp := *colsBuf, *tmpBuf
		for s0 := n0; s0 < n1; s0 += grp {
			cnt := min(grp, n1-s0)
			ld := cnt * L
			for i := 0; i < cnt; i++ {
				n := s0 + i
				g.im2col(xd[n*g.c*g.h*g.w:(n+1)*g.c*g.h*g.w], cols, ld, i*L)
			}
			// Same rounding as the per-sample path: C starts at the bias, beta = 1.
			var beta float32
			if bias != nil {
				for oc := 0; oc < o; oc++ {
					fill(tmp[oc*ld:(oc+1)*ld], bias[oc])
				}
				beta = 1
			}
			be.Sgemm(false, false, o, ld, K, 1, wd, K, cols, ld, beta, tmp, ld)
			for i := 0; i < cnt; i++ {
				on := od[(s0+i)*o*L : (s0+i+1)*o*L]
				for oc := 0; oc < o; oc++ {
					copy(on[oc*L:(oc+1)*L], tmp[oc*ld+i*L:oc*ld+(i+1)*L])
				}
			}
		}
	})
}

// convScratch holds the grouped conv2d paths' im2col, gradient and output
// scratch matrices (*[]float32) across calls: every element is written
// before it is read, so reused buffers need no zeroing (a fresh make of a
// few MiB per call was ~10 % of a LeNet step, clearing). With
// kernels.LegacyGemm, buffers are allocated per call as before.
// One pool per power-of-two capacity, so the differently sized buffers of
// the layers and passes do not evict one another.
var convScratch [48]sync.Pool

func getScratch(n int) *[]float32 {
	if kernels.LegacyGemm() {
		s := make([]float32, n)
		return &s
	}
	c := bits.Len(uint(max(n, 1) - 1))
	if p, ok := convScratch[c].Get().(*[]float32); ok {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n, 1<<c)
	return &s
}

func putScratch(p *[]float32) {
	if c := cap(*p); !kernels.LegacyGemm() && c&(c-1) == 0 {
		convScratch[bits.Len(uint(c)-1)].Put(p)
	}
}

// convGroupFloats bounds the im2col and output scratch of one grouped
// conv2d GEMM (in float32s, 16 MiB).
const convGroupFloats = 1 << 22

// direct returns the shape for the backend's direct-convolution kernels
// when the window is stride 1 and unpadded and they can run it.
func (g *window) direct(o int) (kernels.ConvShape, kernels.Backend, bool) {
	s := kernels.ConvShape{N: g.n, C: g.c, H: g.h, W: g.w, O: o, KH: g.kh, KW: g.kw}
	be := kernels.Default()
	ok := g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 && !kernels.LegacyGemm() && kernels.ConvFast(be, s)
	return s, be, ok
}

// Conv2dBackward returns the gradients of conv2d's input, weight and bias
// given the gradient of its output; want selects which are computed (the
// others are nil), like ATen's output_mask: a network's first layer needs
// no input gradient.
//
// Stride-1, unpadded convolutions the backend has direct kernels for (see
// Conv2d) add the input gradient straight from Wᵀ·gradOut tiles (no col2im
// matrix) and compute the weight gradient as one GEMM over every sample's
// positions. Otherwise:
//
// The weight gradient is accumulated per fixed chunk of samples (the chunks
// do not depend on GOMAXPROCS) and the chunk partials are summed in order,
// so results are bit-identical across runs and thread counts. Within a
// chunk, the samples' im2col matrices and output gradients sit side by side
// (groups of at most convGroupFloats, also fixed), so each group is two wide
// GEMMs, as in the forward pass, instead of two small ones per sample
// (kernels.SetLegacyGemm or GORCH_GEMM_LEGACY=1 restores the per-sample
// GEMMs for A/B benchmarks; their gw rounds differently).
func Conv2dBackward(x, w, gradOut *Tensor, opt Conv2dOptions, want [3]bool) (gx, gw, gb *Tensor, err error) {
	if err := check(statConv2dBackward, x, w, gradOut); err != nil {
		return nil, nil, nil, err
	}
	g, err := convWindow("conv2d_backward", x, w, opt)
	if err != nil {
		return nil, nil, nil, err
	}
	o := w.shape[0]
	if outShape := []int{g.n, o, g.oh, g.ow}; !EqualShape(gradOut.shape, outShape) {
		return nil, nil, nil, errs.New(errs.Shape, "conv2d_backward", "gradient of shape %v does not match output shape %v of input %v and weight %v",
			gradOut.shape, outShape, x.shape, w.shape)
	}
	sc := scopeOf(x, w, gradOut)
	gx, gw, gb = newContiguous(sc, x.shape), newContiguous(sc, w.shape), newContiguous(sc, []int{o})
	K, L := g.c*g.kh*g.kw, g.oh*g.ow
	if g.n == 0 || o == 0 || L == 0 {
		return pick(want, gx, gw, gb)
	}
	xd, wd, gd := dataOf(x), dataOf(w), dataOf(gradOut)
	if want[2] {
		biasGrad(gd, gb.storage.data, g.n, o, L)
	}
	if K == 0 || !want[0] && !want[1] {
		return pick(want, gx, gw, gb)
	}
	if s, be, ok := g.direct(o); ok {
		if want[0] {
			kernels.ConvBackwardData(be, s, wd, gd, gx.storage.data)
		}
		if want[1] {
			kernels.ConvBackwardWeight(be, s, xd, gd, gw.storage.data)
		}
		return pick(want, gx, gw, gb)
	}

	g.im2colBackward(xd, wd, gd, gx.storage.data, gw.storage.data, o)
	return pick(want, gx, gw, gb)
}

// im2colBackward is Conv2dBackward's general path for the input gradient
// gxd and the weight gradient gwd.
func (g *window) im2colBackward(xd, wd, gd, gxd, gwd []float32, o int) {
	K, L := g.c*g.kh*g.kw, g.oh*g.ow
	const maxChunks = 8
	per := (g.n + maxChunks - 1) / maxChunks
	chunks := (g.n + per - 1) / per
	partial := make([][]float32, chunks)
	partial[0] = gwd
	for i := 1; i < chunks; i++ {
		partial[i] = make([]float32, o*K)
	}
	be := gemmBackend(chunks)
	grp := 1
	if !g.pointwise() && !kernels.LegacyGemm() {
		grp = max(1, min(per, convGroupFloats/max(K*L, o*L)))
	}
	parallelChunks(chunks, 2*float64(g.n)*float64(o)*float64(K)*float64(L), func(ci int) {
		pw := partial[ci]
		if grp > 1 {
			n0, n1 := ci*per, min(g.n, (ci+1)*per)
			sz := min(grp, n1-n0) * L
			colsBuf, gcolsBuf, gBuf := getScratch(K*sz), getScratch(K*sz), getScratch(o*sz)
			defer putScratch(colsBuf)
			defer putScratch(gcolsBuf)
			defer putScratch(gBuf)
			cols, gcols, gbuf := *colsBuf, *gcolsBuf, *gBuf
			for s0 := n0; s0 < n1; s0 += grp {
				cnt := min(grp, n1-s0)
				ld := cnt * L
				for i := 0; i < cnt; i++ {
					n := s0 + i
					g.im2col(xd[n*g.c*g.h*g.w:(n+1)*g.c*g.h*g.w], cols, ld, i*L)
					for oc := 0; oc < o; oc++ {
						copy(gbuf[oc*ld+i*L:oc*ld+(i+1)*L], gd[(n*o+oc)*L:(n*o+oc+1)*L])
					}
				}
				beta := float32(1)
				if s0 == n0 {
					beta = 0
				}
				// gw[O, K] += gout[O, cnt·L] · colsᵀ
				be.Sgemm(false, true, o, K, ld, 1, gbuf, ld, cols, ld, beta, pw, K)
				// gcols[K, cnt·L] = wᵀ · gout
				be.Sgemm(true, false, K, ld, o, 1, wd, K, gbuf, ld, 0, gcols, ld)
				for i := 0; i < cnt; i++ {
					n := s0 + i
					g.col2im(gcols, gxd[n*g.c*g.h*g.w:(n+1)*g.c*g.h*g.w], ld, i*L)
				}
			}
			return
		}
		var cols, gcols []float32
		if !g.pointwise() {
			cols, gcols = make([]float32, K*L), make([]float32, K*L)
		}
		for n := ci * per; n < min(g.n, (ci+1)*per); n++ {
			xn := xd[n*g.c*g.h*g.w : (n+1)*g.c*g.h*g.w]
			gn := gd[n*o*L : (n+1)*o*L]
			gxn := gxd[n*g.c*g.h*g.w : (n+1)*g.c*g.h*g.w]
			src := xn
			if gcols != nil {
				g.im2col(xn, cols, L, 0)
				src = cols
			}
			beta := float32(1)
			if n == ci*per {
				beta = 0
			}
			// gw[O, K] += gout_n[O, L] · cols_nᵀ
			be.Sgemm(false, true, o, K, L, 1, gn, L, src, L, beta, pw, K)
			// gcols[K, L] = wᵀ · gout_n
			if gcols == nil {
				be.Sgemm(true, false, K, L, o, 1, wd, K, gn, L, 0, gxn, L)
				continue
			}
			be.Sgemm(true, false, K, L, o, 1, wd, K, gn, L, 0, gcols, L)
			g.col2im(gcols, gxn, L, 0)
		}
	})
	for ci := 1; ci < chunks; ci++ {
		for i, v := range partial[ci] {
			gwd[i] += v
		}
	}
}

// biasGrad sets gb[o] to the sum of gd [N, O, L] over N and L, in float64
// in a fixed order (kernels.VecSumF64 per row, rows in sample order).
func biasGrad(gd, gb []float32, n, o, l int) {
	for oc := range o {
		var s float64
		for i := range n {
			s += kernels.VecSumF64(gd[(i*o+oc)*l : (i*o+oc+1)*l])
		}
		gb[oc] = float32(s)
	}
}

// pick returns the gradients want selects, nil for the others.
func pick(want [3]bool, gx, gw, gb *Tensor) (*Tensor, *Tensor, *Tensor, error) {
	g := [3]*Tensor{gx, gw, gb}
	for i, w := range want {
		if !w {
			g[i] = nil
		}
	}
	return g[0], g[1], g[2], nil
}

func poolWindow(op string, shape []int, opt Pool2dOptions) (window, error) {
	var g window
	if len(shape) != 4 {
		return g, errs.New(errs.Shape, op, "input of shape %v is not 4-dimensional [N, C, H, W]", shape)
	}
	if _, err := checkShape(op, shape); err != nil {
		return g, err
	}
	if err := checkSpatial(op, "kernel size", opt.Kernel, 1); err != nil {
		return g, err
	}
	if err := checkSpatial(op, "stride", opt.Stride, 0); err != nil {
		return g, err
	}
	if err := checkSpatial(op, "padding", opt.Padding, 0); err != nil {
		return g, err
	}
	if opt.Padding[0] > opt.Kernel[0]/2 || opt.Padding[1] > opt.Kernel[1]/2 {
		return g, errs.New(errs.Argument, op, "padding %v exceeds half of kernel size %v", opt.Padding, opt.Kernel)
	}
	if err := nonEmptyPlane(op, shape); err != nil {
		return g, err
	}
	g = window{n: shape[0], c: shape[1], h: shape[2], w: shape[3], kh: opt.Kernel[0], kw: opt.Kernel[1],
		sh: opt.Stride[0], sw: opt.Stride[1], ph: opt.Padding[0], pw: opt.Padding[1]}
	if g.sh == 0 {
		g.sh = g.kh
	}
	if g.sw == 0 {
		g.sw = g.kw
	}
	if err := g.finish(op, shape); err != nil {
		return g, err
	}
	return g, nil
}

// planes runs fn over the N·C planes of a pooling op, in parallel when large.
func (g *window) planes(fn func(p int)) {
	parallelChunks(g.n*g.c, float64(g.n*g.c)*float64(g.oh*g.ow)*float64(g.kh*g.kw)/4, fn)
}

// MaxPool2d returns the maxima of x [N, C, H, W] over windows and the flat
// (h*W+w) index of each maximum within its input plane, as float32.
// Padding counts as -inf; ties go to the first position in row-major order;
// a NaN is the maximum of any window holding it, as in PyTorch.
func MaxPool2d(x *Tensor, opt Pool2dOptions) (out, indices *Tensor, err error) {
	if err := check(statMaxPool2d, x); err != nil {
		return nil, nil, err
	}
	g, err := poolWindow("max_pool2d", x.shape, opt)
	if err != nil {
		return nil, nil, err
	}
	shape := []int{g.n, g.c, g.oh, g.ow}
	out, indices = newContiguous(x.Scope(), shape), newContiguous(x.Scope(), shape)
	if out.Numel() == 0 {
		return out, indices, nil
	}
	xd, od, id := dataOf(x), out.storage.data, indices.storage.data
	hw, ohw := g.h*g.w, g.oh*g.ow
	if g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 {
		g.planes(func(p int) {
			kernels.MaxPool2x2(xd[p*hw:(p+1)*hw], g.h, g.w, od[p*ohw:(p+1)*ohw], id[p*ohw:(p+1)*ohw])
		})
		return out, indices, nil
	}
	g.planes(func(p int) {
		src := xd[p*hw : (p+1)*hw]
		dst, dix := od[p*ohw:(p+1)*ohw], id[p*ohw:(p+1)*ohw]
		for oh := 0; oh < g.oh; oh++ {
			hs := oh*g.sh - g.ph
			h0, h1 := max(hs, 0), min(hs+g.kh, g.h)
			for ow := 0; ow < g.ow; ow++ {
				ws := ow*g.sw - g.pw
				w0, w1 := max(ws, 0), min(ws+g.kw, g.w)
				best, bi := float32(math.Inf(-1)), h0*g.w+w0
				for ih := h0; ih < h1; ih++ {
					row := src[ih*g.w : (ih+1)*g.w]
					for iw := w0; iw < w1; iw++ {
						if v := row[iw]; v > best || v != v {
							best, bi = v, ih*g.w+iw
						}
					}
				}
				dst[oh*g.ow+ow], dix[oh*g.ow+ow] = best, float32(bi)
			}
		}
	})
	return out, indices, nil
}

func checkInputShape(op string, shape []int) error {
	if len(shape) != 4 {
		return errs.New(errs.Shape, op, "input shape %v is not 4-dimensional [N, C, H, W]", shape)
	}
	_, err := checkShape(op, shape)
	return err
}

// MaxPool2dBackward routes gradOut to the positions in indices, for an input of inputShape.
// Gradients routed to the same position are summed in a fixed order.
func MaxPool2dBackward(gradOut, indices *Tensor, inputShape []int) (*Tensor, error) {
	const op = "max_pool2d_backward"
	if err := check(statMaxPool2dBackward, gradOut, indices); err != nil {
		return nil, err
	}
	if err := checkInputShape(op, inputShape); err != nil {
		return nil, err
	}
	if len(gradOut.shape) != 4 || !EqualShape(gradOut.shape, indices.shape) ||
		gradOut.shape[0] != inputShape[0] || gradOut.shape[1] != inputShape[1] {
		return nil, errs.New(errs.Shape, op, "gradient of shape %v and indices of shape %v do not match input shape %v",
			gradOut.shape, indices.shape, inputShape)
	}
	gx := newContiguous(scopeOf(gradOut, indices), inputShape)
	planes := inputShape[0] * inputShape[1]
	hw := inputShape[2] * inputShape[3]
	ohw := gradOut.shape[2] * gradOut.shape[3]
	if planes == 0 || ohw == 0 {
		return gx, nil
	}
	gd, id, xd := dataOf(gradOut), dataOf(indices), gx.storage.data
	for i, v := range id {
		if !(v >= 0 && v < float32(hw)) || v != float32(int64(v)) {
			return nil, errs.New(errs.Argument, op, "index %v at position %d is not a position in a %dx%d input plane",
				v, i, inputShape[2], inputShape[3])
		}
	}
	g := window{n: inputShape[0], c: inputShape[1], oh: gradOut.shape[2], ow: gradOut.shape[3], kh: 1, kw: 1}
	g.planes(func(p int) {
		dst := xd[p*hw : (p+1)*hw]
		src, ix := gd[p*ohw:(p+1)*ohw], id[p*ohw:(p+1)*ohw]
		for i, v := range src {
			dst[int(ix[i])] += v
		}
	})
	return gx, nil
}

// AvgPool2d averages x [N, C, H, W] over windows (padding counted, as PyTorch's default).
func AvgPool2d(x *Tensor, opt Pool2dOptions) (*Tensor, error) {
	if err := check(statAvgPool2d, x); err != nil {
		return nil, err
	}
	g, err := poolWindow("avg_pool2d", x.shape, opt)
	if err != nil {
		return nil, err
	}
	out := newContiguous(x.Scope(), []int{g.n, g.c, g.oh, g.ow})
	if out.Numel() == 0 {
		return out, nil
	}
	xd, od := dataOf(x), out.storage.data
	hw, ohw := g.h*g.w, g.oh*g.ow
	div := float64(g.kh * g.kw) // count_include_pad: the window never passes the padding
	g.planes(func(p int) {
		src, dst := xd[p*hw:(p+1)*hw], od[p*ohw:(p+1)*ohw]
		for oh := 0; oh < g.oh; oh++ {
			hs := oh*g.sh - g.ph
			h0, h1 := max(hs, 0), min(hs+g.kh, g.h)
			for ow := 0; ow < g.ow; ow++ {
				ws := ow*g.sw - g.pw
				w0, w1 := max(ws, 0), min(ws+g.kw, g.w)
				var s float64
				for ih := h0; ih < h1; ih++ {
					for _, v := range src[ih*g.w+w0 : ih*g.w+w1] {
						s += float64(v)
					}
				}
				dst[oh*g.ow+ow] = float32(s / div)
			}
		}
	})
	return out, nil
}

// AvgPool2dBackward spreads gradOut evenly over each window.
func AvgPool2dBackward(gradOut *Tensor, inputShape []int, opt Pool2dOptions) (*Tensor, error) {
	const op = "avg_pool2d_backward"
	if err := check(statAvgPool2dBackward, gradOut); err != nil {
		return nil, err
	}
	if err := checkInputShape(op, inputShape); err != nil {
		return nil, err
	}
	g, err := poolWindow(op, inputShape, opt)
	if err != nil {
		return nil, err
	}
	if want := []int{g.n, g.c, g.oh, g.ow}; !EqualShape(gradOut.shape, want) {
		return nil, errs.New(errs.Shape, op, "gradient of shape %v does not match output shape %v of input %v",
			gradOut.shape, want, inputShape)
	}
	gx := newContiguous(gradOut.Scope(), inputShape)
	if gradOut.Numel() == 0 {
		return gx, nil
	}
	gd, xd := dataOf(gradOut), gx.storage.data
	hw, ohw := g.h*g.w, g.oh*g.ow
	inv := 1 / float32(g.kh*g.kw)
	g.planes(func(p int) {
		src, dst := gd[p*ohw:(p+1)*ohw], xd[p*hw:(p+1)*hw]
		for oh := 0; oh < g.oh; oh++ {
			hs := oh*g.sh - g.ph
			h0, h1 := max(hs, 0), min(hs+g.kh, g.h)
			for ow := 0; ow < g.ow; ow++ {
				ws := ow*g.sw - g.pw
				w0, w1 := max(ws, 0), min(ws+g.kw, g.w)
				v := src[oh*g.ow+ow] * inv
				for ih := h0; ih < h1; ih++ {
					row := dst[ih*g.w+w0 : ih*g.w+w1]
					for i := range row {
						row[i] += v
					}
				}
			}
		}
	})
	return gx, nil
}
