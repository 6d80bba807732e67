package train

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
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
	store    experiment.Store
	rec      *experiment.Recorder
	keepLast int
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
	return &RecordSink{store: store, rec: rec, keepLast: spec.KeepLast}, nil
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
	return spec, &RecordSink{store: store, rec: rec, keepLast: spec.KeepLast}, nil
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
func (s *RecordSink) SetLayout(m map[string]tensor.OpStats) { s.rec.SetLayout(m) }

// Finish ends the attempt.
func (s *RecordSink) Finish(ctx context.Context, status experiment.Status, runErr error) error {
	return s.rec.Finish(context.WithoutCancel(ctx), status, runErr)
}

func (s *RecordSink) ckptPrefix() string { return "runs/" + s.rec.ID() + "/checkpoints/" }

// latest is the LATEST pointer's content.
type latest struct {
	Key  string `json:"key"`
	Step int64  `json:"step"`
}

// SaveCheckpoint writes the checkpoint object, then the LATEST pointer,
// records the artifact, and deletes checkpoints beyond the newest keepLast.
func (s *RecordSink) SaveCheckpoint(ctx context.Context, step int64, ck *experiment.Checkpoint) error {
	var buf bytes.Buffer
	if err := experiment.EncodeCheckpoint(&buf, ck); err != nil {
		return err
	}
	name := fmt.Sprintf("step-%012d.rtch", step)
	key := s.ckptPrefix() + name
	size := int64(buf.Len())
	if err := s.store.Put(ctx, key, buf.Bytes()); err != nil {
		return err
	}
	ptr, _ := json.Marshal(latest{Key: key, Step: step})
	if err := s.store.Put(ctx, s.ckptPrefix()+"LATEST", ptr); err != nil {
		return err
	}
	if err := s.rec.AddArtifact(ctx, experiment.Artifact{
		Name: "checkpoints/" + name, Kind: experiment.ArtifactCheckpoint, Key: key, Size: size, Step: step, Time: time.Now().UTC(),
	}); err != nil {
		return err
	}
	return s.prune(ctx, key)
}

// checkpointKeys lists the run's checkpoint objects, oldest first.
func (s *RecordSink) checkpointKeys(ctx context.Context) ([]string, error) {
	keys, err := s.store.List(ctx, s.ckptPrefix())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		if b := path.Base(k); strings.HasPrefix(b, "step-") && strings.HasSuffix(b, ".rtch") {
			out = append(out, k)
		}
	}
	sort.Strings(out) // zero-padded steps sort numerically
	return out, nil
}

// prune keeps the newest keepLast checkpoints and never deletes keep.
func (s *RecordSink) prune(ctx context.Context, keep string) error {
	keys, err := s.checkpointKeys(ctx)
	if err != nil {
		return err
	}
	for i := 0; i < len(keys)-s.keepLast; i++ {
		if keys[i] == keep {
			continue
		}
		if err := s.store.Delete(ctx, keys[i]); err != nil && !experiment.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// LoadCheckpoint returns the checkpoint LATEST points to, or, if that is
// missing or invalid, the newest checkpoint that decodes and verifies.
func (s *RecordSink) LoadCheckpoint(ctx context.Context) (*experiment.Checkpoint, error) {
	keys, err := s.checkpointKeys(ctx)
	if err != nil {
		return nil, err
	}
	if b, err := s.store.Get(ctx, s.ckptPrefix()+"LATEST"); err == nil {
		var l latest
		if json.Unmarshal(b, &l) == nil && l.Key != "" {
			keys = append(keys, l.Key) // tried first
		}
	}
	var firstErr error
	for i := len(keys) - 1; i >= 0; i-- {
		b, err := s.store.Get(ctx, keys[i])
		if err == nil {
			var ck *experiment.Checkpoint
			if ck, err = experiment.DecodeCheckpoint(bytes.NewReader(b), int64(len(b))); err == nil {
				return ck, nil
			}
		}
		if firstErr == nil && !experiment.IsNotFound(err) {
			firstErr = err
		}
	}
	if firstErr != nil && len(keys) > 0 {
		return nil, errs.Wrap(errs.Checkpoint, "resume", firstErr, "no valid checkpoint for run %s", s.rec.ID())
	}
	return nil, nil
}
