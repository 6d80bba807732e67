package experiment

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

var le = binary.LittleEndian

// reseal recomputes the preamble, header and footer checksums of b (in
// place) from its preamble fields, so a test can reach the checks behind
// them. It tolerates nonsense fields.
func reseal(b []byte) []byte {
	if len(b) < preambleSize+footerSize {
		return b
	}
	if hl := le.Uint64(b[16:]); hl <= uint64(len(b)-preambleSize) {
		le.PutUint32(b[40:], crc32.Checksum(b[preambleSize:preambleSize+hl], castagnoli))
	}
	le.PutUint32(b[44:], crc32.Checksum(b[:44], castagnoli))
	f := b[len(b)-footerSize:]
	copy(f, marshalFooter(uint64(len(b)), le.Uint32(b[40:]), le.Uint32(b[44:])))
	return b
}

// withHeader rebuilds file b around a new header, moving the data section.
func withHeader(b, header []byte) []byte {
	dataOff, dataLen := le.Uint64(b[24:]), le.Uint64(b[32:])
	out := append([]byte(nil), b[:preambleSize]...)
	out = append(out, header...)
	newOff := alignUp(int64(len(out)), dataAlign)
	out = append(out, make([]byte, newOff-int64(len(out)))...)
	out = append(out, b[dataOff:dataOff+dataLen]...)
	out = append(out, make([]byte, footerSize)...)
	le.PutUint64(out[16:], uint64(len(header)))
	le.PutUint64(out[24:], uint64(newOff))
	return reseal(out)
}

// editHeader applies f to the decoded header JSON (numbers kept exact) and
// rebuilds b around the result.
func editHeader(t testing.TB, b []byte, f func(h map[string]any)) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b[preambleSize : preambleSize+le.Uint64(b[16:])]))
	dec.UseNumber()
	var h map[string]any
	if err := dec.Decode(&h); err != nil {
		t.Fatal(err)
	}
	f(h)
	nh, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return withHeader(b, nh)
}

func tensorRow(h map[string]any, i int) map[string]any {
	return h["tensors"].([]any)[i].(map[string]any)
}

