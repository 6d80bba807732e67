package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/services/collector"
)

// newCollectorCmd is `gorch collector`: the record writer of a cluster,
// alone against an external NATS server.
func newCollectorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "collector",
		Short: "Write the run records a cluster's workers publish to the record store",
		Long: `Run the collector service: consume the EVENTS stream of the NATS server at
--nats and write every run's records (run.json, metrics, telemetry,
artifacts.json, run_summary.json) to the store: --data-dir, or S3 with
--s3-endpoint. It serves until interrupted (SIGINT/SIGTERM).`,
		Example: `  gorch collector --nats nats://10.0.0.5:4222 --data-dir /shared/gorch
  gorch collector --nats tls://nats.example:4222 --creds collector.creds \
    --s3-endpoint s3.amazonaws.com --s3-bucket my-runs`,
		Args: cobra.NoArgs,
	}
	nf := natsFlags(cmd)
	of := obsFlags(cmd)
	so := addStoreFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		if err := nf.check(); err != nil {
			return err
		}
		st, err := so.open(ctx)
		if err != nil {
			return err
		}
		log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
		svc, err := of.startTracing(ctx, "gorch-collector", log)
		if err != nil {
			return err
		}
		defer svc.close()
		nc, err := nf.connectService(ctx, log, "gorch-collector", cluster.RoleCollector, "")
		if err != nil {
			return err
		}
		defer nc.Close()
		if err := svc.serveHTTP(of.http, nc); err != nil {
			return err
		}
		c, err := bindCluster(ctx, svc, func() (*collector.Collector, error) {
			return collector.New(ctx, nc, collector.Options{Store: st, Logger: log})
		})
		if err != nil {
			return err
		}
		svc.metrics(collectorMetrics(c))
		svc.ready.SetUp()
		return c.Run(ctx)
	}
	return cmd
}
