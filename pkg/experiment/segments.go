package experiment

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorch/gorch/pkg/errs"
)

// LogOptions tunes a metrics logger or telemetry recorder. Zero fields take
// the defaults.
type LogOptions struct {
	// QueueSize bounds the records waiting between loggers and the writer
	// goroutine (default 65536, one default segment, so that loggers keep
	// encoding while the writer syncs a segment). Log blocks while the
	// queue is full.
	QueueSize int
	// FlushRecords writes a segment once this many records are pending
	// (default 65536).
	FlushRecords int
	// FlushInterval writes pending records at least this often (default
	// 2s). Each write is one new segment object, so a short interval on a
	// slow run makes many small objects.
	FlushInterval time.Duration
	// Manual writes segments only in Flush and Close, in the calling
	// goroutine, with every record logged since the last one: for a
	// writer that must know which records are stored (the cluster
	// collector acknowledges a message only after that). QueueSize,
	// FlushRecords and FlushInterval do not apply, and Log never blocks.
	Manual bool
}

func (o LogOptions) withDefaults() LogOptions {
	if o.QueueSize <= 0 {
		o.QueueSize = 65536
	}
	if o.FlushRecords <= 0 {
		o.FlushRecords = 65536
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 2 * time.Second
	}
	return o
}

// segWriter is the machinery shared by the metrics logger and the telemetry
// recorder: callers encode records into chunks under a mutex and hand full
// chunks to one writer goroutine through a bounded channel; the writer
// batches chunks into numbered JSONL segment objects. It also keeps the
// drop accounting.
//
// At most about QueueSize records wait between the callers and the writer:
// the channel holds QueueSize/chunkRecs chunks and the callers fill one
// more. Log blocks while the channel is full; TryLog drops instead.
type segWriter[T any] struct {
	op        string
	store     Store
	prefix    string // e.g. "runs/<id>/metrics/"
	seq       int    // number of the last segment written
	opts      LogOptions
	chunkRecs int                        // records per chunk
	encode    func(b []byte, v T) []byte // called with mu held
	observe   func(batch []T)            // called with each batch that reached the store

	mu       sync.Mutex // guards closed, cur and encode's state
	closed   bool
	cur      *segChunk[T]   // the chunk callers append to; nil once closed
	inflight sync.WaitGroup // sends on ch or flushq begun before close
	ch       chan *segChunk[T]
	free     chan *segChunk[T] // recycled chunks
	flushq   chan flushReq[T]
	done     chan struct{}

	// Owned by the writer goroutine.
	buf   []byte // the pending segment
	batch []T    // its records, kept only if observe is set
	n     int    // records in the pending segment

	// A manual writer's pending segment, guarded by mu.
	mbuf     []byte // encoded records
	mpending [][]T  // the slices logAll took, if observe is set
	mn       int    // records

	written atomic.Uint64 // records in segments that reached the store
	dropped atomic.Uint64 // records TryLog dropped or whose segment failed

	errMu    sync.Mutex
	firstErr error
}

// segChunk is a run of encoded records on their way to the writer.
type segChunk[T any] struct {
	b    []byte // the encoded lines
	recs []T    // the records, kept only if observe is set
	n    int
}

type flushReq[T any] struct {
	c     *segChunk[T] // the callers' partial chunk, or nil
	reply chan error
}

// startSegWriter lists the existing segments under prefix (a resumed run
// continues the numbering) and starts the writer goroutine.
func startSegWriter[T any](ctx context.Context, op string, store Store, prefix string, opts LogOptions,
	encode func([]byte, T) []byte, observe func([]T)) (*segWriter[T], error) {
	opts = opts.withDefaults()
	keys, err := store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	chunk := min(max(opts.QueueSize/8, 1), opts.FlushRecords, maxChunkRecords)
	w := &segWriter[T]{
		op: op, store: store, prefix: prefix, opts: opts, encode: encode, observe: observe, chunkRecs: chunk,
		ch: make(chan *segChunk[T], max(opts.QueueSize/chunk, 1)), flushq: make(chan flushReq[T]), done: make(chan struct{}),
	}
	w.free = make(chan *segChunk[T], cap(w.ch)+2)
	w.cur = w.newChunk()
	for _, k := range keys {
		if n, ok := segmentSeq(prefix, k); ok && n > w.seq {
			w.seq = n
		}
	}
	if opts.Manual {
		close(w.done) // no writer goroutine
		return w, nil
	}
	go w.run()
	return w, nil
}

