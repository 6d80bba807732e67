package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/optim"
	"github.com/gorch/gorch/pkg/tensor"
)

// Progress is reported every LogEvery steps and after each evaluation.
type Progress struct {
	Step, Total  int
	Epoch        int
	Loss         float64 // mean training loss since the last report
	LR           float64
	StepsPerSec  float64
	ETA          time.Duration
	EvalLoss     float64 // set when Eval is true
	EvalAccuracy float64
	Eval         bool
}

// Options are the caller's hooks into a run.
type Options struct {
	Progress func(Progress) // may be nil
	// TraceSteps samples training steps for tracing: every TraceSteps-th
	// step gets a "train.step" span, a child of the span in Run's ctx
	// (0: no step spans). Every checkpoint gets a "checkpoint" span. Spans
	// go to OpenTelemetry's global tracer provider; Run sets none up, so
	// without one (gorch train) they cost nothing.
	TraceSteps int
	// Init, if not nil, is a checkpoint whose parameters a new run starts
	// from (`gorch train --init`): its names and shapes must match the
	// model's exactly. Only the parameters are used; the optimizer, data
	// order and step start fresh. A run that resumes from its own
	// checkpoint ignores it.
	Init *experiment.Checkpoint
}

// tracer is pkg/train's OpenTelemetry tracer, from the global provider.
func tracer() trace.Tracer { return otel.Tracer("github.com/gorch/gorch/pkg/train") }

// Result is the outcome of a run.
type Result struct {
	RunID        string
	Steps        int // optimizer steps in total, including earlier attempts
	StartStep    int // the step this attempt resumed from
	TestLoss     float64
	TestAccuracy float64
	Duration     time.Duration // of this attempt
	StepsPerSec  float64       // of this attempt
}

// ErrInterrupted is wrapped by the error Run returns when ctx was
// cancelled (SIGINT/SIGTERM): the run was checkpointed and can resume.
var ErrInterrupted = errors.New("interrupted")

// Run trains spec to the end (or until ctx is cancelled), writing through
// sink. If sink holds a checkpoint, training resumes from it exactly. The
// run's summary is written on every exit path: success, error, panic
// (persisted, then re-raised) and cancellation (the current step finishes,
// a checkpoint is taken, the status is interrupted).
//
// The run's engine state (layout counters, grad mode) lives in a
// tensor.Scope of its own, so runs in one process do not share it.
func Run(ctx context.Context, spec *Spec, sink Sink, opts Options) (res Result, err error) {
	res.RunID = sink.RunID()
	scope := tensor.NewScope()
	status := experiment.StatusFailed
	defer func() {
		if r := recover(); r != nil {
			sink.SetLayout(scope.LayoutStats())
			_ = sink.Finish(ctx, experiment.StatusFailed, fmt.Errorf("panic: %v", r))
			panic(r)
		}
		sink.SetLayout(scope.LayoutStats())
		if ferr := sink.Finish(ctx, status, err); err == nil && ferr != nil {
			err = ferr
		}
	}()
	if err := spec.Validate(); err != nil {
		return res, err
	}
	t, err := newTrainer(spec, sink, opts, scope)
	if err != nil {
		return res, err
	}
	if err := t.restore(ctx); err != nil {
		return res, err
	}
	res.StartStep = t.step
	status, err = t.loop(ctx)
	res.Steps = t.step
	res.TestLoss, res.TestAccuracy = t.evalLoss, t.evalAcc
	res.Duration = time.Since(t.started)
	if res.Duration > 0 {
		res.StepsPerSec = float64(t.step-res.StartStep) / res.Duration.Seconds()
	}
	return res, err
}

// trainer holds one attempt's state.
type trainer struct {
	spec    *Spec
	sink    Sink
	opts    Options
	trainDS *data.TensorDataset
	testDS  *data.TensorDataset
	model   nn.Module
	opt     optim.Optimizer
	sched   optim.Scheduler
	loader  *data.Loader
	rng     *tensor.RNG   // dropout
	scope   *tensor.Scope // the run's engine state
	arena   *tensor.Arena // the storages of a training step's tensors, recycled step after step
	total   int
	step    int
	started time.Time

	evalLoss, evalAcc float64
	evalStep          int // step of the last evaluation, -1 if none
	lossSum           float64
	lossN             int
	startStep         int     // the step this attempt started from
	lastLoss          float64 // of the latest step
}

