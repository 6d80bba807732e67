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
	TypeWorkerRequest  = "worker_request"
	TypeWorkerReply    = "worker_reply"
	TypeControl        = "control"
	TypeFinalNotice    = "final_notice"
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
	StateOrphaned  = "orphaned" // running on a worker whose heartbeat expired; requeued by the ack wait
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
	// StateMalformed is shown for a key whose value does not decode; the
	// coordinator never writes it.
	StateMalformed = "malformed"
)

// Terminal reports whether status is final.
func Terminal(status string) bool {
	return status == StateSucceeded || status == StateFailed || status == StateCancelled
}

// RunState is the value of key run.<id> in the runs KV bucket. Only the
// coordinator writes it, by compare-and-set.
type RunState struct {
	RunID     string   `msgpack:"run" json:"run"`
	Name      string   `msgpack:"name,omitempty" json:"name,omitempty"`
	SweepID   string   `msgpack:"sweep,omitempty" json:"sweep,omitempty"`
	Priority  Priority `msgpack:"prio" json:"priority"`
	Status    string   `msgpack:"status" json:"status"`
	Attempt   int      `msgpack:"attempt" json:"attempt"`                          // fencing token: 0 while queued, +1 per start
	HandBacks int      `msgpack:"handbacks,omitempty" json:"hand_backs,omitempty"` // attempts a stopping worker handed back
	Worker    string   `msgpack:"worker,omitempty" json:"worker,omitempty"`
	// Owners[a-1] is the worker that claimed attempt a: the collector
	// accepts an attempt's events only from its owner.
	Owners     []string `msgpack:"owners,omitempty" json:"owners,omitempty"`
	Step       int64    `msgpack:"step" json:"step"`
	TotalSteps int64    `msgpack:"total,omitempty" json:"total_steps,omitempty"`
	// Resume is the checkpoint the next attempt starts from, recorded by
	// the attempt that wrote it while it owned the run.
	Resume          *ResumePoint `msgpack:"resume,omitempty" json:"resume,omitempty"`
	CancelRequested bool         `msgpack:"cancel,omitempty" json:"cancel_requested,omitempty"`
	Error           string       `msgpack:"err,omitempty" json:"error,omitempty"`
	// ErrorKind is the errs.Kind name of Error ("training", "io", ...),
	// and Retryable whether that kind of error is retried.
	ErrorKind string `msgpack:"ekind,omitempty" json:"error_kind,omitempty"`
	Retryable bool   `msgpack:"retry,omitempty" json:"retryable,omitempty"`
	// MemoryEstimate is the coordinator's estimate of an attempt's memory
	// in bytes, from the spec (admission).
	MemoryEstimate int64 `msgpack:"mem,omitempty" json:"memory_estimate,omitempty"`
	// RecordsFinal: the collector has written the final records of the
	// run's terminal attempt.
	RecordsFinal bool `msgpack:"final,omitempty" json:"records_final,omitempty"`
	// RecordsOrphaned: the worker of the terminal attempt died after
	// reporting the attempt's outcome and before publishing its
	// "finished" event, so the collector ends the attempt's records from
	// this state (Status, Error, Finished) instead.
	RecordsOrphaned bool      `msgpack:"rorphan,omitempty" json:"records_orphaned,omitempty"`
	Submitted       time.Time `msgpack:"submitted" json:"submitted"`
	Updated         time.Time `msgpack:"updated" json:"updated"`
	// Finished is when the run became terminal (the coordinator's clock).
	Finished time.Time `msgpack:"finished,omitempty" json:"finished,omitzero"`
	// TraceParent is the W3C traceparent of the submit span, so every
	// attempt's spans join the run's one trace even when a RunRequest
	// arrives without trace headers.
	TraceParent string `msgpack:"tp,omitempty" json:"trace_parent,omitempty"`
	// Claim is the claim that started the current attempt: which worker
	// process made it, for which delivery of which RUNS message. It makes
	// a claim idempotent (see ClaimInfo).
	Claim *ClaimInfo `msgpack:"claim,omitempty" json:"claim,omitempty"`
}

// ClaimInfo identifies a claim: the worker process (Instance, random per
// process, so a restarted worker with the same id is another claimant)
// and the RUNS message it holds (stream sequence Seq, delivery count
// Delivered). A claim whose reply was lost is repeated by the same
// process for the same message; the coordinator then answers the attempt
// that claim started instead of starting another, unless the process
// says it started that attempt already (WorkerRequest.Started). A claim
// for an older delivery of the message than the current attempt's is
// stale: the message was redelivered since, its lease is not the
// claimant's any more.
type ClaimInfo struct {
	Instance  string `msgpack:"inst" json:"instance"`
	Seq       uint64 `msgpack:"seq" json:"seq"`
	Delivered uint64 `msgpack:"dlv" json:"delivered"`
}

