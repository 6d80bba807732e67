// RTCH checkpoints: the format, its encoder, its validating decoder, and
// atomic file helpers.

package experiment

import (
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/gorch/gorch/pkg/errs"
)

// Checkpoint is everything needed to resume training exactly: the model's
// tensors, its configuration, the optimizer state and the train state.
//
// # RTCH version 1
//
// A checkpoint file is, all integers little-endian:
//
//	offset        size  field
//	0             4     magic "RTCH"
//	4             2     major version (1; a reader rejects any other)
//	6             2     minor version (0; a reader accepts higher minors)
//	8             4     feature flags (0; a reader rejects unknown bits)
//	12            4     alignment A (64; a power of two in [64, 65536])
//	16            8     header length H (at most MaxCheckpointHeader)
//	24            8     data offset D = the first multiple of A >= 64+H
//	32            8     data length L (a multiple of A)
//	40            4     CRC32C of the header
//	44            4     CRC32C of bytes 0..44
//	48            16    reserved, zero
//	64            H     header: UTF-8 JSON without duplicate keys
//	64+H          ...   zero padding up to D
//	D             L     tensor data, little-endian float32, each tensor at
//	                    D + offset, offsets multiples of A, zero padding between
//	D+L           32    footer: "HCTR", u32 0, u64 file length, u32 header
//	                    CRC32C, u32 preamble CRC32C, u32 0, u32 CRC32C of
//	                    footer bytes 0..28; written last, it commits the file
//
// The header holds "format": "rtch", the tensor table ("tensors": name,
// group "param" or "optim", dtype "f32", shape, offset relative to D,
// nbytes = 4 × elements, crc32c of the bytes), "model_config",
// "optimizer" (an OptimizerState whose buffers are named "optim" tensors),
// "train" (a TrainState) and "metadata". Tensors are sorted by offset and
// packed: each starts at the first aligned offset after the previous one,
// and L is the aligned end of the last. A minor version may add header
// fields, which older readers ignore; anything else needs a new major.
//
// A reader validates the preamble, footer, header checksum and tensor
// table before it allocates tensor memory, so the memory it allocates is
// bounded by the file size; it then checks every tensor's CRC32C. Failures
// are [*CorruptionError]s, errors.Is(err, errs.Checkpoint).
type Checkpoint struct {
	Tensors     []Tensor          // the model's tensors, in file order
	ModelConfig json.RawMessage   // free-form model configuration; empty or valid JSON
	Optimizer   *OptimizerState   // optimizer state, or nil
	Train       TrainState        // where training stands
	Metadata    map[string]string // free-form string metadata (git commit, host, ...)
}

// The checkpoint types below are RTCH's own, engine-free copies of the
// engine's state (nn, optim, data): the record store, the collector and
// the C library over RTCH link no tensor code. pkg/train converts between
// them and a model (train.CheckpointFromModel, train.ApplyCheckpoint).

// Tensor is one named float32 tensor of a checkpoint, row-major.
type Tensor struct {
	Name  string
	Shape []int     // at most MaxTensorRank dimensions, none negative
	Data  []float32 // the product of Shape elements
}

// MaxTensorRank is the largest rank a checkpoint tensor may have (the
// engine's tensor.MaxRank).
const MaxTensorRank = 8

// OptimizerState is an optimizer's state: the same fields as optim.State.
type OptimizerState struct {
	Type   string                    // "sgd", "adam" or "adamw"
	LR     float64                   // the current learning rate
	Hyper  map[string]float64        // hyperparameters (momentum, beta1, ...); booleans as 0/1
	Params map[string]OptimizerParam // per-parameter state by parameter name
}

// OptimizerParam is the optimizer state of one parameter.
type OptimizerParam struct {
	Step    int64                // updates applied (Adam, AdamW)
	Buffers map[string][]float32 // e.g. "momentum_buffer", "exp_avg", "exp_avg_sq"
}

// TrainState is the part of the training loop's state that a resumed run
// needs besides the model and optimizer.
type TrainState struct {
	Step      int64                      `json:"step"`                // optimizer steps taken
	Epoch     int                        `json:"epoch"`               // the current epoch
	Cursor    Cursor                     `json:"cursor"`              // the data loader's position
	RNG       []byte                     `json:"rng,omitempty"`       // tensor.RNG State()
	Scheduler *SchedulerState            `json:"scheduler,omitempty"` // the LR scheduler's state, if any
	Extra     map[string]json.RawMessage `json:"extra,omitempty"`     // anything else a loop must restore
}

