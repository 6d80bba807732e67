package experiment

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchCheckpoint is 64 MiB of tensors: 16 of 1024×1024 float32.
func benchCheckpoint(b *testing.B) (*Checkpoint, int64) {
	rng := rand.New(rand.NewPCG(1, 2))
	ck := &Checkpoint{Train: TrainState{Step: 1}}
	for i := range 16 {
		x := make([]float32, 1024*1024)
		for j := range x {
			x[j] = rng.Float32()
		}
		ck.Tensors = append(ck.Tensors, Tensor{Name: "layer." + itoa(i) + ".weight", Shape: []int{1024, 1024}, Data: x})
	}
	return ck, 16 << 22
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