func newTrainer(spec *Spec, sink Sink, opts Options, scope *tensor.Scope) (*trainer, error) {
	t := &trainer{spec: spec, sink: sink, opts: opts, scope: scope, arena: tensor.NewArena(), evalStep: -1}
	var err error
	if t.trainDS, t.testDS, err = Datasets(spec); err != nil {
		return nil, err
	}
	classes := max(numClasses(t.trainDS), numClasses(t.testDS))
	t.rng = tensor.NewRNG(spec.Seed ^ 0x5eed)
	if t.model, err = buildModel(spec, t.trainDS, classes, tensor.NewRNG(spec.Seed), t.rng); err != nil {
		return nil, err
	}
	nn.SetScope(t.model, scope)
	if t.opt, err = buildOptimizer(spec, t.model.Parameters()); err != nil {
		return nil, errs.Wrap(errs.Config, "spec", err, "optimizer")
	}
	if t.loader, err = data.NewLoader(t.trainDS, data.LoaderOptions{BatchSize: spec.BatchSize, Shuffle: true, Seed: spec.Seed}); err != nil {
		return nil, err
	}
	t.total = spec.Steps
	if spec.Epochs > 0 {
		t.total = spec.Epochs * t.loader.BatchesPerEpoch()
	}
	if t.sched, err = buildSchedule(spec, t.opt, t.total); err != nil {
		return nil, err
	}
	return t, nil
}

// restore loads the sink's newest checkpoint, if any, into every piece of state.
func (t *trainer) restore(ctx context.Context) error {
	ck, err := t.sink.LoadCheckpoint(ctx)
	if err != nil {
		return err
	}
	if ck == nil {
		if t.opts.Init == nil {
			return nil
		}
		if err := ApplyCheckpoint(t.opts.Init, t.model, nil); err != nil {
			return errs.Wrap(errs.KindOf(err), "init", err, "initial weights")
		}
		return nil
	}
	if ck.Optimizer == nil {
		return errs.New(errs.Checkpoint, "resume", "checkpoint has no optimizer state")
	}
	if err := ApplyCheckpoint(ck, t.model, t.opt); err != nil {
		return err
	}
	if t.sched != nil {
		if ck.Train.Scheduler == nil {
			return errs.New(errs.Checkpoint, "resume", "checkpoint has no scheduler state")
		}
		if err := t.sched.LoadStateDict(*schedulerFromCheckpoint(ck.Train.Scheduler)); err != nil {
			return errs.Wrap(errs.Checkpoint, "resume", err, "scheduler state")
		}
	}
	if len(ck.Train.RNG) > 0 {
		if err := t.rng.SetState(ck.Train.RNG); err != nil {
			return errs.Wrap(errs.Checkpoint, "resume", err, "RNG state")
		}
	}
	if err := t.loader.Seek(cursorFromCheckpoint(ck.Train.Cursor)); err != nil {
		return errs.Wrap(errs.Checkpoint, "resume", err, "data cursor")
	}
	t.step = int(ck.Train.Step)
	return nil
}

func (t *trainer) checkpoint(ctx context.Context) (err error) {
	defer t.sink.Timer("checkpoint").Stop()
	ctx, span := tracer().Start(ctx, "checkpoint", trace.WithAttributes(attribute.Int64("gorch.step", int64(t.step))))
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	ts := experiment.TrainState{Step: int64(t.step), Epoch: t.loader.Epoch(), Cursor: cursorToCheckpoint(t.loader.Cursor()), RNG: t.rng.State()}
	if t.sched != nil {
		st := t.sched.StateDict()
		ts.Scheduler = schedulerToCheckpoint(&st)
	}
	ck, err := CheckpointFromModel(t.model, t.opt, ts)
	if err != nil {
		return err
	}
	ck.ModelConfig = t.spec.JSON()
	return t.sink.SaveCheckpoint(ctx, int64(t.step), ck)
}

