package auth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/natsconn"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/errs"
)

// startServer runs nats-server in this process from a deployment's
// configuration, on a free loopback port, and returns its URL.
func startServer(t *testing.T, dir string) string {
	t.Helper()
	return startServerOpts(t, dir).ClientURL()
}

// serverOptions loads a deployment's configuration as startServer runs it
// (loopback, no log, no signal handling), on port.
func serverOptions(t *testing.T, dir string, port int) *server.Options {
	t.Helper()
	opts, err := server.ProcessConfigFile(filepath.Join(dir, ServerConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", port, true, true
	return opts
}

// startServerOpts is startServer returning the server.
func startServerOpts(t *testing.T, dir string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(serverOptions(t, dir, server.RANDOM_PORT))
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// waitRefused waits for the server to refuse subj to nc.
func waitRefused(t *testing.T, nc *nats.Conn, rec *testutil.NATSErrors, subj string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		_ = nc.Flush()
		if !rec.Refused(subj) {
			return fmt.Errorf("no permissions violation for %s (errors: %q)", subj, rec.All())
		}
		return nil
	})
}

func connectAs(t *testing.T, url, creds, role, id string, opts ...nats.Option) (*nats.Conn, *testutil.NATSErrors) {
	t.Helper()
	rec := &testutil.NATSErrors{}
	all := append([]nats.Option{nats.UserCredentials(creds), nats.CustomInboxPrefix(cluster.InboxPrefix(role, id)),
		nats.ErrorHandler(rec.Handler)}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		t.Fatalf("connect as %s %s: %v", role, id, err)
	}
	t.Cleanup(nc.Close)
	return nc, rec
}

func TestInitLayoutAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "deploy")
	if err := Init(dir, InitOptions{Workers: []string{"w1", "w2"}, TLSHosts: []string{"127.0.0.1", "localhost"}}); err != nil {
		t.Fatal(err)
	}
	secret := []string{"creds/admin.creds", "creds/coordinator.creds", "creds/collector.creds", "creds/client.creds",
		"creds/worker-w1.creds", "creds/worker-w2.creds", "keys/operator.nk", "keys/account.nk", "keys/system.nk",
		"keys/signing-worker.nk", "keys/ca-key.pem", "tls/server-key.pem"}
	for _, f := range secret {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: mode %v; want 0600", f, got)
		}
	}
	for _, d := range []string{".", "creds", "keys"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o700 {
			t.Errorf("%s/: mode %v; want 0700", d, got)
		}
	}
	conf, err := os.ReadFile(filepath.Join(dir, ServerConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	// The configuration holds no seed: an nkey seed starts with S and a
	// key-type letter.
	for _, p := range []string{"SO", "SA", "SU", "PRIVATE KEY"} {
		for _, line := range strings.Split(string(conf), "\n") {
			if strings.Contains(line, `"`+p) || strings.Contains(line, p+" ") {
				t.Errorf("%s has what looks like a secret (%s): %q", ServerConfigFile, p, line)
			}
		}
	}
	leftovers, _ := filepath.Glob(dir + ".tmp-*")
	if len(leftovers) != 0 {
		t.Errorf("temporary folders left: %v", leftovers)
	}
}

func TestInitBadInput(t *testing.T) {
	base := t.TempDir()
	full := filepath.Join(base, "full")
	if err := os.MkdirAll(full, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dir  string
		o    InitOptions
		want string
	}{
		{full, InitOptions{}, "not empty"},
		{filepath.Join(base, "a"), InitOptions{Workers: []string{"w.1"}}, `worker id "w.1"`},
		{filepath.Join(base, "b"), InitOptions{Workers: []string{"w1", "w1"}}, "worker w1 is named twice"},
		{filepath.Join(base, "c"), InitOptions{Workers: []string{"{{name()}}"}}, "worker id"},
	}
	for _, c := range cases {
		err := Init(c.dir, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, errs.Config) {
			t.Errorf("Init(%s, %+v) = %v; want a config error mentioning %q", c.dir, c.o, err, c.want)
		}
		if c.dir != full {
			if _, err := os.Stat(c.dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Init(%s) left the folder behind (%v)", c.dir, err)
			}
		}
	}
}

// TestRolesOnServer starts a server from a deployment's configuration and
// checks that each identity connects, that a worker minted after the
// server started is trusted at once, and that the worker template gives
// each worker its own subjects only.
func TestRolesOnServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "deploy")
	if err := Init(dir, InitOptions{Workers: []string{"w1", "w2"}, JetStreamDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	url := startServer(t, dir)
	for _, role := range []string{cluster.RoleAdmin, cluster.RoleCoordinator, cluster.RoleCollector, cluster.RoleClient} {
		nc, _ := connectAs(t, url, CredsFile(dir, role, ""), role, "")
		if got, want := identity(t, CredsFile(dir, role, "")), role+"/"+role; got != want {
			t.Errorf("Identity(%s creds) = %s; want %s", role, got, want)
		}
		nc.Close()
	}
	creds, err := AddWorker(dir, "w7")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AddWorker(dir, "w7"); err == nil || !strings.Contains(err.Error(), "already has credentials") {
		t.Errorf("AddWorker(w7) twice = %v; want 'already has credentials'", err)
	}
	if got := identity(t, creds); got != "worker/w7" {
		t.Errorf("Identity(w7 creds) = %s; want worker/w7", got)
	}
	nc, rec := connectAs(t, url, creds, cluster.RoleWorker, "w7")
	// Its own inbox and cancel notices: allowed.
	if _, err := nc.SubscribeSync("ctl.w7.cancel"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("ev.w7.metrics.r1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Another worker's subjects and every other inbox: refused.
	if err := nc.Publish("ev.w1.metrics.r1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, nc, rec, "ev.w1.metrics.r1")
	if _, err := nc.SubscribeSync("_INBOX_worker_w1.>"); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, nc, rec, "_INBOX_worker_w1.>")
	// Run state: a worker learns it from the coordinator's answers only.
	getRun := "$JS.API.STREAM.MSG.GET.KV_" + cluster.BucketRuns
	if err := nc.Publish(getRun, []byte(`{"last_by_subj":"$KV.runs.run.r1"}`)); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, nc, rec, getRun)
	for _, e := range rec.All() {
		if strings.Contains(e, "ev.w7") || strings.Contains(e, "ctl.w7") {
			t.Errorf("worker w7 refused its own subject: %s", e)
		}
	}
}

func identity(t *testing.T, creds string) string {
	t.Helper()
	role, name, err := Identity(creds)
	if err != nil {
		t.Fatal(err)
	}
	return role + "/" + name
}

// TestForeignCredsRefused: credentials of another deployment do not
// open this one's server, and the error says so in one line.
func TestForeignCredsRefused(t *testing.T) {
	base := t.TempDir()
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	for _, d := range []string{a, b} {
		if err := Init(d, InitOptions{JetStreamDir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
	}
	url := startServer(t, a)
	_, err := natsconn.Dial(context.Background(), url, natsconn.Options{CredsFile: CredsFile(b, cluster.RoleClient, "")})
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Dial with another deployment's creds = %v; want one line saying authorization violation", err)
	}
}

// TestTLS: with --tls-host the server speaks TLS only, and a client that
// trusts tls/ca.pem connects.
func TestTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "deploy")
	if err := Init(dir, InitOptions{JetStreamDir: t.TempDir(), TLSHosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	url := startServer(t, dir)
	nc, err := natsconn.Dial(context.Background(), url, natsconn.Options{CredsFile: CredsFile(dir, cluster.RoleClient, ""),
		TLSCA: filepath.Join(dir, TLSDir, "ca.pem"), InboxPrefix: cluster.InboxPrefix(cluster.RoleClient, "")})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Errorf("connection is not TLS")
	}
	if _, err := natsconn.Dial(context.Background(), url, natsconn.Options{CredsFile: CredsFile(dir, cluster.RoleClient, "")}); err == nil {
		t.Errorf("a client without the CA connected")
	}
}
