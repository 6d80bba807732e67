package train

import (
	"context"
	"path"
	"time"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/tensor"
)

// Sink receives everything a run produces. [RecordSink] writes it into an
// experiment store; a cluster worker implements it by publishing records.
type Sink interface {
	// RunID names the run, for messages.
	RunID() string
	// Log records one metric value at a step.
	Log(step int64, name string, value float64) error
	// Timer starts a scoped telemetry timer: defer sink.Timer("x").Stop().
	Timer(name string) Stopper
	// SaveCheckpoint stores a checkpoint taken after step.
	SaveCheckpoint(ctx context.Context, step int64, ck *experiment.Checkpoint) error
	// LoadCheckpoint returns the newest valid checkpoint, or nil if there is none.
	LoadCheckpoint(ctx context.Context) (*experiment.Checkpoint, error)
	// SetLayout records the layout-validation counters.
	SetLayout(map[string]tensor.OpStats)
	// Finish ends the run with its final status; it must persist the
	// summary even when ctx is cancelled.
	Finish(ctx context.Context, status experiment.Status, runErr error) error
}

// Stopper ends a timer.
type Stopper interface{ Stop() time.Duration }

// RecordSink writes a run into an experiment store: records through an
// [experiment.Recorder], checkpoints as objects under
// runs/<id>/checkpoints/ with a LATEST pointer written after the object.
type RecordSink struct {
	store experiment.Store
	rec   *experiment.Recorder
	ckpts *Checkpoints
}

// NewRun creates a new run in store for spec and returns its sink.
func NewRun(ctx context.Context, store experiment.Store, spec *Spec, version string) (*RecordSink, error) {
	run := experiment.Run{
		Name: spec.Name, Config: spec.JSON(), Hyperparameters: spec.Hyperparameters(),
		Tags: spec.Tags, Seed: spec.Seed, GorchVersion: version,
	}
	rec, err := experiment.Create(ctx, store, run, experiment.LogOptions{})
	if err != nil {
		return nil, err
	}
	return &RecordSink{store: store, rec: rec, ckpts: NewCheckpoints(store, rec.ID(), spec.KeepLast)}, nil
}

// ResumeRun starts a new attempt of the run runID and returns its spec
// (from run.json) and sink.
func ResumeRun(ctx context.Context, store experiment.Store, runID string) (*Spec, *RecordSink, error) {
	r := experiment.NewReader(store)
	run, err := r.GetRun(ctx, runID)
	if err != nil {
		return nil, nil, err
	}
	if run.Status == experiment.StatusSucceeded {
		return nil, nil, errs.New(errs.Experiment, "resume", "run %s already succeeded", runID)
	}
	spec, err := ParseSpec("run "+runID+" config", run.Config)
	if err != nil {
		return nil, nil, err
	}
	rec, err := experiment.Resume(ctx, store, runID, experiment.LogOptions{})
	if err != nil {
		return nil, nil, err
	}
	return spec, &RecordSink{store: store, rec: rec, ckpts: NewCheckpoints(store, rec.ID(), spec.KeepLast)}, nil
}

// RunID returns the run's ID.
func (s *RecordSink) RunID() string { return s.rec.ID() }

// Recorder returns the underlying recorder.
func (s *RecordSink) Recorder() *experiment.Recorder { return s.rec }

// Log records a metric.
func (s *RecordSink) Log(step int64, name string, value float64) error {
	return s.rec.Log(step, name, value)
}

// Timer starts a telemetry timer.
func (s *RecordSink) Timer(name string) Stopper { return s.rec.Start(name) }

// SetLayout records the layout counters.
func (s *RecordSink) SetLayout(m map[string]tensor.OpStats) {
	out := make(map[string]experiment.OpStats, len(m))
	for k, v := range m {
		out[k] = experiment.OpStats{Checks: v.Checks, Failures: v.Failures}
	}
	s.rec.SetLayout(out)
}

// Finish ends the attempt.
func (s *RecordSink) Finish(ctx context.Context, status experiment.Status, runErr error) error {
	return s.rec.Finish(context.WithoutCancel(ctx), status, runErr)
}

// Checkpoints returns the run's checkpoint directory.
func (s *RecordSink) Checkpoints() *Checkpoints { return s.ckpts }

// SaveCheckpoint first writes every queued metric and telemetry event, so
// that the records of the steps a checkpoint covers are durable before a
// resume can start after it (a resumed attempt never logs those steps
// again). Then it writes the checkpoint object and the LATEST pointer,
// records the artifact, and deletes checkpoints beyond the newest keepLast.
func (s *RecordSink) SaveCheckpoint(ctx context.Context, step int64, ck *experiment.Checkpoint) error {
	if err := s.rec.Flush(); err != nil {
		return err
	}
	key, size, err := s.ckpts.Save(ctx, step, ck)
	if err != nil {
		return err
	}
	return s.rec.AddArtifact(ctx, experiment.Artifact{
		Name: "checkpoints/" + path.Base(key), Kind: experiment.ArtifactCheckpoint,
		Key: key, Size: size, Step: step, Time: time.Now().UTC(),
	})
}

// LoadCheckpoint returns the checkpoint LATEST points to, or, if that is
// missing or invalid, the newest checkpoint that decodes and verifies, and
// records the attempt's resume step (what earlier attempts logged after it
// is superseded).
func (s *RecordSink) LoadCheckpoint(ctx context.Context) (*experiment.Checkpoint, error) {
	ck, err := s.ckpts.Load(ctx)
	if err != nil {
		return nil, err
	}
	var step int64
	if ck != nil {
		step = ck.Train.Step
	} else if s.rec.Run().Attempt == 1 {
		return nil, nil // a new run: Create recorded its start
	}
	return ck, s.rec.SetResume(ctx, step)
}
