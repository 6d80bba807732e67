package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/auth"
	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/natsconn"
	"github.com/gorch/gorch/pkg/errs"
)

// defaultNATS is the NATS server the cluster commands use unless --nats
// or GORCH_NATS says otherwise (where `gorch up` listens).
const defaultNATS = "nats://127.0.0.1:4222"

// Environment variables of the connection flags. The password has no
// flag: argv is visible to every user of the machine (ps), a file or the
// environment is not.
const (
	envNATS         = "GORCH_NATS"
	envNATSUser     = "GORCH_NATS_USER"
	envNATSPassword = natsconn.PasswordEnv
)

// natsOptions holds the connection flags of a command that talks to NATS.
type natsOptions struct {
	url, creds, nkey, user, passwordFile, tlsCA, tlsCert, tlsKey string
}

// natsFlags adds the connection flags to cmd: --nats, one way to
// authenticate (--creds, --nkey, or --user with --password-file or
// GORCH_NATS_PASSWORD), and --tls-ca, --tls-cert, --tls-key. Every
// command that talks to NATS (the services, the client commands, logs)
// takes these.
func natsFlags(cmd *cobra.Command) *natsOptions {
	o := &natsOptions{}
	def := defaultNATS
	if env := os.Getenv(envNATS); env != "" {
		def = env
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "nats", def, "NATS server URL(s), comma-separated (env "+envNATS+"); keep passwords out of it, see --password-file")
	f.StringVar(&o.creds, "creds", "", "NATS JWT credentials file (gorch auth init writes one per identity)")
	f.StringVar(&o.nkey, "nkey", "", "NATS nkey user seed file")
	f.StringVar(&o.user, "user", os.Getenv(envNATSUser), "NATS user name, with --password-file or "+envNATSPassword+" (env "+envNATSUser+")")
	f.StringVar(&o.passwordFile, "password-file", "", "file holding the NATS password of --user (or set "+envNATSPassword+")")
	f.StringVar(&o.tlsCA, "tls-ca", "", "CA certificate to verify the NATS server with")
	f.StringVar(&o.tlsCert, "tls-cert", "", "client certificate for TLS (with --tls-key)")
	f.StringVar(&o.tlsKey, "tls-key", "", "client key for TLS (with --tls-cert)")
	return o
}

// connectNATS dials the server the flags name for a one-shot command (a
// client of the coordinator, logs): it fails at once when the server is
// not reachable.
func (o *natsOptions) connectNATS(ctx context.Context, name string) (*nats.Conn, error) {
	co, err := o.connOptions(name, cluster.RoleClient, "")
	if err != nil {
		return nil, err
	}
	return natsconn.Dial(ctx, o.url, co)
}

// connectService dials for a service of role (id: a worker's id): it
// waits for a server that is not up yet, retrying with backoff until ctx
// ends, and logs every failed attempt, disconnect and reconnect to log.
func (o *natsOptions) connectService(ctx context.Context, log *slog.Logger, name, role, id string) (*nats.Conn, error) {
	co, err := o.connOptions(name, role, id)
	if err != nil {
		return nil, err
	}
	co.Logger, co.Retry = log, true
	log.Info("connecting to NATS", "nats", natsconn.Redact(o.url))
	nc, err := natsconn.Dial(ctx, o.url, co)
	if err == nil {
		log.Info("connected", "nats", natsconn.ConnectedURL(nc), "as", identityName(o, role, id))
	}
	return nc, err
}

// identityName names the identity a service connects as, for its log.
func identityName(o *natsOptions, role, id string) string {
	name := role
	if id != "" {
		name += " " + id
	}
	if o.creds == "" && o.nkey == "" && o.user == "" {
		name += " (no credentials)"
	}
	return name
}

// connOptions checks the flags and turns them into natsconn options for
// an identity of role.
func (o *natsOptions) connOptions(name, role, id string) (natsconn.Options, error) {
	co := natsconn.Options{Name: name, CredsFile: o.creds, NKeyFile: o.nkey, User: o.user, PasswordFile: o.passwordFile,
		TLSCA: o.tlsCA, TLSCert: o.tlsCert, TLSKey: o.tlsKey, InboxPrefix: cluster.InboxPrefix(role, id)}
	if err := o.check(); err != nil {
		return co, err
	}
	return co, o.checkRole(role)
}

// checkRole reports credentials from `gorch auth init` that belong to
// another role than the command's (the server would refuse its every
// action). Credentials without a role tag (made by nsc) pass.
func (o *natsOptions) checkRole(role string) error {
	if o.creds == "" {
		return nil
	}
	got, name, err := auth.Identity(o.creds)
	if err != nil || got == "" || got == role {
		return err
	}
	if got == cluster.RoleWorker {
		got = "worker " + name
	}
	return errs.New(errs.Config, "nats", "--creds %s holds the credentials of %s; this command needs a %s's", o.creds, got, role)
}

// workerID is the id a worker runs as: --id, else the name in its
// --creds; the two must agree, since the server lets a worker act only
// under the name in its credentials.
func (o *natsOptions) workerID(id string) (string, error) {
	if err := o.check(); err != nil || o.creds == "" {
		return id, err
	}
	role, name, err := auth.Identity(o.creds)
	switch {
	case err != nil || role != cluster.RoleWorker:
		return id, err // checkRole reports a wrong role when connecting
	case id == "":
		return name, nil
	case id != name:
		return "", errs.New(errs.Config, "worker", "--id %s, but --creds %s holds worker %s's credentials", id, o.creds, name)
	}
	return id, nil
}

// check reports flag combinations that cannot work, before anything is
// opened.
func (o *natsOptions) check() error {
	const op = "nats"
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errs.New(errs.Config, op, "--tls-cert and --tls-key go together")
	}
	n := 0
	for _, set := range []bool{o.creds != "", o.nkey != "", o.user != "" || o.passwordFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errs.New(errs.Config, op, "--creds, --nkey and --user/--password-file are three ways to authenticate: give one")
	}
	if o.passwordFile != "" && o.user == "" {
		return errs.New(errs.Config, op, "--password-file needs --user (or %s)", envNATSUser)
	}
	return nil
}
