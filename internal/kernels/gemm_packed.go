package kernels

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// packedBackend is a GotoBLAS-style GEMM around an assembly micro-kernel
// that computes one mr×nr tile of C from a packed A sliver (mr rows, k-major)
// and a packed B panel (nr columns, k-major).
//
// Loop nest, for each block of nc columns of C:
//
//	pack op(B)[:, j0:j0+nc] into nr-column panels (in parallel)
//	tasks = (range of mr-row slivers) × (range of panels), run by workers:
//	  for p0 in steps of kc:          // the B panels of one kc step sit in L2
//	    for each sliver: pack op(A)[rows, p0:p0+kc]   // stays in L1
//	      for each panel: kernel → C tile += alpha·Σ
//
// Every C element is owned by exactly one task and accumulated over the same
// kc steps in the same order whatever the number of workers, and full and edge
// tiles round identically, so results are bit-identical across GOMAXPROCS.
type packedBackend struct {
	name   string
	mr, nr int // register tile
	// Blocking: kc is the depth of a k step, nc the columns of a packed B
	// block. One k step of a block (kc·nc floats, 512 KiB) stays in each
	// core's L2 (1 MiB on Zen 4) while every sliver streams it, so threads
	// on different cores do not contend for L3.
	kc, nc int
	kernel func(k int, a, b, c *float32, ldc int, alpha float32)
	// kernelSet assigns C = alpha·Σ instead of adding (optional): the first
	// k step of a product with beta = 0, so C needs no clearing pass.
	kernelSet func(k int, a, b, c *float32, ldc int, alpha float32)
	threads   int // cap on goroutines per call; 0: GOMAXPROCS

	// Optional fast paths (nil: always pack with Go loops).
	// kernelS is kernel reading B in place at row stride ldb, with the same
	// instructions in the same order (bit-identical results); used instead
	// of packing B when op(B) = B and m is small (see directBMaxM).
	kernelS, kernelSSet func(k int, a, b *float32, ldb int, c *float32, ldc int, alpha float32)
	// packT packs one full nr-column panel of op(B) = Bᵀ, 8·k8 steps deep
	// (dst[p*nr + c] = b[c*ldb + p]).
	packT func(k8 int, b *float32, ldb int, dst *float32)
	// packA packs one full mr-row sliver of op(A) = A, 8·k8 steps deep
	// (dst[p*mr + r] = a[r*lda + p]), writing up to 4 floats past the end.
	packA func(k8 int, a *float32, lda int, dst *float32)
	// packARows packs one full mr-row sliver of op(A) = Aᵀ, k steps deep
	// (dst[p*mr + r] = a[p*lda + r]).
	packARows func(k int, a *float32, lda int, dst *float32)
	// packRows packs one full nr-column panel of op(B) = B, k steps deep
	// (dst[p*nr + c] = b[p*ldb + c]).
	packRows func(k int, b *float32, ldb int, dst *float32)
	// packATab is packA with row r at base + offs[r] bytes (conv.go).
	packATab func(k8 int, base *float32, offs *int, dst *float32)
	// conv holds the direct-convolution tiles (conv.go), widest first
	// within each height; nil: convolutions take the im2col path.
	conv []convTile
}

// directBMaxM is the largest m for which B (not transposed) is read in place
// by kernelS instead of being packed: each B element is then loaded once per
// mr-row sliver. On the 2-core EPYC dev VM (BenchmarkSgemmTrain, CPU-time
// GFLOP/s) reading in place was 1.1–3x faster for m ≤ 256 and even at
// m = 400; large products (m ≥ 1024) keep packing, which also avoids
// strided-read set conflicts at power-of-two ldb.
const directBMaxM = 512

// legacyGemm turns off the fast paths (direct B, assembly transposing
// pack) so benchmarks can compare against the previous driver in one run.
// Results do not change either way. Set by GORCH_GEMM_LEGACY=1 or
// SetLegacyGemm.
var legacyGemm atomic.Bool

func init() { legacyGemm.Store(os.Getenv("GORCH_GEMM_LEGACY") == "1") }

// SetLegacyGemm turns the packed driver's fast paths off (on = true) or back
// on and returns the previous setting. It is an A/B hook for benchmarks;
// results are bit-identical either way.
// The tensor package's conv2d backward also follows it (per-sample GEMMs).
func SetLegacyGemm(on bool) (prev bool) { return legacyGemm.Swap(on) }

// LegacyGemm reports whether SetLegacyGemm (or GORCH_GEMM_LEGACY=1) turned
// the fast paths off.
func LegacyGemm() bool { return legacyGemm.Load() }

// packedParMinFlops is the problem size (2·m·n·k) below which the caller's
// goroutine does all the work: ~2 MFLOP is ~20 µs on one core, where a
// goroutine hand-off starts to pay.
const packedParMinFlops = 1 << 21

