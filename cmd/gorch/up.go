package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/health"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/services/collector"
	"github.com/gorch/gorch/services/coordinator"
	"github.com/gorch/gorch/services/worker"
)

// upOptions are the flags of `gorch up`.
type upOptions struct {
	workers, slots, natsPort int
	http                     string
	demo                     bool
	demoSteps                int // hidden: steps per demo run (tests use few)
	setup                    *setupFlags
	store                    *storeOptions
	maxMemory                byteSize // per attempt
	// inProcess runs attempts in this process (tests that record spans
	// in memory); else each runs in a `gorch worker attempt` process.
	inProcess bool
}

func newUpCmd() *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole cluster in one process: NATS, coordinator, workers, collector",
		Long: `Start an embedded NATS server (JetStream, file store under <data-dir>/nats,
listening on 127.0.0.1), create its streams and buckets as 'gorch setup'
does (the setup flags apply the first time; an existing layout is kept as
it is), then the coordinator, --workers workers with --slots
slots each, and the collector, all keeping records and checkpoints in the
store at --data-dir (or S3 with --s3-endpoint). When everything is up it
logs a "ready" line with the NATS URL; 'gorch submit', 'gorch sweep',
'gorch status', 'gorch logs' ... from another shell talk to it. SIGINT or
SIGTERM shuts it down cleanly: workers checkpoint and hand their runs back
(the next 'gorch up' on the same --data-dir resumes them), the collector
writes what it has, and the server stops. Each attempt runs in a process
of its own with --max-memory (see 'gorch worker --help'): one that runs out
of memory or crashes fails alone, and everything else here goes on.

--demo also queues a small Fashion-MNIST sweep (mlp and cnn, each at lr
1e-3 and 3e-3), shows every run's progress, waits for the final records,
prints a results table and exits: 0 if every run succeeded.`,
		Example: `  gorch up                                 # serve on nats://127.0.0.1:4222
  gorch up --workers 4 --slots 2 --data-dir /data/gorch
  gorch up --demo --nats-port 0            # the demo, on a free port`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUp(cmd, o) },
	}
	fl := cmd.Flags()
	fl.IntVar(&o.workers, "workers", 2, "workers to run")
	fl.IntVar(&o.slots, "slots", 1, "runs each worker trains at once")
	fl.IntVar(&o.natsPort, "nats-port", 4222, "port of the embedded NATS server on 127.0.0.1 (0: any free port)")
	fl.BoolVar(&o.demo, "demo", false, "queue a small Fashion-MNIST sweep, show its progress and results, and exit")
	fl.IntVar(&o.demoSteps, "demo-steps", 300, "training steps of each demo run")
	_ = fl.MarkHidden("demo-steps")
	fl.StringVar(&o.http, "http", "", "serve /healthz, /readyz and Prometheus /metrics on this address (e.g. 127.0.0.1:9464; default off)")
	fl.Var(&o.maxMemory, "max-memory", "memory each attempt may use, e.g. 4GiB (default: 80% of the machine's or container's memory, split between all slots; -1: no limit)")
	o.store = addStoreFlags(cmd)
	o.setup = addSetupFlags(cmd)
	return cmd
}

func runUp(cmd *cobra.Command, o upOptions) error {
	if o.workers < 1 || o.slots < 1 {
		return errs.New(errs.Config, "up", "--workers and --slots must be at least 1 (got %d and %d)", o.workers, o.slots)
	}
	if o.demo && o.demoSteps < 1 {
		return errs.New(errs.Config, "up", "--demo-steps must be at least 1")
	}
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	svcLevel := slog.LevelInfo
	if o.demo {
		svcLevel = slog.LevelWarn // the progress display says what the services would
	}
	svcLog := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: svcLevel}))

	store, err := o.store.open(ctx)
	if err != nil {
		return err
	}
	svc, err := (&obsOptions{http: o.http}).startTracing(ctx, "gorch", log)
	if err != nil {
		return err
	}
	defer svc.close()
	lc, err := startLocalCluster(ctx, store, o, svcLog)
	if err != nil {
		return err
	}
	if err := svc.serveHTTP(o.http, lc.nc); err != nil {
		lc.stop(log)
		return err
	}
	svc.metrics(health.NewClusterGauges(lc.js, 0).Metrics)
	svc.metrics(workerMetrics(lc.ws...))
	svc.metrics(collectorMetrics(lc.coll))
	svc.ready.SetUp()
	log.Info("ready", "nats", lc.url, "workers", o.workers, "slots", o.slots, "data_dir", dataDir())

	var runErr error
	if o.demo {
		runErr = runDemo(ctx, lc, store, o.demoSteps, cmd.OutOrStdout(), stderr)
	} else {
		select {
		case <-ctx.Done():
		case runErr = <-lc.failed:
		}
	}
	log.Info("shutting down")
	if err := lc.stop(log); err != nil && runErr == nil {
		runErr = err
	}
	if runErr == nil {
		log.Info("stopped")
	}
	return runErr
}

// localCluster is the embedded server and the services of `gorch up`.
type localCluster struct {
	ns    *server.Server
	url   string
	conns []*nats.Conn
	js    jetstream.JetStream // on the client connection
	nc    *nats.Conn          // the client connection (demo, drain checks)

	stopWorkers, stopRest context.CancelFunc
	workers, rest         sync.WaitGroup
	failed                chan error // a service that stopped with an error
	ws                    []*worker.Worker
	coll                  *collector.Collector
}

