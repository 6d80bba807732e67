package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/experiment"
)

// TestRunsS3 copies the fixture records into a versitygw bucket, under a
// key prefix, and checks that `gorch runs` reads them there as it does
// from --data-dir.
func TestRunsS3(t *testing.T) {
	dir := fixtureStore(t)
	s3 := testutil.StartVersityGW(t)
	ctx := context.Background()
	bucket, err := experiment.NewS3Store(ctx, experiment.S3Config{Endpoint: s3.Endpoint, Bucket: "records",
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Insecure: true, CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := experiment.WithPrefix(bucket, "team-a")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return st.Put(ctx, filepath.ToSlash(rel), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "s3-secret-key")
	if err := os.WriteFile(keyFile, []byte(s3.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s3Args := []string{"--s3-endpoint", s3.Endpoint, "--s3-bucket", "records", "--s3-prefix", "team-a", "--s3-access-key", s3.AccessKey,
		"--s3-secret-key-file", keyFile, "--s3-insecure", "--data-dir", filepath.Join(t.TempDir(), "absent")}
	for _, args := range [][]string{
		{"runs", "list"},
		{"runs", "list", "--json"},
		{"runs", "show", runA},
		{"runs", "compare", runA, runB, "--json"},
	} {
		want := mustRun(t, append(args, "--data-dir", dir)...)
		got := mustRun(t, append(args, s3Args...)...)
		if got != want {
			t.Errorf("gorch %s from S3:\n%s\nwant (from --data-dir):\n%s", strings.Join(args, " "), got, want)
		}
	}
	png := filepath.Join(t.TempDir(), "loss.png")
	mustRun(t, append([]string{"runs", "plot", runA, runB, "--metric", "loss", "-o", png}, s3Args...)...)
	if fi, err := os.Stat(png); err != nil || fi.Size() == 0 {
		t.Errorf("runs plot from S3 wrote %v, %v; want a PNG", fi, err)
	}
	args := append([]string{"runs", "show", "20990101T000000.000000Z-ffffffff"}, s3Args...)
	_, _, err = runCLI(t, args...)
	wantOneLineErr(t, args, err, "not found in s3://records/team-a at "+s3.Endpoint)
}
