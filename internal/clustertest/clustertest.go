// Package clustertest starts what the cluster's tests share: an
// in-process NATS server with JetStream, set up as `gorch setup` does, and
// connections to it.
package clustertest

import (
	"context"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
)

// Server is an in-process NATS server with JetStream for one test, and a
// client connection to it.
type Server struct {
	*server.Server
	NC *nats.Conn          // a connection named "test"
	JS jetstream.JetStream // on NC
}

// Start starts a server with its store in the test's temp dir, listening
// on port (-1: none, in-process connections only; 0: any free loopback
// port), and sets the cluster's streams, consumers and buckets up with o.
// The server and its connections stop when the test ends.
func Start(tb testing.TB, port int, o cluster.SetupOptions) *Server {
	tb.Helper()
	ns, err := cluster.StartEmbedded(cluster.EmbeddedOptions{StoreDir: tb.TempDir(), Port: port})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	s := &Server{Server: ns}
	s.NC = s.Connect(tb, "test", cluster.RoleClient, "")
	if s.JS, err = jetstream.New(s.NC); err != nil {
		tb.Fatal(err)
	}
	if _, err := cluster.Setup(context.Background(), s.JS, o); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Connect opens an in-process connection named name, with the inbox
// prefix of role (and id, for a worker); it closes when the test ends.
func (s *Server) Connect(tb testing.TB, name, role, id string) *nats.Conn {
	tb.Helper()
	nc, err := cluster.Connect("", cluster.ConnectOptions{Name: name, InProcess: s.Server, InboxPrefix: cluster.InboxPrefix(role, id)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// KV binds bucket, failing the test if it cannot.
func (s *Server) KV(tb testing.TB, bucket string) jetstream.KeyValue {
	tb.Helper()
	kv, err := s.JS.KeyValue(context.Background(), bucket)
	if err != nil {
		tb.Fatal(err)
	}
	return kv
}
