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
// Loop nest (runRows), for each block of mcRows rows of C:
//
//	for p0 in steps of kc:
//	  pack op(A)[:, p0:p0+kc] into mr-row slivers (in parallel)
//	  for each block of nc columns of C:
//	    pack op(B)[p0:p0+kc, block] into nr-column panels (in parallel)
//	    tasks = (range of slivers) × (range of panels), run by workers:
//	      for each sliver:               // stays in L1 across the panels
//	        for each panel: kernel → C tile += alpha·Σ   // panels sit in L2
//
// A and B are each packed once, and a step's B block (kc·nc floats) is
// packed just before its kernels stream it, so it is still in L2. Where the
// backend has kernelA and op(A) = A (or kernelAT, op(A) = Aᵀ and a narrow
// product), full A slivers are not packed at all: the kernel broadcasts
// from A in place.
//
// With several workers, products whose A is not packed (read in place, or
// B read in place and A a few rows) and that have enough columns run as
// owned rectangles instead (ownedTasks, runOwned): each worker takes a
// rectangle of C, runs the loop nest above on it alone with its own B
// buffers, then takes the next, so there is no barrier and no packed block
// shared between cores. Other products pipeline the packing with the
// kernels, one barrier per block (runRows).
//
// Every C element is owned by exactly one task of each step and accumulated
// over the same kc steps in the same order whatever the number of workers,
// and full and edge tiles round identically, so results are bit-identical
// across GOMAXPROCS.
type packedBackend struct {
	name   string
	mr, nr int // register tile
	// Blocking: kc is the depth of a k step, nc the columns of a packed B
	// block. One k step of a block (kc·nc floats, 512 KiB) stays in each
	// core's L2 (1 MiB on Zen 4, 1.25 MiB on Ice Lake) while every sliver
	// streams it, so threads on different cores do not contend for L3.
	kc, nc int
	// kcMax, if above kc, is the deepest product run as one k step (C
	// written once, not read back and added to per step); its B blocks are
	// narrowed to keep kc·nc floats.
	kcMax  int
	kernel func(k int, a, b, c *float32, ldc int, alpha float32)
	// kernelSet assigns C = alpha·Σ instead of adding (optional): the first
	// k step of a product with beta = 0, so C needs no clearing pass.
	kernelSet func(k int, a, b, c *float32, ldc int, alpha float32)
	threads   int // cap on goroutines per call; 0: GOMAXPROCS
	// owned lets products with several workers run as owned rectangles
	// (ownedTasks) instead of pipelined phases.
	owned bool

	// Optional fast paths (nil: always pack with Go loops).
	// kernelS is kernel reading B in place at row stride ldb, with the same
	// instructions in the same order (bit-identical results); used instead
	// of packing B when op(B) = B and m is small (see directBMaxM).
	kernelS, kernelSSet func(k int, a, b *float32, ldb int, c *float32, ldc int, alpha float32)
	// kernelA is kernel reading its mr rows of A in place at row stride
	// lda (op(A) = A), with the same instructions in the same order
	// (bit-identical results); used instead of packing full A slivers.
	kernelA, kernelASet func(k int, a *float32, lda int, b, c *float32, ldc int, alpha float32)
	// kernelAT is kernelA for op(A) = Aᵀ (a[p*lda + r]), used for
	// products of at most 2·nr columns.
	kernelAT, kernelATSet func(k int, a *float32, lda int, b, c *float32, ldc int, alpha float32)
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
	// narrow, if set, computes the products with fewer than nr columns
	// (its own tile is narrower).
	narrow *packedBackend
}

// directBMaxM is the largest m for which B (not transposed) is read in place
// by kernelS instead of being packed: each B element is then loaded once per
// mr-row sliver. On the 2-core EPYC dev VM (BenchmarkSgemmTrain, CPU-time
// GFLOP/s) reading in place was 1.1–3x faster for m ≤ 256 and even at
// m = 400; large products (m ≥ 1024) keep packing, which also avoids
// strided-read set conflicts at power-of-two ldb.
const directBMaxM = 512