func (be *packedBackend) Name() string { return be.name }

func (be *packedBackend) WithThreads(n int) Backend {
	c := *be
	c.threads = max(n, 0)
	return &c
}

func (be *packedBackend) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	if k <= 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	if 2*n < be.nr && m > n && !legacyGemm.Load() {
		be.sgemmNarrow(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	// With beta = 0 and an assigning kernel, the first k step writes C.
	assign := beta == 0 && be.kernelSet != nil && (be.kernelSSet != nil || be.kernelS == nil)
	if !assign {
		scaleC(m, n, beta, c, ldc)
	}
	// Bounds: the kernels read and write through raw pointers, so check once here.
	if transA {
		_ = a[(k-1)*lda+m-1]
	} else {
		_ = a[(m-1)*lda+k-1]
	}
	if transB {
		_ = b[(n-1)*ldb+k-1]
	} else {
		_ = b[(k-1)*ldb+n-1]
	}
	_ = c[(m-1)*ldc+n-1]
	workers := 1
	if 2*float64(m)*float64(n)*float64(k) >= packedParMinFlops {
		workers = runtime.GOMAXPROCS(0)
		if be.threads > 0 {
			workers = min(workers, be.threads)
		}
	}
	p := packedGemm{be: be, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
		assign: assign}
	if !legacyGemm.Load() {
		p.direct = be.kernelS != nil && !transB && m <= directBMaxM
		p.packT = be.packT
		p.packAFull = be.packA
		p.packARows = be.packARows
		p.packRows = be.packRows
	}
	p.run(workers)
}

// sgemmNarrow computes a product with fewer than nr/2 columns (a 10-class
// output layer) as its transpose, Cᵀ = op(B)ᵀ·op(A)ᵀ, whose n columns become
// rows: an edge tile of mr rows instead of one of nr columns, and B panels
// of the long side. Each element is the same dot product in the same k
// order, so the result is bit-identical.
func (be *packedBackend) sgemmNarrow(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	tp := getBufFrom(&slivPool, n*m)
	defer slivPool.Put(tp)
	t := *tp
	be.Sgemm(!transB, !transA, n, m, k, alpha, b, ldb, a, lda, 0, t, m)
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		for j := range row {
			if beta == 0 {
				row[j] = t[j*m+i]
			} else {
				row[j] = float32(beta*row[j]) + t[j*m+i] // no fused multiply-add
			}
		}
	}
}

type packedGemm struct {
	be             *packedBackend
	transA, transB bool
	m, n, k        int
	alpha          float32
	a, b, c        []float32
	lda, ldb, ldc  int
	direct         bool // B read in place by be.kernelS (no packB)
	assign         bool // the first k step assigns C (beta = 0, C not cleared)
	packT          func(k8 int, b *float32, ldb int, dst *float32)
	packAFull      func(k8 int, a *float32, lda int, dst *float32)
	packARows      func(k int, a *float32, lda int, dst *float32)
	packRows       func(k int, b *float32, ldb int, dst *float32)
}

// Scratch buffers (*[]float32), one pool per use so that the small A-sliver
// buffers and the large packed-B blocks do not evict each other (a pool
// miss allocates, and zeroes, a fresh buffer). In legacy mode both share
// packedPool, as before.
var (
	packedPool sync.Pool // packed B blocks (and everything in legacy mode)
	slivPool   sync.Pool // per-worker A slivers (+ edge B panel)
)

func getBuf(n int) *[]float32 { return getBufFrom(&packedPool, n) }

func getBufFrom(pool *sync.Pool, n int) *[]float32 {
	if p, ok := pool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n, n+64)
	return &s
}

