package experiment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

// FuzzDecodeCheckpoint feeds arbitrary bytes to the decoder. With fix set,
// the preamble, header and footer checksums are recomputed first, so the
// fuzzer reaches the JSON and tensor-table checks instead of stopping at a
// checksum. The decoder must never panic, must fail only with checkpoint
// errors, must agree with VerifyCheckpoint, and whatever it accepts must
// re-encode to a file that decodes again.
//
// Run it with a short minimisation budget, or the fuzzer spends its 60 s
// default minimising each new input and looks hung on 2 cores:
//
//	go test -run '^$' -fuzz FuzzDecodeCheckpoint -fuzztime 60s -fuzzminimizetime 1x ./pkg/experiment/
//
// (make fuzz). Inputs found this way are kept as the regression corpus in
// testdata/fuzz/FuzzDecodeCheckpoint.
func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(encode(f, sampleCheckpoint(f)), false)
	for _, name := range []string{"checkpoint_v1_small.rtch", "checkpoint_v1_minimal.rtch"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b, false)
		}
	}
	for _, c := range corruptionCases(f) {
		f.Add(c.file, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			b = reseal(append([]byte(nil), b...))
		}
		ck, err := decode(b)
		_, verr := VerifyCheckpoint(bytes.NewReader(b), int64(len(b)))
		if (err == nil) != (verr == nil) {
			t.Fatalf("DecodeCheckpoint = %v but VerifyCheckpoint = %v", err, verr)
		}
		if err != nil {
			var ce *CorruptionError
			if !errors.Is(err, errs.Checkpoint) || !errors.As(err, &ce) {
				t.Fatalf("DecodeCheckpoint = %v, want a *CorruptionError", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := EncodeCheckpoint(&buf, ck); err != nil {
			t.Fatalf("re-encoding an accepted checkpoint: %v", err)
		}
		if _, err := decode(buf.Bytes()); err != nil {
			t.Fatalf("decoding a re-encoded checkpoint: %v", err)
		}
	})
}
