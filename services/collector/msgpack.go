package collector

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/experiment"
)

// metricBatch is a decoded MetricBatch, its points already the records
// the collector stores.
type metricBatch struct {
	runID   string
	attempt int
	seq     int64
	resume  int64
	points  []experiment.Metric
}

// errSlowPath says that the fast decoder met something it does not
// handle; the message is then decoded by cluster.Decode, which decides.
var errSlowPath = errors.New("not the common encoding")

// batchDecoder decodes MetricBatch envelopes without reflection: they are
// most of what the collector reads (cluster.Decode spent about 1 µs per
// point, a quarter of the collector's CPU). It accepts the msgpack the
// wire package writes (maps with string keys, any integer width, float32
// or float64 values, timestamp extensions) and falls back to
// cluster.Decode on anything else, so the two always agree. Metric names
// are interned: a run logs a few names many times. A batchDecoder is not
// safe for concurrent use.
type batchDecoder struct {
	names  map[string]string
	recent [4]string // the last names interned, newest first
}

// maxInterned bounds the interned names; the table starts over beyond it.
const maxInterned = 4096

// decodeMetricBatch decodes a metric_batch envelope.
func (d *batchDecoder) decodeMetricBatch(b []byte) (*metricBatch, error) {
	if mb, err := d.fast(b); err == nil {
		return mb, nil
	}
	return slowDecode(b)
}

// slowDecode decodes with cluster.Decode.
func slowDecode(b []byte) (*metricBatch, error) {
	var wb cluster.MetricBatch
	if err := cluster.Decode(b, cluster.TypeMetricBatch, &wb); err != nil {
		return nil, err
	}
	mb := &metricBatch{runID: wb.RunID, attempt: wb.Attempt, seq: wb.Seq, resume: wb.Resume, points: make([]experiment.Metric, len(wb.Points))}
	for i, p := range wb.Points {
		mb.points[i] = experiment.Metric{Step: p.Step, Name: p.Name, Value: p.Value, Time: p.Time}
	}
	return mb, nil
}

// fast decodes the envelope and body as cluster.Encode writes them.
func (d *batchDecoder) fast(b []byte) (*metricBatch, error) {
	r := mpReader{b: b}
	var mb *metricBatch
	var version int64
	var typ []byte
	for range r.mapLen() {
		switch string(r.str()) {
		case "v":
			version = r.int()
		case "t":
			typ = r.str()
		case "b":
			if version != cluster.WireVersion || string(typ) != cluster.TypeMetricBatch {
				return nil, errSlowPath // the envelope is written v, t, b
			}
			mb = d.body(&r)
		default:
			r.skip()
		}
	}
	if r.err != nil || r.off != len(b) || version != cluster.WireVersion || string(typ) != cluster.TypeMetricBatch || mb == nil {
		return nil, errSlowPath
	}
	return mb, nil
}

// body reads the MetricBatch map at r.
func (d *batchDecoder) body(r *mpReader) *metricBatch {
	mb := &metricBatch{}
	for range r.mapLen() {
		switch string(r.str()) {
		case "run":
			mb.runID = string(r.str())
		case "attempt":
			mb.attempt = int(r.int())
		case "seq":
			mb.seq = r.int()
		case "resume":
			mb.resume = r.int()
		case "points":
			if r.peekNil() {
				r.off++
				continue
			}
			n := r.arrayLen()
			if r.err != nil || n > len(r.b)-r.off { // each point takes at least a byte
				r.fail()
				return nil
			}
			mb.points = make([]experiment.Metric, n)
			for i := range mb.points {
				if !d.pointFast(r, &mb.points[i]) {
					d.point(r, &mb.points[i])
				}
			}
		default:
			r.skip()
		}
	}
	return mb
}

