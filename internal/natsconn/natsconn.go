// Package natsconn dials NATS the way every gorch process does: secrets
// from files or the environment (never from argv), URLs redacted in every
// log line and error, a per-identity inbox prefix, and — for services —
// waiting for a server that is not up yet with logged backoff.
package natsconn

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gorch/gorch/pkg/errs"
)

const op = "nats.connect"

// Options configures Dial. It holds file names, never secrets, so that it
// can travel as JSON (to a worker's attempt children) and so that no
// secret appears in a process's argv.
type Options struct {
	Name      string `json:"name,omitempty"`
	CredsFile string `json:"creds,omitempty"` // JWT credentials (a user JWT and its seed, as `gorch auth init` writes)
	NKeyFile  string `json:"nkey,omitempty"`  // an nkey user seed
	// User authenticates with a password read from PasswordFile, or, if
	// that is empty, from the environment variable PasswordEnv.
	User         string `json:"user,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
	TLSCA        string `json:"tls_ca,omitempty"`   // CA certificate to verify the server with, if any
	TLSCert      string `json:"tls_cert,omitempty"` // client certificate and key, if any
	TLSKey       string `json:"tls_key,omitempty"`
	// InboxPrefix replaces "_INBOX" in reply subjects, so that server
	// permissions can keep each identity's replies to itself.
	InboxPrefix string `json:"inbox,omitempty"`
	// InProcess connects to a server in this process instead of over TCP.
	InProcess nats.InProcessConnProvider `json:"-"`
	// Logger, if set, gets every disconnect, reconnect, failed attempt and
	// asynchronous error (permission violations among them).
	Logger *slog.Logger `json:"-"`
	// Retry makes Dial wait, retrying with backoff, for a server that is
	// not reachable yet, until ctx ends. Services retry; one-shot commands
	// do not, so `gorch status` against a stopped server fails at once.
	Retry bool `json:"retry,omitempty"`
}

// PasswordEnv is the environment variable that holds the password of
// Options.User when no PasswordFile is given.
const PasswordEnv = "GORCH_NATS_PASSWORD"

// Backoff between reconnect attempts: MinDelay doubling up to MaxDelay.
const (
	MinDelay = 250 * time.Millisecond
	MaxDelay = 4 * time.Second
)

// Delay is the wait before reconnect attempt n (from 1): MinDelay
// doubling to MaxDelay, with up to 20 % jitter so a fleet of workers does
// not reconnect in step.
func Delay(n int) time.Duration {
	d := MaxDelay
	if n < 16 {
		d = min(MinDelay<<max(n-1, 0), MaxDelay)
	}
	return d + time.Duration(rand.Int64N(int64(d/5)+1))
}

// Dial connects to url (one or more comma-separated server URLs), or to
// o.InProcess. Reconnects after a lost connection never stop. Errors name
// the server with its password (or token) replaced by "xxxxx".
func Dial(ctx context.Context, url string, o Options) (*nats.Conn, error) {
	opts, err := o.natsOptions(url)
	if err != nil {
		return nil, err
	}
	connected := make(chan struct{})
	closed := make(chan struct{})
	var once atomic.Bool
	if o.Retry {
		opts = append(opts, nats.RetryOnFailedConnect(true), nats.ConnectHandler(func(*nats.Conn) {
			if once.CompareAndSwap(false, true) {
				close(connected)
			}
		}))
	}
	opts = append(opts, nats.ClosedHandler(func(nc *nats.Conn) {
		close(closed)
		if o.Logger != nil {
			o.Logger.Info("NATS connection closed", "nats", Redact(url))
		}
	}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, connectError(url, err)
	}
	if !o.Retry || nc.IsConnected() {
		return nc, nil
	}
	select {
	case <-connected:
		return nc, nil
	case <-closed:
		err := nc.LastError()
		if err == nil {
			err = nats.ErrConnectionClosed
		}
		return nil, connectError(url, err)
	case <-ctx.Done():
		nc.Close()
		return nil, errs.Wrap(errs.Cluster, op, ctx.Err(), "waiting for NATS at %s", Redact(url))
	}
}

// natsOptions turns o into nats.go options, after checking that its files
// hold what their flags say.
func (o Options) natsOptions(url string) ([]nats.Option, error) {
	opts := []nats.Option{nats.Name(o.Name), nats.MaxReconnects(-1), nats.CustomReconnectDelay(Delay)}
	if o.InProcess != nil {
		opts = append(opts, nats.InProcessServer(o.InProcess))
	}
	if o.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	if o.CredsFile != "" {
		if err := checkSecretFile(o.CredsFile, "--creds", kindCreds); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeyFile != "" {
		if err := checkSecretFile(o.NKeyFile, "--nkey", kindSeed); err != nil {
			return nil, err
		}
		nk, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, errs.Wrap(errs.Config, op, err, "--nkey %s", o.NKeyFile)
		}
		opts = append(opts, nk)
	}
	if o.User != "" {
		pw, err := o.password()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserInfo(o.User, pw))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return append(opts, o.logHandlers(url)...), nil
}

// password reads the password of User: from PasswordFile, else from
// PasswordEnv.
func (o Options) password() (string, error) {
	if o.PasswordFile == "" {
		return os.Getenv(PasswordEnv), nil
	}
	b, err := os.ReadFile(o.PasswordFile)
	if err != nil {
		return "", errs.Wrap(errs.Config, op, err, "--password-file")
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// logHandlers logs what happens to the connection: each failed attempt
// while the server is away (the first few, then every 32nd), every
// disconnect and reconnect, and asynchronous errors.
func (o Options) logHandlers(url string) []nats.Option {
	log := o.Logger
	if log == nil {
		return nil
	}
	var attempts atomic.Int64
	return []nats.Option{
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			n := attempts.Add(1)
			if n <= 4 || n%32 == 0 {
				log.Warn("NATS not reachable; retrying with backoff", "nats", Redact(url), "attempt", n,
					"max_delay", MaxDelay, "err", scrub(err, url))
			}
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			attempts.Store(0)
			log.Warn("NATS disconnected; reconnecting", "nats", Redact(url), "err", scrub(err, url))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "nats", ConnectedURL(nc), "after_attempts", attempts.Swap(0))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			args := []any{"err", scrub(err, url)}
			if sub != nil {
				args = append(args, "subject", sub.Subject)
			}
			log.Error("NATS error", args...)
		}),
	}
}

// connectError wraps a failed connection attempt; the cause is scrubbed
// of secrets (url.Parse errors, for one, quote the whole URL).
func connectError(url string, err error) error {
	kind := errs.Cluster
	if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		kind = errs.Config
	}
	return errs.Wrap(kind, op, scrub(err, url), "connecting to NATS at %s", Redact(url))
}

// ConnectedURL is the URL of the server nc is connected to, redacted.
// (nats.Conn.ConnectedUrlRedacted masks a password but not a token.)
func ConnectedURL(nc *nats.Conn) string { return Redact(nc.ConnectedUrl()) }

// Redact returns urls (comma-separated NATS URLs) with every password, and
// every user that stands alone (a token), replaced by "xxxxx". What does
// not parse as a URL is returned with its user-info part masked the same
// way.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		parts[i] = redactOne(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

const mask = "xxxxx"

func redactOne(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	}
	// The user info ends at the last '@' before the host's path.
	end := len(rest)
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		end = j
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at < 0 {
		return s
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	info := mask
	if hasPass {
		info = user + ":" + mask
	}
	if scheme != "" {
		scheme += "://"
	}
	return scheme + info + rest[at:]
}

// secrets lists the passwords and tokens written into urls, escaped and
// unescaped, for scrub.
func secrets(urls string) []string {
	var out []string
	for p := range strings.SplitSeq(urls, ",") {
		_, rest, ok := strings.Cut(strings.TrimSpace(p), "://")
		if !ok {
			rest = p
		}
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			rest = rest[:j]
		}
		at := strings.LastIndexByte(rest, '@')
		if at < 0 {
			continue
		}
		user, pass, hasPass := strings.Cut(rest[:at], ":")
		secret := pass
		if !hasPass {
			secret = user
		}
		if secret == "" {
			continue
		}
		out = append(out, secret)
		if u, err := url.PathUnescape(secret); err == nil && u != secret {
			out = append(out, u)
		}
	}
	return out
}

// scrub returns err with every secret of urls masked; err itself when it
// holds none.
func scrub(err error, urls string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets(urls) {
		clean = strings.ReplaceAll(clean, s, mask)
	}
	if clean == msg {
		return err
	}
	return errors.New(clean)
}

// File kinds checkSecretFile tells apart.
const (
	kindCreds = "creds"
	kindSeed  = "seed"
)

// checkSecretFile reports a secrets file that cannot be what flag wants,
// in one line that names the file and, where it can tell, the flag the
// file belongs to. It never quotes the file's content.
func checkSecretFile(path, flag, want string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return errs.Wrap(errs.Config, op, err, "%s", flag)
	}
	defer clear(b)
	s := string(b)
	got := ""
	switch {
	case strings.Contains(s, "BEGIN NATS USER JWT"):
		got = kindCreds
	case hasUserSeed(s):
		got = kindSeed
	}
	switch {
	case got == want:
		return nil
	case got == kindCreds:
		return errs.New(errs.Config, op, "%s %s holds JWT credentials, not an nkey seed: give it with --creds", flag, path)
	case got == kindSeed:
		return errs.New(errs.Config, op, "%s %s holds a bare nkey seed, not JWT credentials: give it with --nkey", flag, path)
	case want == kindCreds:
		return errs.New(errs.Config, op, "%s %s is not a NATS credentials file (want the JWT and seed blocks that `gorch auth init` or nsc writes)", flag, path)
	default:
		return errs.New(errs.Config, op, "%s %s holds no nkey user seed (a line starting SU)", flag, path)
	}
}

// hasUserSeed reports whether s has a line that is an nkey user seed.
func hasUserSeed(s string) bool {
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "SU") && len(line) == 58 {
			return true
		}
	}
	return false
}
