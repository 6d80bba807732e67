package cluster

import (
	"errors"
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/pkg/errs"
)

func TestCheckLengths(t *testing.T) {
	var valid [][]byte
	for typ, v := range sampleMessages() {
		b, err := Encode(typ, v)
		if err != nil {
			t.Fatal(err)
		}
		valid = append(valid, b)
	}
	for _, v := range []any{nil, true, -1, 300, int64(-1 << 40), 1.5, float32(2), "", []byte{1, 2}, []int{1, 2, 3},
		map[string]int{"a": 1}, make([]int, 70000), string(make([]byte, 300))} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		valid = append(valid, b)
	}
	for _, b := range valid {
		if err := checkLengths(b); err != nil {
			t.Errorf("checkLengths(%x...) = %v; want nil", b[:min(len(b), 16)], err)
		}
		for cut := 0; cut < len(b); cut += 1 + len(b)/50 {
			if err := checkLengths(b[:cut]); err == nil {
				t.Errorf("checkLengths(%x... cut at %d of %d) = nil; want an error", b[:min(cut, 16)], cut, len(b))
			}
		}
	}
	bad := []struct {
		name string
		b    []byte
		want error
	}{
		{"array32 of 2^32-1", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, errTooLong},
		{"map32 of 2^31", []byte{0xdf, 0x80, 0, 0, 0, 1, 2}, errTooLong},
		{"bin32 of 1 GB", []byte{0xc6, 0x40, 0, 0, 0, 1}, errTooLong},
		{"str16 past the end", []byte{0xda, 0, 3, 'a', 'b'}, errTooLong},
		{"ext32 past the end", []byte{0xc9, 0, 0, 0, 9, 1, 2}, errTooLong},
		{"array16 longer than what is left", []byte{0x92, 0xdc, 0, 3, 1, 2}, errTooLong},
		{"0xc1", []byte{0xc1}, errBadCode},
		{"length cut", []byte{0xdd, 0xff}, errTruncated},
		{"empty", nil, errTruncated},
	}
	for _, c := range bad {
		if err := checkLengths(c.b); !errors.Is(err, c.want) {
			t.Errorf("checkLengths(%s) = %v; want %v", c.name, err, c.want)
		}
	}
}

// TestHugeDeclaredSliceRefused is the regression test of the crash
// FuzzWireDecode found: a metric batch whose points array declares 2^32-1
// elements made msgpack v5.4 allocate them all before reading one. It
// must be a dead-letter error that allocates next to nothing.
func TestHugeDeclaredSliceRefused(t *testing.T) {
	body := []byte{0x81, 0xa6, 'p', 'o', 'i', 'n', 't', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}
	msg, err := msgpack.Marshal(&Envelope{V: WireVersion, Type: TypeMetricBatch, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var mb MetricBatch
	err = Decode(msg, TypeMetricBatch, &mb)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errs.Cluster) || !errors.Is(err, errTooLong) {
		t.Errorf("Decode = %v; want a cluster error wrapping %v", err, errTooLong)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("Decode allocated %d bytes; want under 1 MiB", got)
	}
}
