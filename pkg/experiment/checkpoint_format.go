package experiment

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"unsafe"

	"github.com/gorch/gorch/pkg/errs"
)

// RTCH v1 layout constants. See the Checkpoint documentation for the format.
const (
	CheckpointMajor     = 1        // the major version this package reads and writes
	CheckpointMinor     = 0        // the minor version this package writes
	MaxCheckpointHeader = 16 << 20 // the largest header a reader accepts, in bytes

	preambleSize = 64
	footerSize   = 32
	dataAlign    = 64      // the alignment this package writes
	maxAlign     = 1 << 16 // the largest alignment a reader accepts
	maxNameLen   = 1024
	maxElems     = math.MaxInt32 * 8 // tensor's element limit

	groupParam = "param"
	groupOptim = "optim"
	dtypeF32   = "f32"
	formatName = "rtch"
	writerName = "gorch"
)

var (
	magic       = [4]byte{'R', 'T', 'C', 'H'}
	footerMagic = [4]byte{'H', 'C', 'T', 'R'}
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)
)

// preamble is the fixed 64-byte start of a file:
//
//	0  magic "RTCH"    4  major u16     6  minor u16
//	8  flags u32       12 alignment u32 16 header_len u64
//	24 data_off u64    32 data_len u64  40 header_crc32c u32
//	44 preamble_crc32c (of bytes 0..44) u32   48 reserved, 16 zero bytes
type preamble struct {
	major, minor uint16
	flags, align uint32
	headerLen    uint64
	dataOff      uint64
	dataLen      uint64
	headerCRC    uint32
	preambleCRC  uint32
}

func (p *preamble) marshal() []byte {
	b := make([]byte, preambleSize)
	copy(b, magic[:])
	le := binary.LittleEndian
	le.PutUint16(b[4:], p.major)
	le.PutUint16(b[6:], p.minor)
	le.PutUint32(b[8:], p.flags)
	le.PutUint32(b[12:], p.align)
	le.PutUint64(b[16:], p.headerLen)
	le.PutUint64(b[24:], p.dataOff)
	le.PutUint64(b[32:], p.dataLen)
	le.PutUint32(b[40:], p.headerCRC)
	p.preambleCRC = crc32.Checksum(b[:44], castagnoli)
	le.PutUint32(b[44:], p.preambleCRC)
	return b
}

