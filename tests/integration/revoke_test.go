package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gorch/gorch/internal/auth"
	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
)

// TestRevokeWorker: `gorch auth revoke-worker` on a deployment served by
// the real nats-server and by `gorch nats --config`; after SIGHUP each
// server closes the revoked worker's connection and refuses a copy of
// its old credentials, while the other worker goes on.
func TestRevokeWorker(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	natsServer := testutil.ToolPath("nats-server", testutil.NATSServerVersion)
	if natsServer == "" {
		t.Fatalf("nats-server %s not found: %s", testutil.NATSServerVersion, testutil.ToolInstall)
	}
	for _, srv := range []string{"nats-server", "gorch nats"} {
		t.Run(strings.ReplaceAll(srv, " ", "_"), func(t *testing.T) {
			base := t.TempDir()
			dir, addr := filepath.Join(base, "deploy"), testutil.FreeAddr(t)
			run := func(args ...string) string {
				t.Helper()
				cmd := exec.Command(gorchBin, args...)
				cmd.Env = hermeticEnv()
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("gorch %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			run("auth", "init", "--dir", dir, "--workers", "w1,w2", "--listen", addr, "--jetstream-dir", filepath.Join(base, "js"))
			conf := filepath.Join(dir, auth.ServerConfigFile)
			var cmd *exec.Cmd
			if srv == "nats-server" {
				cmd = exec.Command(natsServer, "-c", conf)
			} else {
				cmd = exec.Command(gorchBin, "nats", "--config", conf)
				cmd.Env = hermeticEnv()
			}
			logf, err := os.Create(filepath.Join(base, "server.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			cmd.Stdout, cmd.Stderr = logf, logf
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				_ = cmd.Wait()
				if t.Failed() {
					b, _ := os.ReadFile(logf.Name())
					t.Logf("--- %s log:\n%s", srv, b)
				}
			})
			url := "nats://" + addr
			stolen := filepath.Join(base, "w1-copy.creds")
			b, err := os.ReadFile(auth.CredsFile(dir, cluster.RoleWorker, "w1"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(stolen, b, 0o600); err != nil {
				t.Fatal(err)
			}
			connect := func(creds, id string, opts ...nats.Option) (*nats.Conn, error) {
				return nats.Connect(url, append([]nats.Option{nats.UserCredentials(creds),
					nats.CustomInboxPrefix(cluster.InboxPrefix(cluster.RoleWorker, id))}, opts...)...)
			}
			closed := make(chan struct{})
			var w1 *nats.Conn
			testutil.Eventually(t, 30*time.Second, func() (err error) {
				w1, err = connect(stolen, "w1", nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
				return err
			})
			defer w1.Close()
			w2, err := connect(auth.CredsFile(dir, cluster.RoleWorker, "w2"), "w2")
			if err != nil {
				t.Fatal(err)
			}
			defer w2.Close()

			out := run("auth", "revoke-worker", "w1", "--dir", dir)
			if !strings.Contains(out, "revoked worker w1") {
				t.Errorf("revoke-worker printed %q; want 'revoked worker w1'", out)
			}
			if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			select {
			case <-closed:
			case <-time.After(15 * time.Second):
				t.Fatal("w1's connection is still open 15 s after SIGHUP")
			}
			if nc, err := connect(stolen, "w1"); err == nil {
				nc.Close()
				t.Error("a copy of w1's revoked credentials still connects")
			} else if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
				t.Errorf("connecting with w1's revoked credentials: %v; want an authorization violation", err)
			}
			if err := w2.Publish("ev.w2.metrics.r1", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := w2.Flush(); err != nil {
				t.Errorf("w2 after w1 was revoked: %v", err)
			}
		})
	}
}
