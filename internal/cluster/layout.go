package cluster

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Names of streams, consumers and buckets.
const (
	StreamRuns      = "RUNS"
	StreamEvents    = "EVENTS"
	StreamDLQ       = "DLQ"
	BucketRuns      = "runs"
	BucketWorkers   = "workers"
	ConsumerCollect = "collector"
)

// Tunables of the layout.
const (
	// MaxAttempts bounds how often a run is started before it ends failed.
	MaxAttempts = 3
	// AckWait is the default ack deadline of the dispatch consumers and the
	// collector's consumer, set when [Setup] creates them; workers extend
	// it with InProgress every AckWait/3 while training, reading the value
	// in force from the consumer.
	AckWait = 30 * time.Second
	// WorkerTTL is how long a worker's heartbeat key lives; a worker not
	// heard from for this long is dead to the coordinator.
	WorkerTTL = 15 * time.Second
	// HeartbeatEvery is how often a worker refreshes its heartbeat key.
	HeartbeatEvery = 5 * time.Second
	// DedupWindow is the Nats-Msg-Id duplicate window of every stream.
	DedupWindow = 10 * time.Minute
)

// AckWaitEnv names the environment variable that sets the AckWait [Setup]
// gives the consumers it creates, as a Go duration of at least one second
// ("5s"). It exists for tests that wait for a lease to run out (the
// fault-injection suite); operators pass `gorch setup --ack-wait`.
const AckWaitEnv = "GORCH_ACK_WAIT"

// EffectiveAckWait is [AckWaitEnv] if it holds a duration of at least a
// second, else [AckWait].
func EffectiveAckWait() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(AckWaitEnv)); err == nil && d >= time.Second {
		return d
	}
	return AckWait
}

// Roles of the NATS identities (see docs/cluster-v2.md).
const (
	RoleAdmin       = "admin"
	RoleCoordinator = "coordinator"
	RoleWorker      = "worker"
	RoleCollector   = "collector"
	RoleClient      = "client"
)

// InboxPrefix is the reply-inbox prefix of a role's connections,
// _INBOX_<role>_<id> (or _INBOX_<role> without an id), so that a
// permission per role keeps every role from reading another's replies.
func InboxPrefix(role, id string) string {
	if id == "" {
		return "_INBOX_" + role
	}
	return "_INBOX_" + role + "_" + id
}

// DispatchSubject is the RUNS subject of a priority.
func DispatchSubject(p Priority) string { return "runs.dispatch." + string(p) }

// DispatchConsumer is the durable consumer name of a priority.
func DispatchConsumer(p Priority) string { return "disp-" + string(p) }

// Kinds of events, the third token of an event subject.
const (
	KindMetrics    = "metrics"
	KindTelemetry  = "telemetry"
	KindCheckpoint = "ckpt"
	KindRun        = "run"
)

// EventSubject is the EVENTS subject of a worker's events of kind for a
// run: ev.<worker>.<kind>.<run>. A worker may publish only under its own
// id, so the subject names who sent the event.
func EventSubject(worker, kind, run string) string {
	return "ev." + worker + "." + kind + "." + run
}

// EventFilter matches a run's events of kind from every worker.
func EventFilter(kind, run string) string { return "ev.*." + kind + "." + run }

// ParseEventSubject splits ev.<worker>.<kind>.<run>. A run id may contain
// dots (IDs made before NewRunID dropped them), so it is the rest of the
// subject after the kind.
func ParseEventSubject(subj string) (worker, kind, run string, ok bool) {
	parts := strings.SplitN(subj, ".", 4)
	if len(parts) != 4 || parts[0] != "ev" || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return "", "", "", false
	}
	return parts[1], parts[2], parts[3], true
}

// Operations a worker asks the coordinator for, on wapi.<worker>.<op>.
const (
	WOpClaim      = "claim"      // queued|orphaned|expired lease → running{attempt+1, worker}
	WOpProgress   = "progress"   // step and total of an owned attempt; renews nothing, answers the state
	WOpCheckpoint = "checkpoint" // records the resume point of an owned attempt
	WOpFinish     = "finish"     // the attempt's outcome
	WOpHandBack   = "handback"   // a stopping worker gives an owned attempt back
	WOpReject     = "reject"     // a run request the worker dead-lettered: the run fails
)

// WorkerOps lists the worker operations.
var WorkerOps = []string{WOpClaim, WOpProgress, WOpCheckpoint, WOpFinish, WOpHandBack, WOpReject}

// WorkerAPISubject is the subject a worker sends op requests on. The
// coordinator takes the worker's id from the subject, never from the
// body, so a permission on wapi.<worker>.> is the worker's identity.
func WorkerAPISubject(worker, op string) string { return "wapi." + worker + "." + op }

// ParseWorkerAPISubject splits wapi.<worker>.<op>.
func ParseWorkerAPISubject(subj string) (worker, op string, ok bool) {
	parts := strings.Split(subj, ".")
	if len(parts) != 3 || parts[0] != "wapi" || parts[1] == "" || parts[2] == "" {
		return "", "", false
	}
	return parts[1], parts[2], true
}

// DLQSubject is where undecodable messages go, by a short reason token.
func DLQSubject(reason string) string { return "dlq." + reason }

// APISubject is the coordinator's request subject for a client's op.
func APISubject(op string) string { return "api." + op }

// CollectorFinalSubject is where the collector tells the coordinator that
// a run's final records are written (core NATS request/reply).
const CollectorFinalSubject = "capi.final"

// ControlSubject carries cancel notices to a worker (core NATS):
// ctl.<worker>.cancel with a [Control] body.
func ControlSubject(worker string) string { return "ctl." + worker + ".cancel" }

// RunKey and WorkerKey are KV keys.
func RunKey(run string) string   { return "run." + run }
func WorkerKey(id string) string { return "worker." + id }

// MsgID returns a Nats-Msg-Id for event messages: deterministic in the
// run, attempt, kind and sequence, so a republished batch is dropped.
func MsgID(run string, attempt int, kind string, seq int64) string {
	return fmt.Sprintf("%s/%d/%s/%d", run, attempt, kind, seq)
}

// ValidID reports whether id is usable as one subject token and key
// part: letters, digits, '-' and '_'.
func ValidID(id string) bool {
	if id == "" {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
