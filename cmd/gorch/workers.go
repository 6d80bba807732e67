package main

import (
	"context"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gorch/gorch/services/coordinator"
)

func newWorkersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "List the cluster's live workers",
		Long: `List every worker whose heartbeat the cluster has heard within the workers
bucket's TTL: its slots, how many are busy, the memory limit of each
attempt, the runs it trains and when it last reported. A worker that stops
heartbeating drops off the list, and the coordinator marks its runs
orphaned until another worker takes them over. --json writes one object
per line.`,
		Example: "  gorch workers\n  gorch workers --json",
		Args:    cobra.NoArgs,
	}
	nf := natsFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "write JSON, one worker per line")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		out := cmd.OutOrStdout()
		return nf.withClient(cmd.Context(), func(ctx context.Context, c *coordinator.Client) error {
			ws, err := c.Workers(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONLines(out, ws)
			}
			tw := newTable(out)
			row(tw, "WORKER", "HOST", "SLOTS", "BUSY", "MEMORY LIMIT", "RUNS", "LAST HEARTBEAT", "VERSION")
			for _, w := range ws {
				limit := "-"
				if w.MemoryLimit > 0 {
					limit = fmtBytes(w.MemoryLimit)
				}
				row(tw, w.ID, orDash(w.Host), strconv.Itoa(w.Slots), strconv.Itoa(w.Busy), limit, orDash(strings.Join(w.Runs, ",")),
					fmtTime(w.Seen), orDash(w.Version))
			}
			return tw.Flush()
		})
	}
	return cmd
}
