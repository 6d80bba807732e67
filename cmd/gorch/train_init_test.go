package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorch/gorch/pkg/experiment"
)

// TestTrainInit starts a run from another run's checkpoint: the new run's
// first recorded loss is the old run's trained loss, not a fresh model's.
func TestTrainInit(t *testing.T) {
	dir := t.TempDir()
	base := []string{"train", "--data-dir", dir, "--dataset", "blobs", "--model", "mlp", "--batch-size", "32", "--log-every", "1"}
	firstLoss := func(out string) float64 {
		t.Helper()
		id := strings.Fields(out)[1]
		id = strings.TrimSuffix(id, ":")
		store, err := experiment.NewLocalStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		for m, err := range experiment.NewReader(store).ReadMetrics(context.Background(), id) {
			if err != nil {
				t.Fatal(err)
			}
			if m.Name == "train/loss" {
				return m.Value
			}
		}
		t.Fatalf("run %s logged no train/loss", id)
		return 0
	}
	fresh := mustRun(t, append(base, "--steps", "60")...)
	id := strings.TrimSuffix(strings.Fields(fresh)[1], ":")
	ckpt := filepath.Join(dir, "runs", id, "checkpoints", "step-000000000060.rtch")
	warm := mustRun(t, append(base, "--steps", "1", "--init", ckpt)...)
	if f, w := firstLoss(fresh), firstLoss(warm); !(w < f/2) {
		t.Errorf("first loss from --init %s = %v; want well below a fresh model's %v", ckpt, w, f)
	}

	// A checkpoint for another model is refused, naming the mismatch.
	wrong := filepath.Join(t.TempDir(), "wrong.rtch")
	bad := []experiment.Tensor{{Name: "0.weight", Shape: []int{3, 3}, Data: make([]float32, 9)}}
	if err := experiment.SaveCheckpointFile(wrong, &experiment.Checkpoint{Tensors: bad}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{append(base, "--steps", "1", "--init", wrong), []string{"init", "0.weight"}},
		{append(base, "--steps", "1", "--init", filepath.Join(dir, "absent.rtch")), []string{"absent.rtch"}},
		{append(base, "--init", ckpt, "--resume", id), []string{"--init", "--resume"}},
	} {
		_, _, err := runCLI(t, c.args...)
		wantOneLineErr(t, c.args, err, c.want...)
	}
}
