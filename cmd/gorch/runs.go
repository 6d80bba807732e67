package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gorch/gorch/pkg/experiment"
	"github.com/spf13/cobra"
)

func newRunsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List, show, compare and plot the runs in --data-dir or S3",
		Long: `Read the run records under --data-dir (runs/<id>/...), or, with
--s3-endpoint and --s3-bucket, in an S3 bucket, without syncing it first.

Wherever a command takes a run ID, a unique prefix of it will do, as with
git commit hashes.`,
		Args: cobra.NoArgs, // an unknown subcommand is an error, not help
		RunE: helpRunE,
	}
	cmd.AddCommand(newRunsListCmd(), newRunsShowCmd(), newRunsCompareCmd(), newRunsPlotCmd())
	return cmd
}

// keyMetricPrefs orders the metrics `runs list` shows when --metrics is not
// given: the first few of these that any listed run has. pkg/train logs
// train/loss, train/lr, eval/loss and eval/accuracy.
var keyMetricPrefs = []string{
	"train/loss", "eval/loss", "eval/accuracy",
	"loss", "train_loss", "test_loss", "val_loss", "eval_loss",
	"test_accuracy", "test_acc", "val_accuracy", "accuracy", "acc",
}

const maxKeyMetrics = 3

// keyMetrics picks the metric columns of `runs list`.
func keyMetrics(sums []experiment.Summary) []string {
	have := map[string]bool{}
	for _, s := range sums {
		for name := range s.Metrics {
			have[name] = true
		}
	}
	var out []string
	for _, name := range keyMetricPrefs {
		if have[name] && len(out) < maxKeyMetrics {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		out = sortedKeys(have)
		out = out[:min(len(out), maxKeyMetrics)]
	}
	return out
}

func newRunsListCmd() *cobra.Command {
	var so *storeOptions // set below; the RunE closure runs after parsing
	var asJSON bool
	var metrics []string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List runs, oldest first, with their status and key metrics",
		Long: `List every run in --data-dir, oldest first. Only each run's summary is
read (run_summary.json, or run.json for a run without one), never its metric
logs. Metric columns show the last value logged; pick them with --metrics.`,
		Example: `  gorch runs list
  gorch runs list --metrics train/loss,eval/accuracy
  gorch runs list --json | jq .run.id`,
		Aliases: []string{"ls"},
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := so.openRead(cmd.Context())
			if err != nil {
				return err
			}
			sums, err := experiment.NewReader(store).ListRuns(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSONLines(out, sums)
			}
			if len(sums) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no runs in %s\n", so.name())
				return nil
			}
			if len(metrics) == 0 {
				metrics = keyMetrics(sums)
			}
			tw := newTable(out)
			head := []string{"ID", "NAME", "STATUS", "DURATION"}
			for _, m := range metrics {
				head = append(head, strings.ToUpper(m))
			}
			row(tw, head...)
			for _, s := range sums {
				cells := []string{s.Run.ID, orDash(s.Run.Name), statusCell(s), fmtDuration(s.Run.Duration())}
				for _, m := range metrics {
					cells = append(cells, lastMetric(s, m))
				}
				row(tw, cells...)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each run's summary as one JSON object per line")
	cmd.Flags().StringSliceVar(&metrics, "metrics", nil, "metric columns to show (default: key metrics such as loss and test_accuracy)")
	so = addStoreFlags(cmd)
	return cmd
}

// statusCell is the run's status, marked "(incomplete)" when a run that
// succeeded lost records.
func statusCell(s experiment.Summary) string {
	if s.Status == experiment.StatusSucceeded && !s.Complete {
		return string(s.Status) + " (incomplete)"
	}
	return string(s.Status)
}

// lastMetric formats the last finite value of metric name, or "-".
func lastMetric(s experiment.Summary, name string) string {
	m, ok := s.Metrics[name]
	if !ok || m.Count == m.NonFinite {
		return "-"
	}
	return fmtFloat(m.Last)
}

// resolveRun expands a run ID or unique ID prefix to a run ID. It lists the
// run directories only; where names the store in errors.
func resolveRun(ctx context.Context, store experiment.Store, where, arg string) (string, error) {
	ids, err := runIDs(ctx, store)
	if err != nil {
		return "", err
	}
	var match []string
	for _, id := range ids {
		if id == arg {
			return id, nil
		}
		if arg != "" && strings.HasPrefix(id, arg) {
			match = append(match, id)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("run %s not found in %s", arg, where)
	case 1:
		return match[0], nil
	}
	const show = 5
	list := strings.Join(match[:min(len(match), show)], ", ")
	if len(match) > show {
		list += fmt.Sprintf(", and %d more", len(match)-show)
	}
	return "", fmt.Errorf("run ID prefix %s is ambiguous: %d runs match (%s)", arg, len(match), list)
}

// runIDs lists the IDs of the run directories in store.
func runIDs(ctx context.Context, store experiment.Store) ([]string, error) {
	dirs, err := store.ListDir(ctx, "runs/")
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, d := range dirs {
		id, ok := strings.CutSuffix(strings.TrimPrefix(d, "runs/"), "/")
		if ok && experiment.ValidRunID(id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// loadSummary reads a run's summary, falling back to run.json for a run
// that has not written one yet (as Reader.ListRuns does).
func loadSummary(ctx context.Context, rd *experiment.Reader, id string) (experiment.Summary, error) {
	s, err := rd.GetSummary(ctx, id)
	if experiment.IsNotFound(err) {
		var r experiment.Run
		if r, err = rd.GetRun(ctx, id); err == nil {
			return experiment.Summary{Run: r, Status: r.Status}, nil
		}
		if experiment.IsNotFound(err) {
			return s, fmt.Errorf("run %s has no run.json or run_summary.json", id)
		}
	}
	return s, err
}

// openRuns opens the store and resolves and loads the summaries of args.
func openRuns(ctx context.Context, so *storeOptions, args []string) (*experiment.Reader, []experiment.Summary, error) {
	store, err := so.openRead(ctx)
	if err != nil {
		return nil, nil, err
	}
	rd := experiment.NewReader(store)
	var sums []experiment.Summary
	seen := map[string]bool{}
	for _, a := range args {
		id, err := resolveRun(ctx, store, so.name(), a)
		if err != nil {
			return nil, nil, err
		}
		if seen[id] {
			return nil, nil, fmt.Errorf("run %s given twice", id)
		}
		seen[id] = true
		s, err := loadSummary(ctx, rd, id)
		if err != nil {
			return nil, nil, err
		}
		sums = append(sums, s)
	}
	return rd, sums, nil
}

func newRunsShowCmd() *cobra.Command {
	var so *storeOptions // set below; the RunE closure runs after parsing
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one run: its record, config, metric rollups, telemetry and artifacts",
		Example: `  gorch runs show 20261129T130000123456Z-9f86d081
  gorch runs show 20261129T13 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rd, sums, err := openRuns(ctx, so, args)
			if err != nil {
				return err
			}
			s := sums[0]
			if asJSON {
				return writeJSONIndent(cmd.OutOrStdout(), s)
			}
			arts, err := rd.Artifacts(ctx, s.Run.ID)
			if err != nil {
				return err
			}
			return printRun(cmd.OutOrStdout(), s, arts)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the run's summary (run_summary.json) as JSON")
	so = addStoreFlags(cmd)
	return cmd
}

func printRun(w io.Writer, s experiment.Summary, arts []experiment.Artifact) error {
	r := &s.Run
	tw := newTable(w)
	field := func(k, v string) { row(tw, k+":", v) }
	field("ID", r.ID)
	field("Name", orDash(r.Name))
	complete := "complete"
	if !s.Complete {
		complete = "incomplete"
	}
	field("Status", fmt.Sprintf("%s (%s, %d records dropped)", s.Status, complete, s.Dropped))
	if r.Error != "" {
		field("Error", strings.ReplaceAll(r.Error, "\n", " "))
	}
	field("Attempt", fmt.Sprint(r.Attempt))
	if len(r.Attempts) > 1 {
		var rs []string
		for _, a := range r.Attempts[1:] {
			rs = append(rs, fmt.Sprintf("attempt %d from step %d", a.Attempt, a.ResumeStep))
		}
		field("Resumed", strings.Join(rs, ", "))
	}
	field("Created", fmtTime(r.Created))
	field("Started", fmtTime(r.Started))
	field("Finished", fmtTime(r.Finished))
	field("Duration", fmtDuration(r.Duration()))
	field("Seed", fmt.Sprint(r.Seed))
	field("Host", orDash(r.Host))
	field("Gorch version", orDash(r.GorchVersion))
	if len(r.Tags) > 0 {
		var tags []string
		for _, k := range sortedKeys(r.Tags) {
			tags = append(tags, k+"="+r.Tags[k])
		}
		field("Tags", strings.Join(tags, ", "))
	}
	field("Summary updated", fmtTime(s.Updated))
	if err := tw.Flush(); err != nil {
		return err
	}

	cfg := flattenJSON("", r.Config)
	if len(cfg) > 0 {
		fmt.Fprintln(w, "\nConfig:")
		for _, k := range sortedKeys(cfg) {
			row(tw, "  "+k, cfg[k])
		}
		tw.Flush()
	}
	if len(r.Hyperparameters) > 0 {
		fmt.Fprintln(w, "\nHyperparameters:")
		for _, k := range sortedKeys(r.Hyperparameters) {
			row(tw, "  "+k, fmtFloat(r.Hyperparameters[k]))
		}
		tw.Flush()
	}
	if len(s.Metrics) > 0 {
		fmt.Fprintln(w, "\nMetrics:")
		row(tw, "  NAME", "COUNT", "MIN", "MAX", "MEAN", "P50", "P95", "LAST", "LAST STEP")
		for _, k := range sortedKeys(s.Metrics) {
			m := s.Metrics[k]
			count := fmt.Sprint(m.Count)
			if m.NonFinite > 0 {
				count += fmt.Sprintf(" (%d non-finite)", m.NonFinite)
			}
			if m.Superseded > 0 {
				count += fmt.Sprintf(" (+%d superseded)", m.Superseded)
			}
			if m.Count == m.NonFinite {
				row(tw, "  "+k, count, "-", "-", "-", "-", "-", "-", "-")
				continue
			}
			row(tw, "  "+k, count, fmtFloat(m.Min), fmtFloat(m.Max), fmtFloat(m.Mean), fmtFloat(m.P50),
				fmtFloat(m.P95), fmtFloat(m.Last), fmt.Sprint(m.LastStep))
		}
		tw.Flush()
	}
	if len(s.Telemetry) > 0 {
		fmt.Fprintln(w, "\nTelemetry (seconds):")
		row(tw, "  EVENT", "COUNT", "TOTAL", "MEAN", "P50", "P95", "MAX")
		for _, k := range sortedKeys(s.Telemetry) {
			e := s.Telemetry[k]
			row(tw, "  "+k, fmt.Sprint(e.Count), fmtFloat(e.Total), fmtFloat(e.Mean), fmtFloat(e.P50), fmtFloat(e.P95), fmtFloat(e.Max))
		}
		tw.Flush()
	}
	if len(s.Layout) > 0 {
		fmt.Fprintln(w, "\nLayout checks:")
		row(tw, "  OP", "CHECKS", "FAILURES")
		for _, k := range sortedKeys(s.Layout) {
			st := s.Layout[k]
			row(tw, "  "+k, fmt.Sprint(st.Checks), fmt.Sprint(st.Failures))
		}
		tw.Flush()
	}
	if len(arts) > 0 {
		fmt.Fprintln(w, "\nArtifacts:")
		row(tw, "  NAME", "KIND", "SIZE", "STEP", "SHA256", "KEY")
		for _, a := range arts {
			sum := a.Checksum
			if len(sum) > 12 {
				sum = sum[:12]
			}
			row(tw, "  "+a.Name, a.Kind.String(), fmtBytes(a.Size), fmt.Sprint(a.Step), orDash(sum), orDash(a.Key))
		}
		tw.Flush()
	}
	return nil
}

// runConfig flattens everything that configures a run into comparable
// keys: the spec ("config.*" keys without the prefix), the hyperparameters
// ("hp.*"), the seed and the name.
func runConfig(r *experiment.Run) map[string]string {
	out := flattenJSON("", r.Config)
	for k, v := range r.Hyperparameters {
		out["hp."+k] = fmtFloat(v)
	}
	out["seed"] = fmt.Sprint(r.Seed)
	return out
}

// compareJSON is the --json output of `runs compare`.
type compareJSON struct {
	Runs    []string              `json:"runs"`
	Config  map[string][]*string  `json:"config"`  // differing keys; null where a run lacks the key
	Metrics map[string][]*float64 `json:"metrics"` // last values; null where a run lacks the metric
}

func newRunsCompareCmd() *cobra.Command {
	var so *storeOptions // set below; the RunE closure runs after parsing
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "compare ID ID...",
		Short: "Compare runs: config differences and final metrics side by side",
		Long: `Compare two or more runs. The config section lists every flattened config key
(nested keys joined with dots, list items as key[i]; hyperparameters as hp.*)
whose value differs between the runs; "-" marks a key a run does not have.
The metrics section shows each metric's last value.`,
		Example: `  gorch runs compare 20261129T1300 20261129T1400`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, sums, err := openRuns(cmd.Context(), so, args)
			if err != nil {
				return err
			}
			cfgs := make([]map[string]string, len(sums))
			keys := map[string]bool{}
			metrics := map[string]bool{}
			for i := range sums {
				cfgs[i] = runConfig(&sums[i].Run)
				for k := range cfgs[i] {
					keys[k] = true
				}
				for k := range sums[i].Metrics {
					metrics[k] = true
				}
			}
			var diff []string
			for _, k := range sortedKeys(keys) {
				v0, ok0 := cfgs[0][k]
				for _, c := range cfgs[1:] {
					if v, ok := c[k]; ok != ok0 || v != v0 {
						diff = append(diff, k)
						break
					}
				}
			}
			if asJSON {
				out := compareJSON{Config: map[string][]*string{}, Metrics: map[string][]*float64{}}
				for _, s := range sums {
					out.Runs = append(out.Runs, s.Run.ID)
				}
				for _, k := range diff {
					for _, c := range cfgs {
						var p *string
						if v, ok := c[k]; ok {
							p = &v
						}
						out.Config[k] = append(out.Config[k], p)
					}
				}
				for _, k := range sortedKeys(metrics) {
					for _, s := range sums {
						var p *float64
						if m, ok := s.Metrics[k]; ok && m.Count > m.NonFinite && !math.IsNaN(m.Last) {
							v := m.Last
							p = &v
						}
						out.Metrics[k] = append(out.Metrics[k], p)
					}
				}
				return writeJSONIndent(cmd.OutOrStdout(), out)
			}

			w := cmd.OutOrStdout()
			tw := newTable(w)
			head := []string{"RUN"}
			for _, s := range sums {
				head = append(head, s.Run.ID)
			}
			row(tw, head...)
			cells := []string{"name"}
			for _, s := range sums {
				cells = append(cells, orDash(s.Run.Name))
			}
			row(tw, cells...)
			cells = []string{"status"}
			for _, s := range sums {
				cells = append(cells, statusCell(s))
			}
			row(tw, cells...)
			cells = []string{"duration"}
			for _, s := range sums {
				cells = append(cells, fmtDuration(s.Run.Duration()))
			}
			row(tw, cells...)
			row(tw)
			if len(diff) == 0 {
				row(tw, "CONFIG", "(no differences)")
			} else {
				row(tw, "CONFIG")
				for _, k := range diff {
					cells := []string{"  " + k}
					for _, c := range cfgs {
						v, ok := c[k]
						if !ok {
							v = "-"
						}
						cells = append(cells, v)
					}
					row(tw, cells...)
				}
			}
			row(tw)
			if len(metrics) == 0 {
				row(tw, "METRICS (last)", "(none)")
			} else {
				row(tw, "METRICS (last)")
				for _, k := range sortedKeys(metrics) {
					cells := []string{"  " + k}
					for _, s := range sums {
						cells = append(cells, lastMetric(s, k))
					}
					row(tw, cells...)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the differing config keys and last metric values as JSON")
	so = addStoreFlags(cmd)
	return cmd
}

func newRunsPlotCmd() *cobra.Command {
	var so *storeOptions // set below; the RunE closure runs after parsing
	var metric, output string
	var width, height float64
	cmd := &cobra.Command{
		Use:   "plot ID... --metric NAME -o FILE",
		Short: "Plot a metric against step for one or more runs (PNG or SVG)",
		Long: `Draw a line chart of one metric against the training step, with every run
overlaid and named in the legend. The output format follows the file
extension: .png or .svg. The file is written to a temporary name and renamed
into place, so a failure never leaves a partial file. Non-finite values are
skipped; when a resumed run logged a step twice, the later value is drawn.`,
		Example: `  gorch runs plot 20261129T1300 20261129T1400 --metric loss -o loss.png
  gorch runs plot 20261129T1300 --metric eval/accuracy -o acc.svg`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return fmt.Errorf("no output file: pass -o FILE.png or -o FILE.svg")
			}
			format := strings.ToLower(strings.TrimPrefix(filepath.Ext(output), "."))
			if format != "png" && format != "svg" {
				return fmt.Errorf("cannot plot to %q: the output must end in .png or .svg", output)
			}
			if width <= 0 || height <= 0 {
				return fmt.Errorf("plot size %gx%g inches: width and height must be positive", width, height)
			}
			ctx := cmd.Context()
			rd, sums, err := openRuns(ctx, so, args)
			if err != nil {
				return err
			}
			series := make([]plotSeries, 0, len(sums))
			for _, s := range sums {
				pts, names, err := metricPoints(ctx, rd, s.Run.ID, metric)
				if err != nil {
					return err
				}
				if len(pts) == 0 {
					have := "no metrics"
					if len(names) > 0 {
						have = "metrics: " + strings.Join(names, ", ")
					}
					return fmt.Errorf("run %s has no finite values of metric %q (it has %s)", s.Run.ID, metric, have)
				}
				series = append(series, plotSeries{label: s.Run.ID, run: s.Run, pts: pts})
			}
			labelSeries(series)
			if err := writePlot(output, format, metric, series, width, height); err != nil {
				return fmt.Errorf("plot %s: %w", output, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s of %d runs)\n", output, metric, len(series))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&metric, "metric", "loss", "the metric to plot")
	f.StringVarP(&output, "output", "o", "", "output file, .png or .svg (required)")
	f.Float64Var(&width, "width", 8, "plot width in inches")
	f.Float64Var(&height, "height", 5, "plot height in inches")
	so = addStoreFlags(cmd)
	return cmd
}

// plotPoint is one (step, value) of a series.
type plotPoint struct {
	step  int64
	value float64
}

// plotSeries is one run's line.
type plotSeries struct {
	label string
	run   experiment.Run
	pts   []plotPoint
}

// metricPoints reads the finite values of metric name for run id, sorted by
// step, keeping the last value logged at each step. It also returns the
// names of every metric the run has, for error messages.
func metricPoints(ctx context.Context, rd *experiment.Reader, id, name string) ([]plotPoint, []string, error) {
	byStep := map[int64]float64{}
	names := map[string]bool{}
	for m, err := range rd.ReadMetrics(ctx, id) {
		if err != nil {
			return nil, nil, err
		}
		names[m.Name] = true
		if m.Name != name {
			continue
		}
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			delete(byStep, m.Step) // a later non-finite value supersedes
			continue
		}
		byStep[m.Step] = m.Value
	}
	pts := make([]plotPoint, 0, len(byStep))
	for s, v := range byStep {
		pts = append(pts, plotPoint{s, v})
	}
	slices.SortFunc(pts, func(a, b plotPoint) int { return cmp.Compare(a.step, b.step) })
	return pts, sortedKeys(names), nil
}

// labelSeries names each series by its run's name when the names are set
// and unique, by its ID otherwise.
func labelSeries(series []plotSeries) {
	seen := map[string]int{}
	for _, s := range series {
		seen[s.run.Name]++
	}
	for i := range series {
		if n := series[i].run.Name; n != "" && seen[n] == 1 {
			series[i].label = n
		}
	}
}
