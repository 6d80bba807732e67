package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/pkg/errs"
)

// SetupOptions are the settings [Setup] gives the streams, consumers and
// buckets it creates. Zero values take the defaults noted.
type SetupOptions struct {
	// Replicas of every stream and bucket: 1 (default) or 3 (a NATS
	// cluster of at least three servers).
	Replicas int
	// AckWait of the dispatch and collector consumers; default
	// [EffectiveAckWait].
	AckWait time.Duration
	// EventsMaxBytes caps EVENTS (default 10 GiB; -1: no cap). When it is
	// full, publishes fail (DiscardNew): workers see the error and the
	// attempt fails retryably, instead of unread events being dropped.
	EventsMaxBytes int64
	// EventsMaxAge is how long EVENTS keeps a message (default 7 days).
	EventsMaxAge time.Duration
	// DLQMaxBytes caps DLQ (default 1 GiB; -1: no cap); the oldest dead
	// letters go first.
	DLQMaxBytes int64
	// DLQMaxAge is how long DLQ keeps a dead letter (default 30 days).
	DLQMaxAge time.Duration
	// WorkerTTL is how long a worker's heartbeat key lives (default
	// [WorkerTTL]): a worker silent for this long is dead, and its runs
	// orphaned. Workers heartbeat every third of it.
	WorkerTTL time.Duration
	// FinishedTTL is how long the coordinator keeps the state of a run
	// after it finished (default 30 days; -1: forever). It is stored in
	// the runs bucket's metadata ([MetaFinishedTTL]), where an operator
	// may change it.
	FinishedTTL time.Duration
}

// Defaults of [SetupOptions].
const (
	DefaultEventsMaxBytes = 10 << 30
	DefaultEventsMaxAge   = 7 * 24 * time.Hour
	DefaultDLQMaxBytes    = 1 << 30
	DefaultDLQMaxAge      = 30 * 24 * time.Hour
	DefaultFinishedTTL    = 30 * 24 * time.Hour
)

// MetaFinishedTTL is the runs bucket's metadata key holding
// [SetupOptions].FinishedTTL as a Go duration ("720h"; "0s": forever).
const MetaFinishedTTL = "gorch.finished_ttl"

// withDefaults fills in the zero values and checks the rest.
func (o SetupOptions) withDefaults() (SetupOptions, error) {
	const op = "setup"
	def := func(v *int64, d int64) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = -1
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = 0 // JetStream: no limit
		}
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Replicas != 1 && o.Replicas != 3 {
		return o, errs.New(errs.Config, op, "replicas %d: want 1 or 3", o.Replicas)
	}
	if o.AckWait == 0 {
		o.AckWait = EffectiveAckWait()
	}
	if o.AckWait < time.Second {
		return o, errs.New(errs.Config, op, "ack wait %s: want at least 1s", o.AckWait)
	}
	def(&o.EventsMaxBytes, DefaultEventsMaxBytes)
	def(&o.DLQMaxBytes, DefaultDLQMaxBytes)
	defDur(&o.EventsMaxAge, DefaultEventsMaxAge)
	defDur(&o.DLQMaxAge, DefaultDLQMaxAge)
	defDur(&o.FinishedTTL, DefaultFinishedTTL)
	if o.WorkerTTL <= 0 {
		o.WorkerTTL = WorkerTTL
	}
	return o, nil
}

// SetupResult says what [Setup] created and what it found in place.
type SetupResult struct {
	Created []string // e.g. "stream EVENTS", "consumer RUNS/disp-high", "bucket runs"
	Kept    []string // already there: left exactly as they are
}

