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
	// QueueSize is the capacity of the channel between loggers and the
	// writer goroutine (default 16384). Log blocks while it is full.
	QueueSize int
	// FlushRecords writes a segment once this many records are pending
	// (default 65536).
	FlushRecords int
	// FlushInterval writes pending records at least this often (default
	// 2s). Each write is one new segment object, so a short interval on a
	// slow run makes many small objects.
	FlushInterval time.Duration
}

func (o LogOptions) withDefaults() LogOptions {
	if o.QueueSize <= 0 {
		o.QueueSize = 16384
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
// recorder: a bounded channel, one writer goroutine that batches records
// into numbered JSONL segment objects, and drop accounting.
type segWriter[T any] struct {
	op      string
	store   Store
	prefix  string // e.g. "runs/<id>/metrics/"
	seq     int    // number of the last segment written
	opts    LogOptions
	encode  func(b []byte, v *T) []byte
	observe func(batch []T) // called with each batch that reached the store

	mu     sync.RWMutex // write-locked only by close; guards closed vs. sends on ch
	closed bool
	ch     chan T
	flushq chan chan error
	done   chan struct{}

	batch []T
	buf   []byte

	written atomic.Uint64 // records in segments that reached the store
	dropped atomic.Uint64 // records TryLog dropped or whose segment failed

	errMu    sync.Mutex
	firstErr error
}

// startSegWriter lists the existing segments under prefix (a resumed run
// continues the numbering) and starts the writer goroutine.
func startSegWriter[T any](ctx context.Context, op string, store Store, prefix string, opts LogOptions,
	encode func([]byte, *T) []byte, observe func([]T)) (*segWriter[T], error) {
	opts = opts.withDefaults()
	keys, err := store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	w := &segWriter[T]{
		op: op, store: store, prefix: prefix, opts: opts, encode: encode, observe: observe,
		ch: make(chan T, opts.QueueSize), flushq: make(chan chan error), done: make(chan struct{}),
		batch: make([]T, 0, min(opts.FlushRecords, 1<<16)),
	}
	for _, k := range keys {
		if n, ok := segmentSeq(prefix, k); ok && n > w.seq {
			w.seq = n
		}
	}
	go w.run()
	return w, nil
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

// log blocks until v is queued.
func (w *segWriter[T]) log(v T) error {
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return w.closedErr()
	}
	w.ch <- v
	w.mu.RUnlock()
	return nil
}

// tryLog queues v if there is room and counts it as dropped otherwise.
func (w *segWriter[T]) tryLog(v T) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.closed {
		select {
		case w.ch <- v:
			return true
		default:
		}
	}
	w.dropped.Add(1)
	return false
}

// flush writes everything queued before the call and returns the first
// I/O error so far.
func (w *segWriter[T]) flush() error {
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		<-w.done
		return w.err()
	}
	reply := make(chan error, 1)
	w.flushq <- reply
	w.mu.RUnlock()
	return <-reply
}

// close writes everything queued, stops the writer and returns the first
// I/O error. Later calls return the same error.
func (w *segWriter[T]) close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
	w.mu.Unlock()
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
		case v, ok := <-w.ch:
			if !ok {
				w.write()
				return
			}
			w.batch = append(w.batch, v)
			if !w.drain() {
				w.write()
				return
			}
		case reply := <-w.flushq:
			open := w.drain()
			w.write()
			reply <- w.err()
			if !open {
				return
			}
		case <-ticker.C:
			w.write()
		}
	}
}

// drain moves what is queued now into the batch, writing a segment each
// time the batch fills. It reports false once the channel is closed.
func (w *segWriter[T]) drain() bool {
	for {
		if len(w.batch) >= w.opts.FlushRecords {
			w.write()
		}
		select {
		case v, ok := <-w.ch:
			if !ok {
				return false
			}
			w.batch = append(w.batch, v)
		default:
			return true
		}
	}
}

// write stores the batch as the next segment.
func (w *segWriter[T]) write() {
	if len(w.batch) == 0 {
		return
	}
	b := w.buf[:0]
	for i := range w.batch {
		b = w.encode(b, &w.batch[i])
		b = append(b, '\n')
	}
	w.buf = b
	key := segmentKey(w.prefix, w.seq+1)
	if err := w.store.Put(context.Background(), key, b); err != nil {
		w.dropped.Add(uint64(len(w.batch)))
		w.errMu.Lock()
		if w.firstErr == nil {
			w.firstErr = err
		}
		w.errMu.Unlock()
	} else {
		w.seq++
		w.written.Add(uint64(len(w.batch)))
		if w.observe != nil {
			w.observe(w.batch)
		}
	}
	clear(w.batch) // drop string references
	w.batch = w.batch[:0]
	if cap(w.buf) > 64<<20 {
		w.buf = nil
	}
}
