package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/pkg/errs"
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
	// collector's consumer; workers extend it with InProgress every
	// AckWait/3 while training. [EffectiveAckWait] is the one in force:
	// GORCH_ACK_WAIT overrides it (tests).
	AckWait = 30 * time.Second
	// WorkerTTL is how long a worker's heartbeat key lives.
	WorkerTTL = 15 * time.Second
	// DedupWindow is the Nats-Msg-Id duplicate window of every stream.
	DedupWindow = 10 * time.Minute
)

// AckWaitEnv names the environment variable that overrides [AckWait], as
// a Go duration of at least one second ("5s"). It exists for tests that
// wait for a lease to run out (the fault-injection suite). Every service
// calls [Setup], which writes the consumers' AckWait, so every process of
// a cluster must see the same value, or they flip the consumers' config
// back and forth.
const AckWaitEnv = "GORCH_ACK_WAIT"

// EffectiveAckWait is the consumers' ack deadline: [AckWaitEnv] if it
// holds a duration of at least a second, else [AckWait].
func EffectiveAckWait() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(AckWaitEnv)); err == nil && d >= time.Second {
		return d
	}
	return AckWait
}

// DispatchSubject is the RUNS subject of a priority.
func DispatchSubject(p Priority) string { return "runs.dispatch." + string(p) }

// DispatchConsumer is the durable consumer name of a priority.
func DispatchConsumer(p Priority) string { return "disp-" + string(p) }

// Event subjects of a run.
func MetricsSubject(run string) string    { return "ev.metrics." + run }
func TelemetrySubject(run string) string  { return "ev.telemetry." + run }
func CheckpointSubject(run string) string { return "ev.ckpt." + run }
func RunEventSubject(run string) string   { return "ev.run." + run }

// DLQSubject is where undecodable messages go, by a short reason token.
func DLQSubject(reason string) string { return "dlq." + reason }

// APISubject is the coordinator's request subject for op.
func APISubject(op string) string { return "api." + op }

// ControlSubject carries cancel notices for a run (core NATS).
func ControlSubject(run string) string { return "control.run." + run }

// RunKey and WorkerKey are KV keys.
func RunKey(run string) string   { return "run." + run }
func WorkerKey(id string) string { return "worker." + id }

// MsgID returns a Nats-Msg-Id for event messages: deterministic in the
// run, attempt, kind and sequence, so a republished batch is dropped.
func MsgID(run string, attempt int, kind string, seq int64) string {
	return fmt.Sprintf("%s/%d/%s/%d", run, attempt, kind, seq)
}

// RunIDFromSubject returns the run id of an event or control subject:
// everything after its two-token prefix (ev.metrics., control.run., ...).
// A run id may contain dots (IDs made before NewRunID dropped them), so it can
// span several subject tokens.
func RunIDFromSubject(subj string) string {
	for range 2 {
		i := strings.IndexByte(subj, '.')
		if i < 0 {
			break
		}
		subj = subj[i+1:]
	}
	return subj
}

// Setup creates (or updates to this layout) every stream, consumer and
// bucket. It is idempotent: every service calls it at start-up.
func Setup(ctx context.Context, js jetstream.JetStream) error {
	const op = "cluster.Setup"
	ackWait := EffectiveAckWait()
	var subjects []string
	for _, p := range Priorities {
		subjects = append(subjects, DispatchSubject(p))
	}
	runs, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamRuns, Subjects: subjects, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Duplicates: DedupWindow,
	})
	if err != nil {
		return errs.Wrap(errs.Cluster, op, err, "stream %s", StreamRuns)
	}
	for _, p := range Priorities {
		if _, err := runs.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: DispatchConsumer(p), FilterSubject: DispatchSubject(p), AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: ackWait, MaxDeliver: -1, MaxAckPending: 1000,
		}); err != nil {
			return errs.Wrap(errs.Cluster, op, err, "consumer %s", DispatchConsumer(p))
		}
	}
	events, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamEvents, Subjects: []string{"ev.>"}, Retention: jetstream.LimitsPolicy,
		Storage: jetstream.FileStorage, Duplicates: DedupWindow, MaxAge: 7 * 24 * time.Hour,
	})
	if err != nil {
		return errs.Wrap(errs.Cluster, op, err, "stream %s", StreamEvents)
	}
	if _, err := events.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: ConsumerCollect, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxAckPending: 10000,
	}); err != nil {
		return errs.Wrap(errs.Cluster, op, err, "consumer %s", ConsumerCollect)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamDLQ, Subjects: []string{"dlq.>"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
	}); err != nil {
		return errs.Wrap(errs.Cluster, op, err, "stream %s", StreamDLQ)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketRuns, History: 5, Storage: jetstream.FileStorage}); err != nil {
		return errs.Wrap(errs.Cluster, op, err, "bucket %s", BucketRuns)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketWorkers, TTL: WorkerTTL, Storage: jetstream.FileStorage}); err != nil {
		return errs.Wrap(errs.Cluster, op, err, "bucket %s", BucketWorkers)
	}
	return nil
}