// pointFast reads a point at r if it has the layout the wire package
// writes for a point of a current time:
// {"s": int, "n": fixstr, "v": float64, "t": 64-bit timestamp}, in that
// order. Otherwise it reads nothing and reports false, and point reads it.
// It is most of a batch's bytes, and a third of decoding's CPU went to
// reading the keys and headers one call at a time.
func (d *batchDecoder) pointFast(r *mpReader, m *experiment.Metric) bool {
	if r.err != nil {
		return false
	}
	b := r.b[r.off:]
	// The shortest such point: 0x84, "s", fixint, "n", fixstr, "v",
	// float64, "t", timestamp 64: 3+1+3+11+12 bytes.
	if len(b) < 30 || b[0] != 0x84 || b[1] != 0xa1 || b[2] != 's' {
		return false
	}
	var step int64
	i := 3
	switch c := b[i]; {
	case c == 0xd3: // what it writes for an int64
		step, i = int64(binary.BigEndian.Uint64(b[i+1:])), i+9
	case c <= 0x7f:
		step, i = int64(c), i+1
	case c == 0xcc:
		step, i = int64(b[i+1]), i+2
	case c == 0xcd:
		step, i = int64(binary.BigEndian.Uint16(b[i+1:])), i+3
	case c == 0xce:
		step, i = int64(binary.BigEndian.Uint32(b[i+1:])), i+5
	default:
		return false
	}
	if len(b) < i+3 || b[i] != 0xa1 || b[i+1] != 'n' || b[i+2]&0xe0 != 0xa0 {
		return false
	}
	n := int(b[i+2] & 0x1f)
	i += 3
	if len(b) < i+n+23 { // the name, then 11 bytes of value and 12 of time
		return false
	}
	name := b[i : i+n]
	i += n
	if b[i] != 0xa1 || b[i+1] != 'v' || b[i+2] != 0xcb || b[i+11] != 0xa1 || b[i+12] != 't' || b[i+13] != 0xd7 || b[i+14] != 0xff {
		return false
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(b[i+3:]))
	ts := binary.BigEndian.Uint64(b[i+15:])
	m.Step, m.Name, m.Value = step, d.intern(name), v
	m.Time = time.Unix(int64(ts&(1<<34-1)), int64(ts>>34))
	r.off += i + 23
	return true
}

func (d *batchDecoder) point(r *mpReader, m *experiment.Metric) {
	for range r.mapLen() {
		switch r.key1() {
		case 's':
			m.Step = r.int()
		case 'n':
			m.Name = d.intern(r.str())
		case 'v':
			m.Value = r.float()
		case 't':
			m.Time = r.time()
		default:
			r.skip()
		}
	}
}

// key1 reads a map key and returns it if it is one byte long, else 0. A
// point's keys are one letter: their common form (fixstr of length 1) is
// read without the general string path.
func (r *mpReader) key1() byte {
	if r.off+1 < len(r.b) && r.b[r.off] == 0xa1 {
		r.off += 2
		return r.b[r.off-1]
	}
	if k := r.str(); len(k) == 1 {
		return k[0]
	}
	return 0
}

func (d *batchDecoder) intern(b []byte) string {
	// A run logs a few names in turn: look at the last few first.
	for i := range d.recent {
		if string(b) == d.recent[i] && (d.recent[i] != "" || len(b) == 0) {
			return d.recent[i]
		}
	}
	s, ok := d.names[string(b)] // no allocation for the lookup
	if !ok {
		if d.names == nil || len(d.names) >= maxInterned {
			d.names = map[string]string{}
		}
		s = string(b)
		d.names[s] = s
	}
	copy(d.recent[1:], d.recent[:len(d.recent)-1])
	d.recent[0] = s
	return s
}

// mpReader reads msgpack values from b; the first error sticks and every
// later read returns zero values.
type mpReader struct {
	b   []byte
	off int
	err error
}

func (r *mpReader) fail() { r.err, r.off = errSlowPath, len(r.b) }

