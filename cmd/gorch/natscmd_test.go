package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/auth"
	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
)

var readyRe = regexp.MustCompile(`msg=ready nats=(\S+)`)

// TestNATSCommand starts the built `gorch nats` on a free port, connects
// to the URL of its ready line and stops it with SIGINT.
func TestNATSCommand(t *testing.T) {
	testutil.Long(t, "runs gorch commands as processes")
	bin := buildGorch(t)
	cmd := exec.Command(bin, "nats", "--listen", "127.0.0.1:0", "--jetstream-dir", t.TempDir())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := readyRe.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
				break
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	var url string
	select {
	case url = <-urlc:
	case <-time.After(30 * time.Second):
		t.Fatal("gorch nats logged no ready line within 30s")
	}
	nc, err := cluster.Connect(url, cluster.ConnectOptions{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.RTT(); err != nil {
		t.Errorf("round trip to %s: %v", url, err)
	}
	nc.Close()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("gorch nats after SIGINT: %v; want exit 0", err)
	}
}

// serveCLI runs a serving command (nats, coordinator, ...) in-process
// until the test ends, and returns its log.
func serveCLI(t *testing.T, args ...string) (*lockedBuffer, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var log lockedBuffer
	done := make(chan error, 1)
	root := newRootCmd()
	root.SetErr(&log)
	root.SetOut(io.Discard)
	root.SetArgs(args)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("gorch %v did not stop within 30s of its context", args)
		}
	})
	return &log, done
}

// waitLog waits for re in log and returns its first submatch (or the
// match).
func waitLog(t *testing.T, log *lockedBuffer, re *regexp.Regexp) string {
	t.Helper()
	var m []string
	testutil.Eventually(t, 30*time.Second, func() error {
		if m = re.FindStringSubmatch(log.String()); m == nil {
			return fmt.Errorf("no log line matching %s; log:\n%s", re, log.String())
		}
		return nil
	})
	return m[len(m)-1]
}

// TestNATSCommandWithAuth serves a deployment from `gorch auth init`:
// the ready line says so, a client with its credentials connects, one
// without is refused.
func TestNATSCommandWithAuth(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "deploy")
	mustRun(t, "auth", "init", "--dir", dir, "--workers", "w1")
	log, _ := serveCLI(t, "nats", "--config", filepath.Join(dir, auth.ServerConfigFile), "--listen", "127.0.0.1:0",
		"--jetstream-dir", t.TempDir())
	url := waitLog(t, log, readyRe)
	if !strings.Contains(log.String(), "auth=operator") {
		t.Errorf("ready line does not say auth=operator:\n%s", log.String())
	}
	nc, err := cluster.Connect(url, cluster.ConnectOptions{CredsFile: auth.CredsFile(dir, cluster.RoleClient, ""),
		InboxPrefix: cluster.InboxPrefix(cluster.RoleClient, "")})
	if err != nil {
		t.Fatalf("client with its creds: %v", err)
	}
	nc.Close()
	if _, err := cluster.Connect(url, cluster.ConnectOptions{}); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Errorf("client without creds: %v; want an authorization violation", err)
	}
	waitLog(t, log, regexp.MustCompile(`level=ERROR.*component=nats-server`))
}

func TestNATSBadInput(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().String()
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"nats", "--listen", taken, "--jetstream-dir", dir}, taken + " is taken"},
		{[]string{"nats", "--listen", "0.0.0.0:0", "--jetstream-dir", dir}, "without authentication"},
		{[]string{"nats", "--listen", "4222"}, `--listen "4222": want host:port`},
		{[]string{"nats", "--listen", "127.0.0.1:70000"}, "want host:port"},
		{[]string{"nats", "--config", "/nonexistent/nats.conf"}, "--config"},
		{[]string{"nats", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"nats", "--tls-ca", "ca.pem"}, "--tls-ca verifies clients"},
		{[]string{"nats", "--port", "4222"}, "unknown flag: --port"},
	}
	for _, c := range cases {
		_, _, err := runCLI(t, c.args...)
		wantOneLineErr(t, c.args, err, c.want)
	}
}

