package train

import (
	"context"
	"errors"
	"testing"

	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/experiment"
)

// TestS3InterruptAndResume runs the loop against a real S3 server
// (versitygw): checkpoints and the LATEST pointer go to the bucket, and an
// interrupted run resumes from it to the same final parameters as an
// uninterrupted run in a local store.
func TestS3InterruptAndResume(t *testing.T) {
	srv := testutil.StartVersityGW(t)
	ctx := context.Background()
	store, err := experiment.NewS3Store(ctx, experiment.S3Config{
		Endpoint: srv.Endpoint, Bucket: "gorch-train", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		Insecure: true, CreateBucket: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := blobSpec(40)
	sink, err := NewRun(ctx, store, spec, "test")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	_, err = Run(cctx, spec, sink, Options{Progress: func(p Progress) {
		if p.Step == 15 {
			cancel()
		}
	}})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want interrupted", err)
	}
	latest, err := store.Get(ctx, "runs/"+sink.RunID()+"/checkpoints/LATEST")
	if err != nil || len(latest) == 0 {
		t.Fatalf("LATEST pointer: %q, %v", latest, err)
	}
	specR, sinkR, err := ResumeRun(ctx, store, sink.RunID())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, specR, sinkR, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.StartStep != 15 || res.Steps != 40 {
		t.Errorf("resumed from %d to %d, want 15 to 40", res.StartStep, res.Steps)
	}
	s := summary(t, store, sink.RunID())
	if s.Status != experiment.StatusSucceeded || s.Run.Attempt != 2 {
		t.Errorf("S3 summary: status %v attempt %d", s.Status, s.Run.Attempt)
	}

	localStore, localSink := newSink(t, blobSpec(40))
	if _, err := Run(ctx, blobSpec(40), localSink, Options{}); err != nil {
		t.Fatal(err)
	}
	a, b := lastCheckpoint(t, localStore, localSink.RunID()), lastCheckpoint(t, store, sink.RunID())
	for j, ta := range a.Tensors {
		tb := b.Tensors[j]
		for i, v := range ta.Data {
			if tb.Data[i] != v {
				t.Fatalf("%s[%d]: %v resumed on S3, %v straight", ta.Name, i, tb.Data[i], v)
			}
		}
	}
}
