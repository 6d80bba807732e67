package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/train"
)

// trainFlags are gorch train's flags; each overrides the spec file's field.
type trainFlags struct {
	config, resume, init            string
	model, dataset, datasetDir, opt string
	name                            string
	epochs, steps, batch, ckptEvery int
	evalEvery, logEvery, keepLast   int
	trainLimit, workers             int
	lr                              float64
	seed                            uint64
}

func newTrainCmd() *cobra.Command {
	var f trainFlags
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a model, recording the run under --data-dir",
		Long: `Train a model and record the run (run.json, metrics, telemetry, summary,
checkpoints) under --data-dir. Flags override the fields of --config.
SIGINT or SIGTERM finishes the current step, checkpoints and marks the run
interrupted; --resume RUN_ID continues it from its newest valid checkpoint.
--init FILE starts a new run from a checkpoint's parameters (names and
shapes must match the model; the optimizer starts fresh).`,
		Example: `  gorch train --model mlp --dataset fashion-mnist --epochs 2
  gorch train --model gpt --steps 300 --lr 3e-3
  gorch train --config spec.yaml --seed 3
  gorch train --resume 20261129T130000123456Z-9f86d081
  gorch train --model mlp --init weights.rtch --steps 500`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTrain(cmd, &f) },
	}
	fl := cmd.Flags()
	addDataDirFlag(cmd)
	fl.StringVarP(&f.config, "config", "f", "", "run spec file (YAML or JSON)")
	fl.StringVar(&f.resume, "resume", "", "resume the run with this ID from its newest valid checkpoint")
	fl.StringVar(&f.init, "init", "", "start from the parameters of this RTCH checkpoint (e.g. written by gorch.save_checkpoint in Python)")
	fl.StringVar(&f.name, "name", "", "run name")
	fl.StringVar(&f.model, "model", "mlp", "model: mlp (784-256-10), cnn (LeNet-style) or gpt (transformer language model)")
	fl.StringVar(&f.dataset, "dataset", "fashion-mnist", "dataset: fashion-mnist, blobs, moons, spirals or grammar (text; the default for gpt)")
	fl.StringVar(&f.datasetDir, "dataset-dir", "", "directory of the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)")
	fl.StringVar(&f.opt, "optimizer", "adam", "optimizer: sgd, adam or adamw")
	fl.Float64Var(&f.lr, "lr", 1e-3, "learning rate")
	fl.IntVar(&f.epochs, "epochs", 2, "passes over the training set (ignored with --steps)")
	fl.IntVar(&f.steps, "steps", 0, "optimizer steps in total (instead of --epochs)")
	fl.IntVar(&f.batch, "batch-size", 64, "samples per step")
	fl.Uint64Var(&f.seed, "seed", 1, "random seed for initialisation, shuffling and dropout")
	fl.IntVar(&f.ckptEvery, "checkpoint-every", 0, "steps between checkpoints (0: only at the end)")
	fl.IntVar(&f.evalEvery, "eval-every", 0, "steps between evaluations (0: at the end of each epoch)")
	fl.IntVar(&f.keepLast, "keep-last", 3, "checkpoints to keep")
	fl.IntVar(&f.logEvery, "log-every", 100, "steps between progress lines")
	fl.IntVar(&f.trainLimit, "train-limit", 0, "train on the first N samples only (0: all)")
	fl.IntVar(&f.workers, "backward-workers", 1, "goroutines running the backward pass")
	return cmd
}

