package main

import (
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/services/worker"
)

func newWorkerCmd() *cobra.Command {
	var opts worker.Options
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Train queued runs from a gorch cluster's NATS server",
		Long: `Serve as a cluster worker: take runs off the queue (one per free slot),
train them, publish their metrics and telemetry to NATS and write their
checkpoints to the store (--data-dir, or S3 with --s3-endpoint). SIGINT or
SIGTERM finishes each run's current step, checkpoints it and hands it back
to the queue for another worker to resume.`,
		Example: `  gorch worker --nats nats://10.0.0.5:4222 --slots 2 --data-dir /shared/gorch
  gorch worker --nats tls://nats.example:4222 --creds worker.creds \
    --s3-endpoint s3.amazonaws.com --s3-bucket my-runs`,
		Args: cobra.NoArgs,
	}
	nf := natsFlags(cmd)
	of := obsFlags(cmd)
	so := addStoreFlags(cmd)
	fl := cmd.Flags()
	fl.IntVar(&opts.Slots, "slots", 1, "runs to train at once")
	fl.StringVar(&opts.ID, "id", "", "worker ID (default <hostname>-<random>)")
	fl.IntVar(&opts.BatchSize, "batch-size", 256, "metric points per published batch")
	fl.DurationVar(&opts.PublishEvery, "publish-every", time.Second, "longest a metric waits before it is published")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		id, err := nf.workerID(opts.ID)
		if err != nil {
			return err
		}
		opts.ID = id
		if opts.ID == "" {
			opts.ID = worker.DefaultID() // before connecting: its inbox prefix names it
		}
		store, err := so.open(cmd.Context())
		if err != nil {
			return err
		}
		opts.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
		svc, err := of.startTracing(cmd.Context(), "gorch-worker", opts.Logger)
		if err != nil {
			return err
		}
		defer svc.close()
		nc, err := nf.connectService(cmd.Context(), opts.Logger, "gorch-worker", cluster.RoleWorker, opts.ID)
		if err != nil {
			return err
		}
		defer nc.Close()
		if err := svc.serveHTTP(of.http, nc); err != nil {
			return err
		}
		opts.Store, opts.Version = store, version
		w, err := worker.New(nc, opts)
		if err != nil {
			return err
		}
		svc.metrics(workerMetrics(w))
		svc.ready.SetUp()
		return w.Run(cmd.Context())
	}
	return cmd
}
