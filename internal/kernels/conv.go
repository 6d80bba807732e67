package kernels

import (
	"runtime"
	"sync"
)

// ConvShape is a stride-1, unpadded 2-D convolution: N images [C, H, W]
// and O filters [C, KH, KW] give an output [N, O, OH, OW] with OH = H-KH+1
// and OW = W-KW+1.
type ConvShape struct{ N, C, H, W, O, KH, KW int }

func (s ConvShape) oh() int { return s.H - s.KH + 1 }
func (s ConvShape) ow() int { return s.W - s.KW + 1 }
func (s ConvShape) l() int  { return s.oh() * s.ow() } // output positions per image
func (s ConvShape) k() int  { return s.C * s.KH * s.KW }

// Direct convolution, without im2col or col2im matrices. A tile is mr rows
// (output channels forward, input-gradient taps backward) by nb vectors of
// 8 consecutive output positions of one output row; so OW must be a
// multiple of 8. The kernels (asmgen/gen.py) read the image through a
// table of per-tap offsets (forward) and add the input gradient through a
// table of per-row offsets (backward); the weight gradient is a GEMM whose
// A slivers are gathered from the image tap by tap.

// convTile is one generated kernel pair for an nb×mr tile.
type convTile struct {
	nb, mr int
	fwd    func(k int, a *float32, boff *int, b0, b1, b2, c *float32, ldc int)
	bwd    func(k int, a, b *float32, ldb int, coff *int, c0, c1, c2 *float32)
}

// convKernels returns the direct-convolution tiles of backend be, or nil
// when it has none (the pure-Go backend).
func convKernels(be Backend) []convTile {
	if p, ok := be.(*packedBackend); ok {
		return p.conv
	}
	return nil
}

// ConvFast reports whether be runs s with its direct-convolution kernels
// (ConvForward, ConvBackwardData, ConvBackwardWeight); otherwise callers
// use the general im2col path.
func ConvFast(be Backend, s ConvShape) bool {
	return len(convKernels(be)) > 0 && s.N > 0 && s.C > 0 && s.O > 0 && s.KH > 0 && s.KW > 0 &&
		s.oh() > 0 && s.ow() > 0 && s.ow()%8 == 0
}

// pickTile chooses the tile with the most accumulators per call, weighing
// the rows it leaves to Go (rows % mr, an order of magnitude slower) and a
// last group of segments that needs a narrower tile.
func pickTile(tiles []convTile, rows, segs int) convTile {
	best, bestScore := tiles[0], -1.0
	for _, t := range tiles {
		score := float64(t.nb*t.mr) * (1 - 10*float64(rows%t.mr)/float64(rows))
		if segs%t.nb != 0 {
			score *= 0.9
		}
		if score > bestScore {
			best, bestScore = t, score
		}
	}
	return best
}

// convSegments returns, for 8-position segment seg of an image, its offset
// in the output plane and in the input plane.
func (s ConvShape) segment(seg int) (out, in int) {
	p := seg * 8
	oh, ow := p/s.ow(), p%s.ow()
	return p, oh*s.W + ow
}

// threadsOf is the goroutine cap of be (0: GOMAXPROCS).
func threadsOf(be Backend) int { return Threads(be) }

// Threads returns how many goroutines be may use per call: GOMAXPROCS, or
// less where [WithThreads] capped it. Engine code that runs work in
// parallel outside GEMMs follows it, so one thread count (the host's, for
// libgorch) caps all of gorch.
func Threads(be Backend) int {
	w := runtime.GOMAXPROCS(0)
	switch b := be.(type) {
	case *packedBackend:
		if b.threads > 0 {
			w = min(w, b.threads)
		}
	case goBackend:
		if b.threads > 0 {
			w = min(w, b.threads)
		}
	}
	return w
}