func (r *mpReader) need(n int) []byte {
	if r.err != nil || n < 0 || len(r.b)-r.off < n {
		r.fail()
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *mpReader) byte1() byte {
	p := r.need(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (r *mpReader) peekNil() bool { return r.err == nil && r.off < len(r.b) && r.b[r.off] == 0xc0 }

// uintN reads an n-byte big-endian unsigned integer.
func (r *mpReader) uintN(n int) uint64 {
	p := r.need(n)
	switch {
	case p == nil:
		return 0
	case n == 1:
		return uint64(p[0])
	case n == 2:
		return uint64(binary.BigEndian.Uint16(p))
	case n == 4:
		return uint64(binary.BigEndian.Uint32(p))
	}
	return binary.BigEndian.Uint64(p)
}

func (r *mpReader) mapLen() int   { return r.headerLen(0x80, 0xde, 0xdf) }
func (r *mpReader) arrayLen() int { return r.headerLen(0x90, 0xdc, 0xdd) }

// headerLen reads the length of a map or array header: the fix form (fix
// in the high nibble, the length in the low one), or the 16- or 32-bit
// form (codes c16, c32).
func (r *mpReader) headerLen(fix, c16, c32 byte) int {
	c := r.byte1()
	switch {
	case c&0xf0 == fix:
		return int(c & 0x0f)
	case c == c16:
		return int(r.uintN(2))
	case c == c32:
		return r.length(r.uintN(4))
	}
	r.fail()
	return 0
}

// length bounds a 32-bit length by what is left to read.
func (r *mpReader) length(n uint64) int {
	if n > uint64(len(r.b)-r.off) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *mpReader) str() []byte {
	c := r.byte1()
	var n int
	switch {
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9:
		n = int(r.uintN(1))
	case c == 0xda:
		n = int(r.uintN(2))
	case c == 0xdb:
		n = r.length(r.uintN(4))
	default:
		r.fail()
		return nil
	}
	return r.need(n)
}

func (r *mpReader) int() int64 {
	c := r.byte1()
	switch {
	case c <= 0x7f:
		return int64(c)
	case c >= 0xe0:
		return int64(int8(c))
	case c == 0xcc:
		return int64(r.uintN(1))
	case c == 0xcd:
		return int64(r.uintN(2))
	case c == 0xce:
		return int64(r.uintN(4))
	case c == 0xcf:
		v := r.uintN(8)
		if v > math.MaxInt64 {
			r.fail()
		}
		return int64(v)
	case c == 0xd0:
		return int64(int8(r.uintN(1)))
	case c == 0xd1:
		return int64(int16(r.uintN(2)))
	case c == 0xd2:
		return int64(int32(r.uintN(4)))
	case c == 0xd3:
		return int64(r.uintN(8))
	}
	r.fail()
	return 0
}

func (r *mpReader) float() float64 {
	c := r.byte1()
	switch c {
	case 0xcb:
		return math.Float64frombits(r.uintN(8))
	case 0xca:
		return float64(math.Float32frombits(uint32(r.uintN(4))))
	}
	r.off-- // an integer value
	if r.err != nil {
		return 0
	}
	return float64(r.int())
}

// time reads a msgpack timestamp (extension type -1).
func (r *mpReader) time() time.Time {
	var n int
	switch r.byte1() {
	case 0xd6:
		n = 4
	case 0xd7:
		n = 8
	case 0xc7:
		n = int(r.uintN(1))
	default:
		r.fail()
		return time.Time{}
	}
	if int8(r.byte1()) != -1 {
		r.fail()
		return time.Time{}
	}
	switch n {
	case 4:
		return time.Unix(int64(r.uintN(4)), 0)
	case 8:
		v := r.uintN(8)
		return time.Unix(int64(v&(1<<34-1)), int64(v>>34))
	case 12:
		ns := r.uintN(4)
		return time.Unix(int64(r.uintN(8)), int64(ns))
	}
	r.fail()
	return time.Time{}
}

// maxDepth bounds the nesting skip follows.
const maxDepth = 32

// skip passes over one value of any type.
func (r *mpReader) skip() { r.skipValue(0) }

func (r *mpReader) skipValue(depth int) {
	c := r.byte1()
	switch {
	case r.err != nil:
	case depth > maxDepth:
		r.fail()
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
	case c&0xf0 == 0x80:
		r.skipN(2*int(c&0x0f), depth)
	case c&0xf0 == 0x90:
		r.skipN(int(c&0x0f), depth)
	case c&0xe0 == 0xa0:
		r.need(int(c & 0x1f))
	case c == 0xcc || c == 0xd0:
		r.need(1)
	case c == 0xcd || c == 0xd1:
		r.need(2)
	case c == 0xce || c == 0xd2 || c == 0xca:
		r.need(4)
	case c == 0xcf || c == 0xd3 || c == 0xcb:
		r.need(8)
	case c == 0xd9 || c == 0xc4:
		r.need(int(r.uintN(1)))
	case c == 0xda || c == 0xc5:
		r.need(int(r.uintN(2)))
	case c == 0xdb || c == 0xc6:
		r.need(r.length(r.uintN(4)))
	case c == 0xd4, c == 0xd5, c == 0xd6, c == 0xd7, c == 0xd8:
		r.need(1 + 1<<(c-0xd4))
	case c == 0xc7:
		r.need(1 + int(r.uintN(1)))
	case c == 0xc8:
		r.need(1 + int(r.uintN(2)))
	case c == 0xc9:
		r.need(1 + r.length(r.uintN(4)))
	case c == 0xdc:
		r.skipN(int(r.uintN(2)), depth)
	case c == 0xdd:
		r.skipN(r.length(r.uintN(4)), depth)
	case c == 0xde:
		r.skipN(2*int(r.uintN(2)), depth)
	case c == 0xdf:
		r.skipN(2*r.length(r.uintN(4)), depth)
	default:
		r.fail() // 0xc1 is never used
	}
}

func (r *mpReader) skipN(n, depth int) {
	for i := 0; i < n && r.err == nil; i++ {
		r.skipValue(depth + 1)
	}
}