// Cursor is a data loader's position (data.Cursor).
type Cursor struct {
	Epoch int `json:"epoch"`
	Pos   int `json:"position"`
}

// SchedulerState is an LR scheduler's state (optim.SchedulerState).
type SchedulerState struct {
	Type   string          // "step_lr", "cosine_annealing_lr" or "linear_warmup"
	Step   int             // steps taken (PyTorch's last_epoch)
	BaseLR float64         // the optimizer's LR when the scheduler was built
	Inner  *SchedulerState `json:",omitempty"` // the wrapped schedule of a LinearWarmup
}

// CheckpointInfo summarises a verified checkpoint.
type CheckpointInfo struct {
	Major, Minor uint16 // the file's format version
	Size         int64  // file size in bytes
	HeaderBytes  int64  // header length in bytes
	DataBytes    int64  // data section length in bytes
	Writer       string // the writing program
	Tensors      []TensorInfo
	Parameters   int64  // elements in "param" tensors
	Optimizer    string // the optimizer type, or "" if none
	Train        TrainState
	ModelConfig  json.RawMessage
	Metadata     map[string]string
	// DataOffset is the file offset of the data section: tensor i's bytes
	// are at DataOffset+Tensors[i].Offset (the Python reader maps them).
	DataOffset int64
	// Header is the validated JSON header, verbatim.
	Header json.RawMessage
}

// TensorInfo describes one tensor of a checkpoint.
type TensorInfo struct {
	Name   string
	Group  string // "param" for model tensors, "optim" for optimizer buffers
	DType  string // "f32"
	Shape  []int
	Offset int64 // from the start of the data section
	NBytes int64
	CRC32C uint32
}

// plannedTensor is a tensor ready to write.
type plannedTensor struct {
	entry tensorEntry
	bytes []byte
}

// plan validates ck and lays it out.
func plan(op string, ck *Checkpoint) (pre preamble, header []byte, ts []plannedTensor, err error) {
	if ck == nil {
		return pre, nil, nil, errs.New(errs.Argument, op, "nil checkpoint")
	}
	tr := ck.Train
	if tr.Step < 0 || tr.Epoch < 0 || tr.Cursor.Epoch < 0 || tr.Cursor.Pos < 0 {
		return pre, nil, nil, errs.New(errs.Argument, op, "negative train state: step %d, epoch %d, cursor %+v", tr.Step, tr.Epoch, tr.Cursor)
	}
	if len(ck.ModelConfig) > 0 && !json.Valid(ck.ModelConfig) {
		return pre, nil, nil, errs.New(errs.Argument, op, "model config is not valid JSON")
	}
	add := func(name, group string, t []float32, shape []int) error {
		if name == "" || len(name) > maxNameLen || !utf8.ValidString(name) {
			return errs.New(errs.Argument, op, "invalid tensor name %q", name)
		}
		if len(shape) > MaxTensorRank {
			return errs.New(errs.Argument, op, "tensor %q has rank %d, more than %d", name, len(shape), MaxTensorRank)
		}
		sh := make([]int64, len(shape))
		n := int64(1)
		for i, v := range shape {
			if v < 0 || v > 0 && n > maxElems/int64(v) {
				return errs.New(errs.Argument, op, "tensor %q has shape %v", name, shape)
			}
			sh[i] = int64(v)
			n *= int64(v)
		}
		if n != int64(len(t)) {
			return errs.New(errs.Argument, op, "tensor %q of shape %v has %d elements, want %d", name, shape, len(t), n)
		}
		b := f32Bytes(t)
		ts = append(ts, plannedTensor{bytes: b, entry: tensorEntry{Name: name, Group: group, DType: dtypeF32,
			Shape: sh, NBytes: int64(len(b))}})
		return nil
	}
	for _, t := range ck.Tensors {
		if err := add(t.Name, groupParam, t.Data, t.Shape); err != nil {
			return pre, nil, nil, err
		}
	}
	h := fileHeader{Format: formatName, Writer: writerName, ModelConfig: ck.ModelConfig, Train: ck.Train, Metadata: ck.Metadata}
	if o := ck.Optimizer; o != nil {
		oh := &optimHeader{Type: o.Type, LR: o.LR, Hyper: o.Hyper}
		if o.Params != nil {
			oh.Params = make(map[string]optimParams, len(o.Params))
		}
		for _, pname := range slices.Sorted(maps.Keys(o.Params)) {
			ps := o.Params[pname]
			opp := optimParams{Step: ps.Step}
			if ps.Buffers != nil {
				opp.Buffers = make(map[string]string, len(ps.Buffers))
			}
			for _, buf := range slices.Sorted(maps.Keys(ps.Buffers)) {
				tname := groupOptim + "/" + pname + "/" + buf
				opp.Buffers[buf] = tname
				vals := ps.Buffers[buf]
				if err := add(tname, groupOptim, vals, []int{len(vals)}); err != nil {
					return pre, nil, nil, err
				}
			}
			oh.Params[pname] = opp
		}
		h.Optimizer = oh
	}
	checksumTensors(ts)
	seen := make(map[string]bool, len(ts))
	var off int64
	for i := range ts {
		e := &ts[i].entry
		if seen[e.Name] {
			return pre, nil, nil, errs.New(errs.Argument, op, "duplicate tensor name %q", e.Name)
		}
		seen[e.Name] = true
		off = alignUp(off, dataAlign)
		e.Offset = off
		off += e.NBytes
		h.Tensors = append(h.Tensors, *e)
	}
	if h.Tensors == nil {
		h.Tensors = []tensorEntry{}
	}
	header, err = json.Marshal(&h)
	if err != nil {
		return pre, nil, nil, errs.Wrap(errs.Argument, op, err, "encoding the header")
	}
	if len(header) > MaxCheckpointHeader {
		return pre, nil, nil, errs.New(errs.Argument, op, "header of %d bytes exceeds %d", len(header), MaxCheckpointHeader)
	}
	pre = preamble{major: CheckpointMajor, minor: CheckpointMinor, align: dataAlign,
		headerLen: uint64(len(header)), dataOff: uint64(alignUp(preambleSize+int64(len(header)), dataAlign)),
		dataLen: uint64(alignUp(off, dataAlign)), headerCRC: crc32.Checksum(header, castagnoli)}
	return pre, header, ts, nil
}

