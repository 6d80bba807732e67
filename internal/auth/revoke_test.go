package auth

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/natsconn"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/errs"
)

// TestRevokeWorker revokes worker w1 on a running server: after the
// configuration reload its open connection is closed, a copy of its old
// credentials is refused, worker w2 is untouched, and new credentials
// for w1 work.
func TestRevokeWorker(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "deploy")
	if err := Init(dir, InitOptions{Workers: []string{"w1", "w2"}, JetStreamDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, ServerConfigFile)
	ns := startServerOpts(t, dir)
	url := ns.ClientURL()

	// A copy of w1's credentials, as a stolen one would be.
	stolen := filepath.Join(t.TempDir(), "w1.creds")
	b, err := os.ReadFile(CredsFile(dir, cluster.RoleWorker, "w1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stolen, b, 0o600); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	w1, _ := connectAs(t, url, stolen, cluster.RoleWorker, "w1", nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	w2, _ := connectAs(t, url, CredsFile(dir, cluster.RoleWorker, "w2"), cluster.RoleWorker, "w2")
	if err := w1.Publish("ev.w1.metrics.r1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w1.Flush(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}

	pub, err := RevokeWorker(dir, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(CredsFile(dir, cluster.RoleWorker, "w1")); !os.IsNotExist(err) {
		t.Errorf("w1's credentials file is still there after revoking (stat: %v)", err)
	}
	after, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	accountPub, _ := mustSeed(t, filepath.Join(dir, KeysDir, accountSeedFile)).PublicKey()
	oldJWT, at, ok := preloaded(before, accountPub)
	newJWT, at2, ok2 := preloaded(after, accountPub)
	if !ok || !ok2 || at != at2 {
		t.Fatalf("account JWT not found in the configuration before (%v) or after (%v) revoking", ok, ok2)
	}
	// Only the account JWT changed, and it revokes w1's key.
	if !bytes.Equal(before[:at], after[:at]) || !bytes.Equal(before[at+len(oldJWT):], after[at+len(newJWT):]) {
		t.Errorf("revoking changed the configuration outside the account JWT:\n%s\n---\n%s", before, after)
	}
	ac, err := jwt.DecodeAccountClaims(newJWT)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ac.Revocations[pub]; !ok || !ac.IsClaimRevoked(mustUserClaims(t, b)) {
		t.Errorf("account JWT revocations %v; want w1's user %s revoked", ac.Revocations, pub)
	}

	// The server applies it on reload: w1 is cut off, w2 is not.
	if err := ns.ReloadOptions(serverOptions(t, dir, ns.Addr().(*net.TCPAddr).Port)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Error("w1's connection is still open 10 s after the reload")
	}
	_, err = natsconn.Dial(context.Background(), url, natsconn.Options{CredsFile: stolen})
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Errorf("Dial with w1's revoked credentials = %v; want an authorization violation", err)
	}
	if err := w2.Publish("ev.w2.metrics.r1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w2.Flush(); err != nil || w2.IsClosed() {
		t.Errorf("w2 after revoking w1: flush %v, closed %v", err, w2.IsClosed())
	}

	// w1 can be added again, with a new key the revocation does not cover.
	creds, err := AddWorker(dir, "w1")
	if err != nil {
		t.Fatal(err)
	}
	nc, _ := connectAs(t, url, creds, cluster.RoleWorker, "w1")
	testutil.Eventually(t, 5*time.Second, func() error { return nc.Flush() })

	// Revoking again, or an unknown worker, is a one-line config error.
	for _, id := range []string{"w9", "bad id"} {
		if _, err := RevokeWorker(dir, id); !errors.Is(err, errs.Config) || strings.Contains(err.Error(), "\n") {
			t.Errorf("RevokeWorker(%q) = %v; want one line of kind config", id, err)
		}
	}
	if _, err := RevokeWorker(t.TempDir(), "w2"); !errors.Is(err, errs.Config) || !strings.Contains(err.Error(), "not a deployment") {
		t.Errorf("RevokeWorker in an empty folder = %v; want 'not a deployment'", err)
	}
}

func mustSeed(t *testing.T, path string) interface{ PublicKey() (string, error) } {
	t.Helper()
	kp, err := readSeed(path)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func mustUserClaims(t *testing.T, creds []byte) *jwt.UserClaims {
	t.Helper()
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	return uc
}
