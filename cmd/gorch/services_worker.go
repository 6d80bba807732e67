package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/natsconn"
	"github.com/gorch/gorch/pkg/errs"
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
to the queue for another worker to resume.

Each attempt runs in a process of its own, limited to --max-memory (a
cgroup where this process may make one, else RLIMIT_AS): an attempt that
runs out of memory, panics or crashes fails with the reason ("out of memory
(limit 3.9 GiB)", "crashed: SIGSEGV", the panic's first line), and the
worker and its other slots go on. The limit is also the worker's promise
to the coordinator, which turns away runs whose estimated memory exceeds
it.`,
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
	var maxMem byteSize
	fl.Var(&maxMem, "max-memory", "memory each attempt may use, e.g. 4GiB (default: 80% of the machine's or container's memory, split between the slots; -1: no limit)")
	cmd.AddCommand(newWorkerAttemptCmd())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		id, err := nf.workerID(opts.ID)
		if err != nil {
			return err
		}
		opts.ID = id
		if opts.ID == "" {
			opts.ID = worker.DefaultID() // before connecting: its inbox prefix names it
		}
		storeCfg, err := so.config()
		if err != nil {
			return err
		}
		store, err := storeCfg.Open(cmd.Context())
		if err != nil {
			return err
		}
		co, err := nf.connOptions("gorch-worker-"+opts.ID, cluster.RoleWorker, opts.ID)
		if err != nil {
			return err
		}
		if opts.Child, err = attemptChild(nf.url, co, storeCfg); err != nil {
			return err
		}
		opts.MemoryLimit = int64(maxMem)
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
		w, err := bindCluster(cmd.Context(), svc, func() (*worker.Worker, error) { return worker.New(cmd.Context(), nc, opts) })
		if err != nil {
			return err
		}
		svc.metrics(workerMetrics(w))
		svc.ready.SetUp()
		return w.Run(cmd.Context())
	}
	return cmd
}

// attemptChild is how a worker of this binary runs its attempts: this
// executable's hidden `worker attempt`, connecting to natsURL with co and
// opening store.
func attemptChild(natsURL string, co natsconn.Options, store worker.StoreConfig) (*worker.ChildOptions, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, errs.Wrap(errs.Internal, "worker", err, "finding this executable for attempt processes")
	}
	return &worker.ChildOptions{Command: []string{exe, "worker", "attempt"}, NATS: natsURL, Connect: co, Store: store}, nil
}

// newWorkerAttemptCmd is `gorch worker attempt`: the process a worker
// starts for each attempt. It reads its ticket on stdin, writes its result
// to fd 3 and ignores SIGINT and SIGTERM: its worker tells it to stop.
func newWorkerAttemptCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "attempt",
		Short:  "Train one attempt of a run (started by a worker, never by hand)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			signal.Ignore(os.Interrupt, syscall.SIGTERM)
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			svc, err := (&obsOptions{}).startTracing(cmd.Context(), "gorch-worker", log)
			if err != nil {
				return err
			}
			defer svc.close()
			result := os.NewFile(3, "result")
			defer result.Close()
			return worker.RunChild(cmd.Context(), cmd.InOrStdin(), result, log)
		},
	}
}