// footer is the 32-byte commit marker at the end of a file:
//
//	0  magic "HCTR"    4  reserved u32     8  file_len u64
//	16 header_crc32c   20 preamble_crc32c  24 reserved u32
//	28 footer_crc32c (of bytes 0..28)
func marshalFooter(fileLen uint64, headerCRC, preambleCRC uint32) []byte {
	b := make([]byte, footerSize)
	copy(b, footerMagic[:])
	le := binary.LittleEndian
	le.PutUint64(b[8:], fileLen)
	le.PutUint32(b[16:], headerCRC)
	le.PutUint32(b[20:], preambleCRC)
	le.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

// fileHeader is the JSON header.
type fileHeader struct {
	Format      string            `json:"format"`
	Writer      string            `json:"writer,omitempty"`
	Tensors     []tensorEntry     `json:"tensors"`
	ModelConfig json.RawMessage   `json:"model_config,omitempty"`
	Optimizer   *optimHeader      `json:"optimizer,omitempty"`
	Train       TrainState        `json:"train"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// tensorEntry is one row of the tensor table. Offset is relative to the
// start of the data section.
type tensorEntry struct {
	Name   string  `json:"name"`
	Group  string  `json:"group"`
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	Offset int64   `json:"offset"`
	NBytes int64   `json:"nbytes"`
	CRC32C uint32  `json:"crc32c"`
}

// optimHeader is OptimizerState with each buffer replaced by the name of the
// "optim" tensor that holds it.
type optimHeader struct {
	Type   string                 `json:"type"`
	LR     float64                `json:"lr"`
	Hyper  map[string]float64     `json:"hyper"`
	Params map[string]optimParams `json:"params"`
}

type optimParams struct {
	Step    int64             `json:"step,omitempty"`
	Buffers map[string]string `json:"buffers"`
}

// layout is a validated preamble plus the tensor table.
type layout struct {
	pre    preamble
	size   int64
	align  int64
	hdr    fileHeader
	header []byte
	elems  []int64 // element count per tensor
}

// readAt fills b from r at off; running out of input is truncation.
func readAt(op string, r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt(op, ReasonTruncated, off+int64(n), "", "read %d of %d bytes", n, len(b))
	}
	return errs.Wrap(errs.IO, op, err, "read %d bytes at offset %d", len(b), off)
}

func alignUp(n, a int64) int64 { return (n + a - 1) &^ (a - 1) }

// readLayout validates everything but the tensor bytes: preamble, footer,
// header checksum and JSON, and the tensor table. It allocates at most the
// header (bounded by MaxCheckpointHeader and the file size).
func readLayout(op string, r io.ReaderAt, size int64) (*layout, error) {
	if size < 0 {
		return nil, errs.New(errs.Argument, op, "negative size %d", size)
	}
	var pb [preambleSize]byte
	n := min(size, preambleSize)
	if err := readAt(op, r, pb[:n], 0); err != nil {
		return nil, err
	}
	if n < 4 {
		return nil, corrupt(op, ReasonTruncated, n, "", "file is %d bytes", size)
	}
	if !bytes.Equal(pb[:4], magic[:]) {
		return nil, corrupt(op, ReasonBadMagic, 0, "", "magic %q, want %q", pb[:4], magic[:])
	}
	if n < 8 {
		return nil, corrupt(op, ReasonTruncated, n, "", "file is %d bytes", size)
	}
	le := binary.LittleEndian
	l := &layout{size: size}
	p := &l.pre
	p.major, p.minor = le.Uint16(pb[4:]), le.Uint16(pb[6:])
	if p.major != CheckpointMajor {
		return nil, corrupt(op, ReasonUnsupportedVersion, 4, "", "version %d.%d, this reader supports major %d", p.major, p.minor, CheckpointMajor)
	}
	if size < preambleSize+footerSize {
		return nil, corrupt(op, ReasonTruncated, size, "", "file is %d bytes, the smallest checkpoint is %d", size, preambleSize+footerSize)
	}
	p.flags, p.align = le.Uint32(pb[8:]), le.Uint32(pb[12:])
	p.headerLen, p.dataOff, p.dataLen = le.Uint64(pb[16:]), le.Uint64(pb[24:]), le.Uint64(pb[32:])
	p.headerCRC, p.preambleCRC = le.Uint32(pb[40:]), le.Uint32(pb[44:])
	if got := crc32.Checksum(pb[:44], castagnoli); got != p.preambleCRC {
		return nil, corrupt(op, ReasonHeaderChecksum, 44, "", "preamble CRC32C %#08x, stored %#08x", got, p.preambleCRC)
	}
	if p.flags != 0 {
		return nil, corrupt(op, ReasonUnsupportedVersion, 8, "", "unknown feature flags %#x", p.flags)
	}
	if !allZero(pb[48:]) {
		return nil, corrupt(op, ReasonBadHeader, 48, "", "reserved preamble bytes are not zero")
	}
	if p.align < dataAlign || p.align > maxAlign || p.align&(p.align-1) != 0 {
		return nil, corrupt(op, ReasonBadHeader, 12, "", "alignment %d is not a power of two in [%d, %d]", p.align, dataAlign, maxAlign)
	}
	l.align = int64(p.align)
	if p.headerLen > MaxCheckpointHeader {
		return nil, corrupt(op, ReasonHeaderTooLarge, 16, "", "header length %d exceeds %d", p.headerLen, MaxCheckpointHeader)
	}
	if p.headerLen == 0 {
		return nil, corrupt(op, ReasonBadHeader, 16, "", "empty header")
	}
	// Everything below is bounded: headerLen <= 16 MiB, and dataOff and
	// dataLen are compared with size before use.
	hdrEnd := preambleSize + p.headerLen
	if p.dataOff < hdrEnd || p.dataOff-hdrEnd >= uint64(p.align) || p.dataOff%uint64(p.align) != 0 {
		return nil, corrupt(op, ReasonBadHeader, 24, "", "data offset %d is not the first multiple of %d after the header (ends at %d)", p.dataOff, p.align, hdrEnd)
	}
	if p.dataLen%uint64(p.align) != 0 {
		return nil, corrupt(op, ReasonBadHeader, 32, "", "data length %d is not a multiple of %d", p.dataLen, p.align)
	}
	if p.dataLen > uint64(size) || p.dataOff+p.dataLen+footerSize > uint64(size) {
		return nil, corrupt(op, ReasonTruncated, size, "", "file is %d bytes, layout needs %d+%d+%d",
			size, p.dataOff, p.dataLen, footerSize)
	}
	if end := int64(p.dataOff + p.dataLen + footerSize); end != size {
		return nil, corrupt(op, ReasonMissingFooter, end, "", "%d bytes after the footer position", size-end)
	}
	var fb [footerSize]byte
	if err := readAt(op, r, fb[:], size-footerSize); err != nil {
		return nil, err
	}
	foff := size - footerSize
	switch {
	case !bytes.Equal(fb[:4], footerMagic[:]):
		return nil, corrupt(op, ReasonMissingFooter, foff, "", "footer magic %q, want %q", fb[:4], footerMagic[:])
	case crc32.Checksum(fb[:28], castagnoli) != le.Uint32(fb[28:]):
		return nil, corrupt(op, ReasonMissingFooter, foff, "", "footer checksum mismatch")
	case le.Uint64(fb[8:]) != uint64(size):
		return nil, corrupt(op, ReasonMissingFooter, foff, "", "footer says the file is %d bytes, it is %d", le.Uint64(fb[8:]), size)
	case le.Uint32(fb[16:]) != p.headerCRC || le.Uint32(fb[20:]) != p.preambleCRC:
		return nil, corrupt(op, ReasonMissingFooter, foff, "", "footer checksums do not match the preamble")
	case le.Uint32(fb[4:]) != 0 || le.Uint32(fb[24:]) != 0:
		return nil, corrupt(op, ReasonMissingFooter, foff, "", "reserved footer bytes are not zero")
	}

	hp := make([]byte, p.dataOff-preambleSize) // header plus padding, < 16 MiB + 64 KiB
	if err := readAt(op, r, hp, preambleSize); err != nil {
		return nil, err
	}
	l.header = hp[:p.headerLen]
	if got := crc32.Checksum(l.header, castagnoli); got != p.headerCRC {
		return nil, corrupt(op, ReasonHeaderChecksum, preambleSize, "", "header CRC32C %#08x, stored %#08x", got, p.headerCRC)
	}
	if !allZero(hp[p.headerLen:]) {
		return nil, corrupt(op, ReasonBadHeader, int64(hdrEnd), "", "padding after the header is not zero")
	}
	if err := checkDuplicateKeys(l.header); err != nil {
		return nil, corrupt(op, ReasonBadHeader, preambleSize, "", "%v", err)
	}
	if err := json.Unmarshal(l.header, &l.hdr); err != nil {
		return nil, corrupt(op, ReasonBadHeader, preambleSize, "", "%v", err)
	}
	if err := l.validate(op); err != nil {
		return nil, err
	}
	return l, nil
}

// validate checks the decoded header: format, train state, tensor table
// and optimizer references.
func (l *layout) validate(op string) error {
	h := &l.hdr
	if h.Format != formatName {
		return corrupt(op, ReasonBadHeader, preambleSize, "", "format %q, want %q", h.Format, formatName)
	}
	ts := &h.Train
	if ts.Step < 0 || ts.Epoch < 0 || ts.Cursor.Epoch < 0 || ts.Cursor.Pos < 0 {
		return corrupt(op, ReasonBadHeader, preambleSize, "", "negative train state: step %d, epoch %d, cursor %+v", ts.Step, ts.Epoch, ts.Cursor)
	}
	bad := func(name, format string, args ...any) error {
		return corrupt(op, ReasonBadTensorTable, preambleSize, name, format, args...)
	}
	dataLen := int64(l.pre.dataLen)
	index := make(map[string]int, len(h.Tensors))
	l.elems = make([]int64, len(h.Tensors))
	var end int64 // end of the previous tensor
	for i := range h.Tensors {
		e := &h.Tensors[i]
		switch {
		case e.Name == "" || len(e.Name) > maxNameLen:
			return bad("", "tensor %d has a name of %d bytes", i, len(e.Name))
		case e.Group != groupParam && e.Group != groupOptim:
			return bad(e.Name, "unknown group %q", e.Group)
		case e.DType != dtypeF32:
			return bad(e.Name, "unknown dtype %q", e.DType)
		case len(e.Shape) > MaxTensorRank:
			return bad(e.Name, "rank %d exceeds %d", len(e.Shape), MaxTensorRank)
		}
		if _, dup := index[e.Name]; dup {
			return bad(e.Name, "duplicate tensor name")
		}
		index[e.Name] = i
		numel, span := int64(1), int64(1) // span ignores zero dims: it bounds the strides
		for _, d := range e.Shape {
			if d < 0 {
				return bad(e.Name, "negative dimension in shape %v", e.Shape)
			}
			if d > 1 && span > maxElems/d {
				return bad(e.Name, "shape %v has too many elements", e.Shape)
			}
			span *= max(d, 1)
			numel *= d
		}
		l.elems[i] = numel
		switch want := alignUp(end, l.align); {
		case e.NBytes != numel*4:
			return bad(e.Name, "byte length %d, shape %v of %s needs %d", e.NBytes, e.Shape, e.DType, numel*4)
		case e.Offset < end:
			return bad(e.Name, "offset %d overlaps the previous tensor, which ends at %d", e.Offset, end)
		case e.Offset != want:
			return bad(e.Name, "offset %d, want %d (the next aligned offset)", e.Offset, want)
		case e.Offset > dataLen || e.NBytes > dataLen-e.Offset:
			return bad(e.Name, "bytes [%d, %d) lie outside the data section of %d bytes", e.Offset, e.Offset+e.NBytes, dataLen)
		}
		end = e.Offset + e.NBytes
	}
	if alignUp(end, l.align) != dataLen {
		return bad("", "tensors end at %d, data section is %d bytes", end, dataLen)
	}
	return l.validateOptim(op, index)
}

func (l *layout) validateOptim(op string, index map[string]int) error {
	h := &l.hdr
	used := make(map[string]bool)
	bad := func(name, format string, args ...any) error {
		return corrupt(op, ReasonBadTensorTable, preambleSize, name, format, args...)
	}
	if o := h.Optimizer; o != nil {
		for pname, ps := range o.Params {
			if ps.Step < 0 {
				return bad("", "optimizer state of %q has negative step %d", pname, ps.Step)
			}
			for buf, tname := range ps.Buffers {
				i, ok := index[tname]
				switch {
				case !ok:
					return bad(tname, "buffer %q of parameter %q names a missing tensor", buf, pname)
				case h.Tensors[i].Group != groupOptim:
					return bad(tname, "buffer %q of parameter %q names a %q tensor", buf, pname, h.Tensors[i].Group)
				case len(h.Tensors[i].Shape) != 1:
					return bad(tname, "optimizer buffer has shape %v, want rank 1", h.Tensors[i].Shape)
				case used[tname]:
					return bad(tname, "tensor is referenced by two optimizer buffers")
				}
				used[tname] = true
			}
		}
	}
	for _, e := range h.Tensors {
		if e.Group == groupOptim && !used[e.Name] {
			return bad(e.Name, "optimizer tensor is not referenced by the optimizer state")
		}
	}
	return nil
}

// checkDuplicateKeys rejects JSON with a repeated key in any object
// (encoding/json would silently keep the last one).
func checkDuplicateKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		keys      map[string]bool // nil for arrays
		expectKey bool
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			top := &stack[n-1]
			if top.expectKey {
				k := tok.(string) // the decoder guarantees object keys are strings
				if top.keys[k] {
					return fmt.Errorf("duplicate key %q", k)
				}
				top.keys[k] = true
				top.expectKey = false
				continue
			}
			top.expectKey = true // this token starts the value
		}
		if d, ok := tok.(json.Delim); ok {
			f := frame{}
			if d == '{' {
				f = frame{keys: map[string]bool{}, expectKey: true}
			}
			stack = append(stack, f)
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// hostLittleEndian reports whether float32 memory is already in file order.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// f32Bytes returns d as little-endian bytes: a view of d's memory on
// little-endian hosts, a converted copy otherwise.
func f32Bytes(d []float32) []byte {
	if len(d) == 0 {
		return nil
	}
	if hostLittleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d))), len(d)*4)
	}
	b := make([]byte, len(d)*4)
	for i, v := range d {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// f32From decodes little-endian bytes into d (big-endian hosts only).
func f32From(d []float32, b []byte) {
	for i := range d {
		d[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}
