package main

import (
	"log/slog"

	"github.com/spf13/cobra"

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
	cmd.Flags().BoolVar(&debug, "debug", false, "log every request")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		level := slog.LevelInfo
		if debug {
			level = slog.LevelDebug
		}
		log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
		nc, err := nf.connectNATS("gorch-coordinator")
		if err != nil {
			return err
		}
		defer nc.Close()
		c, err := coordinator.New(nc, coordinator.Options{Logger: log})
		if err != nil {
			return err
		}
		log.Info("connected", "nats", nc.ConnectedUrlRedacted())
		return c.Run(cmd.Context())
	}
	return cmd
}