func corruptionCases(t testing.TB) []struct {
	name string
	file []byte
	want Reason
} {
	good := encode(t, sampleCheckpoint(t))
	dataOff := int(le.Uint64(good[24:]))
	n := len(good)
	info, err := VerifyCheckpoint(bytes.NewReader(good), int64(n))
	if err != nil {
		t.Fatal(err)
	}
	last := info.Tensors[len(info.Tensors)-1]
	lastByte := dataOff + int(last.Offset+last.NBytes) - 1
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	set16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint16(b[off:], v); return b }
	}
	set64 := func(off int, v uint64, seal bool) func([]byte) []byte {
		return func(b []byte) []byte {
			le.PutUint64(b[off:], v)
			if seal {
				reseal(b)
			}
			return b
		}
	}
	flip := func(off int) func([]byte) []byte { return func(b []byte) []byte { b[off] ^= 0x10; return b } }
	edit := func(f func(h map[string]any)) []byte { return editHeader(t, good, f) }
	type tc = struct {
		name string
		file []byte
		want Reason
	}
	cases := []tc{
		{"magic flipped", mod(flip(0)), ReasonBadMagic},
		{"magic zeroed", mod(func(b []byte) []byte { copy(b, "\x00\x00\x00\x00"); return b }), ReasonBadMagic},
		{"major 2", mod(set16(4, 2)), ReasonUnsupportedVersion},
		{"major 0", mod(set16(4, 0)), ReasonUnsupportedVersion},
		{"minor flipped unsealed", mod(flip(6)), ReasonHeaderChecksum},
		{"feature flag", mod(func(b []byte) []byte { b[8] = 1; return reseal(b) }), ReasonUnsupportedVersion},
		{"preamble CRC flipped", mod(flip(45)), ReasonHeaderChecksum},
		{"reserved preamble byte", mod(func(b []byte) []byte { b[60] = 1; return reseal(b) }), ReasonBadHeader},
		{"alignment 48", mod(func(b []byte) []byte { le.PutUint32(b[12:], 48); return reseal(b) }), ReasonBadHeader},
		{"header length over cap", mod(set64(16, MaxCheckpointHeader+1, true)), ReasonHeaderTooLarge},
		{"header length 2^63", mod(set64(16, 1<<63, true)), ReasonHeaderTooLarge},
		{"header length field flipped unsealed", mod(flip(17)), ReasonHeaderChecksum},
		{"header length past data offset", mod(set64(16, uint64(dataOff), true)), ReasonBadHeader},
		{"zero header length", mod(set64(16, 0, true)), ReasonBadHeader},
		{"data offset unaligned", mod(set64(24, uint64(dataOff+1), true)), ReasonBadHeader},
		{"data length past end", mod(set64(32, uint64(alignUp(int64(n), dataAlign)), true)), ReasonTruncated},
		{"data length 2^64-64", mod(set64(32, ^uint64(63), true)), ReasonTruncated},
		{"data length short", mod(set64(32, uint64(n-dataOff-footerSize-dataAlign), true)), ReasonMissingFooter},
		{"header JSON byte flipped", mod(flip(preambleSize + 5)), ReasonHeaderChecksum},
		{"header CRC flipped", mod(flip(41)), ReasonHeaderChecksum},
		{"header padding not zero", mod(func(b []byte) []byte { b[dataOff-1] = 1; return b }), ReasonBadHeader},
		{"tensor byte flipped", mod(flip(dataOff + 3)), ReasonTensorChecksum},
		{"last tensor byte flipped", mod(flip(lastByte)), ReasonTensorChecksum},
		{"tensor padding not zero", mod(func(b []byte) []byte { b[dataOff+30] = 1; return b }), ReasonBadTensorTable},
		{"footer magic flipped", mod(flip(n - footerSize)), ReasonMissingFooter},
		{"footer length flipped", mod(flip(n - footerSize + 8)), ReasonMissingFooter},
		{"footer CRC flipped", mod(flip(n - 1)), ReasonMissingFooter},
		{"footer zeroed", mod(func(b []byte) []byte { clear(b[n-footerSize:]); return b }), ReasonMissingFooter},
		{"footer of another file", mod(func(b []byte) []byte {
			copy(b[n-footerSize:], marshalFooter(uint64(n), 1, 2))
			return b
		}), ReasonMissingFooter},
		{"trailing garbage", append(append([]byte(nil), good...), 0), ReasonMissingFooter},
		{"footer missing", good[:n-footerSize], ReasonTruncated},
		{"not JSON", withHeader(good, []byte("{not json")), ReasonBadHeader},
		{"JSON array", withHeader(good, []byte("[]")), ReasonBadHeader},
		{"duplicate JSON key", withHeader(good, []byte(`{"format":"rtch","format":"rtch","tensors":[]}`)), ReasonBadHeader},
		{"wrong format", edit(func(h map[string]any) { h["format"] = "safetensors" }), ReasonBadHeader},
		{"negative step", edit(func(h map[string]any) { h["train"].(map[string]any)["step"] = -1 }), ReasonBadHeader},
		{"overlapping tensors", edit(func(h map[string]any) { tensorRow(h, 1)["offset"] = 0 }), ReasonBadTensorTable},
		{"gap between tensors", edit(func(h map[string]any) { tensorRow(h, 1)["offset"] = 128 }), ReasonBadTensorTable},
		{"unaligned offset", edit(func(h map[string]any) { tensorRow(h, 1)["offset"] = 65 }), ReasonBadTensorTable},
		{"negative offset", edit(func(h map[string]any) { tensorRow(h, 0)["offset"] = -64 }), ReasonBadTensorTable},
		{"wrong byte length", edit(func(h map[string]any) { tensorRow(h, 0)["nbytes"] = 20 }), ReasonBadTensorTable},
		{"shape disagrees with bytes", edit(func(h map[string]any) { tensorRow(h, 0)["shape"] = []int{3, 3} }), ReasonBadTensorTable},
		{"shape overflow", edit(func(h map[string]any) {
			tensorRow(h, 0)["shape"] = []int64{1 << 40, 1 << 40, 1 << 40}
		}), ReasonBadTensorTable},
		{"shape overflow to small product", edit(func(h map[string]any) {
			tensorRow(h, 0)["shape"] = []uint64{1 << 32, 1 << 32, 6}
		}), ReasonBadTensorTable},
		{"huge zero-size shape", edit(func(h map[string]any) {
			tensorRow(h, 3)["shape"] = []int64{0, 1 << 40, 1 << 40}
		}), ReasonBadTensorTable},
		{"shape not an integer", edit(func(h map[string]any) { tensorRow(h, 0)["shape"] = []float64{2.5, 3} }), ReasonBadHeader},
		{"shape dim beyond int64", edit(func(h map[string]any) { tensorRow(h, 0)["shape"] = []json.Number{"1e30"} }), ReasonBadHeader},
		{"negative dimension", edit(func(h map[string]any) { tensorRow(h, 0)["shape"] = []int{-2, -3} }), ReasonBadTensorTable},
		{"rank too high", edit(func(h map[string]any) { tensorRow(h, 0)["shape"] = make([]int, 65) }), ReasonBadTensorTable},
		{"duplicate names", edit(func(h map[string]any) { tensorRow(h, 1)["name"] = "0.weight" }), ReasonBadTensorTable},
		{"empty name", edit(func(h map[string]any) { tensorRow(h, 1)["name"] = "" }), ReasonBadTensorTable},
		{"long name", edit(func(h map[string]any) { tensorRow(h, 1)["name"] = strings.Repeat("x", 2000) }), ReasonBadTensorTable},
		{"unknown dtype", edit(func(h map[string]any) { tensorRow(h, 0)["dtype"] = "bf16" }), ReasonBadTensorTable},
		{"unknown group", edit(func(h map[string]any) { tensorRow(h, 0)["group"] = "buffers" }), ReasonBadTensorTable},
		{"tensor CRC in table", edit(func(h map[string]any) { tensorRow(h, 0)["crc32c"] = 1 }), ReasonTensorChecksum},
		{"tensor missing from table", edit(func(h map[string]any) {
			ts := h["tensors"].([]any)
			h["tensors"] = ts[:len(ts)-1]
		}), ReasonBadTensorTable},
		{"dangling optimizer buffer", edit(func(h map[string]any) {
			p := h["optimizer"].(map[string]any)["params"].(map[string]any)["0.bias"].(map[string]any)
			p["buffers"].(map[string]any)["exp_avg"] = "nope"
		}), ReasonBadTensorTable},
		{"optimizer buffer names a parameter", edit(func(h map[string]any) {
			p := h["optimizer"].(map[string]any)["params"].(map[string]any)["0.bias"].(map[string]any)
			p["buffers"].(map[string]any)["exp_avg"] = "0.bias"
		}), ReasonBadTensorTable},
		{"optimizer tensor unreferenced", edit(func(h map[string]any) { delete(h, "optimizer") }), ReasonBadTensorTable},
	}
	for _, cut := range []int{0, 1, 3, 4, 7, 8, 40, 63, 64, 65, 95, 96, 200, dataOff - 1, dataOff, dataOff + 1, dataOff + 100,
		n - footerSize - 1, n - footerSize + 1, n - 8, n - 1} {
		cases = append(cases, tc{"truncated at " + itoa(cut), good[:cut], ReasonTruncated})
	}
	return cases
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestCheckpointCorruption(t *testing.T) {
	for _, c := range corruptionCases(t) {
		t.Run(c.name, func(t *testing.T) {
			_, err := decode(c.file)
			var ce *CorruptionError
			if !errors.Is(err, errs.Checkpoint) || !errors.As(err, &ce) || ce.Reason != c.want || !errors.Is(err, c.want) {
				t.Fatalf("DecodeCheckpoint(%s) = %v, want reason %q", c.name, err, c.want)
			}
			_, verr := VerifyCheckpoint(bytes.NewReader(c.file), int64(len(c.file)))
			if !errors.Is(verr, c.want) {
				t.Errorf("VerifyCheckpoint(%s) = %v, want reason %q", c.name, verr, c.want)
			}
		})
	}
}