// buildSpec merges --config and the flags that were set (all flags when
// there is no --config) into a validated spec.
func buildSpec(cmd *cobra.Command, f *trainFlags) (*train.Spec, error) {
	s := &train.Spec{}
	if f.config != "" {
		var err error
		if s, err = train.LoadSpec(f.config); err != nil {
			return nil, err
		}
	}
	set := func(name string) bool { return f.config == "" || cmd.Flags().Changed(name) }
	if set("name") {
		s.Name = f.name
	}
	if set("model") {
		s.Model.Name = f.model
	}
	if set("dataset") {
		s.Dataset.Name = f.dataset
	}
	if s.Model.Name == "gpt" && !cmd.Flags().Changed("dataset") && (f.config == "" || s.Dataset.Name == "") {
		s.Dataset.Name = "grammar" // the text the language model trains on
	}
	if set("dataset-dir") {
		s.Dataset.Dir = f.datasetDir
	}
	if set("optimizer") {
		s.Optimizer.Name = f.opt
	}
	if set("lr") {
		s.Optimizer.LR = f.lr
	}
	switch {
	case cmd.Flags().Changed("steps"):
		s.Steps, s.Epochs = f.steps, 0
	case set("epochs") && !(f.config != "" && s.Steps > 0 && !cmd.Flags().Changed("epochs")):
		s.Epochs, s.Steps = f.epochs, 0
	}
	if set("batch-size") {
		s.BatchSize = f.batch
	}
	if set("seed") {
		s.Seed = f.seed
	}
	if set("checkpoint-every") {
		s.CkptEvery = f.ckptEvery
	}
	if set("eval-every") {
		s.EvalEvery = f.evalEvery
	}
	if set("keep-last") {
		s.KeepLast = f.keepLast
	}
	if set("log-every") {
		s.LogEvery = f.logEvery
	}
	if set("train-limit") {
		s.TrainLimit = f.trainLimit
	}
	if set("backward-workers") {
		s.Backward = f.workers
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func runTrain(cmd *cobra.Command, f *trainFlags) error {
	ctx := cmd.Context()
	store, err := experiment.NewLocalStore(dataDir()) // creates --data-dir if needed
	if err != nil {
		return err
	}
	var spec *train.Spec
	var sink *train.RecordSink
	var init *experiment.Checkpoint
	if f.init != "" {
		if f.resume != "" {
			return errs.New(errs.Config, "train", "--init starts a new run; --resume continues one: give one of them")
		}
		if init, err = experiment.LoadCheckpointFile(f.init); err != nil {
			return err
		}
	}
	if f.resume != "" {
		for _, name := range []string{"config", "model", "dataset", "epochs", "steps", "batch-size", "lr", "optimizer", "seed"} {
			if cmd.Flags().Changed(name) {
				return errs.New(errs.Config, "train", "--resume continues a run with its recorded spec; --%s cannot be changed", name)
			}
		}
		if spec, sink, err = train.ResumeRun(ctx, store, f.resume); err != nil {
			return err
		}
	} else {
		if spec, err = buildSpec(cmd, f); err != nil {
			return err
		}
		if err := train.CheckDataset(spec); err != nil {
			return err
		}
		if sink, err = train.NewRun(ctx, store, spec, version); err != nil {
			return err
		}
	}
	stderr := cmd.ErrOrStderr()
	fmt.Fprintf(stderr, "run %s: training %s on %s\n", sink.RunID(), spec.Model.Name, spec.Dataset.Name)
	bar := newProgressPrinter(stderr)
	res, err := train.Run(ctx, spec, sink, train.Options{Progress: bar.update, Init: init})
	bar.done()
	if err != nil {
		if errors.Is(err, train.ErrInterrupted) {
			return fmt.Errorf("%w; resume with: gorch train --resume %s", err, sink.RunID())
		}
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "run %s: test accuracy %.2f%% (test loss %.4f) after %d steps in %s (%.1f steps/s)\n",
		res.RunID, 100*res.TestAccuracy, res.TestLoss, res.Steps, res.Duration.Round(time.Millisecond), res.StepsPerSec)
	return nil
}

// progressPrinter draws a one-line progress bar on a terminal and prints
// plain lines otherwise.
type progressPrinter struct {
	w   io.Writer
	tty bool
	bar bool // a bar line is on screen
}

func newProgressPrinter(w io.Writer) *progressPrinter {
	p := &progressPrinter{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *progressPrinter) update(pr train.Progress) {
	if pr.Eval {
		p.clear()
		fmt.Fprintf(p.w, "step %d/%d: eval loss %.4f, accuracy %.2f%%\n", pr.Step, pr.Total, pr.EvalLoss, 100*pr.EvalAccuracy)
		return
	}
	eta := pr.ETA.Round(time.Second)
	if !p.tty {
		fmt.Fprintf(p.w, "epoch %d step %d/%d loss %.4f lr %.3g %.1f steps/s eta %s\n", pr.Epoch, pr.Step, pr.Total, pr.Loss, pr.LR, pr.StepsPerSec, eta)
		return
	}
	const width = 30
	filled := width * pr.Step / max(pr.Total, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %3d%% step %d/%d loss %.4f %.1f steps/s ETA %s\x1b[K",
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), 100*pr.Step/max(pr.Total, 1), pr.Step, pr.Total, pr.Loss, pr.StepsPerSec, eta)
	p.bar = true
}

func (p *progressPrinter) clear() {
	if p.bar {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.bar = false
	}
}

func (p *progressPrinter) done() { p.clear() }
