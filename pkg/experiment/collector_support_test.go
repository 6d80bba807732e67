package experiment

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gorch/gorch/pkg/errs"
)

func readAllMetrics(t *testing.T, st Store, id string) []Metric {
	t.Helper()
	var out []Metric
	for m, err := range NewReader(st).ReadMetrics(context.Background(), id) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestCreateKeepsGivenIDAndAttempt(t *testing.T) {
	ctx := context.Background()
	st, err := NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Create(ctx, st, Run{ID: "run-a", Attempt: 3}, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Run(); got.ID != "run-a" || got.Attempt != 3 {
		t.Fatalf("Create(ID run-a, Attempt 3) = ID %q attempt %d; want run-a 3", got.ID, got.Attempt)
	}
	if err := rec.Finish(ctx, StatusSucceeded, nil); err != nil {
		t.Fatal(err)
	}
}

func TestReopenAndLogMetrics(t *testing.T) {
	ctx := context.Background()
	st, err := NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	rec, err := Create(ctx, st, Run{ID: "run-b", Name: "b"}, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.LogMetrics([]Metric{{Step: 1, Name: "loss", Value: 2, Time: t0}, {Step: 2, Name: "loss", Value: 1, Time: t0}}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := rec.AddArtifact(ctx, Artifact{Name: "checkpoints/x", Kind: ArtifactCheckpoint, Key: "k", Step: 2}); err != nil {
		t.Fatal(err)
	}
	// The writer dies without finishing; it reopens the same attempt.
	_ = rec.Metrics().Close()
	_ = rec.Telemetry().Close()

	if _, err := Reopen(ctx, st, "run-b", 0, LogOptions{}, nil); !errors.Is(err, errs.Experiment) {
		t.Fatalf("Reopen(attempt 0) = %v; want an errs.Experiment error", err)
	}
	rec, err = Reopen(ctx, st, "run-b", 1, LogOptions{}, func(r *Run) { r.Host = "h2"; r.ID = "evil"; r.Attempt = 9 })
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Run(); got.ID != "run-b" || got.Attempt != 1 || got.Status != StatusRunning || got.Host != "h2" || got.Name != "b" {
		t.Fatalf("Reopen(attempt 1) run = %+v; want run-b attempt 1 running host h2 name b", got)
	}
	if got := rec.Artifacts(); len(got) != 1 || got[0].Name != "checkpoints/x" {
		t.Fatalf("Artifacts() = %+v; want the one checkpoint", got)
	}
	if err := rec.LogMetrics([]Metric{{Step: 3, Name: "loss", Value: 0.5, Time: t0}}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Finish(ctx, StatusInterrupted, errors.New("preempted")); err != nil {
		t.Fatal(err)
	}

	// Attempt 3 after attempt 1: the attempt is set, not bumped by one.
	rec, err = Reopen(ctx, st, "run-b", 3, LogOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Run(); got.Attempt != 3 || got.Status != StatusRunning || got.Error != "" || !got.Finished.IsZero() {
		t.Fatalf("Reopen(attempt 3) run = %+v; want attempt 3, running, no error", got)
	}
	if err := rec.LogMetrics([]Metric{{Step: 3, Name: "loss", Value: 0.4, Time: t0}, {Step: 3, Name: "acc", Value: 0.9, Attempt: 1, Time: t0}}); err != nil {
		t.Fatal(err)
	}
	rec.AddDropped(2)
	if err := rec.Finish(ctx, StatusSucceeded, nil); err != nil {
		t.Fatal(err)
	}

	ms := readAllMetrics(t, st, "run-b")
	wantAttempts := []int{1, 1, 1, 3, 1}
	if len(ms) != len(wantAttempts) {
		t.Fatalf("read %d metrics; want %d: %+v", len(ms), len(wantAttempts), ms)
	}
	for i, m := range ms {
		if m.Attempt != wantAttempts[i] || !m.Time.Equal(t0) || m.Run != "run-b" {
			t.Errorf("metric %d = %+v; want attempt %d, time %v, run run-b", i, m, wantAttempts[i], t0)
		}
	}
	s, err := NewReader(st).GetSummary(ctx, "run-b")
	if err != nil {
		t.Fatal(err)
	}
	if s.Run.Attempt != 3 || s.Status != StatusSucceeded || s.Dropped != 2 || s.Complete || s.Metrics["loss"].Count != 4 {
		t.Fatalf("summary = attempt %d status %s dropped %d complete %v loss count %d; want 3 succeeded 2 false 4",
			s.Run.Attempt, s.Status, s.Dropped, s.Complete, s.Metrics["loss"].Count)
	}
}

func TestRefinishAddsLateRecords(t *testing.T) {
	ctx := context.Background()
	st, err := NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	rec, err := Create(ctx, st, Run{ID: "run-r"}, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.LogMetrics([]Metric{{Step: 1, Name: "loss", Value: 2, Time: t0}}); err != nil {
		t.Fatal(err)
	}
	rec.AddDropped(1) // step 2 has not arrived
	rec.SetTag("gap", "1")
	if err := rec.Finish(ctx, StatusSucceeded, nil); err != nil {
		t.Fatal(err)
	}
	rd := NewReader(st)
	first, err := rd.GetRun(ctx, "run-r")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := rd.GetSummary(ctx, "run-r"); err != nil || s.Complete || s.Dropped != 1 || s.Run.Tags["gap"] != "1" {
		t.Fatalf("summary = %+v, %v; want complete false, dropped 1, tag gap", s, err)
	}
	if err := rec.Refinish(ctx); err != nil { // after Finish: nothing
		t.Fatal(err)
	}

	rec, err = Reopen(ctx, st, "run-r", 1, LogOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.LogMetrics([]Metric{{Step: 2, Name: "loss", Value: 1, Time: t0}}); err != nil {
		t.Fatal(err)
	}
	rec.RemoveDropped(1)
	rec.RemoveDropped(5) // never below zero
	rec.SetTag("gap", "")
	if err := rec.Refinish(ctx); err != nil {
		t.Fatal(err)
	}
	run, err := rd.GetRun(ctx, "run-r")
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != StatusSucceeded || !run.Finished.Equal(first.Finished) || run.Tags != nil {
		t.Errorf("run.json = %+v; want succeeded, finished %v, no tags", run, first.Finished)
	}
	s, err := rd.GetSummary(ctx, "run-r")
	if err != nil || !s.Complete || s.Dropped != 0 || s.Metrics["loss"].Count != 2 {
		t.Errorf("summary = %+v, %v; want complete, dropped 0, 2 loss values", s, err)
	}
	if n := len(readAllMetrics(t, st, "run-r")); n != 2 {
		t.Errorf("%d metrics stored; want 2", n)
	}

	running, err := Create(ctx, st, Run{ID: "run-s"}, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := running.Refinish(ctx); !errors.Is(err, errs.Argument) {
		t.Errorf("Refinish of a running attempt = %v; want an errs.Argument error", err)
	}
	_ = running.Finish(ctx, StatusCancelled, nil)
}
