package main

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/services/collector"
)

// newCollectorCmd is `gorch collector`: the record writer of a cluster,
// alone against an external NATS server.
func newCollectorCmd() *cobra.Command {
	var natsURL string
	cmd := &cobra.Command{
		Use:   "collector",
		Short: "Write the run records a cluster's workers publish to the record store",
		Long: `Run the collector service: consume the EVENTS stream of the NATS server at
--nats and write every run's records (run.json, metrics, telemetry,
artifacts.json, run_summary.json) to the store at --data-dir (or S3 with
--s3-endpoint). It serves until
interrupted (SIGINT/SIGTERM).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := collectorStore(ctx)
			if err != nil {
				return err
			}
			nc, err := cluster.Connect(natsURL, cluster.ConnectOptions{Name: "gorch-collector"})
			if err != nil {
				return err
			}
			defer nc.Close()
			c, err := collector.New(nc, collector.Options{
				Store:  st,
				Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)),
			})
			if err != nil {
				return err
			}
			return c.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&natsURL, "nats", nats.DefaultURL, "URL of the NATS server")
	addStoreFlags(cmd)
	return cmd
}

// collectorStore opens the store the collector writes to: S3 with
// --s3-endpoint (the workers' checkpoints and the records must share one
// store), else the local directory --data-dir, created if missing.
func collectorStore(ctx context.Context) (experiment.Store, error) {
	return openStoreFromFlags(ctx)
}
