package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/train"
	"github.com/gorch/gorch/services/coordinator"
)

// withClient connects, runs f with a coordinator client and closes the
// connection.
func (o *natsOptions) withClient(ctx context.Context, f func(context.Context, *coordinator.Client) error) error {
	nc, err := o.connectNATS(ctx, "gorch-cli")
	if err != nil {
		return err
	}
	defer nc.Close()
	return f(ctx, coordinator.NewClient(nc))
}

// clusterClientCmds returns the commands that talk to a running cluster's
// coordinator, and the coordinator service command itself.
func clusterClientCmds() []*cobra.Command {
	return []*cobra.Command{newSubmitCmd(), newSweepCmd(), newStatusCmd(), newCancelCmd(), newCoordinatorCmd()}
}

func newSubmitCmd() *cobra.Command {
	var prio string
	cmd := &cobra.Command{
		Use:   "submit SPEC.yaml",
		Short: "Queue a training run on the cluster; prints its run id",
		Long: `Queue the run spec (YAML or JSON, as 'gorch train --config' reads) on a
running cluster ('gorch up', or 'gorch coordinator' and workers). The spec is
checked here first, and again by the coordinator.`,
		Example: `  gorch submit spec.yaml
  gorch submit spec.yaml --priority high --nats nats://queue.example:4222`,
		Args: cobra.ExactArgs(1),
	}
	nf := natsFlags(cmd)
	cmd.Flags().StringVar(&prio, "priority", "normal", "queue priority: high, normal or low")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		p, err := cluster.ParsePriority(prio)
		if err != nil {
			return err
		}
		b, err := readInput(cmd, args[0])
		if err != nil {
			return err
		}
		if _, err := train.ParseSpec(filepath.Base(args[0]), b); err != nil {
			return err
		}
		return nf.withClient(cmd.Context(), func(ctx context.Context, c *coordinator.Client) error {
			ids, err := c.Submit(ctx, b, p)
			for _, id := range ids {
				fmt.Fprintln(cmd.OutOrStdout(), id)
			}
			return err
		})
	}
	return cmd
}

func newSweepCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sweep SWEEP.yaml",
		Short: "Queue a hyperparameter sweep on the cluster; prints its run ids",
		Long: `Expand a sweep file into runs and queue them all. A sweep file has a name,
an optional priority, a base run spec, and a grid and/or random search over
dotted spec paths:

  name: lr-vs-model
  priority: low
  base:
    model: {name: mlp}
    dataset: {name: fashion-mnist}
    optimizer: {name: adam, lr: 0.001}
    epochs: 1
    batch_size: 64
  grid:
    model.name: [mlp, cnn]
    optimizer.lr: [0.001, 0.01]
  random:
    trials: 4
    seed: 7
    params:
      optimizer.weight_decay: {log_uniform: [1.0e-5, 1.0e-2]}
      optimizer.momentum: {uniform: [0.8, 0.99]}
      batch_size: {choice: [32, 64, 128]}

The grid takes every combination (paths in sorted order, the last varying
fastest); random draws the same trials for the same seed; with both, every
grid point runs every trial. Runs are named <name>-0, <name>-1, ... Every
expanded spec is checked before anything is queued.`,
		Example: "  gorch sweep sweep.yaml",
		Args:    cobra.ExactArgs(1),
	}
	nf := natsFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		b, err := readInput(cmd, args[0])
		if err != nil {
			return err
		}
		if _, _, err := coordinator.ParseSweep(filepath.Base(args[0]), b); err != nil {
			return err
		}
		return nf.withClient(cmd.Context(), func(ctx context.Context, c *coordinator.Client) error {
			ids, err := c.Sweep(ctx, b)
			for _, id := range ids {
				fmt.Fprintln(cmd.OutOrStdout(), id)
			}
			return err
		})
	}
	return cmd
}

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [RUN_ID]",
		Short: "Show the cluster's runs, or one run's state",
		Long: `With no argument, list every run the cluster knows, oldest first. With a run
id, show that run's state. --json writes JSON: one object per line for the
list, one indented object for a run.`,
		Example: `  gorch status
  gorch status 20261201T101500.000000Z-1a2b3c4d --json`,
		Args: cobra.MaximumNArgs(1),
	}
	nf := natsFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "write JSON")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		out := cmd.OutOrStdout()
		return nf.withClient(cmd.Context(), func(ctx context.Context, c *coordinator.Client) error {
			if len(args) == 1 {
				st, err := c.Status(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONIndent(out, st)
				}
				printRunState(out, st)
				return nil
			}
			states, err := c.List(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONLines(out, states)
			}
			tw := newTable(out)
			row(tw, "RUN", "NAME", "STATUS", "PRIORITY", "ATTEMPT", "STEP", "WORKER", "RECORDS", "SUBMITTED")
			for _, st := range states {
				status := st.Status
				if st.CancelRequested && !cluster.Terminal(status) {
					status += " (cancelling)"
				}
				row(tw, st.RunID, orDash(st.Name), status, string(st.Priority), strconv.Itoa(st.Attempt), fmtStep(st), orDash(st.Worker),
					fmtRecords(st), fmtTime(st.Submitted))
			}
			return tw.Flush()
		})
	}
	return cmd
}

