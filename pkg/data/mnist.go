package data

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/gorch/gorch/pkg/errs"
)

// FashionMNISTDir is where the Debian package dataset-fashion-mnist
// installs Fashion-MNIST (apt-get install -y dataset-fashion-mnist).
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// LoadMNIST loads split "train" or "test" of MNIST or Fashion-MNIST from
// dir, which holds the standard files train-images-idx3-ubyte.gz,
// train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and
// t10k-labels-idx1-ubyte.gz (uncompressed files without the .gz suffix are
// used when the compressed ones are absent). X is [N, 1, rows, cols]
// ([N, 1, 28, 28]) with pixels scaled to [0, 1]; Y is [N] with labels 0..9.
// Use Flatten for [N, 784] inputs and MeanStd/Normalize to standardise.
//
// An unknown split is an errs.Argument error. A missing file is an
// errs.Data error wrapping the file-system error (errors.Is(err,
// fs.ErrNotExist) holds); a truncated or corrupt file, a label outside
// 0..9, or image and label files of different lengths are errs.Data errors.
func LoadMNIST(dir, split string) (*TensorDataset, error) {
	const op = "data.LoadMNIST"
	var prefix string
	switch split {
	case "train":
		prefix = "train"
	case "test":
		prefix = "t10k"
	default:
		return nil, errs.New(errs.Argument, op, "unknown split %q; want \"train\" or \"test\"", split)
	}
	type result struct {
		idx *IDX
		err error
	}
	// Decode labels concurrently with the (much larger) images.
	lc := make(chan result, 1)
	go func() {
		idx, err := readIDXFile(op, filepath.Join(dir, prefix+"-labels-idx1-ubyte"))
		lc <- result{idx, err}
	}()
	img, ierr := readIDXFile(op, filepath.Join(dir, prefix+"-images-idx3-ubyte"))
	lr := <-lc
	if ierr != nil {
		return nil, ierr
	}
	if lr.err != nil {
		return nil, lr.err
	}
	lab := lr.idx
	if len(img.Dims) != 3 {
		return nil, errs.New(errs.Data, op, "image file has %d dimensions %v; want 3 [N, rows, cols]", len(img.Dims), img.Dims)
	}
	if len(lab.Dims) != 1 {
		return nil, errs.New(errs.Data, op, "label file has %d dimensions %v; want 1 [N]", len(lab.Dims), lab.Dims)
	}
	n, rows, cols := img.Dims[0], img.Dims[1], img.Dims[2]
	if n != lab.Dims[0] {
		return nil, errs.New(errs.Data, op, "%d images but %d labels in split %q", n, lab.Dims[0], split)
	}
	if n == 0 || rows == 0 || cols == 0 {
		return nil, errs.New(errs.Data, op, "empty image file of dimensions %v", img.Dims)
	}
	var scale [256]float32
	for i := range scale {
		scale[i] = float32(i) / 255
	}
	x := make([]float32, len(img.Data))
	parallelChunks(len(x), func(lo, hi int) {
		for i, b := range img.Data[lo:hi] {
			x[lo+i] = scale[b]
		}
	})
	y := make([]float32, n)
	for i, b := range lab.Data {
		if b > 9 {
			return nil, errs.New(errs.Data, op, "label %d of sample %d is outside 0..9", b, i)
		}
		y[i] = float32(b)
	}
	return finish(op, x, []int{n, 1, rows, cols}, y, []int{n})
}

// readIDXFile reads path+".gz", or path when that does not exist.
func readIDXFile(op, path string) (*IDX, error) {
	f, err := os.Open(path + ".gz")
	if errors.Is(err, fs.ErrNotExist) {
		if g, err2 := os.Open(path); err2 == nil {
			f, err = g, nil
		}
	}
	if err != nil {
		return nil, errs.Wrap(errs.Data, op, err, "dataset file missing or unreadable (for Fashion-MNIST: apt-get install -y dataset-fashion-mnist)")
	}
	defer f.Close()
	idx, err := readIDX(f, decodedSizeHint(f))
	if err != nil {
		return nil, errs.Wrap(errs.Data, op, err, "%s", f.Name())
	}
	return idx, nil
}

// decodedSizeHint returns the size f decodes to: the ISIZE trailer of a
// gzip file (its uncompressed size modulo 2^32), or the size of a raw file;
// 0 if unknown. It only sizes buffers; the data are verified as read.
func decodedSizeHint(f *os.File) int64 {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0
	}
	var b [4]byte
	if _, err := f.ReadAt(b[:2], 0); err != nil {
		return 0
	}
	if b[0] != 0x1f || b[1] != 0x8b {
		return st.Size()
	}
	if st.Size() < 18 {
		return 0
	}
	if _, err := f.ReadAt(b[:], st.Size()-4); err != nil {
		return 0
	}
	// Deflate expands at most 1032:1, which bounds a corrupt trailer's claim.
	return min(int64(binary.LittleEndian.Uint32(b[:])), 1032*st.Size())
}

// parallelChunks calls f on disjoint ranges covering [0, n), using up to
// GOMAXPROCS goroutines for large n.
func parallelChunks(n int, f func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n/(1<<20)+1)
	if workers <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	step := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += step {
		hi := min(lo+step, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}
