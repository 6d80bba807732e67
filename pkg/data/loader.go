package data

import (
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// LoaderOptions configures a Loader.
type LoaderOptions struct {
	// BatchSize is the number of samples per batch; it must be positive.
	BatchSize int
	// Shuffle draws a fresh permutation of the samples for every epoch,
	// derived from (Seed, epoch) alone. Without it every epoch visits the
	// samples in dataset order.
	Shuffle bool
	// Seed selects the permutations when Shuffle is set.
	Seed uint64
	// DropLast drops the final batch of an epoch when it would be smaller
	// than BatchSize.
	DropLast bool
}

// Cursor is a loader's position: Pos samples of epoch Epoch's order have
// been consumed. It is what a checkpoint stores to resume data loading.
type Cursor struct {
	Epoch int `json:"epoch"`
	Pos   int `json:"position"`
}

// Loader yields the batches of a Dataset epoch by epoch, deterministically
// for a seed, and can resume from a Cursor. See the package documentation
// for the iteration pattern. A Loader is not safe for concurrent use.
type Loader struct {
	ds    Dataset
	opts  LoaderOptions
	n     int
	cur   Cursor
	order []int // the current epoch's order; nil until needed
	idx   []int // scratch for the batch indices (sequential order)
	x, y  *tensor.Tensor
	err   error
}

// NewLoader returns a loader over ds positioned at the start of epoch 0.
// A nil dataset or a non-positive batch size is an errs.Argument error.
func NewLoader(ds Dataset, opts LoaderOptions) (*Loader, error) {
	const op = "data.NewLoader"
	if ds == nil {
		return nil, errs.New(errs.Argument, op, "nil dataset")
	}
	if opts.BatchSize <= 0 {
		return nil, errs.New(errs.Argument, op, "batch size must be positive, got %d", opts.BatchSize)
	}
	n := ds.Len()
	if n < 0 {
		return nil, errs.New(errs.Argument, op, "dataset reports negative length %d", n)
	}
	return &Loader{ds: ds, opts: opts, n: n}, nil
}

// Options returns the loader's options.
func (l *Loader) Options() LoaderOptions { return l.opts }

// Dataset returns the dataset the loader reads.
func (l *Loader) Dataset() Dataset { return l.ds }

// BatchesPerEpoch returns the number of batches in a full epoch:
// ceil(N/BatchSize), or floor(N/BatchSize) with DropLast.
func (l *Loader) BatchesPerEpoch() int {
	if l.opts.DropLast {
		return l.n / l.opts.BatchSize
	}
	return (l.n + l.opts.BatchSize - 1) / l.opts.BatchSize
}

// SamplesPerEpoch returns the number of samples an epoch yields, which is
// less than the dataset's length when DropLast drops a partial batch.
func (l *Loader) SamplesPerEpoch() int {
	if l.opts.DropLast {
		return l.n / l.opts.BatchSize * l.opts.BatchSize
	}
	return l.n
}

// Cursor returns the loader's position: after Next has returned k batches
// of epoch e from its start, Pos is the number of samples they hold.
func (l *Loader) Cursor() Cursor { return l.cur }

// Epoch returns the current epoch.
func (l *Loader) Epoch() int { return l.cur.Epoch }

// Seek moves the loader to c, so that the following batches are exactly
// those an uninterrupted loader with the same options would yield after
// reaching c. c.Epoch must be non-negative and c.Pos in [0, N]
// (errs.Argument otherwise). Pos need not be a multiple of the batch size.
func (l *Loader) Seek(c Cursor) error {
	if c.Epoch < 0 || c.Pos < 0 || c.Pos > l.n {
		return errs.New(errs.Argument, "data.Loader.Seek", "cursor %+v out of range for %d samples", c, l.n)
	}
	if c.Epoch != l.cur.Epoch {
		l.order = nil
	}
	l.cur = c
	l.x, l.y, l.err = nil, nil, nil
	return nil
}

// StartEpoch positions the loader at the start of epoch e (a non-negative
// epoch; errs.Argument otherwise).
func (l *Loader) StartEpoch(e int) error { return l.Seek(Cursor{Epoch: e}) }

// NextEpoch positions the loader at the start of the epoch after the
// current one.
func (l *Loader) NextEpoch() { _ = l.Seek(Cursor{Epoch: l.cur.Epoch + 1}) }

// Done reports whether the current epoch has no batch left.
func (l *Loader) Done() bool { return l.cur.Pos >= l.SamplesPerEpoch() }

// Next advances to the next batch of the current epoch, readable with
// Batch, and reports whether there was one. It returns false at the end of
// the epoch or if gathering the batch failed (see Err); it never moves to
// another epoch.
func (l *Loader) Next() bool {
	l.x, l.y = nil, nil
	if l.err != nil {
		return false
	}
	start := l.cur.Pos
	end := min(start+l.opts.BatchSize, l.n)
	if end <= start || (l.opts.DropLast && end-start < l.opts.BatchSize) {
		return false
	}
	x, y, err := l.ds.Gather(l.indices(start, end))
	if err != nil {
		l.err = errs.Wrap(errs.KindOf(err), "data.Loader.Next", err, "batch at %+v", l.cur)
		return false
	}
	l.x, l.y = x, y
	l.cur.Pos = end
	return true
}

// indices returns the dataset indices of positions [start, end) of the
// current epoch's order.
func (l *Loader) indices(start, end int) []int {
	if l.opts.Shuffle {
		if l.order == nil {
			l.order = l.Order(l.cur.Epoch)
		}
		return l.order[start:end]
	}
	if cap(l.idx) < end-start {
		l.idx = make([]int, l.opts.BatchSize)
	}
	idx := l.idx[:end-start]
	for k := range idx {
		idx[k] = start + k
	}
	return idx
}

// Batch returns the inputs and targets of the batch Next advanced to, of
// shapes [B, ...]; both are nil when Next returned false. Each batch is
// freshly allocated and owned by the caller.
func (l *Loader) Batch() (x, y *tensor.Tensor) { return l.x, l.y }

// Err returns the error that stopped Next, if any. Seek and StartEpoch
// clear it.
func (l *Loader) Err() error { return l.err }

// Order returns the order in which epoch e visits the dataset's indices: a
// permutation of [0, N) that depends only on (Seed, e) when Shuffle is set,
// and the identity otherwise.
func (l *Loader) Order(e int) []int {
	if !l.opts.Shuffle {
		p := make([]int, l.n)
		for i := range p {
			p[i] = i
		}
		return p
	}
	return tensor.NewRNG(epochSeed(l.opts.Seed, e)).Perm(l.n)
}

// epochSeed derives the generator seed of an epoch from the loader's seed,
// mixing the epoch through SplitMix64 so that neighbouring (seed, epoch)
// pairs give unrelated streams.
func epochSeed(seed uint64, epoch int) uint64 {
	return splitmix64(seed ^ splitmix64(uint64(epoch)+0x5851f42d4c957f2d))
}

func splitmix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
