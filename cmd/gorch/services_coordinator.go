package main

import (
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/health"

	"github.com/gorch/gorch/services/coordinator"
)

func newCoordinatorCmd() *cobra.Command {
	var debug bool
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run the coordinator service against a NATS server",
		Long: `Serve the run API (submit, sweep, cancel, status, list) on NATS until
SIGINT or SIGTERM. Several coordinators may run at once: they share the
requests. Logs go to stderr.`,
		Example: "  gorch coordinator --nats nats://queue.example:4222 --creds gorch.creds",
		Args:    cobra.NoArgs,
	}
	nf := natsFlags(cmd)
	of := obsFlags(cmd)
	cmd.Flags().BoolVar(&debug, "debug", false, "log every request")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		level := slog.LevelInfo
		if debug {
			level = slog.LevelDebug
		}
		log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
		svc, err := of.startTracing(cmd.Context(), "gorch-coordinator", log)
		if err != nil {
			return err
		}
		defer svc.close()
		nc, err := nf.connectService(cmd.Context(), log, "gorch-coordinator", cluster.RoleCoordinator, "")
		if err != nil {
			return err
		}
		defer nc.Close()
		if err := svc.serveHTTP(of.http, nc); err != nil {
			return err
		}
		c, err := bindCluster(cmd.Context(), svc, func() (*coordinator.Coordinator, error) {
			return coordinator.New(cmd.Context(), nc, coordinator.Options{Logger: log})
		})
		if err != nil {
			return err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		svc.metrics(health.NewClusterGauges(js, 0).Metrics)
		svc.ready.SetUp()
		return c.Run(cmd.Context())
	}
	return cmd
}
