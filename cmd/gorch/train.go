package main

import (
	"fmt"
	"time"

	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/train"
	"github.com/spf13/cobra"
)

func newTrainCmd() *cobra.Command {
	cfg := train.Config{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a model and report its test accuracy",
		Example: `  gorch train --model mlp --dataset fashion-mnist --epochs 2
  gorch train --model cnn --epochs 2 --batch-size 64`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.ProgressOut = cmd.ErrOrStderr()
			res, err := train.Classify(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "model %s: test accuracy %.2f%% (test loss %.4f) after %d steps in %s (%.1f steps/s)\n",
				cfg.Model, 100*res.TestAccuracy, res.TestLoss, res.Steps, res.Duration.Round(time.Millisecond), res.StepsPerSec)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Model, "model", "mlp", "model to train: mlp (784-256-10) or cnn (LeNet-style)")
	f.StringVar(&cfg.Dataset, "dataset", "fashion-mnist", "dataset to train on")
	f.StringVar(&cfg.DatasetDir, "dataset-dir", data.FashionMNISTDir, "directory holding the dataset's IDX files")
	f.IntVar(&cfg.Epochs, "epochs", 2, "passes over the training set")
	f.IntVar(&cfg.BatchSize, "batch-size", 64, "samples per training step")
	f.Float64Var(&cfg.LR, "lr", 1e-3, "Adam learning rate")
	f.Uint64Var(&cfg.Seed, "seed", 1, "random seed for initialisation and shuffling")
	f.IntVar(&cfg.Workers, "backward-workers", 1, "goroutines running the backward pass")
	f.IntVar(&cfg.TrainLimit, "train-limit", 0, "train on the first N samples only (0: all)")
	f.IntVar(&cfg.LogEvery, "log-every", 100, "steps between progress lines")
	return cmd
}