// startLocalCluster starts the server, then the coordinator, collector
// and workers, each on its own in-process connection. On error it stops
// whatever it started.
func startLocalCluster(ctx context.Context, store experiment.Store, o upOptions, log *slog.Logger) (lc *localCluster, err error) {
	ns, err := startNATS(filepath.Join(dataDir(), "nats"), o.natsPort, "--nats-port")
	if err != nil {
		return nil, err
	}
	lc = &localCluster{ns: ns, url: ns.ClientURL(), failed: make(chan error, o.workers+2)}
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	rctx, stopRest := context.WithCancel(context.WithoutCancel(ctx))
	lc.stopWorkers, lc.stopRest = stopWorkers, stopRest
	defer func() {
		if err != nil {
			lc.stop(log)
		}
	}()
	connect := func(role, id string) (*nats.Conn, error) {
		name := "gorch-" + role
		if id != "" {
			name += "-" + id
		}
		nc, err := cluster.Connect(lc.url, cluster.ConnectOptions{Name: name, InProcess: ns, InboxPrefix: cluster.InboxPrefix(role, id)})
		if err == nil {
			lc.conns = append(lc.conns, nc)
		}
		return nc, err
	}
	serve := func(wg *sync.WaitGroup, name string, run func() error) {
		wg.Go(func() {
			if err := run(); err != nil {
				lc.failed <- fmt.Errorf("%s: %w", name, err)
			}
		})
	}

	if lc.nc, err = connect(cluster.RoleAdmin, ""); err != nil {
		return lc, err
	}
	if lc.js, err = jetstream.New(lc.nc); err != nil {
		return lc, errs.Wrap(errs.Cluster, "up", err, "")
	}
	var so cluster.SetupOptions // the defaults, unless flags say otherwise
	if o.setup != nil {
		so = o.setup.options()
	}
	if _, err := cluster.Setup(ctx, lc.js, so); err != nil {
		return lc, err
	}
	nc, err := connect(cluster.RoleCoordinator, "")
	if err != nil {
		return lc, err
	}
	coord, err := coordinator.New(ctx, nc, coordinator.Options{Logger: log.With("service", "coordinator")})
	if err != nil {
		return lc, err
	}
	serve(&lc.rest, "coordinator", func() error { return coord.Run(rctx) })

	if nc, err = connect(cluster.RoleCollector, ""); err != nil {
		return lc, err
	}
	coll, err := collector.New(ctx, nc, collector.Options{Store: store, Logger: log})
	if err != nil {
		return lc, err
	}
	lc.coll = coll
	serve(&lc.rest, "collector", func() error { return coll.Run(rctx) })

	var storeCfg worker.StoreConfig
	if !o.inProcess {
		if storeCfg, err = o.store.config(); err != nil {
			return lc, err
		}
	}
	memory := int64(o.maxMemory)
	if memory == 0 {
		memory = worker.DefaultMemoryLimit(o.workers * o.slots)
	}
	for i := 1; i <= o.workers; i++ {
		id := fmt.Sprintf("up-%d", i)
		if nc, err = connect(cluster.RoleWorker, id); err != nil {
			return lc, err
		}
		wo := worker.Options{ID: id, Slots: o.slots, Store: store, Logger: log, Version: version, MemoryLimit: memory}
		if !o.inProcess {
			co := cluster.ConnectOptions{Name: "gorch-worker-" + id, InboxPrefix: cluster.InboxPrefix(cluster.RoleWorker, id)}
			if wo.Child, err = attemptChild(lc.url, co, storeCfg); err != nil {
				return lc, err
			}
		}
		w, err := worker.New(ctx, nc, wo)
		if err != nil {
			return lc, err
		}
		lc.ws = append(lc.ws, w)
		serve(&lc.workers, w.ID(), func() error { return w.Run(wctx) })
	}
	return lc, nil
}

// stop shuts the cluster down in dependency order: the workers first
// (each checkpoints its runs and hands them back), then — once the
// collector has written every event the workers published — the
// coordinator and collector, and last the server.
func (lc *localCluster) stop(log *slog.Logger) error {
	lc.stopWorkers()
	lc.workers.Wait()
	if lc.js != nil {
		if err := lc.drainCollector(15 * time.Second); err != nil {
			log.Warn("the collector did not catch up before shutdown; it will on the next start", "err", err)
		}
	}
	lc.stopRest()
	lc.rest.Wait()
	for _, nc := range lc.conns {
		nc.Close()
	}
	lc.ns.Shutdown()
	lc.ns.WaitForShutdown()
	select {
	case err := <-lc.failed:
		return err
	default:
		return nil
	}
}

// drainCollector waits until the collector's consumer has no message left
// to deliver or to ack.
func (lc *localCluster) drainCollector(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cons, err := lc.js.Consumer(ctx, cluster.StreamEvents, cluster.ConsumerCollect)
	if err != nil {
		return err
	}
	for {
		info, err := cons.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("%d events pending, %d unacked", info.NumPending, info.NumAckPending)
			}
			return errors.Join(ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
