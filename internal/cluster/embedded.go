package cluster

import (
	"context"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gorch/gorch/internal/natsconn"
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
	opts := &server.Options{JetStream: true, StoreDir: o.StoreDir, Host: o.Host, Port: o.Port, NoLog: true}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	switch o.Port {
	case 0:
		opts.Port = server.RANDOM_PORT
	case -1:
		opts.DontListen = true
	}
	return StartServer(opts, nil)
}

// StartServer starts a NATS server with opts in this process (signals are
// left to the caller) and waits until it accepts connections. A non-nil
// logger gets the server's log.
func StartServer(opts *server.Options, logger server.Logger) (*server.Server, error) {
	const op = "cluster.StartEmbedded"
	opts.NoSigs = true
	if opts.ServerName == "" {
		opts.ServerName = "gorch-embedded"
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, op, err, "")
	}
	if logger != nil {
		ns.SetLoggerV2(logger, opts.Debug, opts.Trace, false)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errs.New(errs.Cluster, op, "embedded NATS server not ready after 10s")
	}
	return ns, nil
}

// ConnectOptions configures Connect: see natsconn.Options.
type ConnectOptions = natsconn.Options

// Connect dials url (or an in-process server) with reconnects enabled.
func Connect(url string, o ConnectOptions) (*nats.Conn, error) {
	return natsconn.Dial(context.Background(), url, o)
}
