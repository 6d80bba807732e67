package train

import (
	"fmt"
	"sort"

	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/optim"
	"github.com/gorch/gorch/pkg/tensor"
)

// This file is the glue between the engine (nn, optim, data) and RTCH
// checkpoints, whose types in pkg/experiment are engine-free so that the
// record store, the collector and readers of checkpoints link no tensor
// code.

// CheckpointFromModel snapshots model's parameters and, if opt is not nil,
// its state, with train as the train state. Set ModelConfig and Metadata
// on the result as needed.
func CheckpointFromModel(model nn.Module, opt optim.Optimizer, train experiment.TrainState) (*experiment.Checkpoint, error) {
	const op = "train.CheckpointFromModel"
	if model == nil {
		return nil, errs.New(errs.Argument, op, "nil model")
	}
	sd, err := nn.StateDict(model)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	ck := &experiment.Checkpoint{Tensors: make([]experiment.Tensor, 0, len(sd.Keys)), Train: train}
	for _, k := range sd.Keys {
		t := sd.Tensors[k] // contiguous copies, so Data does not copy again
		ck.Tensors = append(ck.Tensors, experiment.Tensor{Name: k, Shape: t.Shape(), Data: t.Data()})
	}
	if opt != nil {
		st, err := opt.StateDict()
		if err != nil {
			return nil, errs.Wrap(errs.KindOf(err), op, err, "")
		}
		ck.Optimizer = &experiment.OptimizerState{Type: st.Type, LR: st.LR, Hyper: st.Hyper}
		if st.Params != nil {
			ck.Optimizer.Params = make(map[string]experiment.OptimizerParam, len(st.Params))
		}
		for name, p := range st.Params {
			ck.Optimizer.Params[name] = experiment.OptimizerParam{Step: p.Step, Buffers: p.Buffers}
		}
	}
	return ck, nil
}

// ApplyCheckpoint copies ck's tensors into model's parameters and, if opt
// is not nil, restores opt's state from ck. The tensor names must match
// the parameters exactly and every shape must agree; otherwise it fails
// with errs.Shape wrapping a [*MismatchError] and changes nothing. A
// checkpoint without optimizer state cannot restore opt (errs.Checkpoint).
func ApplyCheckpoint(ck *experiment.Checkpoint, model nn.Module, opt optim.Optimizer) error {
	const op = "train.ApplyCheckpoint"
	if model == nil || ck == nil {
		return errs.New(errs.Argument, op, "nil model or checkpoint")
	}
	byName := make(map[string]*experiment.Tensor, len(ck.Tensors))
	for i := range ck.Tensors {
		byName[ck.Tensors[i].Name] = &ck.Tensors[i]
	}
	sd := nn.NewTensorDict()
	var mm MismatchError
	for _, p := range model.Parameters() {
		t, ok := byName[p.Name]
		if !ok {
			mm.Missing = append(mm.Missing, p.Name)
			continue
		}
		delete(byName, p.Name)
		if p.Param != nil && p.Param.Data != nil && !tensor.EqualShape(t.Shape, p.Param.Data.Shape()) {
			e := &MismatchError{Name: p.Name, Checkpoint: t.Shape, Model: p.Param.Data.Shape()}
			return &errs.TorchError{Kind: errs.Shape, Op: op, Err: e}
		}
		x, err := tensor.FromStorage(tensor.WrapStorage(t.Data), t.Shape, contiguousStrides(t.Shape), 0)
		if err != nil {
			return errs.Wrap(errs.Checkpoint, op, err, "tensor %q", t.Name)
		}
		sd.Set(p.Name, x)
	}
	for name := range byName {
		mm.Unexpected = append(mm.Unexpected, name)
	}
	if len(mm.Missing) > 0 || len(mm.Unexpected) > 0 {
		sort.Strings(mm.Unexpected)
		return &errs.TorchError{Kind: errs.Shape, Op: op, Err: &mm}
	}
	if opt != nil && ck.Optimizer == nil {
		return errs.New(errs.Checkpoint, op, "checkpoint has no optimizer state")
	}
	if err := nn.LoadStateDict(model, sd, true); err != nil {
		return errs.Wrap(errs.KindOf(err), op, err, "")
	}
	if opt == nil {
		return nil
	}
	o := ck.Optimizer
	st := optim.State{Type: o.Type, LR: o.LR, Hyper: o.Hyper}
	if o.Params != nil {
		st.Params = make(map[string]optim.ParamState, len(o.Params))
	}
	for name, p := range o.Params {
		st.Params[name] = optim.ParamState{Step: p.Step, Buffers: p.Buffers}
	}
	if err := opt.LoadStateDict(st); err != nil {
		return errs.Wrap(errs.Checkpoint, op, err, "optimizer state")
	}
	return nil
}

// MismatchError says how a checkpoint's tensors disagree with a model. It
// reaches callers wrapped in an [*errs.TorchError] of kind errs.Shape.
type MismatchError struct {
	Missing    []string // model parameters the checkpoint lacks
	Unexpected []string // checkpoint tensors the model lacks
	Name       string   // a parameter whose shape differs, if any
	Checkpoint []int    // its shape in the checkpoint
	Model      []int    // its shape in the model
}

func (e *MismatchError) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("size mismatch for %q: checkpoint has shape %v, model has shape %v", e.Name, e.Checkpoint, e.Model)
	}
	return fmt.Sprintf("missing keys %q, unexpected keys %q", e.Missing, e.Unexpected)
}

func contiguousStrides(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= max(shape[i], 1)
	}
	return s
}

// schedulerToCheckpoint and schedulerFromCheckpoint convert an LR
// scheduler's state (a chain through Inner) to and from RTCH's copy.
func schedulerToCheckpoint(s *optim.SchedulerState) *experiment.SchedulerState {
	if s == nil {
		return nil
	}
	return &experiment.SchedulerState{Type: s.Type, Step: s.Step, BaseLR: s.BaseLR, Inner: schedulerToCheckpoint(s.Inner)}
}

func schedulerFromCheckpoint(s *experiment.SchedulerState) *optim.SchedulerState {
	if s == nil {
		return nil
	}
	return &optim.SchedulerState{Type: s.Type, Step: s.Step, BaseLR: s.BaseLR, Inner: schedulerFromCheckpoint(s.Inner)}
}

func cursorToCheckpoint(c data.Cursor) experiment.Cursor {
	return experiment.Cursor{Epoch: c.Epoch, Pos: c.Pos}
}
func cursorFromCheckpoint(c experiment.Cursor) data.Cursor {
	return data.Cursor{Epoch: c.Epoch, Pos: c.Pos}
}