// TestCheckpointEveryTruncation cuts a valid file at every length.
func TestCheckpointEveryTruncation(t *testing.T) {
	good := encode(t, sampleCheckpoint(t))
	for cut := range len(good) {
		if _, err := decode(good[:cut]); !errors.Is(err, ReasonTruncated) {
			t.Fatalf("DecodeCheckpoint(first %d of %d bytes) = %v, want truncated", cut, len(good), err)
		}
	}
}

// TestCheckpointEveryBitFlip flips one bit of every byte: each must fail
// with a checkpoint error, never load.
func TestCheckpointEveryBitFlip(t *testing.T) {
	good := encode(t, sampleCheckpoint(t))
	b := append([]byte(nil), good...)
	for i := range b {
		b[i] ^= 1 << (i % 8)
		if _, err := decode(b); !errors.Is(err, errs.Checkpoint) {
			t.Fatalf("DecodeCheckpoint(bit flipped in byte %d) = %v, want a checkpoint error", i, err)
		}
		b[i] = good[i]
	}
}

func TestCheckpointNewerMinorLoads(t *testing.T) {
	ck := sampleCheckpoint(t)
	ck.ModelConfig = json.RawMessage(`{"act":"relu","arch":"mlp","hidden":[2]}`) // editHeader sorts keys
	b := encode(t, ck)
	le.PutUint16(b[6:], 7)
	b = editHeader(t, reseal(b), func(h map[string]any) { h["added_in_1_7"] = map[string]any{"x": 1} })
	got, err := decode(b)
	if err != nil {
		t.Fatalf("DecodeCheckpoint(v1.7) = %v", err)
	}
	assertSame(t, got, ck)
	if info, err := VerifyCheckpoint(bytes.NewReader(b), int64(len(b))); err != nil || info.Minor != 7 {
		t.Errorf("VerifyCheckpoint(v1.7) = %+v, %v", info, err)
	}
}

// errReaderAt fails every read.
type errReaderAt struct{}

func (errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errors.New("EIO") }

func TestCheckpointReadErrors(t *testing.T) {
	if _, err := DecodeCheckpoint(errReaderAt{}, 1000); !errors.Is(err, errs.IO) {
		t.Errorf("DecodeCheckpoint(failing reader) = %v, want errs.IO", err)
	}
	good := encode(t, sampleCheckpoint(t))
	// A size larger than the data fails before any big allocation.
	if _, err := DecodeCheckpoint(bytes.NewReader(good), 1<<50); !errors.Is(err, errs.Checkpoint) {
		t.Errorf("DecodeCheckpoint(size 2^50) = %v, want a checkpoint error", err)
	}
	if _, err := DecodeCheckpoint(bytes.NewReader(good), -1); !errors.Is(err, errs.Argument) {
		t.Errorf("DecodeCheckpoint(size -1) = %v, want errs.Argument", err)
	}
}
