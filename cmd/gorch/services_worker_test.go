package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/experiment"
)

func TestWorkerBadInput(t *testing.T) {
	t.Setenv("GORCH_S3_ENDPOINT", "")
	t.Setenv("GORCH_S3_BUCKET", "")
	t.Setenv("GORCH_NATS", "")
	dir := t.TempDir()
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"worker", "--s3-endpoint", "127.0.0.1:1", "--data-dir", dir}, []string{"--s3-bucket"}},
		{[]string{"worker", "--s3-bucket", "b", "--data-dir", dir}, []string{"--s3-endpoint"}},
		{[]string{"worker", "--tls-cert", "c.pem", "--data-dir", dir}, []string{"--tls-key"}},
		{[]string{"worker", "--slots", "x"}, []string{`invalid argument "x"`}},
	}
	for _, c := range cases {
		_, _, err := runCLI(t, c.args...)
		wantOneLineErr(t, c.args, err, c.want...)
	}
}

// TestWorkerCommandTrainsARun runs `gorch worker` in-process against an
// embedded NATS server set up by `gorch setup`, with a coordinator: a
// submitted run ends succeeded with its checkpoint under --data-dir, and
// cancelling the command's context stops it cleanly.
func TestWorkerCommandTrainsARun(t *testing.T) {
	t.Setenv("GORCH_S3_ENDPOINT", "")
	t.Setenv("GORCH_NATS", "")
	url := startCluster(t, true)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRootCmd()
	var stderr lockedBuffer
	root.SetErr(&stderr)
	root.SetArgs([]string{"worker", "--nats", url, "--data-dir", dir, "--slots", "1", "--id", "cli-w", "--publish-every", "100ms",
		"--http", "127.0.0.1:0"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	base := "http://" + waitHTTPAddr(t, &stderr)
	waitReady(t, base)

	spec := writeFile(t, "spec.yaml", `{"model":{"name":"mlp","hidden":[8]},"dataset":{"name":"blobs","size":128},"optimizer":{"name":"adam","lr":0.01},
		"steps":20,"batch_size":16,"seed":1,"eval_every":20,"checkpoint_every":10}`)
	out, err := runGorch(t, "submit", spec, "--nats", url)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	var st cluster.RunState
	testutil.Eventually(t, 60*time.Second, func() error {
		out, err := runGorch(t, "status", id, "--json", "--nats", url)
		if err == nil {
			err = json.Unmarshal([]byte(out), &st)
		}
		if err == nil && st.Status != cluster.StateSucceeded {
			err = fmt.Errorf("run %s", st.Status)
		}
		if err != nil {
			return fmt.Errorf("%v; worker log:\n%s", err, stderr.String())
		}
		return nil
	})
	store, err := experiment.NewLocalStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Resume == nil || st.Resume.Step != 20 {
		t.Fatalf("resume point %+v; want the checkpoint of step 20", st.Resume)
	}
	if b, err := store.Get(ctx, st.Resume.Key); err != nil || int64(len(b)) != st.Resume.Size {
		t.Errorf("the resume point's object %s: %d bytes, %v; want %d", st.Resume.Key, len(b), err, st.Resume.Size)
	}
	out, err = runGorch(t, "workers", "--nats", url)
	if err != nil || !strings.Contains(out, "cli-w") {
		t.Errorf("gorch workers = %q, %v; want cli-w listed", out, err)
	}
	_, body := httpGet(t, base+"/metrics")
	if n, ok := metricValue(body, "gorch_worker_checkpoints_total"); !ok || n < 2 {
		t.Errorf("GET /metrics: gorch_worker_checkpoints_total = %v (present %v); want ≥ 2 (steps 10 and 20)\n%s", n, ok, body)
	}
	if n, ok := metricValue(body, "gorch_worker_checkpoint_bytes_total"); !ok || n <= 0 {
		t.Errorf("GET /metrics: gorch_worker_checkpoint_bytes_total = %v (present %v); want > 0\n%s", n, ok, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("gorch worker: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gorch worker did not stop after its context was cancelled")
	}
}