func (g *packedGemm) run(workers int) {
	be := g.be
	mr, nr := be.mr, be.nr
	slivers := (g.m + mr - 1) / mr
	var pbBuf *[]float32
	paLen := be.kc*mr + 8 // + slack for packAFull's spare lanes
	aPool := &slivPool
	if legacyGemm.Load() {
		aPool = &packedPool
	}
	if g.direct {
		paLen += be.kc * nr // room for the packed edge panel
	} else {
		pbBuf = getBuf(g.k * roundUp(min(g.n, be.nc), nr))
		defer packedPool.Put(pbBuf)
	}
	for j0 := 0; j0 < g.n; j0 += be.nc {
		nn := min(be.nc, g.n-j0)
		panels := (nn + nr - 1) / nr
		var pb []float32
		if !g.direct {
			pb = (*pbBuf)[:g.k*panels*nr]
			g.packB(pb, j0, nn, workers)
		}

		// Many small tasks, taken dynamically: the last one to finish
		// before the block's barrier is short (a few slivers).
		want := 1
		if workers > 1 {
			want = 16 * workers
		}
		rowTasks := min(slivers, want)
		colTasks := min(panels, (want+rowTasks-1)/rowTasks)
		tasks := rowTasks * colTasks
		task := func(t int, pa []float32) {
			rt, ct := t/colTasks, t%colTasks
			s0, s1 := rt*slivers/rowTasks, (rt+1)*slivers/rowTasks
			q0, q1 := ct*panels/colTasks, (ct+1)*panels/colTasks
			g.block(pb, pa, j0, nn, s0, s1, q0, q1)
		}
		w := min(workers, tasks)
		if w <= 1 {
			pa := getBufFrom(aPool, paLen)
			for t := 0; t < tasks; t++ {
				task(t, *pa)
			}
			aPool.Put(pa)
			continue
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		for range w {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pa := getBufFrom(aPool, paLen)
				for {
					t := int(next.Add(1) - 1)
					if t >= tasks {
						break
					}
					task(t, *pa)
				}
				aPool.Put(pa)
			}()
		}
		wg.Wait()
	}
}

// block computes C for slivers [s0, s1) and panels [q0, q1) of the column
// block at j0, walking k in kc steps.
func (g *packedGemm) block(pb, paBuf []float32, j0, nn, s0, s1, q0, q1 int) {
	be := g.be
	mr, nr, kc := be.mr, be.nr, be.kc
	var tmp [12 * 32]float32
	for p0 := 0; p0 < g.k; p0 += kc {
		kk := min(kc, g.k-p0)
		kern, kernS, tile := be.kernel, be.kernelS, g.addTile
		if g.assign && p0 == 0 {
			kern, kernS, tile = be.kernelSet, be.kernelSSet, g.setTile
		}
		var pbk []float32
		if g.direct {
			// Full panels are read in place; the edge panel (fewer than nr
			// columns) is packed once per k step, zero-padded.
			if qe := q1 - 1; j0+qe*nr+nr > j0+nn {
				e := paBuf[kc*mr+8 : kc*mr+8+kk*nr]
				g.packBRange(e, j0+qe*nr, nn-qe*nr, 0, 1, p0, kk)
				pbk = e
			}
		} else {
			pbk = pb[p0*panelsOf(nn, nr)*nr:] // the panels of this kc step, each kk×nr
		}
		for s := s0; s < s1; s++ {
			i0 := s * mr
			rows := min(mr, g.m-i0)
			pa := paBuf[:kk*mr]
			g.packA(pa, i0, rows, p0, kk)
			for q := q0; q < q1; q++ {
				jc := j0 + q*nr
				cols := min(nr, j0+nn-jc)
				if g.direct && cols == nr {
					bp := &g.b[p0*g.ldb+jc]
					if rows == mr {
						kernS(kk, &pa[0], bp, g.ldb, &g.c[i0*g.ldc+jc], g.ldc, g.alpha)
						continue
					}
					t := tmp[:mr*nr]
					clear(t)
					be.kernelS(kk, &pa[0], bp, g.ldb, &t[0], nr, g.alpha)
					tile(t, i0, jc, rows, cols)
					continue
				}
				var bp *float32
				if g.direct {
					bp = &pbk[0]
				} else {
					bp = &pbk[q*kk*nr]
				}
				if rows == mr && cols == nr {
					kern(kk, &pa[0], bp, &g.c[i0*g.ldc+jc], g.ldc, g.alpha)
					continue
				}
				t := tmp[:mr*nr]
				clear(t)
				be.kernel(kk, &pa[0], bp, &t[0], nr, g.alpha)
				tile(t, i0, jc, rows, cols)
			}
		}
	}
}

// addTile adds the rows×cols corner of the mr×nr tile t into C at (i0, jc).
func (g *packedGemm) addTile(t []float32, i0, jc, rows, cols int) {
	nr := g.be.nr
	for r := 0; r < rows; r++ {
		row := g.c[(i0+r)*g.ldc+jc : (i0+r)*g.ldc+jc+cols]
		for j := range row {
			row[j] += t[r*nr+j]
		}
	}
}

// setTile copies the rows×cols corner of the mr×nr tile t into C at (i0, jc).
func (g *packedGemm) setTile(t []float32, i0, jc, rows, cols int) {
	nr := g.be.nr
	for r := 0; r < rows; r++ {
		copy(g.c[(i0+r)*g.ldc+jc:(i0+r)*g.ldc+jc+cols], t[r*nr:r*nr+cols])
	}
}