// directBMaxMA is directBMaxM where A could be read in place instead
// (kernelA, op(A) = A): B is then read in place only for products of at
// most 96 rows and at least 4·nr columns. On the Ice Lake Xeon (12×32 and
// 6×16 tiles, 1 thread, paired per CPU-s) B in place against A in place
// read 1.02–1.08 at m = 64 and n ≥ 256, even at m = 96–128, and 0.73–0.98
// at m ≥ 128 or n ≤ 48 (512³ 0.92, 256×32×784 0.73–0.80).
const directBMaxMA = 96

// legacyGemm turns off the fast paths (direct B, assembly transposing
// pack) so benchmarks can compare against the previous driver in one run.
// Results do not change either way. Set by GORCH_GEMM_LEGACY=1 or
// SetLegacyGemm.
var legacyGemm atomic.Bool

func init() { legacyGemm.Store(os.Getenv("GORCH_GEMM_LEGACY") == "1") }

// directAOff turns off reading A in place (kernelA): an A/B hook for
// benchmarks; results are bit-identical either way.
var directAOff, directATOff atomic.Bool

// SetLegacyGemm turns the packed driver's fast paths off (on = true) or back
// on and returns the previous setting. It is an A/B hook for benchmarks;
// results are bit-identical either way.
// The tensor package's conv2d backward also follows it (per-sample GEMMs).
func SetLegacyGemm(on bool) (prev bool) { return legacyGemm.Swap(on) }

// LegacyGemm reports whether SetLegacyGemm (or GORCH_GEMM_LEGACY=1) turned
// the fast paths off.
func LegacyGemm() bool { return legacyGemm.Load() }

// packedParMinFlops is the problem size (2·m·n·k) below which the caller's
// goroutine does all the work, and packedParMinFlopsShort the one for
// products of fewer than packedShortM rows. On the 2-vCPU Ice Lake Xeon
// (6×64 tile, in-process, 1 against 2 threads alternating, 41 rounds, load
// 2.4–2.6) two threads lost below ~20 MFLOP (128³ 0.48x, 160³ 0.61x, 192³
// 0.77–0.86x, 1024×64×64 0.69x), were even to +24 % at 22–34 MFLOP (224³
// 1.01x, 256³ 1.03–1.24x), and on 64-row products lost up to 51 MFLOP
// (64×256×784 0.86–0.88x, 64×784×256 0.77–0.83x, 64×512×512 0.89x,
// 64×256×1568 0.89x) but won at 134 (64×1024×1024 1.19x): a step of few
// slivers gives each worker little work between barriers.
const (
	packedParMinFlops      = 1 << 24
	packedParMinFlopsShort = 1 << 26
	packedShortM           = 96
)

// parWorkers is the number of goroutines an m×n×k product runs on, given
// up to maxWorkers.
func parWorkers(m, n, k, maxWorkers int) int {
	f := 2 * float64(m) * float64(n) * float64(k)
	if f < packedParMinFlops || m < packedShortM && f < packedParMinFlopsShort {
		return 1
	}
	return maxWorkers
}

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
	if be.narrow != nil && n < be.nr {
		nb := *be.narrow
		nb.threads = be.threads
		nb.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
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
	workers := runtime.GOMAXPROCS(0)
	if be.threads > 0 {
		workers = min(workers, be.threads)
	}
	workers = parWorkers(m, n, k, workers)
	p := packedGemm{be: be, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
		assign: assign, kc: be.kc, nc: be.nc}
	if k > be.kc && k <= be.kcMax {
		p.kc, p.nc = k, max(be.nr, be.kc*be.nc/k/be.nr*be.nr)
	}
	if !legacyGemm.Load() {
		p.direct = be.kernelS != nil && !transB && m <= directBMaxM
		if p.direct && be.kernelA != nil && !transA && !directAOff.Load() && (m > directBMaxMA || n < 4*be.nr) {
			p.direct = false // A in place, B packed (see directBMaxMA)
		}
		p.directA = be.kernelA != nil && !transA && !p.direct && !directAOff.Load()
		// Aᵀ in place uses 24 bytes of each 64-byte line it reads (a k step
		// is a row of a), so it pays only where each sliver meets few
		// panels: n ≤ 2·nr (+16–37 % on 192×64×1024, 1024×64×1024,
		// 192×128×1024; −13 % at 1024×192×256 and −37 % at 1024³).
		p.directA = p.directA || be.kernelAT != nil && transA && n <= 2*be.nr && !p.direct && !directATOff.Load()
		p.packT = be.packT
		p.packAFull = be.packA
		p.packARows = be.packARows
		p.packRows = be.packRows
	}
	if tasks := p.ownedTasks(workers); tasks != nil {
		p.runOwned(workers, tasks)
		return
	}
	p.run(workers)
}