var zeros [maxAlign]byte

// checksumTensors computes every tensor's CRC32C, spreading tensors over
// the available CPUs when there is enough data to be worth it.
func checksumTensors(ts []plannedTensor) {
	var total int
	for i := range ts {
		total += len(ts[i].bytes)
	}
	workers := min(runtime.GOMAXPROCS(0), len(ts), total/(2<<20))
	if workers < 2 {
		for i := range ts {
			ts[i].entry.CRC32C = crc32.Checksum(ts[i].bytes, castagnoli)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(ts); i = int(next.Add(1) - 1) {
				ts[i].entry.CRC32C = crc32.Checksum(ts[i].bytes, castagnoli)
			}
		})
	}
	wg.Wait()
}

// EncodeCheckpoint writes ck to w in RTCH v1 format. It fails with errs.Argument if ck cannot be encoded (nil
// tensors, a non-JSON model config, NaN in optimizer hyperparameters, a
// header over MaxCheckpointHeader) before writing anything, and with
// errs.IO if w fails.
func EncodeCheckpoint(w io.Writer, ck *Checkpoint) error {
	const op = "experiment.EncodeCheckpoint"
	pre, header, ts, err := plan(op, ck)
	if err != nil {
		return err
	}
	return encodePlanned(op, w, pre, header, ts)
}

// fileSize is the length of the file pre describes.
func (p *preamble) fileSize() int64 { return int64(p.dataOff + p.dataLen + footerSize) }

// encodePlanned writes a planned checkpoint. Small pieces (preamble,
// header, padding, small tensors) are gathered in a buffer; large tensors
// are written straight from their storage.
func encodePlanned(op string, w io.Writer, pre preamble, header []byte, ts []plannedTensor) error {
	gw := gatherWriter{w: w, buf: make([]byte, 0, gatherBuffer)}
	gw.write(pre.marshal())
	gw.write(header)
	gw.write(zeros[:pre.dataOff-preambleSize-pre.headerLen])
	var off int64
	for _, t := range ts {
		gw.write(zeros[:t.entry.Offset-off])
		gw.write(t.bytes)
		off = t.entry.Offset + t.entry.NBytes
	}
	gw.write(zeros[:int64(pre.dataLen)-off])
	gw.write(marshalFooter(uint64(pre.fileSize()), pre.headerCRC, pre.preambleCRC))
	if err := gw.flush(); err != nil {
		return errs.Wrap(errs.IO, op, err, "")
	}
	return nil
}

