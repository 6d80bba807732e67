package main

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
)

// startNATS starts the embedded NATS server with JetStream's file store in
// storeDir, listening on 127.0.0.1:port (0: a free port). flag names the
// port flag in the error for a port already taken.
func startNATS(storeDir string, port int, flag string) (*server.Server, error) {
	const op = "nats"
	if port < 0 || port > 65535 {
		return nil, errs.New(errs.Config, op, "%s %d: want a port from 0 (any free port) to 65535", flag, port)
	}
	if port != 0 {
		// nats-server only logs a port it cannot bind; find out here.
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return nil, errs.New(errs.Cluster, op, "port %d on 127.0.0.1 is taken (another gorch up or NATS server?); pick another with %s, or 0 for any free port", port, flag)
		}
		l.Close()
	}
	return cluster.StartEmbedded(cluster.EmbeddedOptions{StoreDir: storeDir, Port: port})
}

// newNATSCmd is `gorch nats`: the embedded NATS server alone, for running
// the services as separate processes on one machine.
func newNATSCmd() *cobra.Command {
	var port int
	var store string
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run the embedded NATS server (JetStream) alone",
		Long: `Run the NATS server that 'gorch up' embeds, on 127.0.0.1, with JetStream's
file store in --store (default <data-dir>/nats), until SIGINT or SIGTERM.
Point 'gorch coordinator', 'gorch worker' and 'gorch collector' at it with
--nats. It logs a "ready" line with its URL to stderr.`,
		Example: `  gorch nats --port 4222 --store /var/lib/gorch/nats
  gorch nats --port 0      # any free port; the ready line names it`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().IntVar(&port, "port", 4222, "port to listen on (0: any free port)")
	cmd.Flags().StringVar(&store, "store", "", "JetStream store directory (default <data-dir>/nats)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if store == "" {
			store = filepath.Join(dataDir(), "nats")
		}
		ns, err := startNATS(store, port, "--port")
		if err != nil {
			return err
		}
		log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
		log.Info("ready", "nats", ns.ClientURL(), "store", store)
		<-cmd.Context().Done()
		ns.Shutdown()
		ns.WaitForShutdown()
		log.Info("stopped")
		return nil
	}
	return cmd
}