// loop runs steps until the end, an error or cancellation.
func (t *trainer) loop(ctx context.Context) (experiment.Status, error) {
	t.started = time.Now()
	t.startStep = t.step
	for t.step < t.total {
		if !t.loader.Next() {
			if err := t.loader.Err(); err != nil {
				return experiment.StatusFailed, err
			}
			if t.spec.EvalEvery == 0 {
				if err := t.evaluate(); err != nil {
					return experiment.StatusFailed, err
				}
			}
			t.loader.NextEpoch()
			continue
		}
		if err := t.tracedStep(ctx); err != nil {
			return experiment.StatusFailed, err
		}
		if t.spec.EvalEvery > 0 && t.step%t.spec.EvalEvery == 0 {
			if err := t.evaluate(); err != nil {
				return experiment.StatusFailed, err
			}
		}
		if t.spec.CkptEvery > 0 && t.step%t.spec.CkptEvery == 0 {
			if err := t.checkpoint(ctx); err != nil {
				return experiment.StatusFailed, err
			}
		}
		if ctx.Err() != nil && t.step < t.total {
			cause := context.Cause(ctx)
			if err := t.checkpoint(context.WithoutCancel(ctx)); err != nil {
				return experiment.StatusFailed, errors.Join(err, cause)
			}
			return experiment.StatusInterrupted, errs.Wrap(errs.Training, "train", fmt.Errorf("%w: %w", ErrInterrupted, cause),
				"run %s stopped after step %d of %d and was checkpointed", t.sink.RunID(), t.step, t.total)
		}
	}
	if t.evalStep != t.step {
		if err := t.evaluate(); err != nil {
			return experiment.StatusFailed, err
		}
	}
	if t.spec.CkptEvery == 0 || t.step%t.spec.CkptEvery != 0 {
		if err := t.checkpoint(ctx); err != nil {
			return experiment.StatusFailed, err
		}
	}
	return experiment.StatusSucceeded, nil
}

// tracedStep runs trainStep, inside a "train.step" span when the step is
// sampled (Options.TraceSteps).
func (t *trainer) tracedStep(ctx context.Context) error {
	n := t.opts.TraceSteps
	if n <= 0 || (t.step+1)%n != 0 {
		return t.trainStep()
	}
	_, span := tracer().Start(ctx, "train.step", trace.WithAttributes(attribute.Int64("gorch.step", int64(t.step+1))))
	err := t.trainStep()
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	} else {
		span.SetAttributes(attribute.Float64("gorch.loss", t.lastLoss))
	}
	span.End()
	return err
}

func (t *trainer) trainStep() error {
	stepTimer := t.sink.Timer("step")
	// The previous step's tensors, Grad included, are dead from here: their
	// storages serve this step's (no allocation, no clearing of fresh
	// memory, no garbage). Evaluation and checkpoints between steps run
	// without the arena.
	t.opt.ZeroGrad()
	t.arena.Reset()
	t.scope.SetArena(t.arena)
	defer t.scope.SetArena(nil)
	x, y := t.loader.Batch()
	t.scope.Adopt(x, y)
	ft := t.sink.Timer("forward")
	out, err := t.model.Forward(autograd.Const(x))
	if err != nil {
		return err
	}
	loss, err := crossEntropy(out, y)
	ft.Stop()
	if err != nil {
		return err
	}
	lv, err := loss.Item()
	if err != nil {
		return err
	}
	if math.IsNaN(float64(lv)) || math.IsInf(float64(lv), 0) {
		return errs.New(errs.Training, "train", "loss is %v at step %d", lv, t.step+1)
	}
	bt := t.sink.Timer("backward")
	err = loss.BackwardWith(autograd.BackwardOptions{Workers: t.spec.Backward})
	bt.Stop()
	if err != nil {
		return err
	}
	ot := t.sink.Timer("optimizer")
	if t.spec.Optimizer.ClipNorm > 0 {
		if _, err := optim.ClipGradNorm(t.model.Parameters(), t.spec.Optimizer.ClipNorm); err != nil {
			return err
		}
	}
	lr := t.opt.LR()
	if err := t.opt.Step(); err != nil {
		return err
	}
	if t.sched != nil {
		t.sched.Step()
	}
	ot.Stop()
	t.step++
	stepTimer.Stop()
	if err := t.sink.Log(int64(t.step), "train/loss", float64(lv)); err != nil {
		return err
	}
	if err := t.sink.Log(int64(t.step), "train/lr", lr); err != nil {
		return err
	}
	t.lossSum += float64(lv)
	t.lossN++
	t.lastLoss = float64(lv)
	if t.step%t.spec.LogEvery == 0 || t.step == t.total {
		t.report(false)
	}
	return nil
}