// ResumePoint is a checkpoint object a resumed attempt loads: written
// under its attempt's prefix, recorded in the run state by the owner.
type ResumePoint struct {
	Attempt int    `msgpack:"attempt" json:"attempt"`
	Step    int64  `msgpack:"step" json:"step"`
	Key     string `msgpack:"key" json:"key"`
	Size    int64  `msgpack:"size" json:"size"`
	CRC32C  uint32 `msgpack:"crc32c" json:"crc32c"`
}

// Owner returns the worker that claimed attempt a, or "".
func (s RunState) Owner(a int) string {
	if a < 1 || a > len(s.Owners) {
		return ""
	}
	return s.Owners[a-1]
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
	ID    string `msgpack:"id" json:"id"`
	Host  string `msgpack:"host" json:"host"`
	Slots int    `msgpack:"slots" json:"slots"`
	Busy  int    `msgpack:"busy" json:"busy"`
	// MemoryLimit is the memory limit of each attempt, in bytes (0: none).
	MemoryLimit int64     `msgpack:"mem,omitempty" json:"memory_limit,omitempty"`
	Runs        []string  `msgpack:"runs,omitempty" json:"runs,omitempty"`
	Version     string    `msgpack:"version" json:"version"`
	Seen        time.Time `msgpack:"seen" json:"seen"`
	// Alive is set by the coordinator in a workers reply: it heard from
	// the worker within WorkerTTL.
	Alive bool `msgpack:"alive,omitempty" json:"alive,omitempty"`
}

// API operations the coordinator serves on subject api.<op>.
const (
	OpSubmit  = "submit"
	OpSweep   = "sweep"
	OpCancel  = "cancel"
	OpStatus  = "status"
	OpList    = "list"
	OpWorkers = "workers"
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
	Error   string       `msgpack:"err,omitempty"`
	Kind    string       `msgpack:"kind,omitempty"`
	RunIDs  []string     `msgpack:"runs,omitempty"`    // submit, sweep: the accepted runs
	States  []RunState   `msgpack:"states,omitempty"`  // status, list
	Workers []WorkerInfo `msgpack:"workers,omitempty"` // workers
}

// WorkerRequest is a worker's request on wapi.<worker>.<op>. The worker
// is named by the subject; Attempt is the token of an owned attempt.
type WorkerRequest struct {
	RunID   string `msgpack:"run"`
	Attempt int    `msgpack:"attempt,omitempty"` // progress, checkpoint, finish, handback
	// Step and Total: progress.
	Step  int64 `msgpack:"step,omitempty"`
	Total int64 `msgpack:"total,omitempty"`
	// Resume: checkpoint.
	Resume *ResumePoint `msgpack:"resume,omitempty"`
	// Outcome: finish.
	Outcome *Outcome `msgpack:"outcome,omitempty"`
	// MemoryLimit: claim, the worker's per-attempt limit (bytes, 0: none).
	MemoryLimit int64 `msgpack:"mem,omitempty"`
	// Claim: claim, the claimant and the RUNS message's delivery; nil
	// from a worker that predates idempotent claims.
	Claim *ClaimInfo `msgpack:"claim,omitempty"`
	// Started: claim, the newest attempt of the run this worker process
	// started (0: none). A claim repeated after a lost reply names an
	// older attempt than the run's current one, which it never started.
	Started int `msgpack:"started,omitempty"`
	// Reason: reject, why the request was dead-lettered.
	Reason string `msgpack:"reason,omitempty"`
}

// Outcome is how an attempt ended.
type Outcome struct {
	Status    string `msgpack:"status"` // succeeded, failed or cancelled
	Error     string `msgpack:"err,omitempty"`
	Kind      string `msgpack:"kind,omitempty"` // errs.Kind name
	Retryable bool   `msgpack:"retry,omitempty"`
	Step      int64  `msgpack:"step,omitempty"`
}

// What a worker does with the RUNS message after a reply (Action).
const (
	ActionTrain = "train" // claim granted: train the attempt
	ActionAck   = "ack"   // the run is done with: ack the message
	ActionTerm  = "term"  // the run failed for good: terminate the message
	ActionNak   = "nak"   // the run goes back to the queue: nak the message
	ActionLeave = "leave" // not this worker's: leave the message to its ack wait
)

// WorkerReply is the coordinator's answer to a WorkerRequest: the run's
// state after the request, and what to do with the RUNS message.
type WorkerReply struct {
	Error    string   `msgpack:"err,omitempty"`
	Kind     string   `msgpack:"kind,omitempty"`
	NotOwner bool     `msgpack:"not_owner,omitempty"` // the attempt is not (or no longer) the worker's
	Action   string   `msgpack:"action,omitempty"`
	State    RunState `msgpack:"state"`
}

// Control is a coordinator's notice to a worker on ctl.<worker>.cancel.
type Control struct {
	RunID   string `msgpack:"run"`
	Attempt int    `msgpack:"attempt"`
}

// FinalNotice is the collector's request on capi.final: the final records
// of attempt Attempt, which ended Status, are written.
type FinalNotice struct {
	RunID   string `msgpack:"run"`
	Attempt int    `msgpack:"attempt"`
	Status  string `msgpack:"status"`
}
