package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorch/gorch/internal/auth"
	"github.com/gorch/gorch/internal/cluster"
)

// TestAuthCommands runs gorch auth init, add-worker and perms, and the
// one-line errors of credentials given to the wrong command.
func TestAuthCommands(t *testing.T) {
	t.Setenv("GORCH_NATS", "")
	dir := filepath.Join(t.TempDir(), "deploy")
	out := mustRun(t, "auth", "init", "--dir", dir, "--workers", "w1")
	for _, want := range []string{"gorch nats --config " + filepath.Join(dir, auth.ServerConfigFile),
		"gorch worker --creds " + auth.CredsFile(dir, cluster.RoleWorker, "w1"), "offline"} {
		if !strings.Contains(out, want) {
			t.Errorf("auth init printed %q; want it to mention %q", out, want)
		}
	}
	if got := strings.TrimSpace(mustRun(t, "auth", "add-worker", "w7", "--dir", dir)); got != auth.CredsFile(dir, cluster.RoleWorker, "w7") {
		t.Errorf("auth add-worker w7 printed %q; want the creds path", got)
	}
	if fi, err := os.Stat(auth.CredsFile(dir, cluster.RoleWorker, "w7")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("w7's creds: %v, %v; want mode 0600", fi, err)
	}
	perms := mustRun(t, "auth", "perms", "worker")
	if !strings.Contains(perms, "ev.{{name()}}.*.>") || strings.Contains(perms, "\ncoordinator ") {
		t.Errorf("auth perms worker = %q; want the worker's rows only", perms)
	}
	collector := auth.CredsFile(dir, cluster.RoleCollector, "")
	w1 := auth.CredsFile(dir, cluster.RoleWorker, "w1")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"auth", "init", "--dir", dir}, "not empty"},
		{[]string{"auth", "add-worker", "w7", "--dir", dir}, "already has credentials"},
		{[]string{"auth", "add-worker", "a.b", "--dir", dir}, `worker id "a.b"`},
		{[]string{"auth", "add-worker", "w8", "--dir", t.TempDir()}, "not a deployment gorch auth init wrote"},
		{[]string{"auth", "perms", "root"}, `unknown role "root"`},
		{[]string{"worker", "--creds", collector, "--nats", "nats://127.0.0.1:1"}, "holds the credentials of collector; this command needs a worker's"},
		{[]string{"worker", "--creds", w1, "--id", "w2"}, "--id w2, but --creds " + w1 + " holds worker w1's credentials"},
		{[]string{"status", "--creds", w1, "--nats", "nats://127.0.0.1:1"}, "holds the credentials of worker w1; this command needs a client's"},
		{[]string{"status", "--creds", w1, "--nkey", w1}, "three ways to authenticate: give one"},
		{[]string{"status", "--password-file", w1}, "--password-file needs --user"},
	}
	for _, c := range cases {
		_, _, err := runCLI(t, c.args...)
		wantOneLineErr(t, c.args, err, c.want)
	}
}