// Setup creates every stream, consumer and bucket of the layout that does
// not exist yet, with the settings of o. It never changes one that
// exists: settings an operator edited stay. Two Setups racing are fine
// (the loser finds the winner's). Only `gorch setup` and `gorch up` (for
// its embedded server) call it; the services [Bind] to what it made.
func Setup(ctx context.Context, js jetstream.JetStream, o SetupOptions) (SetupResult, error) {
	const op = "cluster.Setup"
	var res SetupResult
	o, err := o.withDefaults()
	if err != nil {
		return res, err
	}
	note := func(what string, created bool) {
		if created {
			res.Created = append(res.Created, what)
		} else {
			res.Kept = append(res.Kept, what)
		}
	}
	var subjects []string
	for _, p := range Priorities {
		subjects = append(subjects, DispatchSubject(p))
	}
	streams := []jetstream.StreamConfig{
		{Name: StreamRuns, Subjects: subjects, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
			Duplicates: DedupWindow, Replicas: o.Replicas},
		{Name: StreamEvents, Subjects: []string{"ev.>"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
			Duplicates: DedupWindow, MaxAge: o.EventsMaxAge, MaxBytes: o.EventsMaxBytes, Discard: jetstream.DiscardNew,
			Replicas: o.Replicas},
		{Name: StreamDLQ, Subjects: []string{"dlq.>"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
			MaxAge: o.DLQMaxAge, MaxBytes: o.DLQMaxBytes, Discard: jetstream.DiscardOld, Replicas: o.Replicas},
	}
	for _, cfg := range streams {
		created, err := createStream(ctx, js, cfg)
		if err != nil {
			return res, errs.Wrap(errs.Cluster, op, err, "stream %s", cfg.Name)
		}
		note("stream "+cfg.Name, created)
	}
	consumers := []struct {
		stream string
		cfg    jetstream.ConsumerConfig
	}{{StreamEvents, jetstream.ConsumerConfig{Durable: ConsumerCollect, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: o.AckWait, MaxAckPending: 10000, Replicas: o.Replicas}}}
	for _, p := range Priorities {
		consumers = append(consumers, struct {
			stream string
			cfg    jetstream.ConsumerConfig
		}{StreamRuns, jetstream.ConsumerConfig{Durable: DispatchConsumer(p), FilterSubject: DispatchSubject(p),
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: o.AckWait, MaxDeliver: -1, MaxAckPending: 1000, Replicas: o.Replicas}})
	}
	for _, c := range consumers {
		created, err := createConsumer(ctx, js, c.stream, c.cfg)
		if err != nil {
			return res, errs.Wrap(errs.Cluster, op, err, "consumer %s/%s", c.stream, c.cfg.Durable)
		}
		note("consumer "+c.stream+"/"+c.cfg.Durable, created)
	}
	buckets := []jetstream.KeyValueConfig{
		{Bucket: BucketRuns, History: 5, Storage: jetstream.FileStorage, Replicas: o.Replicas,
			Metadata: map[string]string{MetaFinishedTTL: o.FinishedTTL.String()}},
		{Bucket: BucketWorkers, TTL: o.WorkerTTL, Storage: jetstream.FileStorage, Replicas: o.Replicas},
	}
	for _, cfg := range buckets {
		created, err := createBucket(ctx, js, cfg)
		if err != nil {
			return res, errs.Wrap(errs.Cluster, op, err, "bucket %s", cfg.Bucket)
		}
		note("bucket "+cfg.Bucket, created)
	}
	return res, nil
}

// createStream creates cfg unless a stream of that name exists; it
// reports whether it created it.
func createStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (bool, error) {
	if _, err := js.Stream(ctx, cfg.Name); !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, err
	}
	_, err := js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return false, nil // another Setup got there first
	}
	return err == nil, err
}

func createConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (bool, error) {
	if _, err := js.Consumer(ctx, stream, cfg.Durable); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, err
	}
	_, err := js.CreateConsumer(ctx, stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return false, nil
	}
	return err == nil, err
}

func createBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (bool, error) {
	if _, err := js.KeyValue(ctx, cfg.Bucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		return false, err
	}
	_, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		return false, nil
	}
	return err == nil, err
}

// NotSetUpError is the cause of a Bind error for a stream, consumer or
// bucket that does not exist: `gorch setup` has not run against the
// server (yet).
type NotSetUpError struct {
	What string // e.g. "stream EVENTS", "consumer disp-high of stream RUNS"
}

func (e *NotSetUpError) Error() string {
	return e.What + " not found: run 'gorch setup' against this NATS server"
}

// Unready reports whether err, from a Bind, says that the cluster is not
// ready yet, so that waiting can help: a stream, consumer or bucket is
// missing, or JetStream is not available yet — not running, answering
// 503, or not answering in time (a JetStream cluster that is still
// electing the leaders of its streams and consumers). A cancelled context
// is not.
func Unready(err error) bool {
	var missing *NotSetUpError
	var api *jetstream.APIError
	return errors.As(err, &missing) || errors.As(err, &api) && api.Code == 503 ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
}

// bindError is the error of a Bind of what, which the server reported as
// err: a one-line *NotSetUpError when notFound says it does not exist.
func bindError(what string, err error, notFound ...error) error {
	const op = "cluster.Bind"
	for _, nf := range notFound {
		if errors.Is(err, nf) {
			return errs.Wrap(errs.Cluster, op, &NotSetUpError{What: what}, "")
		}
	}
	return errs.Wrap(errs.Cluster, op, err, "%s", what)
}

// BindStream returns the stream name, or a one-line error naming it when
// it does not exist.
func BindStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, bindError("stream "+name, err, jetstream.ErrStreamNotFound)
	}
	return s, nil
}

// BindConsumer returns the durable consumer name of stream, or a one-line
// error naming what is missing. It asks for the consumer only (a
// worker may read its consumers' info, not the stream's).
func BindConsumer(ctx context.Context, js jetstream.JetStream, stream, name string) (jetstream.Consumer, error) {
	c, err := js.Consumer(ctx, stream, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, bindError("stream "+stream, err, jetstream.ErrStreamNotFound)
	case err != nil:
		return nil, bindError("consumer "+name+" of stream "+stream, err, jetstream.ErrConsumerNotFound)
	}
	return c, nil
}

// BindKV returns the bucket name, or a one-line error naming it when it
// does not exist.
func BindKV(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, bindError("bucket "+bucket, err, jetstream.ErrBucketNotFound)
	}
	return kv, nil
}

// FinishedTTL reads the retention of finished run states from the runs
// bucket's metadata: 0 means forever (also when the key is missing or
// malformed).
func FinishedTTL(ctx context.Context, kv jetstream.KeyValue) (time.Duration, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, errs.Wrap(errs.Cluster, "cluster.FinishedTTL", err, "bucket %s", kv.Bucket())
	}
	d, err := time.ParseDuration(st.Metadata()[MetaFinishedTTL])
	if err != nil || d < 0 {
		return 0, nil
	}
	return d, nil
}
