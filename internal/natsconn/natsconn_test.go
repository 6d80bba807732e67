package natsconn

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/gorch/gorch/pkg/errs"
)

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://client:s3cret@host:4222", "nats://client:xxxxx@host:4222"},
		{"nats://tok3n@host:4222", "nats://xxxxx@host:4222"},
		{"tls://u:p%40ss@host", "tls://u:xxxxx@host"},
		{"nats://u:p@ss@host:1", "nats://u:xxxxx@host:1"},
		{"u:p@host:1", "u:xxxxx@host:1"},
		{"nats://a:1@h1:1, nats://h2:2,nats://t@h3", "nats://a:xxxxx@h1:1,nats://h2:2,nats://xxxxx@h3"},
		{"ws://h/path@x", "ws://h/path@x"},
		{"", ""},
	}
	for _, c := range cases {
		if got := Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q; want %q", c.in, got, c.want)
		}
	}
}

// TestScrub: an error that quotes the URL (url.Parse does) loses its
// secrets, escaped or not.
func TestScrub(t *testing.T) {
	u := "nats://client:p%40ssw0rd@host:port"
	_, perr := url.Parse(u)
	cases := []struct {
		err  error
		bad  []string
		same bool
	}{
		{perr, []string{"p%40ssw0rd"}, false},
		{errors.New("auth p@ssw0rd failed"), []string{"p@ssw0rd"}, false},
		{errors.New("dial tcp host: refused"), nil, true},
	}
	for _, c := range cases {
		got := scrub(c.err, u)
		for _, b := range c.bad {
			if strings.Contains(got.Error(), b) {
				t.Errorf("scrub(%q) = %q; still holds %q", c.err, got, b)
			}
		}
		if (got == c.err) != c.same {
			t.Errorf("scrub(%q) returned the same error: %v; want %v", c.err, got == c.err, c.same)
		}
	}
}

func TestDelay(t *testing.T) {
	cases := []struct {
		n        int
		min, max time.Duration
	}{
		{1, MinDelay, MinDelay * 6 / 5}, {2, 2 * MinDelay, 2 * MinDelay * 6 / 5},
		{5, MaxDelay, MaxDelay * 6 / 5}, {1000, MaxDelay, MaxDelay * 6 / 5},
	}
	for _, c := range cases {
		if got := Delay(c.n); got < c.min || got > c.max {
			t.Errorf("Delay(%d) = %v; want in [%v, %v]", c.n, got, c.min, c.max)
		}
	}
}

// TestSecretFileMixups: a file given to the wrong flag is named in one
// line that says which flag it belongs to, and its content is never
// quoted.
func TestSecretFileMixups(t *testing.T) {
	dir := t.TempDir()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	seedFile := filepath.Join(dir, "user.nk")
	credsFile := filepath.Join(dir, "user.creds")
	pwFile := filepath.Join(dir, "pw")
	for path, body := range map[string]string{
		seedFile:  string(seed) + "\n",
		credsFile: "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.x\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n" + string(seed) + "\n------END USER NKEY SEED------\n",
		pwFile:    "hunter2-pw\n",
	} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		o    Options
		want string
	}{
		{Options{CredsFile: seedFile}, "holds a bare nkey seed, not JWT credentials: give it with --nkey"},
		{Options{NKeyFile: credsFile}, "holds JWT credentials, not an nkey seed: give it with --creds"},
		{Options{CredsFile: pwFile}, "is not a NATS credentials file"},
		{Options{NKeyFile: pwFile}, "holds no nkey user seed"},
		{Options{CredsFile: filepath.Join(dir, "none")}, "no such file"},
	}
	for _, c := range cases {
		_, err := Dial(context.Background(), "nats://127.0.0.1:1", c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, errs.Config) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Dial(%+v) = %v; want one config error line containing %q", c.o, err, c.want)
			continue
		}
		for _, s := range []string{string(seed), "hunter2-pw"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("Dial(%+v) error quotes the file: %v", c.o, err)
			}
		}
	}
}

// TestDialNoRetryFailsFast: without Retry an unreachable server is an
// error at once, naming the redacted URL; with Retry, Dial waits until
// its context ends.
func TestDialNoRetryFailsFast(t *testing.T) {
	const u = "nats://client:s3cret@127.0.0.1:1"
	_, err := Dial(context.Background(), u, Options{})
	if err == nil || !strings.Contains(err.Error(), "connecting to NATS at nats://client:xxxxx@127.0.0.1:1") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Dial = %v; want an error naming the redacted URL", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Dial(ctx, u, Options{Retry: true})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting for NATS at nats://client:xxxxx@127.0.0.1:1") {
		t.Errorf("Dial(Retry, cancelled) = %v; want the context's error, waiting for the redacted URL", err)
	}
}
