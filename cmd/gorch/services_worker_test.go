package main

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/train"
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
// embedded NATS server: a queued run ends succeeded with its checkpoint
// under --data-dir, and cancelling the command's context stops it cleanly.
func TestWorkerCommandTrainsARun(t *testing.T) {
	t.Setenv("GORCH_S3_ENDPOINT", "")
	t.Setenv("GORCH_NATS", "")
	ns, err := cluster.StartEmbedded(cluster.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRootCmd()
	var stderr lockedBuffer
	root.SetErr(&stderr)
	root.SetArgs([]string{"worker", "--nats", ns.ClientURL(), "--data-dir", dir, "--slots", "1", "--id", "cli-w", "--publish-every", "100ms",
		"--http", "127.0.0.1:0"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	base := "http://" + waitHTTPAddr(t, &stderr)
	waitReady(t, base)

	nc, err := cluster.Connect(ns.ClientURL(), cluster.ConnectOptions{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := cluster.Setup(ctx, js); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, cluster.BucketRuns)
	if err != nil {
		t.Fatal(err)
	}
	spec := []byte(`{"model":{"name":"mlp","hidden":[8]},"dataset":{"name":"blobs","size":128},"optimizer":{"name":"adam","lr":0.01},
		"steps":20,"batch_size":16,"seed":1,"eval_every":20,"checkpoint_every":10}`)
	st, _ := msgpack.Marshal(&cluster.RunState{RunID: "cli1", Status: cluster.StateQueued, Priority: cluster.PriorityHigh})
	if _, err := kv.Create(ctx, cluster.RunKey("cli1"), st); err != nil {
		t.Fatal(err)
	}
	req, _ := cluster.Encode(cluster.TypeRunRequest, &cluster.RunRequest{RunID: "cli1", Spec: spec, Priority: cluster.PriorityHigh})
	if _, err := js.Publish(ctx, cluster.DispatchSubject(cluster.PriorityHigh), req); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var got cluster.RunState
		if e, err := kv.Get(ctx, cluster.RunKey("cli1")); err == nil && msgpack.Unmarshal(e.Value(), &got) == nil && got.Status == cluster.StateSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not succeed within 60s; worker log:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	store, err := experiment.NewLocalStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := train.NewCheckpoints(store, "cli1", 3).Pull(ctx, -1)
	if err != nil || len(b) == 0 {
		t.Errorf("pulling the newest checkpoint: %d bytes, %v", len(b), err)
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
