package cluster

import (
	"encoding/binary"
	"errors"

	"github.com/vmihailenco/msgpack/v5"
)

// Unmarshal decodes msgpack b into v after checking that every length b
// declares fits in the bytes that follow it. Every value gorch reads off
// the network goes through it.
//
// Why: msgpack v5.4.x allocates a slice's declared length before reading
// a single element (its allocation limit is never applied,
// vmihailenco/msgpack#401), so a 5-byte array32 header of 2^32-1 made
// any gorch service that decoded it allocate hundreds of gigabytes and
// die — FuzzWireDecode found it. With the check, what a message makes
// the decoder allocate is bounded by the message's own size.
func Unmarshal(b []byte, v any) error {
	if err := checkLengths(b); err != nil {
		return err
	}
	return msgpack.Unmarshal(b, v)
}

var (
	errTruncated = errors.New("msgpack: truncated value")
	errTooLong   = errors.New("msgpack: a length exceeds the message")
	errBadCode   = errors.New("msgpack: invalid type code 0xc1")
)

// checkLengths walks the first msgpack value of b without allocating.
// Each element of an array or map takes at least one byte, so a
// container may not declare more elements than bytes remain, nor a
// string, binary or extension more bytes.
func checkLengths(b []byte) error {
	i, pending := 0, 1 // pending: values still to read
	for pending > 0 {
		if i >= len(b) {
			return errTruncated
		}
		c := b[i]
		i++
		pending--
		skip, elems := 0, 0
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3: // fixint, nil, bool
		case c&0xf0 == 0x80: // fixmap
			elems = 2 * int(c&0x0f)
		case c&0xf0 == 0x90: // fixarray
			elems = int(c & 0x0f)
		case c&0xe0 == 0xa0: // fixstr
			skip = int(c & 0x1f)
		case c == 0xc1:
			return errBadCode
		case c == 0xca: // float32
			skip = 4
		case c == 0xcb: // float64
			skip = 8
		case c >= 0xcc && c <= 0xd3: // uint8..64, int8..64
			skip = 1 << ((c - 0xcc) % 4)
		case c >= 0xd4 && c <= 0xd8: // fixext 1..16: type byte and data
			skip = 1 + 1<<(c-0xd4)
		default:
			n, w, ok := length(b[i:], c)
			if !ok {
				return errTruncated
			}
			i += w
			switch c {
			case 0xc4, 0xc5, 0xc6, 0xd9, 0xda, 0xdb: // bin, str
				skip = n
			case 0xc7, 0xc8, 0xc9: // ext: type byte and data
				skip = 1 + n
			case 0xdc, 0xdd: // array16, array32
				elems = n
			case 0xde, 0xdf: // map16, map32
				elems = 2 * n
			}
		}
		rest := len(b) - i
		if skip > rest || elems > rest || pending+elems > rest {
			return errTooLong
		}
		i += skip
		pending += elems
	}
	return nil
}

// length reads the length that follows type code c (bin, str, ext,
// array16/32, map16/32) and returns it with its width in bytes.
func length(b []byte, c byte) (n, width int, ok bool) {
	switch c {
	case 0xc4, 0xc7, 0xd9: // 8-bit lengths
		width = 1
	case 0xc5, 0xc8, 0xda, 0xdc, 0xde: // 16-bit
		width = 2
	default: // 0xc6, 0xc9, 0xdb, 0xdd, 0xdf: 32-bit
		width = 4
	}
	if len(b) < width {
		return 0, 0, false
	}
	switch width {
	case 1:
		n = int(b[0])
	case 2:
		n = int(binary.BigEndian.Uint16(b))
	default:
		n = int(binary.BigEndian.Uint32(b))
	}
	return n, width, true
}