// packA copies op(A)[i0:i0+rows, p0:p0+kk] into pa as one mr-row sliver,
// k-major (pa[p*mr + r]), zero-padding rows beyond rows.
func (g *packedGemm) packA(pa []float32, i0, rows, p0, kk int) {
	mr, a, lda := g.be.mr, g.a, g.lda
	if g.transA {
		// op(A)[i, p] = a[p*lda + i]: each k step is a contiguous run.
		if g.packARows != nil && rows == mr {
			_ = a[(p0+kk-1)*lda+i0+mr-1]
			g.packARows(kk, &a[p0*lda+i0], lda, &pa[0])
			return
		}
		for p := 0; p < kk; p++ {
			src := a[(p0+p)*lda+i0 : (p0+p)*lda+i0+rows]
			d := pa[p*mr : p*mr+mr]
			copy(d, src)
			clear(d[rows:])
		}
		return
	}
	if g.packAFull != nil && rows == mr {
		k8 := kk / 8
		if k8 > 0 {
			_ = a[(i0+mr-1)*lda+p0+8*k8-1]
			_ = pa[:8*mr*k8+4] // room for the spare lanes
			g.packAFull(k8, &a[i0*lda+p0], lda, &pa[0])
		}
		for p := 8 * k8; p < kk; p++ {
			for r := 0; r < mr; r++ {
				pa[p*mr+r] = a[(i0+r)*lda+p0+p]
			}
		}
		return
	}
	if rows < mr {
		clear(pa)
	}
	for r := 0; r < rows; r++ {
		src := a[(i0+r)*lda+p0 : (i0+r)*lda+p0+kk]
		d := pa[r:]
		for p, v := range src {
			d[p*mr] = v
		}
	}
}

// packB copies op(B)[:, j0:j0+nn] (all k rows) into nr-column panels, kc step
// by kc step: element (p0+p, q*nr+c) of a step of depth kk lands at
// pb[p0*panels*nr + q*kk*nr + p*nr + c], so one step's panels are contiguous
// and stream in order. Large blocks are packed by w goroutines.
func (g *packedGemm) packB(pb []float32, j0, nn, w int) {
	panels := (nn + g.be.nr - 1) / g.be.nr
	w = min(w, panels)
	if w <= 1 || g.k*nn < 1<<15 {
		g.packBPanels(pb, j0, nn, 0, panels)
		return
	}
	var wg sync.WaitGroup
	for i := range w {
		q0, q1 := i*panels/w, (i+1)*panels/w
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.packBPanels(pb, j0, nn, q0, q1)
		}()
	}
	wg.Wait()
}

func (g *packedGemm) packBPanels(pb []float32, j0, nn, q0, q1 int) {
	nr, kc := g.be.nr, g.be.kc
	panels := panelsOf(nn, nr)
	for p0 := 0; p0 < g.k; p0 += kc {
		g.packBRange(pb[p0*panels*nr:], j0, nn, q0, q1, p0, min(kc, g.k-p0))
	}
}

// packBRange packs panels [q0, q1) of op(B)[p0:p0+kk, j0:j0+nn] into step,
// panel q at step[q*kk*nr:].
func (g *packedGemm) packBRange(step []float32, j0, nn, q0, q1, p0, kk int) {
	nr, b, ldb := g.be.nr, g.b, g.ldb
	for q := q0; q < q1; q++ {
		dst := step[q*kk*nr : (q+1)*kk*nr]
		jb := j0 + q*nr
		cols := min(nr, j0+nn-jb)
		if !g.transB {
			if g.packRows != nil && cols == nr {
				_ = b[(p0+kk-1)*ldb+jb+nr-1]
				g.packRows(kk, &b[p0*ldb+jb], ldb, &dst[0])
				continue
			}
			for p := 0; p < kk; p++ {
				d := dst[p*nr : p*nr+nr]
				src := b[(p0+p)*ldb+jb : (p0+p)*ldb+jb+cols]
				for c, v := range src { // short rows: a loop beats copy's call
					d[c] = v
				}
				clear(d[cols:])
			}
			continue
		}
		// op(B)[p, j] = b[j*ldb + p]
		if g.packT != nil && cols == nr {
			k8 := kk / 8
			if k8 > 0 {
				_ = b[(jb+nr-1)*ldb+p0+8*k8-1]
				g.packT(k8, &b[jb*ldb+p0], ldb, &dst[0])
			}
			for c := 0; c < nr; c++ {
				for p := 8 * k8; p < kk; p++ {
					dst[p*nr+c] = b[(jb+c)*ldb+p0+p]
				}
			}
			continue
		}
		if cols < nr {
			clear(dst)
		}
		for c := 0; c < cols; c++ {
			src := b[(jb+c)*ldb+p0 : (jb+c)*ldb+p0+kk]
			d := dst[c:]
			for p, v := range src {
				d[p*nr] = v
			}
		}
	}
}

func panelsOf(n, nr int) int { return (n + nr - 1) / nr }
