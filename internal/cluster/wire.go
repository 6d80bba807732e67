package cluster

import (
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/pkg/errs"
)

// WireVersion is the envelope version this build writes and reads.
const WireVersion = 1

// Envelope wraps every message on the wire: a version, a type name and the
// msgpack-encoded body.
type Envelope struct {
	V    uint8              `msgpack:"v"`
	Type string             `msgpack:"t"`
	Body msgpack.RawMessage `msgpack:"b"`
}

// Message types.
const (
	TypeRunRequest     = "run_request"
	TypeMetricBatch    = "metric_batch"
	TypeTelemetryBatch = "telemetry_batch"
	TypeCheckpoint     = "checkpoint"
	TypeRunEvent       = "run_event"
	TypeAPIRequest     = "api_request"
	TypeAPIReply       = "api_reply"
)

// Encode wraps v as an envelope of type typ.
func Encode(typ string, v any) ([]byte, error) {
	body, err := msgpack.Marshal(v)
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, "wire.Encode", err, "encoding %s", typ)
	}
	b, err := msgpack.Marshal(&Envelope{V: WireVersion, Type: typ, Body: body})
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, "wire.Encode", err, "encoding %s envelope", typ)
	}
	return b, nil
}

// Decode unwraps an envelope of type want into v. A malformed message, an
// unknown version or an unexpected type is an errs.Cluster error whose
// message is the dead-letter reason.
func Decode(b []byte, want string, v any) error {
	const op = "wire.Decode"
	var env Envelope
	if err := Unmarshal(b, &env); err != nil {
		return errs.Wrap(errs.Cluster, op, err, "malformed envelope")
	}
	if env.V != WireVersion {
		return errs.New(errs.Cluster, op, "unsupported wire version %d (this build reads %d)", env.V, WireVersion)
	}
	if env.Type != want {
		return errs.New(errs.Cluster, op, "message type %q, want %q", env.Type, want)
	}
	if err := Unmarshal(env.Body, v); err != nil {
		return errs.Wrap(errs.Cluster, op, err, "malformed %s body", want)
	}
	return nil
}

// Priority orders queued runs; FIFO within a priority.
type Priority string

// The priorities, highest first.
const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// Priorities lists the priorities, highest first.
var Priorities = []Priority{PriorityHigh, PriorityNormal, PriorityLow}

// ParsePriority validates a priority name ("" means normal).
func ParsePriority(s string) (Priority, error) {
	switch Priority(s) {
	case "":
		return PriorityNormal, nil
	case PriorityHigh, PriorityNormal, PriorityLow:
		return Priority(s), nil
	}
	return "", errs.New(errs.Config, "priority", "unknown priority %q (want high, normal or low)", s)
}

// RunRequest asks a worker to train a run. The same request is redelivered
// after a worker dies; the attempt comes from the run state.
type RunRequest struct {
	RunID     string    `msgpack:"run"`
	Name      string    `msgpack:"name,omitempty"`
	Spec      []byte    `msgpack:"spec"` // train.Spec as JSON
	Priority  Priority  `msgpack:"prio"`
	SweepID   string    `msgpack:"sweep,omitempty"`
	Submitted time.Time `msgpack:"submitted"`
}

// Status values of RunState (the terminal ones match experiment.Status).
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
)

// Terminal reports whether status is final.
func Terminal(status string) bool {
	return status == StateSucceeded || status == StateFailed || status == StateCancelled
}

// RunState is the value of key run.<id> in the runs KV bucket.
type RunState struct {
	RunID           string    `msgpack:"run" json:"run"`
	Name            string    `msgpack:"name,omitempty" json:"name,omitempty"`
	SweepID         string    `msgpack:"sweep,omitempty" json:"sweep,omitempty"`
	Priority        Priority  `msgpack:"prio" json:"priority"`
	Status          string    `msgpack:"status" json:"status"`
	Attempt         int       `msgpack:"attempt" json:"attempt"`                          // fencing token: 0 while queued, +1 per start
	HandBacks       int       `msgpack:"handbacks,omitempty" json:"hand_backs,omitempty"` // attempts a stopping worker handed back
	Worker          string    `msgpack:"worker,omitempty" json:"worker,omitempty"`
	Step            int64     `msgpack:"step" json:"step"`
	TotalSteps      int64     `msgpack:"total,omitempty" json:"total_steps,omitempty"`
	LastCheckpoint  string    `msgpack:"ckpt,omitempty" json:"last_checkpoint,omitempty"` // store key
	CancelRequested bool      `msgpack:"cancel,omitempty" json:"cancel_requested,omitempty"`
	Error           string    `msgpack:"err,omitempty" json:"error,omitempty"`
	Submitted       time.Time `msgpack:"submitted" json:"submitted"`
	Updated         time.Time `msgpack:"updated" json:"updated"`
	// TraceParent is the W3C traceparent of the submit span, so every
	// attempt's spans join the run's one trace even when a RunRequest
	// arrives without trace headers.
	TraceParent string `msgpack:"tp,omitempty" json:"trace_parent,omitempty"`
}