// gatherBuffer is the size of the encoder's buffer for small pieces;
// pieces at least this large bypass it.
const gatherBuffer = 256 << 10

// gatherWriter buffers small writes and passes large ones through, keeping
// the first error.
type gatherWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func (g *gatherWriter) write(p []byte) {
	if g.err != nil || len(p) == 0 {
		return
	}
	if len(p) < gatherBuffer {
		if len(g.buf)+len(p) > cap(g.buf) {
			g.flush()
		}
		g.buf = append(g.buf, p...)
		return
	}
	if g.flush() == nil {
		_, g.err = g.w.Write(p)
	}
}

func (g *gatherWriter) flush() error {
	if g.err == nil && len(g.buf) > 0 {
		_, g.err = g.w.Write(g.buf)
	}
	g.buf = g.buf[:0]
	return g.err
}

// DecodeCheckpoint reads the size-byte checkpoint in r. It validates the
// whole layout before allocating tensor memory and checks every checksum;
// see [Checkpoint] for the format and [Reason] for the errors.
func DecodeCheckpoint(r io.ReaderAt, size int64) (*Checkpoint, error) {
	const op = "experiment.DecodeCheckpoint"
	l, err := readLayout(op, r, size)
	if err != nil {
		return nil, err
	}
	h := &l.hdr
	ck := &Checkpoint{ModelConfig: h.ModelConfig, Train: h.Train, Metadata: h.Metadata}
	bufs := make(map[string][]float32)
	var end int64
	for i, e := range h.Tensors {
		base := int64(l.pre.dataOff)
		if err := checkPadding(op, r, base+end, e.Offset-end); err != nil {
			return nil, err
		}
		vals := make([]float32, l.elems[i])
		b := f32Bytes(vals)
		if !hostLittleEndian {
			b = make([]byte, e.NBytes)
		}
		if err := readAt(op, r, b, base+e.Offset); err != nil {
			return nil, err
		}
		if got := crc32.Checksum(b, castagnoli); got != e.CRC32C {
			return nil, corrupt(op, ReasonTensorChecksum, base+e.Offset, e.Name, "CRC32C %#08x, stored %#08x", got, e.CRC32C)
		}
		if !hostLittleEndian {
			f32From(vals, b)
		}
		end = e.Offset + e.NBytes
		if e.Group == groupOptim {
			bufs[e.Name] = vals
			continue
		}
		ck.Tensors = append(ck.Tensors, Tensor{Name: e.Name, Shape: intShape(e.Shape), Data: vals})
	}
	if err := checkPadding(op, r, int64(l.pre.dataOff)+end, int64(l.pre.dataLen)-end); err != nil {
		return nil, err
	}
	if o := h.Optimizer; o != nil {
		st := &OptimizerState{Type: o.Type, LR: o.LR, Hyper: o.Hyper}
		if o.Params != nil {
			st.Params = make(map[string]OptimizerParam, len(o.Params))
		}
		for pname, ps := range o.Params {
			p := OptimizerParam{Step: ps.Step}
			if ps.Buffers != nil {
				p.Buffers = make(map[string][]float32, len(ps.Buffers))
			}
			for buf, tname := range ps.Buffers {
				p.Buffers[buf] = bufs[tname]
			}
			st.Params[pname] = p
		}
		ck.Optimizer = st
	}
	return ck, nil
}

func intShape(shape []int64) []int {
	out := make([]int, len(shape))
	for i, d := range shape {
		out[i] = int(d)
	}
	return out
}

// checkPadding checks that n bytes at off (n < the alignment) are zero.
func checkPadding(op string, r io.ReaderAt, off, n int64) error {
	if n <= 0 {
		return nil
	}
	var buf [maxAlign]byte
	if err := readAt(op, r, buf[:n], off); err != nil {
		return err
	}
	if !allZero(buf[:n]) {
		return corrupt(op, ReasonBadTensorTable, off, "", "%d bytes of padding are not zero", n)
	}
	return nil
}

