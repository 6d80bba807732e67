package experiment

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"
)

// TelemetryRecorder writes one run's telemetry events as JSONL segments
// under runs/<id>/telemetry/, through its own writer goroutine.
type TelemetryRecorder struct {
	w *segWriter[TelemetryEvent]
}

// NewTelemetryRecorder starts a recorder for run runID. observe, if not
// nil, is called from the writer goroutine with each stored batch.
func NewTelemetryRecorder(ctx context.Context, store Store, runID string, opts LogOptions, observe func([]TelemetryEvent)) (*TelemetryRecorder, error) {
	const op = "experiment.TelemetryRecorder"
	if err := checkRunID(op, runID); err != nil {
		return nil, err
	}
	w, err := startSegWriter(ctx, op, store, telemetryPrefix(runID), opts, appendEvent, observe)
	if err != nil {
		return nil, err
	}
	return &TelemetryRecorder{w: w}, nil
}

func appendEvent(b []byte, e TelemetryEvent) []byte {
	j, err := json.Marshal(&e)
	if err != nil { // unreachable: every field marshals
		j = []byte(`{}`)
	}
	return append(b, j...)
}

// Record queues an event, blocking while the queue is full.
func (r *TelemetryRecorder) Record(e TelemetryEvent) error { return r.w.log(e) }

// TryRecord queues an event if there is room and counts a drop otherwise.
func (r *TelemetryRecorder) TryRecord(e TelemetryEvent) bool { return r.w.tryLog(e) }

// Flush writes every event recorded before it and returns the first I/O
// error.
func (r *TelemetryRecorder) Flush() error { return r.w.flush() }

// Close flushes, stops the writer and returns the first I/O error.
func (r *TelemetryRecorder) Close() error { return r.w.close() }

// Dropped returns how many events were lost.
func (r *TelemetryRecorder) Dropped() uint64 { return r.w.dropped.Load() }

// Start starts a scoped timer for the event name. Stop it with defer, so
// that it records on every exit path, including early returns and panics:
//
//	defer rec.Start("forward").Stop()
//
// tags are key, value pairs; an odd trailing key gets an empty value.
func (r *TelemetryRecorder) Start(name string, tags ...string) *Timer {
	t := &Timer{rec: r, ev: TelemetryEvent{Name: name, Start: time.Now()}}
	if len(tags) > 0 {
		t.ev.Tags = make(map[string]string, (len(tags)+1)/2)
		for i := 0; i < len(tags); i += 2 {
			v := ""
			if i+1 < len(tags) {
				v = tags[i+1]
			}
			t.ev.Tags[tags[i]] = v
		}
	}
	return t
}

// Timer is a running telemetry span; see [TelemetryRecorder.Start].
type Timer struct {
	rec     *TelemetryRecorder
	ev      TelemetryEvent
	stopped atomic.Bool
}

// Stop records the span and returns its duration. Only the first call
// records. Stop does not panic, so it is safe in a deferred call during a
// panic; if the recorder is closed the event is counted as dropped.
func (t *Timer) Stop() time.Duration {
	if t == nil || !t.stopped.CompareAndSwap(false, true) {
		return 0
	}
	t.ev.Duration = time.Since(t.ev.Start)
	if err := t.rec.w.log(t.ev); err != nil {
		t.rec.w.dropped.Add(1)
	}
	return t.ev.Duration
}
