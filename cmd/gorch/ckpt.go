package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/train"
	"github.com/spf13/cobra"
)

func newCkptCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ckpt",
		Short: "Inspect, verify and pull RTCH checkpoints",
		Args:  cobra.NoArgs, // an unknown subcommand is an error, not help
		RunE:  helpRunE,
	}
	cmd.AddCommand(newCkptInspectCmd(), newCkptVerifyCmd(), newCkptPullCmd())
	return cmd
}

// verifyFile checks every checksum of the checkpoint at path. A corrupt
// file's error names the file and the reason, e.g.
// "ck.rtch: invalid checkpoint: truncated at offset 64: ...".
func verifyFile(path string) (*experiment.CheckpointInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	info, err := experiment.VerifyCheckpoint(f, fi.Size())
	if err != nil {
		var ce *experiment.CorruptionError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%s: invalid checkpoint: %w", path, ce)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

func newCkptVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify FILE",
		Short: "Check every checksum of a checkpoint; exit 0 only if it is valid",
		Long: `Validate an RTCH checkpoint the way loading it would: magic, version,
preamble, header and footer checksums, the tensor table, and the CRC32C of
every tensor, streaming the data without loading it. A valid file prints
"FILE: ok (N tensors, M bytes)" and exits 0; an invalid one prints one line
naming the reason and exits 1.`,
		Example: `  gorch ckpt verify gorch-data/runs/<id>/artifacts/ckpt-000100.rtch`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := verifyFile(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d tensors, %d bytes)\n", args[0], len(info.Tensors), info.Size)
			return nil
		},
	}
}

// ckptJSON is the --json output of `gorch ckpt inspect`.
type ckptJSON struct {
	File        string                `json:"file"`
	Version     string                `json:"version"`
	Size        int64                 `json:"size"`
	HeaderBytes int64                 `json:"header_bytes"`
	DataBytes   int64                 `json:"data_bytes"`
	Writer      string                `json:"writer,omitempty"`
	Parameters  int64                 `json:"parameters"`
	Optimizer   string                `json:"optimizer,omitempty"`
	Train       experiment.TrainState `json:"train"`
	ModelConfig json.RawMessage       `json:"model_config,omitempty"`
	Metadata    map[string]string     `json:"metadata,omitempty"`
	Tensors     []tensorJSON          `json:"tensors"`
}

type tensorJSON struct {
	Name   string `json:"name"`
	Group  string `json:"group"`
	DType  string `json:"dtype"`
	Shape  []int  `json:"shape"`
	Offset int64  `json:"offset"`
	NBytes int64  `json:"nbytes"`
	CRC32C uint32 `json:"crc32c"`
}

func newCkptInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a checkpoint's version, sizes, tensors, train state and optimizer",
		Long: `Describe an RTCH checkpoint: format version, file/header/data sizes, every
tensor (name, group, dtype, shape, bytes), the train state (step, epoch,
data cursor, LR scheduler) and the optimizer type. The file is fully
verified first; an invalid file is an error, as with 'gorch ckpt verify'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := verifyFile(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				out := ckptJSON{File: args[0], Version: fmt.Sprintf("%d.%d", info.Major, info.Minor), Size: info.Size,
					HeaderBytes: info.HeaderBytes, DataBytes: info.DataBytes, Writer: info.Writer, Parameters: info.Parameters,
					Optimizer: info.Optimizer, Train: info.Train, ModelConfig: info.ModelConfig, Metadata: info.Metadata,
					Tensors: []tensorJSON{}}
				for _, t := range info.Tensors {
					out.Tensors = append(out.Tensors, tensorJSON(t))
				}
				return writeJSONIndent(cmd.OutOrStdout(), out)
			}
			return printCkpt(cmd.OutOrStdout(), args[0], info)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the description as JSON")
	return cmd
}

func printCkpt(w io.Writer, path string, info *experiment.CheckpointInfo) error {
	tw := newTable(w)
	field := func(k, v string) { row(tw, k+":", v) }
	field("File", path)
	field("Format", fmt.Sprintf("RTCH v%d.%d", info.Major, info.Minor))
	field("Size", fmt.Sprintf("%d bytes (%s; header %d, data %d)", info.Size, fmtBytes(info.Size), info.HeaderBytes, info.DataBytes))
	field("Writer", orDash(info.Writer))
	var nParam, nOptim int
	for _, t := range info.Tensors {
		if t.Group == "param" {
			nParam++
		} else {
			nOptim++
		}
	}
	field("Tensors", fmt.Sprintf("%d (%d model, %d optimizer)", len(info.Tensors), nParam, nOptim))
	field("Parameters", fmt.Sprint(info.Parameters))
	field("Optimizer", orDash(info.Optimizer))
	ts := info.Train
	field("Train state", fmt.Sprintf("step %d, epoch %d, data cursor epoch %d position %d", ts.Step, ts.Epoch, ts.Cursor.Epoch, ts.Cursor.Pos))
	if ts.Scheduler != nil {
		field("LR scheduler", fmt.Sprintf("%s (step %d, base lr %s)", ts.Scheduler.Type, ts.Scheduler.Step, fmtFloat(ts.Scheduler.BaseLR)))
	}
	if len(ts.RNG) > 0 {
		field("RNG state", fmt.Sprintf("%d bytes", len(ts.RNG)))
	}
	if len(ts.Extra) > 0 {
		field("Extra state", strings.Join(sortedKeys(ts.Extra), ", "))
	}
	if len(info.ModelConfig) > 0 {
		field("Model config", string(info.ModelConfig))
	}
	for _, k := range sortedKeys(info.Metadata) {
		field("Metadata "+k, info.Metadata[k])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	row(tw, "NAME", "GROUP", "DTYPE", "SHAPE", "BYTES")
	for _, t := range info.Tensors {
		row(tw, t.Name, t.Group, t.DType, fmt.Sprint(t.Shape), fmt.Sprint(t.NBytes))
	}
	return tw.Flush()
}

func newCkptPullCmd() *cobra.Command {
	var step int64
	var out string
	cmd := &cobra.Command{
		Use:   "pull RUN_ID -o FILE",
		Short: "Download a run's checkpoint from the record store, verified",
		Long: `Download the checkpoint of a run from the store the cluster writes to
(--data-dir, or S3 with --s3-endpoint): the newest one (the LATEST pointer),
or the one taken after --step. Every checksum is verified before FILE is
written, atomically. Prints "FILE: ok (step N, M bytes)"; an unknown run or
step, or a corrupt object, is a one-line error and exit status 1.`,
		Example: `  gorch ckpt pull 20261201T101500.000000Z-1a2b3c4d -o model.rtch
  gorch ckpt pull 20261201T101500.000000Z-1a2b3c4d --step 500 -o step500.rtch \
    --s3-endpoint s3.amazonaws.com --s3-bucket my-runs`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().Int64Var(&step, "step", -1, "the step of the checkpoint (default: the newest)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (required)")
	_ = cmd.MarkFlagRequired("output")
	so := addStoreFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		run := args[0]
		if !experiment.ValidRunID(run) {
			return fmt.Errorf("invalid run id %q", run)
		}
		store, err := so.openRead(ctx)
		if err != nil {
			return err
		}
		b, err := train.NewCheckpoints(store, run, 1).Pull(ctx, step)
		if experiment.IsNotFound(err) {
			if _, rerr := experiment.NewReader(store).GetRun(ctx, run); experiment.IsNotFound(rerr) {
				return fmt.Errorf("run %s not found in %s", run, so.name())
			}
			if step >= 0 {
				return fmt.Errorf("run %s has no checkpoint at step %d", run, step)
			}
			return fmt.Errorf("run %s has no checkpoint", run)
		}
		if err != nil {
			return err
		}
		info, err := experiment.VerifyCheckpoint(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return err // Pull verified it; kept for the step
		}
		if err := writeFileAtomic(out, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (step %d, %d bytes)\n", out, info.Train.Step, len(b))
		return nil
	}
	return cmd
}
