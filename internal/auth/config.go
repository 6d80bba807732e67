package auth

import (
	"fmt"
	"strings"
	"time"
)

// serverConfig is the nats-server configuration of a deployment.
type serverConfig struct {
	Listen, JetStreamDir string
	TLSCert, TLSKey      string // empty: no TLS
	jwts                 signedJWTs
}

// render writes the configuration. It holds only public JWTs and paths:
// the server never sees a seed. The memory resolver preloads both
// accounts, so the server needs nothing else to check every user, and
// minting a user (AddWorker) needs no change here.
func (c serverConfig) render() []byte {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# nats-server configuration of a gorch deployment, written by `gorch auth init` on %s.", time.Now().UTC().Format(time.DateOnly))
	p("# Run it with `gorch nats --config %s` or `nats-server -c %s`.", ServerConfigFile, ServerConfigFile)
	p("# Operator mode: the server trusts the operator below, which signed the gorch account; every")
	p("# user authenticates with a credentials file from creds/ and gets its role's permissions from")
	p("# the account's scoped signing keys (`gorch auth perms` prints them). No secret is in this file.")
	p("server_name: gorch")
	p("listen: %q", c.Listen)
	p("jetstream {")
	p("  store_dir: %q", c.JetStreamDir)
	p("}")
	if c.TLSCert != "" {
		p("tls {")
		p("  cert_file: %q", c.TLSCert)
		p("  key_file: %q", c.TLSKey)
		p("}")
	}
	p("operator: %q", c.jwts.operator)
	p("system_account: %q", c.jwts.systemPub)
	p("resolver: MEMORY")
	p("resolver_preload: {")
	p("  # gorch")
	p("  %s: %q", c.jwts.accountPub, c.jwts.accountClaims)
	p("  # SYS")
	p("  %s: %q", c.jwts.systemPub, c.jwts.systemClaims)
	p("}")
	return []byte(b.String())
}