func (t *trainer) report(eval bool) {
	if t.opts.Progress == nil {
		return
	}
	now := time.Now()
	p := Progress{Step: t.step, Total: t.total, Epoch: t.loader.Epoch() + 1, LR: t.opt.LR(), Eval: eval,
		EvalLoss: t.evalLoss, EvalAccuracy: t.evalAcc}
	if t.lossN > 0 {
		p.Loss = t.lossSum / float64(t.lossN)
	}
	if el := now.Sub(t.started).Seconds(); el > 0 && t.step > t.startStep {
		p.StepsPerSec = float64(t.step-t.startStep) / el
		if p.StepsPerSec > 0 {
			p.ETA = time.Duration(float64(t.total-t.step) / p.StepsPerSec * float64(time.Second))
		}
	}
	if !eval {
		t.lossSum, t.lossN = 0, 0
	}
	t.opts.Progress(p)
}

func (t *trainer) evaluate() error {
	defer t.sink.Timer("eval").Stop()
	t.model.Train(false)
	defer t.model.Train(true)
	loss, acc, err := Evaluate(t.model, t.testDS, t.spec.EvalBatch)
	if err != nil {
		return err
	}
	t.evalLoss, t.evalAcc, t.evalStep = loss, acc, t.step
	if err := t.sink.Log(int64(t.step), "eval/loss", loss); err != nil {
		return err
	}
	if err := t.sink.Log(int64(t.step), "eval/accuracy", acc); err != nil {
		return err
	}
	t.report(true)
	return nil
}

// Evaluate returns the mean cross-entropy and the accuracy of model on ds,
// in batches, without recording a graph when model's parameters belong to
// a tensor.Scope (as in Run).
func Evaluate(model nn.Module, ds *data.TensorDataset, batch int) (loss, acc float64, err error) {
	n := ds.Len()
	if n == 0 {
		return 0, 0, errs.New(errs.Data, "evaluate", "empty dataset")
	}
	if batch <= 0 {
		return 0, 0, errs.New(errs.Argument, "evaluate", "batch size must be positive, got %d", batch)
	}
	var correct, total int
	var lossSum float64
	scope := nn.Scope(model)
	err = scope.NoGrad(func() error {
		idx := make([]int, 0, batch)
		for start := 0; start < n; start += batch {
			idx = idx[:0]
			for i := start; i < min(start+batch, n); i++ {
				idx = append(idx, i)
			}
			x, y, err := ds.Gather(idx)
			if err != nil {
				return err
			}
			scope.Adopt(x, y)
			out, err := model.Forward(autograd.Const(x))
			if err != nil {
				return err
			}
			if out, y, err = flattenTokens(out, y); err != nil {
				return err
			}
			l, err := autograd.CrossEntropy(out, y)
			if err != nil {
				return err
			}
			lv, _ := l.Item()
			lossSum += float64(lv) * float64(len(idx))
			pred, err := tensor.Argmax(out.Data, 1, false)
			if err != nil {
				return err
			}
			yd := y.Data()
			for i, p := range pred.Data() {
				if p == yd[i] {
					correct++
				}
			}
			total += len(yd)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return lossSum / float64(n), float64(correct) / float64(total), nil
}

// crossEntropy is the mean cross-entropy of out against class targets y,
// per sample ([N, C] logits) or per token ([N, T, V] logits of a language
// model against [N, T] next tokens).
func crossEntropy(out *autograd.Variable, y *tensor.Tensor) (*autograd.Variable, error) {
	out, y, err := flattenTokens(out, y)
	if err != nil {
		return nil, err
	}
	return autograd.CrossEntropy(out, y)
}

// flattenTokens turns a language model's [N, T, V] logits and [N, T]
// targets into [N·T, V] and [N·T], so tokens are scored as samples; other
// shapes pass through.
func flattenTokens(out *autograd.Variable, y *tensor.Tensor) (*autograd.Variable, *tensor.Tensor, error) {
	if out.Data.Dim() != 3 {
		return out, y, nil
	}
	v := out.Data.Shape()[2]
	out, err := autograd.Reshape(out, -1, v)
	if err != nil {
		return nil, nil, err
	}
	if y, err = y.Reshape(-1); err != nil {
		return nil, nil, err
	}
	return out, y, nil
}
