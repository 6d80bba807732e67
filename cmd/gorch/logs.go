package main

import (
	"context"
	"fmt"
	"io"

	"github.com/gorch/gorch/services/coordinator"
	"github.com/spf13/cobra"
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
		return printLogs(cmd.Context(), coordinator.NewClient(nc), args[0], follow, cmd.OutOrStdout())
	}
	return cmd
}

// printLogs writes run's metric points to w, a "# attempt N" line before
// each later attempt's; see coordinator.Client.Metrics for where it stops.
func printLogs(ctx context.Context, c *coordinator.Client, run string, follow bool, w io.Writer) error {
	attempt := 0
	for p, err := range c.Metrics(ctx, run, follow) {
		if err != nil {
			return err
		}
		if p.Attempt != attempt {
			if attempt != 0 || p.Attempt > 1 {
				if _, err := fmt.Fprintf(w, "# attempt %d\n", p.Attempt); err != nil {
					return err
				}
			}
			attempt = p.Attempt
		}
		if _, err := fmt.Fprintf(w, "%d %s %s\n", p.Step, p.Name, fmtMetric(p.Value)); err != nil {
			return err
		}
	}
	return nil
}

// fmtMetric formats a metric value in full (logs are for piping).
func fmtMetric(v float64) string { return fmt.Sprint(v) }
