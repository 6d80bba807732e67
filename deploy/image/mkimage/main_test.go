package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReproducible builds the same image twice, from files with different dates: the
// archives are byte for byte the same, and the digest printed is the manifest's.
func TestReproducible(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bin")
	if err := os.WriteFile(src, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	var archives [][]byte
	var digests []string
	for i, name := range []string{"a.tar", "b.tar"} {
		if err := os.Chtimes(src, time1(i), time1(i)); err != nil {
			t.Fatal(err)
		}
		o, err := parseFlags([]string{"-o", filepath.Join(dir, name), "-name", "x:1", "-user", "65532", "-entrypoint", "/bin/x",
			"-add", src + ":/bin/x:0755", "-add", dir + "/bin:/usr/share/x/bin:0644"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := build(o)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(o.out)
		if err != nil {
			t.Fatal(err)
		}
		archives, digests = append(archives, b), append(digests, d)
	}
	if !bytes.Equal(archives[0], archives[1]) || digests[0] != digests[1] {
		t.Fatalf("two builds differ: digests %s, %s", digests[0], digests[1])
	}
	tr := tar.NewReader(bytes.NewReader(archives[0]))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("no blob with digest %s in the archive", digests[0])
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "blobs/sha256/"+strings.TrimPrefix(digests[0], "sha256:") {
			b, _ := io.ReadAll(tr)
			if got := fmt.Sprintf("sha256:%x", sha256.Sum256(b)); got != digests[0] || !strings.Contains(string(b), "image.manifest") {
				t.Errorf("blob %s: digest %s, %s; want the manifest", h.Name, got, b)
			}
			return
		}
	}
}

func time1(i int) time.Time { return time.Date(2020+i, 1, 1, 0, 0, 0, 0, time.UTC) }

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-name", "x"},
		{"-o", "x.tar", "-name", "x", "-add", "a:b:0644"},
		{"-o", "x.tar", "-name", "x", "-add", "a:/b:rw"},
		{"-o", "x.tar", "-name", "x", "-add", "/nonexistent:/b:0644"},
	} {
		if _, err := parseFlags(args); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("parseFlags(%q) = %v; want a one-line error", args, err)
		}
	}
}
