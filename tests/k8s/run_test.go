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

// TestLauncher runs the chart's prod render (3 NATS servers, the setup Job making every
// stream and bucket replicas 3, 2 coordinators, 2 workers from the ScaledObject's minimum,
// the collector) as processes against versitygw (the workers in the image itself, under
// podman, as Pod Security "restricted" has them), submits a 4-run sweep with
// `gorch sweep` through the NATS Service, and checks with the integration checker that
// every run succeeded and nothing was lost. Then every pod gets SIGTERM and must exit
// cleanly within its terminationGracePeriodSeconds. It does so twice: without NATS
// authentication, and with per-role credentials from `gorch auth init` (auth.enabled: NATS
// in operator mode, one identity per role and per worker pod, the workers a StatefulSet).
func TestLauncher(t *testing.T) {
	gorch := buildGorch(t)
	natsBin := testutil.ToolPath("nats-server", testutil.NATSServerVersion)
	if natsBin == "" {
		t.Fatalf("nats-server %s not found; install it with: %s", testutil.NATSServerVersion, testutil.ToolInstall)
	}
	image := buildImage(t)
	for _, auth := range []bool{false, true} {
		t.Run(map[bool]string{false: "no-auth", true: "auth"}[auth], func(t *testing.T) {
			launchSweep(t, gorch, natsBin, image, auth)
		})
	}
}

// authValues makes a deployment's credentials with `gorch auth init` (worker ids: the
// worker pods' names) and returns the helm flags that put them in the chart's Secrets,
// and the folder holding them.
func authValues(t *testing.T, gorch string) ([]string, string) {
	dir := filepath.Join(t.TempDir(), "auth")
	if out, err := runIn(root, nil, gorch, "auth", "init", "--dir", dir, "--listen", "0.0.0.0:4222",
		"--workers", "gorch-worker-0,gorch-worker-1"); err != nil {
		t.Fatalf("gorch auth init: %v\n%s", err, out)
	}
	args := []string{"--set", "auth.enabled=true", "--set-file", "secrets.nats.serverConfig=" + filepath.Join(dir, "nats-server.conf")}
	for _, role := range []string{"admin", "coordinator", "collector"} {
		args = append(args, "--set-file", "secrets.nats.creds."+role+"="+filepath.Join(dir, "creds", role+".creds"))
	}
	for _, w := range []string{"gorch-worker-0", "gorch-worker-1"} {
		args = append(args, "--set-file", "secrets.nats.workerCreds."+w+"="+filepath.Join(dir, "creds", "worker-"+w+".creds"))
	}
	return args, dir
}

// checkReplicas: the setup Job made every stream and bucket with the prod values'
// replicas (3).
func checkReplicas(t *testing.T, ctx context.Context, url string, o cluster.ConnectOptions) {
	nc, err := cluster.Connect(url, o)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{cluster.StreamRuns, cluster.StreamEvents, "KV_" + cluster.BucketRuns} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s: %d replicas; want 3 (streams.replicas in values-prod.yaml)", name, r)
		}
	}
}

func launchSweep(t *testing.T, gorch, natsBin, image string, auth bool) {
	s3 := testutil.StartVersityGW(t)
	const bucket = "gorch-k8s"
	args := []string{"--set", "secrets.create=true",
		"--set", "secrets.s3.accessKey=" + s3.AccessKey, "--set", "secrets.s3.secretKey=" + s3.SecretKey,
		"--set", "s3.endpoint=" + s3.Endpoint, "--set", "s3.bucket=" + bucket,
		"--set", "s3.insecure=true", "--set", "s3.createBucket=true"}
	// The test submits with `gorch sweep` and watches, as a client would (a client may
	// read run states and the event stream).
	// Stream settings are the admin's to read.
	observer, admin := cluster.ConnectOptions{Name: "k8s-test"}, cluster.ConnectOptions{Name: "k8s-test-admin"}
	var clientArgs []string
	if auth {
		authArgs, dir := authValues(t, gorch)
		args = append(args, authArgs...)
		creds := filepath.Join(dir, "creds", "client.creds")
		observer.CredsFile, observer.InboxPrefix = creds, cluster.InboxPrefix(cluster.RoleClient, "")
		admin.CredsFile, admin.InboxPrefix = filepath.Join(dir, "creds", "admin.creds"), cluster.InboxPrefix(cluster.RoleAdmin, "")
		clientArgs = []string{"--creds", creds}
	}
	objs := parse(t, render(t, "helm-prod", args...))
	l := newLauncher(t, objs, map[string]string{"/gorch": gorch, "nats-server": natsBin})
	l.podman, l.inImage = newPodman(t), map[string]bool{"worker": true}
	l.podman.load(image)
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
	// The services wait for NATS and for the setup Job's streams: none restarts.
	if r := l.restarted(); len(r) > 0 {
		t.Errorf("a clean rollout restarts no service; started more than once: %s", strings.Join(r, ", "))
	}

	natsURL := "nats://" + l.hosts["gorch-nats:4222"]
	nc, err := cluster.Connect(natsURL, observer)
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
	checkReplicas(t, ctx, natsURL, admin)
	states, err := integration.WatchStates(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	defer states.Stop()

	sweepFile := filepath.Join(t.TempDir(), "sweep.yaml")
	if err := os.WriteFile(sweepFile, []byte(sweepSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runIn(root, nil, gorch, append([]string{"sweep", sweepFile, "--nats", natsURL}, clientArgs...)...)
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
