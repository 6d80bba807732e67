package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/services/coordinator"
)

// startCluster starts a NATS server on a free TCP port with a coordinator
// in this process (if withCoord) and returns the server's URL.
func startCluster(t *testing.T, withCoord bool) string {
	t.Helper()
	ns, err := cluster.StartEmbedded(cluster.EmbeddedOptions{StoreDir: t.TempDir(), Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	out, err := runGorch(t, "setup", "--nats", ns.ClientURL())
	if err != nil || !strings.Contains(out, "created stream EVENTS\n") || strings.Contains(out, "kept") {
		t.Fatalf("gorch setup = %q, %v; want everything created", out, err)
	}
	if !withCoord {
		return ns.ClientURL()
	}
	nc, err := cluster.Connect(ns.ClientURL(), cluster.ConnectOptions{Name: "coordinator"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c, err := coordinator.New(context.Background(), nc, coordinator.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// Run subscribes asynchronously: wait until it answers.
	for i := 0; ; i++ {
		if _, err := runGorch(t, "status", "--nats", ns.ClientURL()); err == nil {
			break
		} else if i == 200 {
			t.Fatalf("coordinator not serving: %v", err)
		}
	}
	return ns.ClientURL()
}

// runGorch runs the CLI in this process and returns its stdout.
func runGorch(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(io.Discard)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const cliSpec = `model: {name: mlp}
dataset: {name: blobs}
optimizer: {name: sgd, lr: 0.1}
steps: 10
batch_size: 16
`

func TestClusterCommands(t *testing.T) {
	url := startCluster(t, true)
	spec := writeFile(t, "spec.yaml", "name: cli-run\n"+cliSpec)

	out, err := runGorch(t, "submit", spec, "--priority", "high", "--nats", url)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	if strings.Count(out, "\n") != 1 || id == "" {
		t.Fatalf("submit printed %q, want one run id", out)
	}

	out, err = runGorch(t, "status", id, "--json", "--nats", url)
	if err != nil {
		t.Fatal(err)
	}
	var st cluster.RunState
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.RunID != id || st.Status != "queued" || st.Priority != "high" || st.Name != "cli-run" {
		t.Errorf("status --json = %s (%v)", out, err)
	}
	if out, _ = runGorch(t, "status", id, "--nats", url); !strings.Contains(out, "status:") || !strings.Contains(out, "queued") {
		t.Errorf("status RUN_ID = %q", out)
	}

	sweep := writeFile(t, "sweep.yaml", "name: grid\nbase:\n  "+strings.ReplaceAll(strings.TrimSpace(cliSpec), "\n", "\n  ")+
		"\ngrid:\n  optimizer.lr: [0.1, 0.01]\n  batch_size: [8, 16]\n")
	out, err = runGorch(t, "sweep", sweep, "--nats", url)
	if err != nil {
		t.Fatal(err)
	}
	sweepIDs := strings.Fields(out)
	if len(sweepIDs) != 4 {
		t.Fatalf("sweep printed %q, want 4 run ids", out)
	}

	t.Setenv("GORCH_NATS", url) // the default --nats from here on
	out, err = runGorch(t, "status")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "RUN") || !strings.HasPrefix(lines[1], id) || !strings.Contains(lines[2], "grid-0") {
		t.Errorf("status table =\n%s", out)
	}
	out, _ = runGorch(t, "status", "--json")
	if n := strings.Count(out, "\n"); n != 5 {
		t.Errorf("status --json printed %d lines, want 5", n)
	}

	if out, err = runGorch(t, "cancel", sweepIDs[0]); err != nil || !strings.Contains(out, "cancelled") {
		t.Errorf("cancel = %q, %v", out, err)
	}
	if out, err = runGorch(t, "status", sweepIDs[0]); err != nil || !regexp.MustCompile(`(?m)^records: +final$`).MatchString(out) {
		t.Errorf("status of a run cancelled while queued = %q, %v; want its records final", out, err)
	}
	if out, err = runGorch(t, "workers"); err != nil || strings.TrimSpace(out) != "WORKER  HOST  SLOTS  BUSY  MEMORY LIMIT  RUNS  LAST HEARTBEAT  VERSION" {
		t.Errorf("workers on a cluster without workers = %q, %v; want the header only", out, err)
	}
	if out, err = runGorch(t, "setup", "--events-max-bytes", "1MiB"); err != nil || strings.Contains(out, "created") ||
		!strings.Contains(out, "kept stream EVENTS (exists; its settings are left as they are)") {
		t.Errorf("second gorch setup = %q, %v; want everything kept", out, err)
	}

	// Errors: one line each, of the right kind.
	const unknown = "20990101T000000.000000Z-00000000"
	cases := []struct {
		args []string
		kind errs.Kind
		want string
	}{
		{[]string{"cancel", sweepIDs[0]}, errs.Experiment, "already cancelled"},
		{[]string{"status", unknown}, errs.Experiment, "run " + unknown + " not found"},
		{[]string{"cancel", unknown}, errs.Experiment, "not found"},
		{[]string{"submit", writeFile(t, "bad.yaml", strings.Replace(cliSpec, "lr: 0.1", "lr: 0", 1))}, errs.Config, `bad.yaml: field "optimizer.lr"`},
		{[]string{"submit", spec, "--priority", "urgent"}, errs.Config, `unknown priority "urgent"`},
		{[]string{"submit", "/nonexistent/spec.yaml"}, errs.Config, "no such file"},
		{[]string{"sweep", writeFile(t, "s.yaml", "name: s\nbase: {}\ngrid: {optimizer.lrr: [1]}")}, errs.Config, `s.yaml: grid "optimizer.lrr"`},
		{[]string{"status", "--nats", "nats://127.0.0.1:1"}, errs.Cluster, "connecting to NATS at nats://127.0.0.1:1"},
		{[]string{"setup", "--replicas", "2"}, errs.Config, "replicas 2: want 1 or 3"},
	}
	for _, c := range cases {
		_, err := runGorch(t, c.args...)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("gorch %v: err = %v, want one line of kind %v containing %q", c.args, err, c.kind, c.want)
		}
	}
}

func TestClusterCommandsNoCoordinator(t *testing.T) {
	url := startCluster(t, false)
	_, err := runGorch(t, "status", "--nats", url)
	if !errors.Is(err, errs.Cluster) || !strings.Contains(err.Error(), "no coordinator answered on api.list") {
		t.Errorf("status with no coordinator: %v", err)
	}
}