// maxChunkRecords bounds the records callers encode before handing a
// chunk to the writer.
const maxChunkRecords = 1024

func (w *segWriter[T]) newChunk() *segChunk[T] {
	select {
	case c := <-w.free:
		return c
	default:
	}
	c := &segChunk[T]{b: make([]byte, 0, w.chunkRecs*192)}
	if w.observe != nil {
		c.recs = make([]T, 0, w.chunkRecs)
	}
	return c
}

// recycle returns a chunk the writer has consumed.
func (w *segWriter[T]) recycle(c *segChunk[T]) {
	clear(c.recs) // drop string references
	c.b, c.recs, c.n = c.b[:0], c.recs[:0], 0
	if cap(c.b) > 4<<20 {
		return
	}
	select {
	case w.free <- c:
	default:
	}
}

// segmentSeq parses the number of a segment key.
func segmentSeq(prefix, key string) (int, bool) {
	s, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".jsonl")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

func (w *segWriter[T]) closedErr() error {
	return errs.New(errs.Experiment, w.op, "logger is closed")
}

// appendLocked encodes v into the current chunk; w.mu is held. It returns
// the length of the chunk's bytes before v, for tryLog to undo it.
func (w *segWriter[T]) appendLocked(v *T) int {
	c := w.cur
	n := len(c.b)
	c.b = append(w.encode(c.b, *v), '\n')
	if w.observe != nil {
		c.recs = append(c.recs, *v)
	}
	c.n++
	return n
}

// log encodes v and blocks until it is queued.
func (w *segWriter[T]) log(v T) error {
	if w.opts.Manual {
		return w.logAll([]T{v})
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.closedErr()
	}
	w.appendLocked(&v)
	c := w.cur
	if c.n < w.chunkRecs {
		w.mu.Unlock()
		return nil
	}
	w.cur = w.newChunk()
	w.inflight.Add(1)
	w.mu.Unlock()
	w.ch <- c // blocks while the queue is full
	w.inflight.Done()
	return nil
}

// logAll appends vs to the pending segment of a manual writer. It keeps
// vs until the segment is written: the caller must not change it.
func (w *segWriter[T]) logAll(vs []T) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.closedErr()
	}
	if w.mbuf == nil {
		w.mbuf = getSegmentBuffer()
	}
	for i := range vs {
		w.mbuf = append(w.encode(w.mbuf, vs[i]), '\n')
	}
	if w.observe != nil {
		w.mpending = append(w.mpending, vs)
	}
	w.mn += len(vs)
	return nil
}

// tryLog queues v if there is room and counts it as dropped otherwise.
func (w *segWriter[T]) tryLog(v T) bool {
	if w.opts.Manual {
		return w.logAll([]T{v}) == nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		w.dropped.Add(1)
		return false
	}
	undo := w.appendLocked(&v)
	c := w.cur
	if c.n < w.chunkRecs {
		return true
	}
	select {
	case w.ch <- c:
		w.cur = w.newChunk()
		return true
	default:
	}
	c.b = c.b[:undo]
	if w.observe != nil {
		var zero T
		c.recs[len(c.recs)-1] = zero
		c.recs = c.recs[:len(c.recs)-1]
	}
	c.n--
	w.dropped.Add(1)
	return false
}

// flush writes everything queued before the call and returns the first
// I/O error so far.
func (w *segWriter[T]) flush() error {
	if w.opts.Manual {
		return w.writeManual(context.Background(), false)
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return w.err()
	}
	req := flushReq[T]{reply: make(chan error, 1)}
	if w.cur.n > 0 {
		req.c, w.cur = w.cur, w.newChunk()
	}
	w.inflight.Add(1)
	w.mu.Unlock()
	w.flushq <- req
	w.inflight.Done()
	return <-req.reply
}

