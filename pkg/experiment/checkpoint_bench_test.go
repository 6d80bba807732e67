package experiment

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/tensor"
)

// benchCheckpoint is 64 MiB of tensors: 16 of 1024×1024 float32.
func benchCheckpoint(b *testing.B) (*Checkpoint, int64) {
	rng := tensor.NewRNG(1)
	td := nn.NewTensorDict()
	for i := range 16 {
		x, err := tensor.Rand(rng, 1024, 1024)
		if err != nil {
			b.Fatal(err)
		}
		td.Set("layer."+itoa(i)+".weight", x)
	}
	return &Checkpoint{Tensors: td, Train: TrainState{Step: 1}}, 16 << 22
}

// BenchmarkCheckpointSave measures SaveCheckpointFile, fsync included.
func BenchmarkCheckpointSave(b *testing.B) {
	ck, n := benchCheckpoint(b)
	path := filepath.Join(b.TempDir(), "bench.rtch")
	b.SetBytes(n)
	for b.Loop() {
		if err := SaveCheckpointFile(path, ck); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckpointLoad measures LoadCheckpointFile from the page cache,
// every checksum verified.
func BenchmarkCheckpointLoad(b *testing.B) {
	ck, n := benchCheckpoint(b)
	path := filepath.Join(b.TempDir(), "bench.rtch")
	if err := SaveCheckpointFile(path, ck); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(n)
	for b.Loop() {
		if _, err := LoadCheckpointFile(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckpointEncode measures EncodeCheckpoint into a file in the
// page cache, without fsync: the encoder's own cost.
func BenchmarkCheckpointEncode(b *testing.B) {
	ck, n := benchCheckpoint(b)
	f, err := os.Create(filepath.Join(b.TempDir(), "bench.rtch"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(n)
	for b.Loop() {
		f.Truncate(0)
		f.Seek(0, 0)
		if err := EncodeCheckpoint(f, ck); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckpointSaveNoSync measures SaveCheckpointFile without its
// two fsyncs: the save "from page cache" (temp file, preallocation,
// encode, rename), apart from the disk.
func BenchmarkCheckpointSaveNoSync(b *testing.B) {
	ck, n := benchCheckpoint(b)
	path := filepath.Join(b.TempDir(), "bench.rtch")
	b.SetBytes(n)
	for b.Loop() {
		if err := saveCheckpointFile(path, ck, false); err != nil {
			b.Fatal(err)
		}
	}
}