func fmtStep(st cluster.RunState) string {
	if st.TotalSteps > 0 {
		return fmt.Sprintf("%d/%d", st.Step, st.TotalSteps)
	}
	return strconv.FormatInt(st.Step, 10)
}

func printRunState(w io.Writer, st cluster.RunState) {
	tw := newTable(w)
	row(tw, "run:", st.RunID)
	row(tw, "name:", orDash(st.Name))
	row(tw, "status:", st.Status)
	if st.CancelRequested {
		row(tw, "cancel requested:", "yes")
	}
	row(tw, "priority:", string(st.Priority))
	row(tw, "attempt:", strconv.Itoa(st.Attempt))
	row(tw, "step:", fmtStep(st))
	row(tw, "worker:", orDash(st.Worker))
	if st.SweepID != "" {
		row(tw, "sweep:", st.SweepID)
	}
	row(tw, "resume point:", fmtResume(st.Resume))
	row(tw, "submitted:", fmtTime(st.Submitted))
	row(tw, "updated:", fmtTime(st.Updated))
	if st.Error != "" {
		row(tw, "error:", st.Error)
	}
	if st.ErrorKind != "" {
		row(tw, "error kind:", fmtErrorKind(st))
	}
	row(tw, "records:", fmtRecords(st))
	_ = tw.Flush()
}

// fmtResume describes a resume point.
func fmtResume(r *cluster.ResumePoint) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("step %d (attempt %d) %s", r.Step, r.Attempt, r.Key)
}

// fmtErrorKind says what kind of error ended (or retried) the run and
// whether that kind is retried.
func fmtErrorKind(st cluster.RunState) string {
	switch {
	case st.Retryable && cluster.Terminal(st.Status):
		return st.ErrorKind + " (retried until the attempts ran out)"
	case st.Retryable:
		return st.ErrorKind + " (retried)"
	}
	return st.ErrorKind + " (not retried: the same run would fail the same way)"
}

// fmtRecords says whether the collector has written a run's final
// records.
func fmtRecords(st cluster.RunState) string {
	switch {
	case st.RecordsFinal:
		return "final"
	case st.RecordsOrphaned:
		return "being written from the run state (its worker died before reporting the attempt's end)"
	case cluster.Terminal(st.Status):
		return "being written"
	}
	return "-"
}

func newCancelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cancel RUN_ID",
		Short: "Cancel a queued or running run",
		Long: `Cancel a run: a queued run ends cancelled at once; a running run is asked to
stop, and its worker ends it cancelled. Cancelling a finished run is an error.`,
		Example: "  gorch cancel 20261201T101500.000000Z-1a2b3c4d",
		Args:    cobra.ExactArgs(1),
	}
	nf := natsFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return nf.withClient(cmd.Context(), func(ctx context.Context, c *coordinator.Client) error {
			if err := c.Cancel(ctx, args[0]); err != nil {
				return err
			}
			st, err := c.Status(ctx, args[0])
			if err != nil {
				return err
			}
			if st.Status == cluster.StateCancelled {
				fmt.Fprintf(cmd.OutOrStdout(), "%s cancelled\n", args[0])
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: cancel requested (%s)\n", args[0], st.Status)
			}
			return nil
		})
	}
	return cmd
}

// readInput reads a spec or sweep file ("-" is stdin).
func readInput(cmd *cobra.Command, path string) ([]byte, error) {
	if path == "-" {
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, errs.Wrap(errs.IO, "read", err, "stdin")
		}
		return b, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errs.Wrap(errs.Config, "read", err, "")
	}
	return b, nil
}