// ownedOff turns off runOwned (every product with several workers runs on
// the pipelined driver): an A/B hook for benchmarks; results are
// bit-identical either way.
var ownedOff atomic.Bool

// rect is rows [i0, i1) × columns [j0, j1) of C, computed over all k steps
// by one worker; i0 is a multiple of mr and j0 of nr, so its tiles are the
// product's own.
type rect struct{ i0, i1, j0, j1 int }

// ownedTasks returns the rectangles of C that the workers of runOwned take
// in turn, or nil where the pipelined driver (run) computes the product:
// one worker, A packed (each rectangle would pack it again), fewer than two
// panels per worker, or more than twice as many rows as columns (tall
// products: a worker streams all of A for its columns, where the pipelined
// driver's workers stream half of it each; 1024×256×k for k = 64–192 lost
// 6–10 %).
//
// The rectangles are, in order: full-height chunks of one B block's panels
// (nc columns, the one-worker driver's blocks), then narrower full-height
// chunks of at least 128 columns, and the last workers such chunks cut into
// workers row pieces each, so that workers taking them in turn finish
// within a small piece of each other, even when one started late or shares
// its core.
func (g *packedGemm) ownedTasks(workers int) []rect {
	if workers <= 1 || !g.be.owned || !g.directA && !g.direct || ownedOff.Load() {
		return nil
	}
	nr, mr := g.be.nr, g.be.mr
	panels := (g.n + nr - 1) / nr
	if panels < 2*workers || 2*g.n < g.m {
		return nil
	}
	slivers := (g.m + mr - 1) / mr
	// c panels make one B block; cm panels (at least 128 columns) are the
	// narrowest chunk, as each chunk streams all of A once per k step.
	c := max(1, g.nc/nr)
	cm := min(c, max(1, 128/nr))
	cols := func(q0, q1 int) (j0, j1 int) { return q0 * nr, min(q1*nr, g.n) }
	var rs []rect
	q := 0
	for ; panels-q >= c+workers*cm; q += c {
		j0, j1 := cols(q, q+c)
		rs = append(rs, rect{0, g.m, j0, j1})
	}
	for ; panels-q > workers*cm; q += cm {
		j0, j1 := cols(q, q+cm)
		rs = append(rs, rect{0, g.m, j0, j1})
	}
	for ; q < panels; q += cm {
		j0, j1 := cols(q, min(q+cm, panels))
		for w := range workers {
			if s0, s1 := w*slivers/workers, (w+1)*slivers/workers; s1 > s0 {
				rs = append(rs, rect{s0 * mr, min(s1*mr, g.m), j0, j1})
			}
		}
	}
	return rs
}

// runOwned runs the rectangles on workers goroutines, each taking the next
// one as it finishes the last. On the 2-core Ice Lake Xeon (in-process, C
// reused, 2 threads against the pipelined driver, paired medians of 25–31
// rounds) it ran 1024³ 3–9 % faster and 2048³ 1–7 %, matching two
// independent 1-thread products on the two cores, and the MLP b256's
// 256×256×784 and 256×784×256 11–19 %.
func (g *packedGemm) runOwned(workers int, tasks []rect) {
	var next atomic.Int64
	take := func() (rect, bool) {
		t := int(next.Add(1) - 1)
		if t >= len(tasks) {
			return rect{}, false
		}
		return tasks[t], true
	}
	onWorkers(workers, func(int) { g.ownedWork(take) })
}