// forImages runs fn for every image on up to threadsOf(be) goroutines,
// fixed contiguous ranges per goroutine, so results never depend on the
// thread count (each image is written by one goroutine).
func forImages(be Backend, n int, fn func(i int)) {
	w := min(threadsOf(be), n)
	if w <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	for t := range w {
		lo, hi := t*n/w, (t+1)*n/w
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// tapOffsets returns the byte offset in an image of each tap p = (c, kh, kw).
func (s ConvShape) tapOffsets() []int {
	offs := make([]int, 0, s.k())
	for c := range s.C {
		for kh := range s.KH {
			for kw := range s.KW {
				offs = append(offs, 4*(c*s.H*s.W+kh*s.W+kw))
			}
		}
	}
	return offs
}

// ConvForward sets out [N, O, OH, OW] to the convolution of x [N, C, H, W]
// with w [O, C, KH, KW] plus bias [O] (nil: none), then with relu to its
// ReLU (max(v, 0), image by image while in cache). ConvFast(be, s) must hold.
func ConvForward(be Backend, s ConvShape, x, w, bias, out []float32, relu bool) {
	tiles := convKernels(be)
	L, K, segs := s.l(), s.k(), s.l()/8
	_, _, _ = x[s.N*s.C*s.H*s.W-1], w[s.O*K-1], out[s.N*s.O*L-1]
	t := pickTile(tiles, s.O, segs)
	full := s.O / t.mr * t.mr
	// Weight slivers, k-major: pa[s][p*mr + r] = w[s*mr + r, p].
	pa := make([]float32, full*K)
	for o := range full {
		sl, r := o/t.mr, o%t.mr
		for p, v := range w[o*K : (o+1)*K] {
			pa[sl*t.mr*K+p*t.mr+r] = v
		}
	}
	boff := s.tapOffsets()
	forImages(be, s.N, func(n int) {
		xn, on := x[n*s.C*s.H*s.W:(n+1)*s.C*s.H*s.W], out[n*s.O*L:(n+1)*s.O*L]
		for o := range s.O {
			v := float32(0)
			if bias != nil {
				v = bias[o]
			}
			row := on[o*L : (o+1)*L]
			for i := range row {
				row[i] = v
			}
		}
		for g0 := 0; g0 < segs; {
			tt := t
			for tt.nb > segs-g0 { // the last group: a narrower tile of the same height
				tt = narrower(tiles, tt)
			}
			var b [3]*float32
			o0, _ := s.segment(g0)
			for v := range 3 {
				_, in := s.segment(g0 + min(v, tt.nb-1))
				b[v] = &xn[in]
			}
			for sl := 0; sl < full; sl += tt.mr {
				tt.fwd(K, &pa[sl*K], &boff[0], b[0], b[1], b[2], &on[sl*L+o0], L)
			}
			g0 += tt.nb
		}
		convForwardRows(s, xn, w, on, full, boff) // channels past the last full sliver
		if relu {
			VecRelu(on, on)
		}
	})
}

// narrower returns the tile of the same height with one vector fewer; the
// generated sets have every width from one vector up for each height.
func narrower(tiles []convTile, t convTile) convTile {
	for _, u := range tiles {
		if u.mr == t.mr && u.nb == t.nb-1 {
			return u
		}
	}
	panic("kernels: no narrower conv tile")
}

// convForwardRows adds the convolution of output channels [o0, O) of one
// image into on, in Go.
func convForwardRows(s ConvShape, xn, w, on []float32, o0 int, boff []int) {
	L, K := s.l(), s.k()
	for o := o0; o < s.O; o++ {
		dst := on[o*L : (o+1)*L]
		for p, wv := range w[o*K : (o+1)*K] {
			base := boff[p] / 4
			for oh := range s.oh() {
				src := xn[base+oh*s.W : base+oh*s.W+s.ow()]
				d := dst[oh*s.ow() : (oh+1)*s.ow()]
				for i, xv := range src {
					d[i] += wv * xv
				}
			}
		}
	}
}

// ConvBackwardData adds to gx [N, C, H, W] the gradient of the convolution
// with respect to its input, given w and the output gradient gout. gx is
// typically zero on entry. ConvFast(be, s) must hold.
func ConvBackwardData(be Backend, s ConvShape, w, gout, gx []float32) {
	tiles := convKernels(be)
	L, K, segs := s.l(), s.k(), s.l()/8
	_, _, _ = w[s.O*K-1], gout[s.N*s.O*L-1], gx[s.N*s.C*s.H*s.W-1]
	t := pickTile(tiles, K, segs)
	full := K / t.mr * t.mr
	// Wᵀ slivers, k-major over o: pa[s][o*mr + r] = w[o, s*mr + r].
	pa := make([]float32, full*s.O)
	for j := range full {
		sl, r := j/t.mr, j%t.mr
		for o := range s.O {
			pa[sl*t.mr*s.O+o*t.mr+r] = w[o*K+j]
		}
	}
	coff := s.tapOffsets()
	forImages(be, s.N, func(n int) {
		gn, gxn := gout[n*s.O*L:(n+1)*s.O*L], gx[n*s.C*s.H*s.W:(n+1)*s.C*s.H*s.W]
		for g0 := 0; g0 < segs; {
			tt := t
			for tt.nb > segs-g0 {
				tt = narrower(tiles, tt)
			}
			var c [3]*float32
			o0, _ := s.segment(g0)
			for v := range 3 {
				_, in := s.segment(g0 + min(v, tt.nb-1))
				c[v] = &gxn[in]
			}
			for sl := 0; sl < full; sl += tt.mr {
				tt.bwd(s.O, &pa[sl*s.O], &gn[o0], L, &coff[sl], c[0], c[1], c[2])
			}
			g0 += tt.nb
		}
		for j := full; j < K; j++ { // taps past the last full sliver
			base := coff[j] / 4
			for o := range s.O {
				wv := w[o*K+j]
				for oh := range s.oh() {
					src := gn[o*L+oh*s.ow() : o*L+(oh+1)*s.ow()]
					d := gxn[base+oh*s.W : base+oh*s.W+s.ow()]
					for i, g := range src {
						d[i] += wv * g
					}
				}
			}
		}
	})
}

// ConvBackwardWeight sets gw [O, C, KH, KW] to the gradient of the
// convolution with respect to its weight: gwᵀ[tap, o] = Σ over images and
// positions of x[tap at the position] · gout[o, position], one GEMM with
// k running over every image's positions. B (goutᵀ) is packed once; the
// A slivers are gathered from the images tap by tap (no im2col matrix).
// Each C tile is owned by one goroutine and summed in a fixed order, so the
// result does not depend on the thread count. ConvFast(be, s) must hold.
func ConvBackwardWeight(be Backend, s ConvShape, x, gout, gw []float32) {
	pb := gemmFor(be, s.O)
	mr, nr, kc := pb.mr, pb.nr, pb.kc
	L, K := s.l(), s.k()
	_, _, _ = x[s.N*s.C*s.H*s.W-1], gout[s.N*s.O*L-1], gw[s.O*K-1]
	kt := s.N * L // the GEMM's k: every position of every image
	panels := (s.O + nr - 1) / nr
	bp := getBufFrom(&packedPool, kt*panels*nr)
	defer packedPool.Put(bp)
	packGoutT(s, pb, gout, *bp)
	rows := (K + mr - 1) / mr
	ct := make([]float32, rows*mr*panels*nr) // gwᵀ, padded: [K', O']
	ldc := panels * nr
	offs := s.tapOffsets()
	workers := min(threadsOf(be), rows)
	var wg sync.WaitGroup
	for t := range workers {
		wg.Go(func() {
			pa := getBufFrom(&slivPool, kc*mr)
			defer slivPool.Put(pa)
			for sl := t * rows / workers; sl < (t+1)*rows/workers; sl++ {
				for p0 := 0; p0 < kt; p0 += kc {
					kk := min(kc, kt-p0)
					gatherTaps(s, pb, x, offs, sl*mr, p0, kk, *pa)
					for q := range panels {
						pb.kernel(kk, &(*pa)[0], &(*bp)[(p0*panels+q*kk)*nr], &ct[sl*mr*ldc+q*nr], ldc, 1)
					}
				}
			}
		})
	}
	wg.Wait()
	for o := range s.O {
		for j := range K {
			gw[o*K+j] = ct[j*ldc+o]
		}
	}
}

// gemmFor picks the packed kernel set for a weight gradient with n output
// channels: the AVX-512 tile when n fills it (the 12×32 one under a 6×64
// tile for 32 to 63 channels), else the AVX2 6×16 one where the CPU has it
// (a 16-channel layer would waste half a 32-wide tile).
func gemmFor(be Backend, n int) *packedBackend {
	p := be.(*packedBackend)
	for p.narrow != nil && n < p.nr {
		nb := *p.narrow
		nb.threads = p.threads
		p = &nb
	}
	if p.nr > 16 && n < p.nr && hasAVX2() {
		return avx2Backend
	}
	return p
}

// packGoutT packs goutᵀ, k = image·L + position, into nr-column panels kc
// steps at a time (the layout packedGemm.block reads): element (k, o) at
// dst[(p0·panels + q·kk)·nr + (k-p0)·nr + o-q·nr] for the k step p0. Full
// panels go through pb's transposing pack, a run within one image at a time.
func packGoutT(s ConvShape, pb *packedBackend, gout, dst []float32) {
	nr, kc, L := pb.nr, pb.kc, s.l()
	panels := (s.O + nr - 1) / nr
	kt := s.N * L
	for p0 := 0; p0 < kt; p0 += kc {
		kk := min(kc, kt-p0)
		for q := range panels {
			panel := dst[(p0*panels+q*kk)*nr : (p0*panels+(q+1)*kk)*nr]
			cols := min(nr, s.O-q*nr)
			if cols == nr && pb.packT != nil {
				for p := 0; p < kk; {
					n, l := (p0+p)/L, (p0+p)%L
					run := min(L-l, kk-p) // a multiple of 8: L and kc are
					src := gout[(n*s.O+q*nr)*L+l:]
					_ = src[(nr-1)*L+run-1]
					pb.packT(run/8, &src[0], L, &panel[p*nr])
					p += run
				}
				continue
			}
			for p := range kk {
				n, l := (p0+p)/L, (p0+p)%L
				row := panel[p*nr : (p+1)*nr]
				src := gout[(n*s.O+q*nr)*L+l:]
				for c := range cols {
					row[c] = src[c*L]
				}
				clear(row[cols:])
			}
		}
	}
}

// gatherTaps packs rows [j0, j0+mr) of the tap matrix (row j = the image
// values under tap j at every output position), k steps [p0, p0+kk) of
// k = image·L + position, as one k-major sliver: pa[p*mr + r]. Rows past
// the last tap are zero. Full slivers go through pb's assembly pack, a
// run of positions (a multiple of 8 within one output row) at a time.
func gatherTaps(s ConvShape, pb *packedBackend, x []float32, offs []int, j0, p0, kk int, pa []float32) {
	L, K, ow, mr := s.l(), s.k(), s.ow(), pb.mr
	img := s.C * s.H * s.W
	if j0+mr <= K && pb.packATab != nil {
		_ = pa[:kk*mr+4] // the pack's spare lanes
		for p := 0; p < kk; {
			n, l := (p0+p)/L, (p0+p)%L
			oh, w0 := l/ow, l%ow
			run := min(ow-w0, kk-p)
			_ = x[n*img+offs[j0+mr-1]/4+oh*s.W+w0+run-1]
			pb.packATab(run/8, &x[n*img+oh*s.W+w0], &offs[j0], &pa[p*mr])
			p += run
		}
		return
	}
	for r := range mr {
		j := j0 + r
		if j >= K {
			for p := range kk {
				pa[p*mr+r] = 0
			}
			continue
		}
		tap := offs[j] / 4
		for p := 0; p < kk; {
			n, l := (p0+p)/L, (p0+p)%L
			oh, w0 := l/ow, l%ow
			run := min(ow-w0, kk-p) // positions left in this output row
			src := x[n*img+tap+oh*s.W+w0 : n*img+tap+oh*s.W+w0+run]
			d := pa[p*mr+r:]
			for i, v := range src {
				d[i*mr] = v
			}
			p += run
		}
	}
}
