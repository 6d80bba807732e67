package main

import (
	"os"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
)

// defaultNATS is the NATS server the cluster commands use unless --nats
// or GORCH_NATS says otherwise (where `gorch up` listens).
const defaultNATS = "nats://127.0.0.1:4222"

// natsOptions holds the connection flags of a command that talks to NATS.
type natsOptions struct {
	url, creds, tlsCA, tlsCert, tlsKey string
}

// natsFlags adds --nats, --creds, --tls-ca, --tls-cert and --tls-key to
// cmd; connect with the returned options' connectNATS. Every command that
// talks to NATS (the services, the client commands, logs) takes these.
func natsFlags(cmd *cobra.Command) *natsOptions {
	o := &natsOptions{}
	def := defaultNATS
	if env := os.Getenv("GORCH_NATS"); env != "" {
		def = env
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "nats", def, "NATS server URL(s), comma-separated (env GORCH_NATS)")
	f.StringVar(&o.creds, "creds", "", "NATS credentials file")
	f.StringVar(&o.tlsCA, "tls-ca", "", "CA certificate to verify the NATS server with")
	f.StringVar(&o.tlsCert, "tls-cert", "", "client certificate for TLS (with --tls-key)")
	f.StringVar(&o.tlsKey, "tls-key", "", "client key for TLS (with --tls-cert)")
	return o
}

// connectNATS dials the server the flags name; name identifies this
// client in the server's monitoring.
func (o *natsOptions) connectNATS(name string) (*nats.Conn, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	return cluster.Connect(o.url, cluster.ConnectOptions{Name: name, CredsFile: o.creds, TLSCA: o.tlsCA, TLSCert: o.tlsCert, TLSKey: o.tlsKey})
}

// check reports flag combinations that cannot work, before anything is
// opened.
func (o *natsOptions) check() error {
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errs.New(errs.Config, "nats", "--tls-cert and --tls-key go together")
	}
	return nil
}
