package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Blocking parameters of the pure-Go GEMM (GotoBLAS layout).
const (
	mr = 4   // rows of the register tile
	nr = 2   // columns of the register tile
	kc = 256 // depth of a packed panel
	mc = 64  // rows of a packed A block (multiple of mr)
	nc = 4096

	// parMinFlops is the problem size (2·m·n·k) below which no goroutines
	// are started.
	parMinFlops = 1 << 18
)

// goBackend is the pure-Go GEMM; threads caps its goroutines (0: GOMAXPROCS).
type goBackend struct{ threads int }

func (goBackend) Name() string { return "go" }

func (g goBackend) WithThreads(n int) Backend { return goBackend{threads: max(n, 0)} }

func (be goBackend) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	scaleC(m, n, beta, c, ldc)
	if k <= 0 || alpha == 0 {
		return
	}
	g := gemm{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc}
	workers := 1
	if 2*float64(m)*float64(n)*float64(k) >= parMinFlops {
		workers = runtime.GOMAXPROCS(0)
		if be.threads > 0 {
			workers = min(workers, be.threads)
		}
	}
	g.run(workers)
}

func scaleC(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

type gemm struct {
	transA, transB bool
	m, n, k        int
	alpha          float32
	a, b, c        []float32
	lda, ldb, ldc  int
}

var packPool = sync.Pool{New: func() any { s := make([]float32, 0, mc*kc); return &s }}

// run walks the k dimension in kc panels; for each it packs B once and
// hands out (A block × column range) tasks to workers. Every element of C
// is computed by exactly one task with a fixed summation order, so the
// result does not depend on the number of workers.
func (g *gemm) run(workers int) {
	ncb := min(g.n, nc)
	pbBuf := make([]float32, kc*roundUp(ncb, nr))
	for j0 := 0; j0 < g.n; j0 += nc {
		nn := min(nc, g.n-j0)
		panels := (nn + nr - 1) / nr
		mBlocks := (g.m + mc - 1) / mc
		// Split columns so there are enough tasks for the workers.
		nSplit := 1
		if workers > 1 {
			nSplit = min(panels, max(1, (2*workers+mBlocks-1)/mBlocks))
		}
		tasks := mBlocks * nSplit
		w := min(workers, tasks)
		for p0 := 0; p0 < g.k; p0 += kc {
			kk := min(kc, g.k-p0)
			pb := pbBuf[:kk*panels*nr]
			g.packB(pb, p0, kk, j0, nn, w)
			if w == 1 {
				buf := packPool.Get().(*[]float32)
				for t := 0; t < tasks; t++ {
					g.task(t, nSplit, panels, pb, p0, kk, j0, nn, buf)
				}
				packPool.Put(buf)
				continue
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			for range w {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := packPool.Get().(*[]float32)
					for {
						t := int(next.Add(1) - 1)
						if t >= tasks {
							break
						}
						g.task(t, nSplit, panels, pb, p0, kk, j0, nn, buf)
					}
					packPool.Put(buf)
				}()
			}
			wg.Wait()
		}
	}
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }

// task computes rows of A block t/nSplit against the t%nSplit-th share of the B panels.
func (g *gemm) task(t, nSplit, panels int, pb []float32, p0, kk, j0, nn int, buf *[]float32) {
	ib, js := t/nSplit, t%nSplit
	i0 := ib * mc
	mm := min(mc, g.m-i0)
	per := (panels + nSplit - 1) / nSplit
	q0, q1 := js*per, min(panels, (js+1)*per)
	if q0 >= q1 {
		return
	}
	pa := (*buf)[:kk*roundUp(mm, mr)]
	g.packA(pa, i0, mm, p0, kk)
	var acc [mr * nr]float32
	for q := q0; q < q1; q++ {
		bp := pb[q*kk*nr : (q+1)*kk*nr]
		jc := j0 + q*nr
		nw := min(nr, j0+nn-jc)
		for s := 0; s*mr < mm; s++ {
			ap := pa[s*kk*mr : (s+1)*kk*mr]
			kernel4x2(ap, bp, &acc)
			ic := i0 + s*mr
			mw := min(mr, i0+mm-ic)
			g.store(&acc, ic, jc, mw, nw)
		}
	}
}

// store adds alpha·acc into the mw×nw corner of C at (i, j).
func (g *gemm) store(acc *[mr * nr]float32, i, j, mw, nw int) {
	alpha := g.alpha
	if mw == mr && nw == nr {
		for r := 0; r < mr; r++ {
			row := (*[nr]float32)(g.c[(i+r)*g.ldc+j:])
			a := (*[nr]float32)(acc[r*nr:])
			row[0] += alpha * a[0]
			row[1] += alpha * a[1]
		}
		return
	}
	for r := 0; r < mw; r++ {
		row := g.c[(i+r)*g.ldc+j : (i+r)*g.ldc+j+nw]
		for cc := range row {
			row[cc] += alpha * acc[r*nr+cc]
		}
	}
}

// packA copies op(A)[i0:i0+mm, p0:p0+kk] into mr-row slivers, k-major
// within a sliver, zero-padding the last sliver.
func (g *gemm) packA(pa []float32, i0, mm, p0, kk int) {
	a, lda := g.a, g.lda
	for s := 0; s*mr < mm; s++ {
		dst := pa[s*kk*mr : (s+1)*kk*mr]
		rows := min(mr, mm-s*mr)
		ib := i0 + s*mr
		if !g.transA {
			if rows == mr {
				r0 := a[ib*lda+p0 : ib*lda+p0+kk]
				r1 := a[(ib+1)*lda+p0 : (ib+1)*lda+p0+kk]
				r2 := a[(ib+2)*lda+p0 : (ib+2)*lda+p0+kk]
				r3 := a[(ib+3)*lda+p0 : (ib+3)*lda+p0+kk]
				for p := range r0 {
					d := (*[4]float32)(dst[p*4:])
					d[0], d[1], d[2], d[3] = r0[p], r1[p], r2[p], r3[p]
				}
				continue
			}
			clear(dst)
			for r := 0; r < rows; r++ {
				src := a[(ib+r)*lda+p0 : (ib+r)*lda+p0+kk]
				for p, v := range src {
					dst[p*mr+r] = v
				}
			}
			continue
		}
		// op(A)[i, p] = a[p*lda + i]
		for p := 0; p < kk; p++ {
			src := a[(p0+p)*lda+ib : (p0+p)*lda+ib+rows]
			d := dst[p*mr : p*mr+mr]
			copy(d, src)
			for r := rows; r < mr; r++ {
				d[r] = 0
			}
		}
	}
}

// packB copies op(B)[p0:p0+kk, j0:j0+nn] into nr-column panels, k-major
// within a panel, zero-padding the last panel. Large panels are packed by
// w goroutines.
func (g *gemm) packB(pb []float32, p0, kk, j0, nn, w int) {
	panels := (nn + nr - 1) / nr
	if w <= 1 || kk*nn < 1<<15 {
		g.packBRange(pb, p0, kk, j0, nn, 0, panels)
		return
	}
	var wg sync.WaitGroup
	per := (panels + w - 1) / w
	for q0 := 0; q0 < panels; q0 += per {
		wg.Add(1)
		go func(q0, q1 int) {
			defer wg.Done()
			g.packBRange(pb, p0, kk, j0, nn, q0, q1)
		}(q0, min(panels, q0+per))
	}
	wg.Wait()
}

func (g *gemm) packBRange(pb []float32, p0, kk, j0, nn, q0, q1 int) {
	b, ldb := g.b, g.ldb
	for q := q0; q < q1; q++ {
		dst := pb[q*kk*nr : (q+1)*kk*nr]
		jb := j0 + q*nr
		cols := min(nr, j0+nn-jb)
		if !g.transB {
			for p := 0; p < kk; p++ {
				src := b[(p0+p)*ldb+jb : (p0+p)*ldb+jb+cols]
				d := dst[p*nr : p*nr+nr]
				copy(d, src)
				for c := cols; c < nr; c++ {
					d[c] = 0
				}
			}
			continue
		}
		// op(B)[p, j] = b[j*ldb + p]
		if cols == nr {
			c0 := b[jb*ldb+p0 : jb*ldb+p0+kk]
			c1 := b[(jb+1)*ldb+p0 : (jb+1)*ldb+p0+kk]
			for p := range c0 {
				d := (*[2]float32)(dst[p*2:])
				d[0], d[1] = c0[p], c1[p]
			}
			continue
		}
		clear(dst)
		for c := 0; c < cols; c++ {
			src := b[(jb+c)*ldb+p0 : (jb+c)*ldb+p0+kk]
			for p, v := range src {
				dst[p*nr+c] = v
			}
		}
	}
}

// kernel4x2 computes acc = Σ_p pa[p,:]ᵀ·pb[p,:] over a packed 4-row A
// sliver and 2-column B panel of equal depth. The eight accumulators are
// locals and the k loop is unrolled by two; with the 15 usable XMM
// registers of GOAMD64=v1 this shape does not spill (4x4 does, and runs
// about half as fast). Every tile, full or edge, goes through this one
// kernel, so results do not depend on how work is split.
func kernel4x2(pa, pb []float32, acc *[mr * nr]float32) {
	var c00, c01, c10, c11, c20, c21, c30, c31 float32
	for len(pa) >= 8 && len(pb) >= 4 {
		a := (*[8]float32)(pa)
		b := (*[4]float32)(pb)
		b0, b1 := b[0], b[1]
		c00 += a[0] * b0
		c01 += a[0] * b1
		c10 += a[1] * b0
		c11 += a[1] * b1
		c20 += a[2] * b0
		c21 += a[2] * b1
		c30 += a[3] * b0
		c31 += a[3] * b1
		b0, b1 = b[2], b[3]
		c00 += a[4] * b0
		c01 += a[4] * b1
		c10 += a[5] * b0
		c11 += a[5] * b1
		c20 += a[6] * b0
		c21 += a[6] * b1
		c30 += a[7] * b0
		c31 += a[7] * b1
		pa, pb = pa[8:], pb[4:]
	}
	if len(pa) >= 4 && len(pb) >= 2 {
		a := (*[4]float32)(pa)
		b := (*[2]float32)(pb)
		b0, b1 := b[0], b[1]
		c00 += a[0] * b0
		c01 += a[0] * b1
		c10 += a[1] * b0
		c11 += a[1] * b1
		c20 += a[2] * b0
		c21 += a[2] * b1
		c30 += a[3] * b0
		c31 += a[3] * b1
	}
	acc[0], acc[1], acc[2], acc[3] = c00, c01, c10, c11
	acc[4], acc[5], acc[6], acc[7] = c20, c21, c30, c31
}
