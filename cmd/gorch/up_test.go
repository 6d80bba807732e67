package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/train"
)

// TestUpDemo runs the built `gorch up --demo` with a short sweep (the
// real one trains 300 steps per run): it must exit 0 with every run
// succeeded, a complete final summary and a checkpoint per run in the data
// dir. The records it leaves serve `gorch logs` and `gorch ckpt pull`.
func TestUpDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 4 Fashion-MNIST runs")
	}
	t.Setenv("GORCH_S3_ENDPOINT", "")
	t.Setenv("GORCH_S3_BUCKET", "")
	bin := buildGorch(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "up", "--demo", "--demo-steps", "30", "--nats-port", "0", "--data-dir", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gorch up --demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !regexp.MustCompile(`level=INFO msg=ready nats=nats://127\.0\.0\.1:\d+ `).MatchString(stderr.String()) {
		t.Errorf("stderr has no ready line with the NATS URL:\n%s", stderr.String())
	}
	var ids []string
	for _, line := range strings.Split(stdout.String(), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.HasPrefix(f[1], "demo-") {
			ids = append(ids, f[0])
			if f[4] != "succeeded" {
				t.Errorf("results row %q: want status succeeded", line)
			}
		}
	}
	if len(ids) != 4 || !strings.Contains(stdout.String(), "all 4 runs succeeded") {
		t.Fatalf("results table has %d runs, want 4 all succeeded:\n%s", len(ids), stdout.String())
	}
	store, err := experiment.NewLocalStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		s, err := experiment.NewReader(store).GetSummary(ctx, id)
		if err != nil || s.Status != experiment.StatusSucceeded || !s.Complete || s.Metrics["eval/accuracy"].Count == 0 {
			t.Errorf("run %s summary: status %s complete %v eval/accuracy count %d, err %v; want succeeded, complete, evaluated",
				id, s.Status, s.Complete, s.Metrics["eval/accuracy"].Count, err)
		}
		if _, err := train.NewCheckpoints(store, id, 1).Pull(ctx, 30); err != nil {
			t.Errorf("run %s: checkpoint of step 30: %v", id, err)
		}
	}

	// The cluster's NATS store outlives the process: serve it again for
	// `gorch logs`.
	ns, err := cluster.StartEmbedded(cluster.EmbeddedOptions{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	t.Run("logs", func(t *testing.T) {
		for _, args := range [][]string{{"logs", ids[0]}, {"logs", "-f", ids[0]}} {
			out, _, err := runCLI(t, append(args, "--nats", ns.ClientURL())...)
			if err != nil {
				t.Fatalf("gorch %v: %v", args, err)
			}
			if !regexp.MustCompile(`(?m)^30 eval/accuracy 0\.\d+$`).MatchString(out) || !regexp.MustCompile(`(?m)^1 train/loss \d`).MatchString(out) {
				t.Errorf("gorch %v printed no step-30 eval/accuracy or step-1 train/loss:\n%s", args, out)
			}
		}
		_, _, err := runCLI(t, "logs", "no-such-run", "--nats", ns.ClientURL())
		wantOneLineErr(t, []string{"logs", "no-such-run"}, err, "run no-such-run not found")
	})

	t.Run("ckpt pull", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "model.rtch")
		out, _, err := runCLI(t, "ckpt", "pull", ids[1], "-o", file, "--data-dir", dir)
		if err != nil || out != file+": ok (step 30, "+sizeOf(t, file)+" bytes)\n" {
			t.Fatalf("gorch ckpt pull = %q, %v", out, err)
		}
		if _, err := verifyFile(file); err != nil {
			t.Errorf("pulled file: %v", err)
		}
		cases := []struct {
			args []string
			want string
		}{
			{[]string{"ckpt", "pull", "no-such-run", "-o", file}, "run no-such-run not found"},
			{[]string{"ckpt", "pull", ids[1], "--step", "7", "-o", file}, "has no checkpoint at step 7"},
			{[]string{"ckpt", "pull", ids[1]}, `"output" not set`},
		}
		for _, c := range cases {
			_, _, err := runCLI(t, append(c.args, "--data-dir", dir)...)
			wantOneLineErr(t, c.args, err, c.want)
		}
		// A corrupt object is refused and FILE is left alone.
		keys, err := store.List(ctx, "runs/"+ids[1]+"/checkpoints/")
		if err != nil {
			t.Fatal(err)
		}
		key := ""
		for _, k := range keys {
			if strings.HasSuffix(k, "/step-000000000030.rtch") {
				key = k
			}
		}
		b, err := store.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := store.Put(ctx, key, b); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(file)
		args := []string{"ckpt", "pull", ids[1], "-o", file, "--data-dir", dir}
		_, _, err = runCLI(t, args...)
		wantOneLineErr(t, args, err, "step-000000000030.rtch")
		if after, _ := os.ReadFile(file); !bytes.Equal(before, after) {
			t.Errorf("a failed pull changed %s", file)
		}
	})
}

func sizeOf(t *testing.T, path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(fi.Size(), 10)
}

func TestUpBadInput(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"up", "--workers", "0", "--data-dir", dir}, "--workers and --slots must be at least 1"},
		{[]string{"up", "--nats-port", port, "--data-dir", dir}, "127.0.0.1:" + port + " is taken"},
		{[]string{"up", "--nats-port", "-1", "--data-dir", dir}, "--nats-port -1"},
	}
	for _, c := range cases {
		_, _, err := runCLI(t, c.args...)
		wantOneLineErr(t, c.args, err, c.want)
	}
}
