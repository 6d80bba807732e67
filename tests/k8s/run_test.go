//go:build k8s

package k8s

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/tests/integration"
)

// eventually calls f until it returns nil or timeout passes, then fails the test with
// f's last error and what more says.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error, more func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v\n%s", what, timeout, err, more())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// runIn runs a command in dir with extra environment and returns its stdout; the error
// carries its stderr.
func runIn(dir string, env []string, name string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env, cmd.Stderr = dir, append(os.Environ(), env...), &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w\n%s", filepath.Base(name), err, stderr.String())
	}
	return out, nil
}

// buildGorch builds the gorch binary the image holds (static, as scripts/image.sh does).
func buildGorch(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gorch")
	cmd := []string{"build", "-trimpath", "-o", bin, "./cmd/gorch"}
	out, err := runIn(root, []string{"CGO_ENABLED=0"}, "go", cmd...)
	if err != nil {
		t.Fatalf("go build ./cmd/gorch: %v\n%s", err, out)
	}
	return bin
}

// sweepSpec is the launcher test's sweep: 4 small runs (blobs, an MLP), each
// checkpointed three times.
const (
	sweepSteps = 60
	sweepCkpt  = 20
	sweepSpec  = `name: k8s
base:
  model: {name: mlp, hidden: [32]}
  dataset: {name: blobs, size: 512}
  optimizer: {name: adam, lr: 0.01}
  steps: 60
  batch_size: 32
  checkpoint_every: 20
  eval_every: 100000
  seed: 1
grid:
  optimizer.lr: [0.01, 0.003]
  batch_size: [16, 32]
`
)

// TestLauncher runs the chart's prod render (3 NATS servers, 2 coordinators, 2 workers
// from the ScaledObject's minimum, the collector) as processes against versitygw (the
// workers in the image itself, under podman, as Pod Security "restricted" has them), submits
// a 4-run sweep with `gorch sweep` through the NATS Service, and checks with the
// integration checker that every run succeeded and nothing was lost. Then every pod gets
// SIGTERM and must exit cleanly within its terminationGracePeriodSeconds.
func TestLauncher(t *testing.T) {
	gorch := buildGorch(t)
	natsBin := testutil.ToolPath("nats-server", testutil.NATSServerVersion)
	if natsBin == "" {
		t.Fatalf("nats-server %s not found; install it with: %s", testutil.NATSServerVersion, testutil.ToolInstall)
	}
	s3 := testutil.StartVersityGW(t)
	const bucket = "gorch-k8s"
	objs := parse(t, render(t, "helm-prod",
		"--set", "secrets.create=true",
		"--set", "secrets.s3.accessKey="+s3.AccessKey, "--set", "secrets.s3.secretKey="+s3.SecretKey,
		"--set", "s3.endpoint="+s3.Endpoint, "--set", "s3.bucket="+bucket,
		"--set", "s3.insecure=true", "--set", "s3.createBucket=true"))
	l := newLauncher(t, objs, map[string]string{"/gorch": gorch, "nats-server": natsBin})
	l.podman, l.inImage = newPodman(t), map[string]bool{"worker": true}
	l.podman.load(buildImage(t))
	t.Cleanup(func() { l.podman.run("rm", "--force", "--all") })
	l.start()
	stopped := false
	defer func() {
		if !stopped {
			l.stop()
		}
		if t.Failed() {
			t.Logf("pod logs:\n%s", l.logs(25))
		}
	}()
	eventually(t, 3*time.Minute, "every pod ready", func() error {
		if nr := l.notReady(); len(nr) > 0 {
			return fmt.Errorf("not ready: %s", strings.Join(nr, ", "))
		}
		return nil
	}, func() string { return l.logs(10) })
	t.Logf("%d pods ready", len(l.pods))

	natsURL := "nats://" + l.hosts["gorch-nats:4222"]
	nc, err := cluster.Connect(natsURL, cluster.ConnectOptions{Name: "k8s-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, cluster.BucketRuns)
	if err != nil {
		t.Fatal(err)
	}
	states, err := integration.WatchStates(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	defer states.Stop()

	sweepFile := filepath.Join(t.TempDir(), "sweep.yaml")
	if err := os.WriteFile(sweepFile, []byte(sweepSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runIn(root, nil, gorch, "sweep", sweepFile, "--nats", natsURL)
	if err != nil {
		t.Fatalf("gorch sweep: %v\n%s", err, out)
	}
	ids := strings.Fields(string(out))
	if len(ids) != 4 {
		t.Fatalf("gorch sweep printed %q; want 4 run ids", out)
	}
	var subs []integration.Submitted
	for _, id := range ids {
		subs = append(subs, integration.Submitted{ID: id, Steps: sweepSteps, CkptEvery: sweepCkpt})
	}
	eventually(t, 5*time.Minute, "the sweep's 4 runs end", func() error {
		for _, id := range ids {
			st, _, err := cluster.GetState(ctx, kv, id)
			if err != nil {
				return err
			}
			if !cluster.Terminal(st.Status) {
				return fmt.Errorf("run %s is %s", id, st.Status)
			}
		}
		return nil
	}, func() string { return l.logs(10) })

	store, err := experiment.NewS3Store(ctx, experiment.S3Config{Endpoint: s3.Endpoint, Bucket: bucket,
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	var obs *integration.Observed
	var report *integration.Report
	// The collector writes a run's summary a moment after its terminal state.
	eventually(t, time.Minute, "the checker passes", func() error {
		obs, err = integration.Gather(ctx, js, store, states)
		if err != nil {
			return err
		}
		report = integration.Check(subs, obs)
		if !report.OK() || report.Succeeded != len(ids) {
			return fmt.Errorf("checker:\n%s", report)
		}
		return nil
	}, func() string { return "" })
	t.Logf("checker:\n%s", report)

	stopped = true
	if bad := l.stop(); len(bad) > 0 {
		t.Errorf("after SIGTERM:\n  %s", strings.Join(bad, "\n  "))
	}
}
