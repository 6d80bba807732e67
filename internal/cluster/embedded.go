package cluster

import (
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gorch/gorch/pkg/errs"
)

// EmbeddedOptions configures StartEmbedded.
type EmbeddedOptions struct {
	StoreDir string // JetStream file store directory
	Host     string // listen address; "" means 127.0.0.1
	Port     int    // 0 picks a free port; -1 listens on no port (in-process clients only)
}

// StartEmbedded starts a NATS server with JetStream in this process. The
// caller shuts it down with Shutdown and WaitForShutdown.
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	const op = "cluster.StartEmbedded"
	opts := &server.Options{ServerName: "gorch-embedded", JetStream: true, StoreDir: o.StoreDir,
		Host: o.Host, Port: o.Port, NoLog: true, NoSigs: true}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	switch o.Port {
	case 0:
		opts.Port = server.RANDOM_PORT
	case -1:
		opts.DontListen = true
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, op, err, "")
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errs.New(errs.Cluster, op, "embedded NATS server not ready after 10s")
	}
	return ns, nil
}

// ConnectOptions configures Connect.
type ConnectOptions struct {
	Name      string
	CredsFile string // NATS credentials file, if any
	TLSCA     string // CA certificate for TLS, if any
	TLSCert   string // client certificate and key, if any
	TLSKey    string
	InProcess *server.Server // connect in-process instead of over TCP
}

// Connect dials url (or an in-process server) with reconnects enabled.
func Connect(url string, o ConnectOptions) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(o.Name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if o.InProcess != nil {
		opts = append(opts, nats.InProcessServer(o.InProcess))
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, "cluster.Connect", err, "connecting to NATS at %s", url)
	}
	return nc, nil
}