// close writes everything queued, stops the writer and returns the first
// I/O error. Later calls return the same error.
func (w *segWriter[T]) close() error {
	if w.opts.Manual {
		return w.writeManual(context.Background(), true)
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return w.err()
	}
	w.closed = true
	last := w.cur
	w.cur = nil
	w.mu.Unlock()
	w.inflight.Wait() // the writer runs until ch is closed, so these finish
	if last.n > 0 {
		w.ch <- last
	}
	close(w.ch)
	<-w.done
	return w.err()
}

func (w *segWriter[T]) err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.firstErr
}

func (w *segWriter[T]) run() {
	defer close(w.done)
	ticker := time.NewTicker(w.opts.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case c, ok := <-w.ch:
			if !ok {
				w.write()
				return
			}
			w.add(c)
			if !w.drain() {
				w.write()
				return
			}
		case req := <-w.flushq:
			open := w.drain()
			if req.c != nil {
				w.add(req.c)
			}
			w.write()
			req.reply <- w.err()
			if !open {
				return
			}
		case <-ticker.C:
			open := w.drain()
			w.mu.Lock()
			var c *segChunk[T]
			if w.cur != nil && w.cur.n > 0 {
				c, w.cur = w.cur, w.newChunk()
			}
			w.mu.Unlock()
			if c != nil {
				w.add(c)
			}
			w.write()
			if !open {
				return
			}
		}
	}
}

// writeManual stores what a manual writer has pending as one segment, and
// closes the writer if last.
func (w *segWriter[T]) writeManual(ctx context.Context, last bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err()
	}
	if w.mn > 0 && w.put(ctx, w.mbuf, w.mn) && w.observe != nil {
		for _, vs := range w.mpending {
			w.observe(vs)
		}
	}
	putSegmentBuffer(w.mbuf)
	clear(w.mpending) // drop references
	w.mbuf, w.mpending, w.mn = nil, w.mpending[:0], 0
	w.closed = last
	return w.err()
}

// segmentBuffers recycles the encoded segments of manual writers, which
// grow to megabytes under load: a few buffers for the writers at work,
// not one per run. (A sync.Pool loses them at every garbage collection.)
var segmentBuffers = make(chan []byte, 8)

func getSegmentBuffer() []byte {
	select {
	case b := <-segmentBuffers:
		return b[:0]
	default:
		return make([]byte, 0, 64<<10)
	}
}

func putSegmentBuffer(b []byte) {
	if b == nil || cap(b) > 32<<20 {
		return
	}
	select {
	case segmentBuffers <- b:
	default:
	}
}

// add appends a chunk to the pending segment, writing the segment once it
// holds FlushRecords records.
func (w *segWriter[T]) add(c *segChunk[T]) {
	w.buf = append(w.buf, c.b...)
	w.batch = append(w.batch, c.recs...)
	w.n += c.n
	w.recycle(c)
	if w.n >= w.opts.FlushRecords {
		w.write()
	}
}

// drain moves the chunks queued now into the pending segment. It reports
// false once the channel is closed.
func (w *segWriter[T]) drain() bool {
	for {
		select {
		case c, ok := <-w.ch:
			if !ok {
				return false
			}
			w.add(c)
		default:
			return true
		}
	}
}

// write stores the pending records as the next segment.
func (w *segWriter[T]) write() {
	if w.n == 0 {
		return
	}
	// The writer goroutine outlives any caller's context.
	if w.put(context.Background(), w.buf, w.n) && w.observe != nil {
		w.observe(w.batch)
	}
	clear(w.batch) // drop string references
	w.batch = w.batch[:0]
	w.buf = w.buf[:0]
	w.n = 0
	if cap(w.buf) > 64<<20 {
		w.buf = nil
	}
}

// put writes n records, encoded in buf, as the next segment, and reports
// whether they reached the store.
func (w *segWriter[T]) put(ctx context.Context, buf []byte, n int) bool {
	key := segmentKey(w.prefix, w.seq+1)
	if err := w.store.Put(ctx, key, buf); err != nil {
		w.dropped.Add(uint64(n))
		w.errMu.Lock()
		if w.firstErr == nil {
			w.firstErr = err
		}
		w.errMu.Unlock()
		return false
	}
	w.seq++
	w.written.Add(uint64(n))
	return true
}