// onWorkers runs f(0) … f(workers-1), f(0) on the calling goroutine and
// the others on new ones, and returns when all have.
func onWorkers(workers int, f func(w int)) {
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(w)
		}()
	}
	f(0)
	wg.Wait()
}

// ownedWork computes the rectangles next hands out, each over all k steps
// as the one-worker driver does, with this worker's own packing buffers.
func (g *packedGemm) ownedWork(next func() (rect, bool)) {
	be := g.be
	mr, nr := be.mr, be.nr
	paStride := g.kc*mr + 8
	packed := (min(g.m, mcRows) + mr - 1) / mr
	if g.directA {
		packed = 1 // only the partial last sliver, if any
	}
	paBuf := getBufFrom(&stepPool, packed*paStride)
	defer stepPool.Put(paBuf)
	r := rowBlock{g: g, paStride: paStride}
	r.pa[0] = *paBuf
	if !g.direct {
		pbBuf := getBuf(g.kc * roundUp(min(g.n, g.nc), nr))
		defer packedPool.Put(pbBuf)
		r.pb[0] = *pbBuf
	} else {
		e := getBufFrom(&edgePool, g.kc*nr)
		defer edgePool.Put(e)
		r.edge = [][]float32{*e}
	}
	for {
		rc, ok := next()
		if !ok {
			return
		}
		for i0 := rc.i0; i0 < rc.i1; i0 += mcRows {
			r.i0, r.mm = i0, min(mcRows, rc.i1-i0)
			r.slivers = (r.mm + mr - 1) / mr
			r.blocks = g.appendBlocks(r.blocks[:0], rc.j0, rc.j1)
			r.next.Store(0)
			r.work(0, nil)
		}
	}
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
	kc, nc         int // blocking: be.kc and be.nc, or one k step (kcMax)
	alpha          float32
	a, b, c        []float32
	lda, ldb, ldc  int
	direct         bool // B read in place by be.kernelS (no packB)
	directA        bool // full A slivers read in place by be.kernelA (no packA)
	assign         bool // the first k step assigns C (beta = 0, C not cleared)
	packT          func(k8 int, b *float32, ldb int, dst *float32)
	packAFull      func(k8 int, a *float32, lda int, dst *float32)
	packARows      func(k int, a *float32, lda int, dst *float32)
	packRows       func(k int, b *float32, ldb int, dst *float32)
}

