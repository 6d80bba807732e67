package collector

import (
	"context"
	"encoding/json"
	"path"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/experiment"
)

// Kinds of run events.
const (
	kindStarted  = "started"
	kindFinished = "finished"
)

// apply applies one run's messages in stream order through the writer's
// Ingest and stores what they carry.
func (w *writer) apply(ctx context.Context, id string, items []item) error {
	for _, it := range items {
		if err := w.applyOne(ctx, id, it.v); err != nil {
			return err
		}
	}
	return w.ing.Flush(ctx, id)
}

func (w *writer) applyOne(ctx context.Context, id string, v any) error {
	in := w.ing
	switch v := v.(type) {
	case *metricBatch:
		return in.Metrics(ctx, id, v.attempt, v.seq, v.resume, v.points)
	case *cluster.TelemetryBatch:
		es := make([]experiment.TelemetryEvent, len(v.Events))
		for i, e := range v.Events {
			es[i] = experiment.TelemetryEvent{Name: e.Name, Start: e.Start.UTC(), Duration: e.Duration, Tags: e.Tags}
		}
		return in.Telemetry(ctx, id, v.Attempt, v.Seq, es)
	case *cluster.CheckpointEvent:
		return in.Checkpoint(ctx, id, v.Attempt, experiment.Artifact{
			Name: "checkpoints/" + path.Base(v.Key), Kind: experiment.ArtifactCheckpoint,
			Key: v.Key, Size: v.Size, Checksum: v.SHA256, Step: v.Step, Time: v.Time.UTC(),
		})
	case *cluster.RunEvent:
		if v.Kind == kindStarted {
			return in.Start(ctx, id, attemptStart(v))
		}
		return in.End(ctx, id, w.attemptEnd(v))
	}
	return nil
}

// attemptStart is a "started" event's content. The attempt's start is the
// worker's clock: Started, or the event's time from workers that do not
// send it.
func attemptStart(ev *cluster.RunEvent) experiment.AttemptStart {
	started := ev.Started
	if started.IsZero() {
		started = ev.Time
	}
	return experiment.AttemptStart{Attempt: ev.Attempt, Resume: ev.Resume, Started: started, Name: ev.Name,
		Config: json.RawMessage(ev.Spec), Seed: ev.Seed, Host: ev.Host, Worker: ev.Worker, Version: ev.Version}
}

// attemptEnd is a "finished" event's content, the times on the worker's
// clock.
func (w *writer) attemptEnd(ev *cluster.RunEvent) experiment.AttemptEnd {
	finished := ev.Finished
	if finished.IsZero() {
		finished = ev.Time
	}
	e := experiment.AttemptEnd{Attempt: ev.Attempt, Status: experiment.Status(ev.Status), Error: ev.Error,
		Started: ev.Started, Finished: finished, Published: ev.Metrics, Version: ev.Version}
	if len(ev.Layout) > 0 {
		if err := json.Unmarshal(ev.Layout, &e.Layout); err != nil {
			w.c.log.Warn("ignoring undecodable layout counters", "run", ev.RunID, "err", err)
		}
	}
	return e
}
