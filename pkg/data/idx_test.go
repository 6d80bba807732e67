package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

// idxBytes encodes an IDX file of unsigned bytes with the given magic
// dimension count and dims; data is appended as is.
func idxBytes(ndim byte, dims []uint32, data []byte) []byte {
	b := []byte{0, 0, IDXUByte, ndim}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, data...)
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func seqBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestReadIDXRawAndGzip(t *testing.T) {
	raw := idxBytes(3, []uint32{2, 3, 4}, seqBytes(24))
	for name, in := range map[string][]byte{"raw": raw, "gzip": gz(t, raw)} {
		idx, err := ReadIDX(bytes.NewReader(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(idx.Dims, []int{2, 3, 4}) || !bytes.Equal(idx.Data, seqBytes(24)) {
			t.Fatalf("%s: dims %v data %v", name, idx.Dims, idx.Data)
		}
	}
}

func TestReadIDXLarge(t *testing.T) {
	// Larger than the initial read buffer, so the buffer has to grow.
	data := seqBytes(3<<20 + 5)
	idx, err := ReadIDX(bytes.NewReader(gz(t, idxBytes(1, []uint32{uint32(len(data))}, data))))
	if err != nil || !bytes.Equal(idx.Data, data) {
		t.Fatalf("large IDX: %v", err)
	}
}

func TestReadIDXCorrupt(t *testing.T) {
	good := idxBytes(3, []uint32{2, 3, 4}, seqBytes(24))
	gzGood := gz(t, good)
	badCRC := slices.Clone(gzGood)
	badCRC[len(badCRC)-8] ^= 0xff // CRC-32 of the gzip trailer
	badBody := slices.Clone(gzGood)
	badBody[len(badBody)/2] ^= 0x55
	cases := map[string][]byte{
		"empty":                    nil,
		"short magic":              {0, 0},
		"bad magic":                append([]byte{0x12, 0x34, 0x08, 0x03}, good[4:]...),
		"float type":               append([]byte{0, 0, 0x0d, 0x03}, good[4:]...),
		"zero dims":                {0, 0, 0x08, 0},
		"too many dims":            idxBytes(200, []uint32{1}, nil),
		"truncated header":         good[:9],
		"truncated raw":            good[:len(good)-3],
		"trailing data":            append(slices.Clone(good), 1, 2),
		"truncated gzip":           gzGood[:len(gzGood)-12],
		"gzip header only":         gzGood[:10],
		"gzip bad crc":             badCRC,
		"gzip corrupt body":        badBody,
		"huge claim":               idxBytes(3, []uint32{1 << 31, 1 << 31, 1 << 31}, seqBytes(10)),
		"overflow claim":           idxBytes(4, []uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, nil),
		"large claim, little data": idxBytes(1, []uint32{1 << 31}, seqBytes(100)),
	}
	for name, in := range cases {
		idx, err := ReadIDX(bytes.NewReader(in))
		if !errors.Is(err, errs.Data) {
			t.Errorf("%s: got %v, %v; want a data error", name, idx, err)
		}
	}
}

// errReader fails after its data.
type errReader struct{ r io.Reader }

func (e errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, errors.New("device unplugged")
	}
	return n, err
}

func TestReadIDXReaderError(t *testing.T) {
	good := idxBytes(1, []uint32{10}, seqBytes(5))
	_, err := ReadIDX(errReader{bytes.NewReader(good)})
	if !errors.Is(err, errs.Data) || !strings.Contains(err.Error(), "device unplugged") {
		t.Fatalf("got %v", err)
	}
}

// writeMNIST writes an MNIST-style split into dir.
func writeMNIST(t *testing.T, dir, prefix string, images, labels []byte, compress bool) {
	t.Helper()
	suffix := ""
	if compress {
		images, labels = gz(t, images), gz(t, labels)
		suffix = ".gz"
	}
	if err := os.WriteFile(filepath.Join(dir, prefix+"-images-idx3-ubyte"+suffix), images, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, prefix+"-labels-idx1-ubyte"+suffix), labels, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadMNISTSmall(t *testing.T) {
	pix := make([]byte, 3*4*5)
	pix[0], pix[59] = 255, 51
	images := idxBytes(3, []uint32{3, 4, 5}, pix)
	labels := idxBytes(1, []uint32{3}, []byte{9, 0, 4})
	for _, compress := range []bool{true, false} {
		dir := t.TempDir()
		writeMNIST(t, dir, "t10k", images, labels, compress)
		ds, err := LoadMNIST(dir, "test")
		if err != nil {
			t.Fatalf("compress=%v: %v", compress, err)
		}
		if !slices.Equal(ds.X().Shape(), []int{3, 1, 4, 5}) || !slices.Equal(ds.Y().Data(), []float32{9, 0, 4}) {
			t.Fatalf("shapes %v labels %v", ds.X().Shape(), ds.Y().Data())
		}
		if x := ds.X().Data(); x[0] != 1 || x[59] != 0.2 || x[1] != 0 {
			t.Fatalf("pixels %v %v %v", x[0], x[59], x[1])
		}
	}
}

func TestLoadMNISTCorrupt(t *testing.T) {
	images := idxBytes(3, []uint32{3, 4, 5}, make([]byte, 60))
	labels := idxBytes(1, []uint32{3}, []byte{1, 2, 3})
	gzImages := gz(t, images)
	lyingISIZE := slices.Clone(gzImages)
	binary.LittleEndian.PutUint32(lyingISIZE[len(lyingISIZE)-4:], 0xfffffff0)
	cases := []struct {
		name           string
		images, labels []byte
		compress       bool
	}{
		{"truncated gz", gzImages[:len(gzImages)/2], gz(t, labels), false},
		{"truncated raw", images[:40], labels, false},
		{"gzip ISIZE lies", lyingISIZE, gz(t, labels), false},
		{"bad magic", append([]byte{0, 0, 0x08, 0x99}, images[4:]...), labels, true},
		{"wrong dimension count", idxBytes(2, []uint32{3, 20}, make([]byte, 60)), labels, true},
		{"label file with 3 dims", images, idxBytes(3, []uint32{3, 1, 1}, []byte{1, 2, 3}), true},
		{"label count mismatch", images, idxBytes(1, []uint32{4}, []byte{1, 2, 3, 4}), true},
		{"label out of range", images, idxBytes(1, []uint32{3}, []byte{1, 10, 3}), true},
		{"empty", idxBytes(3, []uint32{0, 4, 5}, nil), idxBytes(1, []uint32{0}, nil), true},
	}
	for _, c := range cases {
		dir := t.TempDir()
		writeMNIST(t, dir, "train", c.images, c.labels, c.compress)
		ds, err := LoadMNIST(dir, "train")
		if !errors.Is(err, errs.Data) {
			t.Errorf("%s: got %v, %v; want a data error", c.name, ds, err)
		}
	}
}

func TestLoadMNISTMissing(t *testing.T) {
	_, err := LoadMNIST(t.TempDir(), "train")
	if !errors.Is(err, errs.Data) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing files: %v", err)
	}
	if !strings.Contains(err.Error(), "apt-get install -y dataset-fashion-mnist") {
		t.Fatalf("message lacks the install hint: %v", err)
	}
	// Images present, labels missing.
	dir := t.TempDir()
	writeMNIST(t, dir, "train", idxBytes(3, []uint32{1, 1, 1}, []byte{1}), idxBytes(1, []uint32{1}, []byte{1}), true)
	os.Remove(filepath.Join(dir, "train-labels-idx1-ubyte.gz"))
	if _, err := LoadMNIST(dir, "train"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing labels: %v", err)
	}
	if _, err := LoadMNIST(dir, "validation"); !errors.Is(err, errs.Argument) {
		t.Fatalf("bad split: %v", err)
	}
}
