package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"math"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// IDXUByte is the IDX element type code of unsigned bytes, the only type
// ReadIDX supports.
const IDXUByte = 0x08

// MaxIDXElements bounds the element count an IDX header may claim; larger
// claims are rejected as corrupt before anything is allocated.
const MaxIDXElements = math.MaxInt32

// IDX is a decoded IDX file: its dimensions and its elements in row-major
// order. IDX magic numbers are 0x000008NN, NN being the number of
// dimensions (0x00000803 for image files, 0x00000801 for label files).
type IDX struct {
	Dims []int
	Data []byte
}

// ReadIDX decodes an IDX file of unsigned bytes from r, gunzipping it first
// if it starts with the gzip magic 0x1f 0x8b. The header is validated before
// anything is allocated, memory grows only as data actually arrives, and
// the input must end exactly after the data the header claims. Any
// malformed, truncated or oversized input, including a gzip checksum
// failure, is an errs.Data error.
func ReadIDX(r io.Reader) (*IDX, error) { return readIDX(r, 0) }

// readIDX is ReadIDX with a hint of the decoded size (the file size, or a
// gzip member's ISIZE trailer) used to size the data buffer; the hint is
// never trusted beyond what the header claims and the data confirms.
func readIDX(r io.Reader, hint int64) (*IDX, error) {
	const op = "data.ReadIDX"
	br := bufio.NewReaderSize(r, 1<<16)
	var src io.Reader = br
	if m, err := br.Peek(2); err == nil && m[0] == 0x1f && m[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, errs.Wrap(errs.Data, op, err, "invalid gzip header")
		}
		defer zr.Close()
		src = bufio.NewReaderSize(zr, 1<<16)
	}
	var magic [4]byte
	if _, err := io.ReadFull(src, magic[:]); err != nil {
		return nil, errs.Wrap(errs.Data, op, truncated(err), "reading the magic number")
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, errs.New(errs.Data, op, "bad magic number 0x%08x: not an IDX file", binary.BigEndian.Uint32(magic[:]))
	}
	if magic[2] != IDXUByte {
		return nil, errs.New(errs.Data, op, "unsupported element type 0x%02x in magic 0x%08x; only unsigned bytes (0x08) are supported", magic[2], binary.BigEndian.Uint32(magic[:]))
	}
	nd := int(magic[3])
	if nd < 1 || nd > tensor.MaxRank {
		return nil, errs.New(errs.Data, op, "magic 0x%08x claims %d dimensions; want 1 to %d", binary.BigEndian.Uint32(magic[:]), nd, tensor.MaxRank)
	}
	hdr := make([]byte, 4*nd)
	if _, err := io.ReadFull(src, hdr); err != nil {
		return nil, errs.Wrap(errs.Data, op, truncated(err), "reading %d dimension sizes", nd)
	}
	dims := make([]int, nd)
	total := uint64(1)
	for i := range dims {
		d := uint64(binary.BigEndian.Uint32(hdr[4*i:]))
		dims[i] = int(d)
		total *= d // cannot overflow: checked against MaxIDXElements at each step
		if total > MaxIDXElements {
			return nil, errs.New(errs.Data, op, "dimensions %v claim more than %d elements", dims[:i+1], uint64(MaxIDXElements))
		}
	}
	initial := min(int(total), 1<<20)
	if hint > 0 {
		initial = int(min(total, uint64(hint)))
	}
	data, err := readExactly(src, int(total), initial)
	if err != nil {
		return nil, errs.Wrap(errs.Data, op, err, "reading %d elements of dimensions %v", total, dims)
	}
	return &IDX{Dims: dims, Data: data}, nil
}

var errTrailing = errors.New("unexpected data after the elements")

// truncated turns a clean EOF in the middle of a structure into
// io.ErrUnexpectedEOF.
func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readExactly reads n bytes from r and then requires r to be at its end,
// which for a gzip stream also verifies its checksum. The buffer starts at
// initial bytes and doubles as data arrives, so a header claiming far more
// data than the input holds cannot force a large allocation.
func readExactly(r io.Reader, n, initial int) ([]byte, error) {
	buf := make([]byte, 0, max(min(n, initial), 0))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(n, max(2*cap(buf), 1<<16)))
			copy(nb, buf)
			buf = nb
		}
		k, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil {
			if err == io.EOF && len(buf) < n {
				return nil, io.ErrUnexpectedEOF
			}
			if err != io.EOF {
				return nil, err
			}
		}
	}
	var one [1]byte
	for {
		k, err := r.Read(one[:])
		if k > 0 {
			return nil, errTrailing
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