// UsedAttempts counts the attempts that count toward MaxAttempts: every
// start except those a stopping worker handed back (SIGTERM), so rolling
// restarts never fail a healthy run. A worker that dies still uses one.
func (s RunState) UsedAttempts() int { return s.Attempt - s.HandBacks }

// MetricPoint is one metric value.
type MetricPoint struct {
	Step  int64     `msgpack:"s"`
	Name  string    `msgpack:"n"`
	Value float64   `msgpack:"v"`
	Time  time.Time `msgpack:"t"`
}

// MetricBatch carries metrics of one attempt; Seq numbers the batches of
// the attempt from 1, for the Nats-Msg-Id. Resume is the step the attempt
// resumed from (0: from scratch), so that whichever of its messages the
// collector sees first tells it which earlier records it supersedes.
type MetricBatch struct {
	RunID   string        `msgpack:"run"`
	Attempt int           `msgpack:"attempt"`
	Seq     int64         `msgpack:"seq"`
	Resume  int64         `msgpack:"resume"`
	Points  []MetricPoint `msgpack:"points"`
}

// TelemetryPoint is one timed event.
type TelemetryPoint struct {
	Name     string            `msgpack:"n"`
	Start    time.Time         `msgpack:"s"`
	Duration time.Duration     `msgpack:"d"`
	Tags     map[string]string `msgpack:"tags,omitempty"`
}

// TelemetryBatch carries telemetry of one attempt.
type TelemetryBatch struct {
	RunID   string           `msgpack:"run"`
	Attempt int              `msgpack:"attempt"`
	Seq     int64            `msgpack:"seq"`
	Events  []TelemetryPoint `msgpack:"events"`
}

// CheckpointEvent announces a checkpoint already written to the store.
type CheckpointEvent struct {
	RunID   string    `msgpack:"run"`
	Attempt int       `msgpack:"attempt"`
	Step    int64     `msgpack:"step"`
	Key     string    `msgpack:"key"`
	Size    int64     `msgpack:"size"`
	SHA256  string    `msgpack:"sha256,omitempty"`
	Time    time.Time `msgpack:"time"`
}

// RunEvent marks an attempt's start or end, so the collector can keep
// run.json and run_summary.json.
type RunEvent struct {
	RunID    string    `msgpack:"run"`
	Attempt  int       `msgpack:"attempt"`
	Kind     string    `msgpack:"kind"` // "started" or "finished"
	Status   string    `msgpack:"status,omitempty"`
	Error    string    `msgpack:"err,omitempty"`
	Name     string    `msgpack:"name,omitempty"`
	Spec     []byte    `msgpack:"spec,omitempty"`
	Worker   string    `msgpack:"worker,omitempty"`
	Host     string    `msgpack:"host,omitempty"`
	Seed     uint64    `msgpack:"seed"`
	Layout   []byte    `msgpack:"layout,omitempty"` // JSON of map[string]tensor.OpStats
	Time     time.Time `msgpack:"time"`
	Metrics  int64     `msgpack:"metrics"` // metric points this attempt published
	LastStep int64     `msgpack:"last_step"`
	Resume   int64     `msgpack:"resume"`             // the step the attempt resumed from (0: from scratch)
	Started  time.Time `msgpack:"started,omitempty"`  // when the attempt started training, on the worker's clock
	Finished time.Time `msgpack:"finished,omitempty"` // "finished": when training ended, on the worker's clock
	Version  string    `msgpack:"version,omitempty"`  // the worker's gorch version
}

// WorkerInfo is the value of key worker.<id> in the workers KV bucket.
type WorkerInfo struct {
	ID      string    `msgpack:"id" json:"id"`
	Host    string    `msgpack:"host" json:"host"`
	Slots   int       `msgpack:"slots" json:"slots"`
	Busy    int       `msgpack:"busy" json:"busy"`
	Runs    []string  `msgpack:"runs,omitempty" json:"runs,omitempty"`
	Version string    `msgpack:"version" json:"version"`
	Seen    time.Time `msgpack:"seen" json:"seen"`
}

// API operations the coordinator serves on subject api.<op>.
const (
	OpSubmit = "submit"
	OpSweep  = "sweep"
	OpCancel = "cancel"
	OpStatus = "status"
	OpList   = "list"
)

// APIRequest is a client's request to the coordinator.
type APIRequest struct {
	Spec     []byte   `msgpack:"spec,omitempty"`  // submit: a run spec (YAML or JSON)
	Sweep    []byte   `msgpack:"sweep,omitempty"` // sweep: a sweep spec (YAML or JSON)
	Priority Priority `msgpack:"prio,omitempty"`
	RunID    string   `msgpack:"run,omitempty"` // cancel, status
}

// APIReply is the coordinator's answer. Error is a one-line message and
// Kind its errs.Kind name when the request failed.
type APIReply struct {
	Error  string     `msgpack:"err,omitempty"`
	Kind   string     `msgpack:"kind,omitempty"`
	RunIDs []string   `msgpack:"runs,omitempty"`   // submit, sweep: the accepted runs
	States []RunState `msgpack:"states,omitempty"` // status, list
}
