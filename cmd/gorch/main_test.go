package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorch/gorch/internal/testutil"
)

// TestMain lets the test binary stand in for gorch as the attempt process
// of a `gorch worker` or `gorch up` that a test runs in this process
// (they start os.Executable() with "worker attempt").
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "worker" && os.Args[2] == "attempt" {
		main()
		return
	}
	os.Exit(m.Run())
}

// buildGorch compiles the CLI once per test binary.
func buildGorch(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gorch")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBadInputOneLine checks that bad flags and a missing dataset give one
// line on stderr, exit status 1 and no stack trace.
func TestBadInputOneLine(t *testing.T) {
	testutil.Long(t, "runs gorch commands as processes")
	bin := buildGorch(t)
	empty := t.TempDir()
	store := t.TempDir()
	s3 := []string{"--s3-endpoint", "127.0.0.1:1", "--s3-bucket", "b", "--s3-access-key", "a"}
	emptyFile := filepath.Join(empty, "key")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"train", "--epochs", "0"}, `field "epochs"`},
		{[]string{"train", "--model", "resnet"}, `unknown model "resnet"`},
		{[]string{"train", "--batch-size", "x"}, `invalid argument "x"`},
		{[]string{"train", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"train", "extra"}, `unknown command "extra"`},
		{[]string{"train", "--dataset-dir", empty, "--epochs", "1"}, "apt-get install -y dataset-fashion-mnist"},
		{[]string{"nope"}, `unknown command "nope"`},
		// A cluster client has no record store: --data-dir (appended below) is refused, not ignored.
		{[]string{"submit", "spec.yaml"}, "gorch submit: unknown flag: --data-dir"},
		{[]string{"status"}, "gorch status: unknown flag: --data-dir"},
		{[]string{"train", "--config", "/nonexistent/spec.yaml"}, "no such file or directory"},
		{[]string{"train", "--resume", "20990101T000000.000000Z-00000000"}, "20990101T000000.000000Z-00000000"},
		{[]string{"train", "--dataset", "blobs", "--steps", "5", "--epochs", "2", "--optimizer", "rmsprop"}, `unknown optimizer "rmsprop"`},
		{append([]string{"runs", "list", "--s3-secret-key", "k"}, s3...), "--s3-secret-key would show the key to every user of this machine (ps)"},
		{append([]string{"runs", "list", "--s3-secret-key-file", "/nonexistent/key"}, s3...), "--s3-secret-key-file: open /nonexistent/key"},
		{append([]string{"runs", "list", "--s3-secret-key-file", emptyFile}, s3...), "--s3-secret-key-file " + emptyFile + " is empty"},
	}
	for _, c := range cases {
		cmd := exec.Command(bin, append(c.args, "--data-dir", store)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("gorch %v: err = %v, want exit status 1", c.args, err)
		}
		msg := stderr.String()
		if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "gorch: ") {
			t.Errorf("gorch %v: stderr = %q, want one line starting with \"gorch: \"", c.args, msg)
		}
		if !strings.Contains(msg, c.want) {
			t.Errorf("gorch %v: stderr = %q, want it to mention %q", c.args, msg, c.want)
		}
		if strings.Contains(msg, "goroutine ") || stdout.Len() != 0 {
			t.Errorf("gorch %v: stack trace or stdout output: %q / %q", c.args, msg, stdout.String())
		}
	}
}

// TestTrainSmoke runs a short training through the binary and checks the
// final line on stdout.
func TestTrainSmoke(t *testing.T) {
	testutil.Long(t, "runs gorch commands as processes")
	if _, err := os.Stat("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"); err != nil {
		t.Fatalf("Fashion-MNIST missing: apt-get install -y dataset-fashion-mnist (%v)", err)
	}
	bin := buildGorch(t)
	out, err := exec.Command(bin, "train", "--data-dir", t.TempDir(), "--epochs", "1", "--train-limit", "2048", "--log-every", "8").Output()
	if err != nil {
		t.Fatalf("gorch train: %v", err)
	}
	line := strings.TrimSpace(string(out))
	if !strings.HasPrefix(line, "run ") || !strings.Contains(line, ": test accuracy ") || !strings.Contains(line, "after 32 steps") {
		t.Errorf("final line = %q", line)
	}
}
