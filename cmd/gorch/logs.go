package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
)

func newLogsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [-f] RUN_ID",
		Short: "Print a run's metrics from the cluster's event stream",
		Long: `Print every metric a run's workers published (one "step name value" line
each, oldest first), read from the EVENTS stream of the NATS server at
--nats. A later attempt's metrics follow a "# attempt N" line. With -f, keep
printing new metrics until the run ends (succeeded, failed or cancelled) or
until interrupted.`,
		Example: `  gorch logs 20261201T101500.000000Z-1a2b3c4d
  gorch logs -f 20261201T101500.000000Z-1a2b3c4d | grep eval/`,
		Args: cobra.ExactArgs(1),
	}
	nf := natsFlags(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the run's metrics until it ends")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		nc, err := nf.connectNATS(cmd.Context(), "gorch-logs")
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return errs.Wrap(errs.Cluster, "logs", err, "")
		}
		return printLogs(cmd.Context(), js, args[0], follow, cmd.OutOrStdout())
	}
	return cmd
}

// printLogs writes run's metric points to w. Without follow it stops at
// the stream's last metric of the run as of the start; with follow, at the
// last one once the run is terminal, or when ctx is done.
func printLogs(ctx context.Context, js jetstream.JetStream, run string, follow bool, w io.Writer) error {
	const op = "logs"
	if !experiment.ValidRunID(run) {
		return errs.New(errs.Experiment, op, "run %s not found", run)
	}
	kv, err := js.KeyValue(ctx, cluster.BucketRuns)
	if err != nil {
		return errs.Wrap(errs.Cluster, op, err, "bucket %s (is this a gorch cluster's NATS server?)", cluster.BucketRuns)
	}
	st, _, err := cluster.GetState(ctx, kv, run)
	if err != nil {
		return err
	}
	stream, err := js.Stream(ctx, cluster.StreamEvents)
	if err != nil {
		return errs.Wrap(errs.Cluster, op, err, "stream %s", cluster.StreamEvents)
	}
	subj := cluster.MetricsSubject(run)
	// lastSeq is the stream sequence of the run's newest metric batch
	// (0: none yet).
	lastSeq := func() (uint64, error) {
		m, err := stream.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, errs.Wrap(errs.Cluster, op, err, "stream %s", cluster.StreamEvents)
		}
		return m.Sequence, nil
	}

	// Terminal: watch the run's state.
	terminal := make(chan struct{})
	if follow && !cluster.Terminal(st.Status) {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		watcher, err := kv.Watch(wctx, cluster.RunKey(run), jetstream.UpdatesOnly())
		if err != nil {
			return errs.Wrap(errs.Cluster, op, err, "watching run %s", run)
		}
		go func() {
			defer watcher.Stop()
			for e := range watcher.Updates() {
				if e == nil {
					continue
				}
				var s cluster.RunState
				if cluster.Unmarshal(e.Value(), &s) == nil && cluster.Terminal(s.Status) {
					close(terminal)
					return
				}
			}
		}()
		// A run that ended between the read and the watch.
		if st, _, err = cluster.GetState(ctx, kv, run); err == nil && cluster.Terminal(st.Status) {
			follow = false
		}
	}
	if !follow || cluster.Terminal(st.Status) {
		close(terminal)
	}

	var until uint64 // set once the end is known
	known := false
	if !follow {
		if until, err = lastSeq(); err != nil {
			return err
		}
		known = true
	}
	if known && until == 0 {
		return nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return errs.Wrap(errs.Cluster, op, err, "reading %s", subj)
	}
	attempt := 0
	var seen uint64
	for {
		if !known {
			select {
			case <-terminal:
				if until, err = lastSeq(); err != nil {
					return err
				}
				known = true
			default:
			}
		}
		if known && seen >= until {
			return nil
		}
		if ctx.Err() != nil {
			return nil // interrupted while following
		}
		batch, err := cons.Fetch(64, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return errs.Wrap(errs.Cluster, op, err, "reading %s", subj)
		}
		for m := range batch.Messages() {
			if md, err := m.Metadata(); err == nil {
				seen = md.Sequence.Stream
			}
			var b cluster.MetricBatch
			if err := cluster.Decode(m.Data(), cluster.TypeMetricBatch, &b); err != nil {
				continue // the collector dead-letters it; nothing to show
			}
			if b.Attempt != attempt {
				if attempt != 0 || b.Attempt > 1 {
					if _, err := fmt.Fprintf(w, "# attempt %d\n", b.Attempt); err != nil {
						return err
					}
				}
				attempt = b.Attempt
			}
			for _, p := range b.Points {
				if _, err := fmt.Fprintf(w, "%d %s %s\n", p.Step, p.Name, fmtMetric(p.Value)); err != nil {
					return err
				}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil && !isFetchTimeout(err) {
			return errs.Wrap(errs.Cluster, op, err, "reading %s", subj)
		}
	}
}

// isFetchTimeout reports a Fetch that ended for lack of messages.
func isFetchTimeout(err error) bool {
	return errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoHeartbeat)
}

// fmtMetric formats a metric value in full (logs are for piping).
func fmtMetric(v float64) string { return fmt.Sprint(v) }