// TestURLRedacted: a password or token in --nats never reaches an error
// (the issue's `gorch status --nats nats://client:s3cretpw@...`), even
// one that quotes the URL.
func TestURLRedacted(t *testing.T) {
	t.Setenv("GORCH_NATS", "")
	cases := []struct{ url, want string }{
		{"nats://client:s3cretpw@127.0.0.1:1", "connecting to NATS at nats://client:xxxxx@127.0.0.1:1"},
		{"nats://s3cretpw@127.0.0.1:1", "connecting to NATS at nats://xxxxx@127.0.0.1:1"},
		{"nats://client:s3cretpw@127.0.0.1:port", "nats://client:xxxxx@127.0.0.1:port"},
		{"nats://127.0.0.1:1,nats://client:s3cretpw@127.0.0.1:2", "nats://127.0.0.1:1,nats://client:xxxxx@127.0.0.1:2"},
	}
	for _, c := range cases {
		args := []string{"status", "--nats", c.url}
		_, stderr, err := runCLI(t, args...)
		wantOneLineErr(t, args, err, c.want)
		if err != nil && strings.Contains(err.Error()+stderr, "s3cretpw") {
			t.Errorf("gorch %v: the password leaked: %v %s", args, err, stderr)
		}
	}
}

// TestServiceWaitsForNATS starts the coordinator before its NATS server
// is up: it logs its retries (the URL redacted, the password from a file
// nowhere), connects once the server starts, and then answers clients.
func TestServiceWaitsForNATS(t *testing.T) {
	t.Setenv("GORCH_NATS", "")
	store := t.TempDir()
	port := testutil.FreePort(t)
	// A cluster whose streams were set up before, as after a restart.
	ns := startEmbeddedAt(t, store, port)
	nc, err := cluster.Connect(ns.ClientURL(), cluster.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := cluster.Setup(context.Background(), js, cluster.SetupOptions{}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	ns.Shutdown()
	ns.WaitForShutdown()

	const secret = "pw-9f8e7d"
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "nats://tok-5a4b3c@127.0.0.1:" + strconv.Itoa(port)
	log, done := serveCLI(t, "coordinator", "--nats", url+",nats://127.0.0.1:"+strconv.Itoa(port), "--user", "gorch", "--password-file", pwFile,
		"--http", "127.0.0.1:0")
	waitLog(t, log, regexp.MustCompile(`msg="NATS not reachable; retrying with backoff" nats=nats://xxxxx@127\.0\.0\.1:\d+,nats://127\.0\.0\.1:\d+ attempt=2`))
	select {
	case err := <-done:
		t.Fatalf("coordinator exited while NATS was down: %v", err)
	default:
	}
	ns = startEmbeddedAt(t, store, port)
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	waitReady(t, "http://"+waitHTTPAddr(t, log))
	if out, err := runGorch(t, "status", "--nats", "nats://127.0.0.1:"+strconv.Itoa(port)); err != nil {
		t.Errorf("status after NATS came up: %q, %v", out, err)
	}
	for _, s := range []string{secret, "tok-5a4b3c"} {
		if strings.Contains(log.String(), s) {
			t.Errorf("the coordinator's log holds the secret %q:\n%s", s, log.String())
		}
	}
}

// TestServiceLogsReconnect: a service logs the disconnect when its server
// goes away and the reconnect when it is back.
func TestServiceLogsReconnect(t *testing.T) {
	t.Setenv("GORCH_NATS", "")
	store, port := t.TempDir(), testutil.FreePort(t)
	ns := startEmbeddedAt(t, store, port)
	if _, err := runGorch(t, "setup", "--nats", "nats://127.0.0.1:"+strconv.Itoa(port)); err != nil {
		t.Fatal(err)
	}
	log, _ := serveCLI(t, "coordinator", "--nats", "nats://127.0.0.1:"+strconv.Itoa(port))
	waitLog(t, log, regexp.MustCompile(`msg=connected`))
	ns.Shutdown()
	ns.WaitForShutdown()
	waitLog(t, log, regexp.MustCompile(`msg="NATS disconnected; reconnecting"`))
	ns = startEmbeddedAt(t, store, port)
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	waitLog(t, log, regexp.MustCompile(`msg="NATS reconnected" nats=nats://127\.0\.0\.1:\d+`))
}

// startEmbeddedAt starts an embedded server on a given loopback port.
func startEmbeddedAt(t *testing.T, store string, port int) *server.Server {
	t.Helper()
	ns, err := cluster.StartEmbedded(cluster.EmbeddedOptions{StoreDir: store, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}