// Scratch buffers (*[]float32), one pool per use so that buffers of
// different sizes do not evict each other (a pool miss allocates, and
// zeroes, a fresh buffer). In legacy mode the GEMM's A slivers share
// packedPool, as before.
var (
	packedPool sync.Pool // packed B blocks (and the A slivers in legacy mode)
	stepPool   sync.Pool // the packed A slivers of a k step
	edgePool   sync.Pool // direct path: a worker's packed edge B panel
	slivPool   sync.Pool // conv: per-worker A slivers; sgemmNarrow's Cᵀ
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

// mcRows bounds the rows whose A slivers are packed together for one k
// step (mcRows·kc floats): taller products run in row blocks, each packing
// B again.
const mcRows = 3072

func (g *packedGemm) run(workers int) {
	for i0 := 0; i0 < g.m; i0 += mcRows {
		g.runRows(workers, i0, min(mcRows, g.m-i0))
	}
}

// runRows computes rows [i0, i0+mm) of C. Loop nest:
//
//	for p0 in steps of kc:
//	  pack the A slivers of the step
//	  for each block of nc columns:
//	    pack the step's B panels              // kc·nc floats, stay in L2
//	    tasks = (range of slivers) × (range of panels): kernels
//
// A and B are each packed once, and a step's B block is packed just before
// its kernels read it, so it is still in L2. With several workers the
// packing is pipelined: phase i runs the kernels of block i-1, then packs
// block i (its B panels, and the A slivers when it starts a k step) into
// the other of two buffers, all as tasks taken from one queue, so the
// packing fills the phase's tail and there is one barrier per block.
func (g *packedGemm) runRows(workers, i0, mm int) {
	be := g.be
	r := rowBlock{g: g, i0: i0, mm: mm, slivers: (mm + be.mr - 1) / be.mr, paStride: g.kc*be.mr + 8}
	packed := r.slivers // A slivers packed per k step
	if g.directA {
		packed = 1 // only the partial last sliver, if any
	}
	r.blocks = g.appendBlocks(nil, 0, g.n)
	nbuf := 1
	if workers > 1 && len(r.blocks) > 1 {
		nbuf = 2
	}
	pool := &stepPool
	if legacyGemm.Load() {
		pool = &packedPool
	}
	paBuf := getBufFrom(pool, nbuf*packed*r.paStride)
	defer pool.Put(paBuf)
	for i := range nbuf {
		r.pa[i] = (*paBuf)[i*packed*r.paStride : (i+1)*packed*r.paStride]
	}
	if !g.direct {
		pbLen := g.kc * roundUp(min(g.n, g.nc), be.nr)
		pbBuf := getBuf(nbuf * pbLen)
		defer packedPool.Put(pbBuf)
		for i := range nbuf {
			r.pb[i] = (*pbBuf)[i*pbLen : (i+1)*pbLen]
		}
	} else {
		for range workers {
			b := getBufFrom(&edgePool, g.kc*be.nr)
			defer edgePool.Put(b)
			r.edge = append(r.edge, *b)
		}
	}
	if workers <= 1 {
		r.work(0, nil)
		return
	}
	tm := newTeam(workers)
	onWorkers(workers, func(w int) { r.work(w, tm) })
}

// gemmBlock is a k step [p0, p0+kk) of a block of columns [j0, j0+nn).
type gemmBlock struct{ p0, kk, j0, nn int }

// appendBlocks appends the blocks of columns [j0, j1) in loop-nest order:
// k steps, and blocks of nc columns within each.
func (g *packedGemm) appendBlocks(bs []gemmBlock, j0, j1 int) []gemmBlock {
	for p0 := 0; p0 < g.k; p0 += g.kc {
		for j := j0; j < j1; j += g.nc {
			bs = append(bs, gemmBlock{p0: p0, kk: min(g.kc, g.k-p0), j0: j, nn: min(g.nc, j1-j)})
		}
	}
	return bs
}

// rowBlock is one runRows call: rows [i0, i0+mm) of C in mr-row slivers.
type rowBlock struct {
	g        *packedGemm
	i0, mm   int
	slivers  int
	blocks   []gemmBlock  // in order: k steps, and blocks of columns within each
	pa       [2][]float32 // a step's packed A slivers, sliver s at sliverAt(s)
	paStride int          // kc·mr + slack for packAFull's spare lanes
	pb       [2][]float32 // a block's packed B panels (unused when B is read in place)
	edge     [][]float32  // direct path: each worker's packed edge panel
	next     atomic.Int64
}

// buffers returns the packed A and B of block b (one buffer of each with
// a single worker, two alternating ones with several).
func (r *rowBlock) buffers(b int) (pa, pb []float32) {
	if r.pa[1] == nil {
		return r.pa[0], r.pb[0]
	}
	return r.pa[(r.blocks[b].p0/r.g.kc)%2], r.pb[b%2]
}

// sliverAt is the offset of sliver s in a step's packed A buffer.
func (r *rowBlock) sliverAt(s int) int {
	if r.g.directA {
		return 0 // the buffer holds the partial last sliver only
	}
	return s * r.paStride
}

// aSlivers is the number of A slivers one packing task packs.
const aSlivers = 16

// work runs the phases as worker w of tm (alone for a nil team): phase i
// computes block i-1 and packs block i. Tasks are taken dynamically from one
// counter that only grows: a phase's tasks are base .. base+tasks-1, and
// each worker draws one number past them before it stops at the barrier.
func (r *rowBlock) work(w int, tm *team) {
	g, be := r.g, r.g.be
	mr, nr := be.mr, be.nr
	nw := tm.size()
	var sc []float32
	if g.direct {
		sc = r.edge[w]
	}
	want := 1 // compute tasks per block
	if nw > 1 {
		want = 16 * nw
	}
	base := 0
	for i := 0; i <= len(r.blocks); i++ {
		// Kernels of block i-1.
		var ctasks, rowTasks, colTasks, panels int
		var cb gemmBlock
		if i > 0 {
			cb = r.blocks[i-1]
			panels = (cb.nn + nr - 1) / nr
			rowTasks = min(r.slivers, want)
			colTasks = min(panels, (want+rowTasks-1)/rowTasks)
			ctasks = rowTasks * colTasks
		}
		// Packing of block i: A when it starts a k step, and B.
		var atasks, btasks int
		var pb gemmBlock
		if i < len(r.blocks) {
			pb = r.blocks[i]
			if i == 0 || r.blocks[i-1].p0 != pb.p0 {
				atasks = (r.slivers + aSlivers - 1) / aSlivers
				if g.directA {
					atasks = 0
					if r.mm%mr != 0 {
						atasks = 1
					}
				}
			}
			if !g.direct {
				btasks = (pb.nn + nr - 1) / nr
			}
		}
		tasks := ctasks + atasks + btasks
		for {
			t := int(r.next.Add(1)-1) - base
			if t >= tasks {
				break
			}
			switch {
			case t < ctasks:
				rt, ct := t/colTasks, t%colTasks
				s0, s1 := rt*r.slivers/rowTasks, (rt+1)*r.slivers/rowTasks
				q0, q1 := ct*panels/colTasks, (ct+1)*panels/colTasks
				pa, pbuf := r.buffers(i - 1)
				g.block(pbuf, pa, r, sc, cb.j0, cb.nn, cb.p0, cb.kk, s0, s1, q0, q1)
			case t < ctasks+atasks:
				pa, _ := r.buffers(i)
				s0, s1 := (t-ctasks)*aSlivers, min((t-ctasks+1)*aSlivers, r.slivers)
				if g.directA {
					s0, s1 = r.slivers-1, r.slivers
				}
				for s := s0; s < s1; s++ {
					row := r.i0 + s*mr
					o := r.sliverAt(s)
					g.packA(pa[o:o+r.paStride], row, min(mr, r.i0+r.mm-row), pb.p0, pb.kk)
				}
			default:
				_, pbuf := r.buffers(i)
				q := t - ctasks - atasks
				g.packBRange(pbuf, pb.j0, pb.nn, q, q+1, pb.p0, pb.kk)
			}
		}
		base += tasks + nw
		tm.wait()
	}
}

// team is a barrier for the workers of one product: a phase of a GEMM
// step lasts tens of microseconds to milliseconds, and waking a blocked
// goroutine costs ~20 µs on a shared VM, so waiters spin briefly (the
// others are running on their own cores) before they block.
type team struct {
	n     int32
	count atomic.Int32
	gen   atomic.Uint32
	mu    sync.Mutex
	cond  sync.Cond
}

func newTeam(n int) *team {
	t := &team{n: int32(n)}
	t.cond.L = &t.mu
	return t
}

// size is the number of workers (1 for a nil team).
func (t *team) size() int {
	if t == nil {
		return 1
	}
	return int(t.n)
}

// teamSpins bounds a waiter's spinning (each round a load, every 16th a
// runtime.Gosched): about 10–50 µs.
const teamSpins = 2048

// wait returns once all n workers have called it (a no-op on a nil team).
func (t *team) wait() {
	if t == nil {
		return
	}
	g := t.gen.Load()
	if t.count.Add(1) == t.n {
		t.count.Store(0)
		t.mu.Lock()
		t.gen.Add(1)
		t.cond.Broadcast()
		t.mu.Unlock()
		return
	}
	for i := 0; i < teamSpins; i++ {
		if t.gen.Load() != g {
			return
		}
		if i%16 == 15 {
			runtime.Gosched()
		}
	}
	t.mu.Lock()
	for t.gen.Load() == g {
		t.cond.Wait()
	}
	t.mu.Unlock()
}

// block computes the k step [p0, p0+kk) of C for slivers [s0, s1) of the
// row block rb and panels [q0, q1) of the column block at j0: pa
// holds the step's packed A slivers (sliver s at rb.sliverAt(s); full
// slivers are read in place instead when g.directA), pb its packed
// B panels (panel q at q·kk·nr; unused when B is read in place), sc room
// for the direct path's packed edge panel.
func (g *packedGemm) block(pb, pa []float32, rb *rowBlock, sc []float32, j0, nn, p0, kk, s0, s1, q0, q1 int) {
	be := g.be
	i0, mm := rb.i0, rb.mm
	mr, nr := be.mr, be.nr
	var tmp [maxTile]float32
	kernA0 := be.kernelA // for edge tiles (adds into a cleared tile)
	kern, kernS, kernA, tile := be.kernel, be.kernelS, be.kernelA, g.addTile
	if g.assign && p0 == 0 {
		kern, kernS, kernA, tile = be.kernelSet, be.kernelSSet, be.kernelASet, g.setTile
	}
	if g.transA {
		kernA0, kernA = be.kernelAT, be.kernelAT
		if g.assign && p0 == 0 {
			kernA = be.kernelATSet
		}
	}
	var pbk []float32
	if g.direct {
		// Full panels are read in place; the edge panel (fewer than nr
		// columns) is packed once per task, zero-padded.
		pbk = pb
		if qe := q1 - 1; qe*nr+nr > nn {
			e := sc[:kk*nr]
			g.packBRange(e, j0+qe*nr, nn-qe*nr, 0, 1, p0, kk)
			pbk = e
		}
	} else {
		pbk = pb
	}
	for s := s0; s < s1; s++ {
		r0 := i0 + s*mr
		rows := min(mr, i0+mm-r0)
		if g.directA && rows == mr {
			var as *float32
			if g.transA {
				as = &g.a[p0*g.lda+r0]
			} else {
				as = &g.a[r0*g.lda+p0]
			}
			for q := q0; q < q1; q++ {
				jc := j0 + q*nr
				cols := min(nr, j0+nn-jc)
				bp := &pb[q*kk*nr]
				if cols == nr {
					kernA(kk, as, g.lda, bp, &g.c[r0*g.ldc+jc], g.ldc, g.alpha)
					continue
				}
				t := tmp[:mr*nr]
				clear(t)
				kernA0(kk, as, g.lda, bp, &t[0], nr, g.alpha)
				tile(t, r0, jc, rows, cols)
			}
			continue
		}
		ps := &pa[rb.sliverAt(s)]
		for q := q0; q < q1; q++ {
			jc := j0 + q*nr
			cols := min(nr, j0+nn-jc)
			if g.direct && cols == nr {
				bp := &g.b[p0*g.ldb+jc]
				if rows == mr {
					kernS(kk, ps, bp, g.ldb, &g.c[r0*g.ldc+jc], g.ldc, g.alpha)
					continue
				}
				t := tmp[:mr*nr]
				clear(t)
				be.kernelS(kk, ps, bp, g.ldb, &t[0], nr, g.alpha)
				tile(t, r0, jc, rows, cols)
				continue
			}
			var bp *float32
			if g.direct {
				bp = &pbk[0]
			} else {
				bp = &pbk[q*kk*nr]
			}
			if rows == mr && cols == nr {
				kern(kk, ps, bp, &g.c[r0*g.ldc+jc], g.ldc, g.alpha)
				continue
			}
			t := tmp[:mr*nr]
			clear(t)
			be.kernel(kk, ps, bp, &t[0], nr, g.alpha)
			tile(t, r0, jc, rows, cols)
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

// maxTile bounds mr·nr over the backends (the edge tiles' buffer).
const maxTile = 12 * 32

func panelsOf(n, nr int) int { return (n + nr - 1) / nr }
