package train

import (
	"context"
	"errors"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
)

// TestCheckpointsPullSucceedsAndFallsBack: Save writes object and LATEST
// and prunes; Pull returns verified bytes by step or latest; Load falls
// back to the newest valid checkpoint when LATEST names a corrupt one.
func TestCheckpointsPullSucceedsAndFallsBack(t *testing.T) {
	ctx := context.Background()
	spec := blobSpec(20)
	store, sink := newSink(t, spec)
	if _, err := Run(ctx, spec, sink, Options{}); err != nil {
		t.Fatal(err)
	}
	c := NewCheckpoints(store, sink.RunID(), 2)
	if _, err := c.Pull(ctx, -1); err != nil {
		t.Fatalf("Pull(latest): %v", err)
	}
	ten, err := c.Pull(ctx, 10)
	if err != nil {
		t.Fatalf("Pull(10): %v", err)
	}
	if _, err := c.Pull(ctx, 7); !experiment.IsNotFound(err) {
		t.Errorf("Pull(7) err = %v, want not found", err)
	}
	// Corrupt step 20, which LATEST names: Pull says so, Load falls back to step 10.
	if err := store.Put(ctx, c.Key(20), ten[:len(ten)/2]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(ctx, -1); !errors.Is(err, errs.Checkpoint) {
		t.Errorf("Pull(latest) of a truncated checkpoint: err = %v, want a checkpoint error", err)
	}
	ck, err := c.Load(ctx)
	if err != nil || ck == nil || ck.Train.Step != 10 {
		t.Fatalf("Load = %v, %v; want the step-10 checkpoint", ck, err)
	}
	key, size, err := c.Save(ctx, 30, ck)
	if err != nil || key != c.Key(30) || size == 0 {
		t.Fatalf("Save(30) = %q, %d, %v", key, size, err)
	}
	keys, _ := store.List(ctx, c.Prefix())
	if len(keys) != 3 || keys[0] != c.Prefix()+"LATEST" || keys[1] != c.Key(20) || keys[2] != c.Key(30) {
		t.Errorf("after Save(30) with keepLast 2: %v", keys)
	}
}

// TestCheckpointFollowsItsRecords: when a checkpoint of step N is in the
// store, every metric of steps up to N is too. A run killed right after a
// checkpoint resumes after N and never logs those steps again, so records
// still queued in memory at the kill would be lost for good.
func TestCheckpointFollowsItsRecords(t *testing.T) {
	ctx := context.Background()
	spec := blobSpec(10)
	store, sink := newSink(t, spec)
	for step := int64(1); step <= 10; step++ {
		if err := sink.Log(step, "train/loss", float64(step)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.SaveCheckpoint(ctx, 10, &experiment.Checkpoint{Train: experiment.TrainState{Step: 10}}); err != nil {
		t.Fatal(err)
	}
	// Read what is durable now, before Finish flushes anything.
	var steps []int64
	for m, err := range experiment.NewReader(store).ReadMetrics(ctx, sink.RunID()) {
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, m.Step)
	}
	if len(steps) != 10 || steps[0] != 1 || steps[9] != 10 {
		t.Errorf("metrics in the store after the step-10 checkpoint: steps %v; want 1..10", steps)
	}
}