// VerifyCheckpoint checks everything DecodeCheckpoint checks, streaming the
// tensor data through a small buffer instead of loading it, and returns a
// summary for `gorch ckpt inspect` and `gorch ckpt verify`.
func VerifyCheckpoint(r io.ReaderAt, size int64) (*CheckpointInfo, error) {
	const op = "experiment.VerifyCheckpoint"
	l, err := readLayout(op, r, size)
	if err != nil {
		return nil, err
	}
	h := &l.hdr
	info := &CheckpointInfo{Major: l.pre.major, Minor: l.pre.minor, Size: size, HeaderBytes: int64(l.pre.headerLen),
		DataBytes: int64(l.pre.dataLen), Writer: h.Writer, Train: h.Train, ModelConfig: h.ModelConfig, Metadata: h.Metadata,
		DataOffset: int64(l.pre.dataOff), Header: json.RawMessage(l.header)}
	if h.Optimizer != nil {
		info.Optimizer = h.Optimizer.Type
	}
	buf := make([]byte, min(1<<20, l.pre.dataLen))
	base := int64(l.pre.dataOff)
	var end int64
	for i, e := range h.Tensors {
		if err := checkPadding(op, r, base+end, e.Offset-end); err != nil {
			return nil, err
		}
		var crc uint32
		for done := int64(0); done < e.NBytes; {
			n := min(int64(len(buf)), e.NBytes-done)
			if err := readAt(op, r, buf[:n], base+e.Offset+done); err != nil {
				return nil, err
			}
			crc = crc32.Update(crc, castagnoli, buf[:n])
			done += n
		}
		if crc != e.CRC32C {
			return nil, corrupt(op, ReasonTensorChecksum, base+e.Offset, e.Name, "CRC32C %#08x, stored %#08x", crc, e.CRC32C)
		}
		end = e.Offset + e.NBytes
		if e.Group == groupParam {
			info.Parameters += l.elems[i]
		}
		info.Tensors = append(info.Tensors, TensorInfo{Name: e.Name, Group: e.Group, DType: e.DType,
			Shape: intShape(e.Shape), Offset: e.Offset, NBytes: e.NBytes, CRC32C: e.CRC32C})
	}
	if err := checkPadding(op, r, base+end, int64(l.pre.dataLen)-end); err != nil {
		return nil, err
	}
	return info, nil
}

// SaveCheckpointFile writes ck to path atomically: it writes a temporary
// file in the same directory, syncs it, renames it over path and syncs the
// directory. On any error before the rename the temporary file is removed
// and path is untouched.
func SaveCheckpointFile(path string, ck *Checkpoint) error {
	return saveCheckpointFile(path, ck, true)
}

// saveCheckpointFile is SaveCheckpointFile; sync false skips both fsyncs,
// for benchmarks of the page-cache cost only.
func saveCheckpointFile(path string, ck *Checkpoint, sync bool) (err error) {
	const op = "experiment.SaveCheckpointFile"
	const encOp = "experiment.EncodeCheckpoint" // as when Save called EncodeCheckpoint
	pre, header, ts, err := plan(encOp, ck)
	if err != nil {
		return errs.Wrap(errs.KindOf(err), op, err, "%s", path)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return errs.Wrap(errs.IO, op, err, "")
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	preallocate(f, pre.fileSize())
	var w io.Writer = f
	if sync {
		w = earlyWriteback(f)
	}
	if err := encodePlanned(encOp, w, pre, header, ts); err != nil {
		return errs.Wrap(errs.KindOf(err), op, err, "%s", path)
	}
	if err := f.Chmod(0o644); err != nil {
		return errs.Wrap(errs.IO, op, err, "")
	}
	if sync {
		if err := f.Sync(); err != nil {
			return errs.Wrap(errs.IO, op, err, "")
		}
	}
	if err := f.Close(); err != nil {
		return errs.Wrap(errs.IO, op, err, "")
	}
	if err := os.Rename(tmp, path); err != nil {
		return errs.Wrap(errs.IO, op, err, "")
	}
	if !sync {
		return nil
	}
	// The file is complete and in place; a failed directory sync only
	// means the rename may not survive a crash.
	if d, derr := os.Open(dir); derr == nil {
		serr := d.Sync()
		d.Close()
		if serr != nil && !errors.Is(serr, os.ErrInvalid) {
			return errs.Wrap(errs.IO, op, serr, "syncing directory %s", dir)
		}
	}
	return nil
}

// LoadCheckpointFile reads and fully validates the checkpoint at path.
func LoadCheckpointFile(path string) (*Checkpoint, error) {
	const op = "experiment.LoadCheckpointFile"
	f, err := os.Open(path)
	if err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "")
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "")
	}
	ck, err := DecodeCheckpoint(f, fi.Size())
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "%s", path)
	}
	return ck, nil
}
