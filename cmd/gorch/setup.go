package main

import (
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/natsconn"
	"github.com/gorch/gorch/pkg/errs"
)

// setupFlags are the settings of `gorch setup` (and of `gorch up`, which
// sets up its embedded server the same way).
type setupFlags struct {
	replicas                     int
	ackWait                      time.Duration
	eventsMaxBytes, dlqMaxBytes  byteSize
	eventsMaxAge, dlqMaxAge, ttl time.Duration
	workerTTL                    time.Duration
}

// addSetupFlags adds the layout settings to cmd.
func addSetupFlags(cmd *cobra.Command) *setupFlags {
	f := &setupFlags{}
	fl := cmd.Flags()
	fl.IntVar(&f.replicas, "replicas", 1, "replicas of every stream and bucket: 1, or 3 on a NATS cluster of three or more servers")
	fl.DurationVar(&f.ackWait, "ack-wait", cluster.AckWait, "how long a worker may be silent before its run goes to another worker")
	f.eventsMaxBytes, f.dlqMaxBytes = cluster.DefaultEventsMaxBytes, cluster.DefaultDLQMaxBytes
	fl.Var(&f.eventsMaxBytes, "events-max-bytes", "cap of the EVENTS stream (-1: none); when full, workers' publishes fail instead of unread events being dropped")
	fl.DurationVar(&f.eventsMaxAge, "events-max-age", cluster.DefaultEventsMaxAge, "how long EVENTS keeps an event")
	fl.Var(&f.dlqMaxBytes, "dlq-max-bytes", "cap of the DLQ stream (-1: none); the oldest dead letters go first")
	fl.DurationVar(&f.dlqMaxAge, "dlq-max-age", cluster.DefaultDLQMaxAge, "how long DLQ keeps a dead letter")
	fl.DurationVar(&f.ttl, "finished-ttl", cluster.DefaultFinishedTTL, "how long the state of a finished run is kept (-1s: forever)")
	fl.DurationVar(&f.workerTTL, "worker-ttl", cluster.WorkerTTL, "how long a worker may miss heartbeats before its runs are marked orphaned")
	return f
}

// options are the cluster.SetupOptions of the flags.
func (f *setupFlags) options() cluster.SetupOptions {
	o := cluster.SetupOptions{Replicas: f.replicas, AckWait: f.ackWait, EventsMaxBytes: int64(f.eventsMaxBytes),
		EventsMaxAge: f.eventsMaxAge, DLQMaxBytes: int64(f.dlqMaxBytes), DLQMaxAge: f.dlqMaxAge, FinishedTTL: f.ttl, WorkerTTL: f.workerTTL}
	if o.AckWait == cluster.AckWait {
		o.AckWait = cluster.EffectiveAckWait() // GORCH_ACK_WAIT, if set (tests)
	}
	if o.FinishedTTL < 0 {
		o.FinishedTTL = -1
	}
	return o
}

func newSetupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create a cluster's streams, consumers and buckets on a NATS server",
		Long: `Create what a gorch cluster needs on the NATS server at --nats: the RUNS,
EVENTS and DLQ streams, their consumers, and the runs and workers buckets.
Run it once, as the NATS identity allowed to administer streams, before
starting the services: they only bind to what setup made, and a service
that finds something missing waits for it, logging a line that names it
(its /readyz says it too).

Setup never changes what exists: a stream an operator edited (say
'nats stream edit EVENTS --max-bytes 1GB') keeps its settings, however
often setup or the services run. The flags apply to what setup creates.
--finished-ttl is kept in the runs bucket's metadata (gorch.finished_ttl),
where the coordinator reads it.`,
		Example: `  gorch setup --nats nats://10.0.0.5:4222 --creds admin.creds
  gorch setup --replicas 3 --events-max-bytes 50GiB --finished-ttl 2160h`,
		Args: cobra.NoArgs,
	}
	nf := natsFlags(cmd)
	sf := addSetupFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		co, err := nf.connOptions("gorch-setup", cluster.RoleAdmin, "")
		if err != nil {
			return err
		}
		nc, err := natsconn.Dial(cmd.Context(), nf.url, co)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return errs.Wrap(errs.Cluster, "setup", err, "")
		}
		res, err := cluster.Setup(cmd.Context(), js, sf.options())
		if err != nil {
			return err
		}
		printSetup(cmd.OutOrStdout(), res)
		return nil
	}
	return cmd
}

// printSetup lists what setup created and what it left alone.
func printSetup(w io.Writer, res cluster.SetupResult) {
	for _, s := range res.Created {
		fmt.Fprintf(w, "created %s\n", s)
	}
	for _, s := range res.Kept {
		fmt.Fprintf(w, "kept %s (exists; its settings are left as they are)\n", s)
	}
}
