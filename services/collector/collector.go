package collector

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/tracing"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
)

// Options configures a Collector. Zero values take the defaults.
type Options struct {
	// Store is where run records are written (required).
	Store experiment.Store
	// SummaryEvery is how often run_summary.json is rewritten for runs
	// with new records (default 2s).
	SummaryEvery time.Duration
	// Writers is how many runs are written at once (default 4): each run
	// belongs to one writer, which stores its records and acks its
	// messages, so a slow store write holds up only that writer's runs.
	Writers int
	// Logger receives the collector's log; nil means slog.Default().
	Logger *slog.Logger
}

// Headers the collector sets on dead letters.
const (
	HeaderReason  = "Gorch-Reason"  // why the message was dead-lettered
	HeaderSubject = "Gorch-Subject" // the subject it was published on
)

// Reason tokens of the collector's dead-letter subjects: dlq.collector
// for what does not decode, dlq.forged for events whose worker did not
// claim their attempt.
const (
	DLQReason = "collector"
	DLQForged = "forged"
)

const (
	fetchBatch  = 1024 // messages buffered by the pull
	writerQueue = 1024 // messages waiting for a writer
	maxWrite    = 4096 // messages written and acked together, at most
)

// Collector writes the records of every run published on the EVENTS
// stream. Create it with New and serve with Run; one Collector is not for
// concurrent use by several Run calls.
type Collector struct {
	js    jetstream.JetStream
	cons  jetstream.Consumer
	runs  jetstream.KeyValue // who claimed each attempt (the events' sender check)
	final *finalNotices      // tells the coordinator when a run's records are final
	store experiment.Store
	opts  Options
	log   *slog.Logger

	records  atomic.Int64 // metric points and telemetry events written
	messages atomic.Int64 // messages acked
	forged   atomic.Int64 // events dead-lettered as not sent by their attempt's owner
	lastTime atomic.Int64 // publish time (unix ns) of the last acked message
	lastLag  atomic.Int64 // its ack time minus its publish time (ns)
}

// Stats are a collector's counters since it started.
type Stats struct {
	Records   int64         // metric points and telemetry events written
	Messages  int64         // EVENTS messages written and acked
	LastEvent time.Time     // when the last acked message was published (zero before the first)
	IngestLag time.Duration // from its publication to its ack
	Forged    int64         // events refused: their worker did not claim their attempt
}

// Stats returns the collector's counters. It is safe to call while Run
// serves.
func (c *Collector) Stats() Stats {
	st := Stats{Records: c.records.Load(), Messages: c.messages.Load(), IngestLag: time.Duration(c.lastLag.Load()), Forged: c.forged.Load()}
	if ns := c.lastTime.Load(); ns != 0 {
		st.LastEvent = time.Unix(0, ns)
	}
	return st
}

// New connects the collector to nc: it binds the durable consumer of
// EVENTS and the runs bucket (made by `gorch setup`; a missing one is a
// one-line error naming it), giving up when ctx ends or after 30 s.
func New(ctx context.Context, nc *nats.Conn, opts Options) (*Collector, error) {
	const op = "collector.New"
	if nc == nil {
		return nil, errs.New(errs.Argument, op, "no NATS connection")
	}
	if opts.Store == nil {
		return nil, errs.New(errs.Config, op, "no record store")
	}
	if opts.SummaryEvery <= 0 {
		opts.SummaryEvery = 2 * time.Second
	}
	if opts.Writers <= 0 {
		opts.Writers = 4
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, op, err, "JetStream")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cons, err := cluster.BindConsumer(ctx, js, cluster.StreamEvents, cluster.ConsumerCollect)
	if err != nil {
		return nil, err
	}
	runs, err := cluster.BindKV(ctx, js, cluster.BucketRuns)
	if err != nil {
		return nil, err
	}
	log := opts.Logger.With("service", "collector")
	return &Collector{js: js, cons: cons, runs: runs, final: &finalNotices{nc: nc, log: log}, store: opts.Store, opts: opts, log: log}, nil
}

// Run serves until ctx is cancelled, then returns nil. Writes in progress
// when ctx is cancelled are finished; fetched messages not yet written are
// Nak'ed so that the next collector gets them at once. Open runs get their
// summary written and their logs closed, but are not finished: a later
// collector reopens them. Storage and NATS errors are logged and retried,
// never returned.
func (c *Collector) Run(ctx context.Context) error {
	wctx := context.WithoutCancel(ctx) // a started write completes
	ws := make([]*writer, c.opts.Writers)
	var wg sync.WaitGroup
	for i := range ws {
		ws[i] = &writer{c: c, in: make(chan jetstream.Msg, writerQueue), ends: make(chan cluster.RunState, writerQueue),
			ing: experiment.NewIngest(c.store, c.log), owners: newOwners(c.runs)}
		wg.Go(func() { ws[i].run(ctx, wctx) })
	}
	var orphans sync.WaitGroup
	orphans.Go(func() { c.watchOrphans(ctx, ws) })
	c.fetch(ctx, ws)
	orphans.Wait()
	for _, w := range ws {
		close(w.in)
	}
	wg.Wait()
	return nil
}

// fetch pulls messages and hands each to its run's writer until ctx is
// cancelled. Messages of one run go to one writer, in stream order. The
// pull is continuous: the next pull request goes out while the previous
// one's messages are still being handed on, so the server always has one
// to fill (with a pull per Fetch, it had none between the end of one batch
// and the next request).
func (c *Collector) fetch(ctx context.Context, ws []*writer) {
	backoff := 100 * time.Millisecond
	retry := func(what string, err error) {
		c.log.Warn(what+"; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	for ctx.Err() == nil {
		it, err := c.cons.Messages(jetstream.PullMaxMessages(fetchBatch))
		if err != nil {
			retry("pulling messages failed", err)
			continue
		}
		for {
			m, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() == nil {
					it.Stop()
					retry("pulling messages ended", err)
				}
				break
			}
			backoff = 100 * time.Millisecond
			_, _, run, _ := cluster.ParseEventSubject(m.Subject())
			select {
			case ws[shard(run, len(ws))].in <- m:
			case <-ctx.Done():
				c.nak(m)
			}
		}
		if ctx.Err() != nil {
			// Hand back what was pulled but not handed on: Nak'ed, it is
			// redelivered at once rather than after AckWait.
			it.Drain()
			for {
				m, err := it.Next(jetstream.NextMaxWait(time.Second))
				if err != nil {
					break
				}
				c.nak(m)
			}
		}
	}
}

// shard picks the writer of a run (FNV-1a).
func shard(run string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(run); i++ {
		h = (h ^ uint32(run[i])) * 16777619
	}
	return int(h % uint32(n))
}

// writer stores the records of its runs: it takes every message waiting
// for it, writes them run by run, and acks a run's messages once its
// records are stored.
type writer struct {
	c      *Collector
	in     chan jetstream.Msg
	ends   chan cluster.RunState // orphaned attempts to end from their run state
	ing    *experiment.Ingest
	dec    batchDecoder
	owners *owners // of the writer's runs
}

func (w *writer) run(ctx, wctx context.Context) {
	c := w.c
	tick := time.NewTicker(c.opts.SummaryEvery)
	defer tick.Stop()
	lastSummary := time.Now()
	failBackoff := 100 * time.Millisecond // after a failed write
	for {
		select {
		case m, ok := <-w.in:
			if !ok {
				if err := w.ing.Close(wctx); err != nil {
					c.log.Warn("closing run logs", "err", err)
				}
				return
			}
			msgs := w.take(m)
			if ctx.Err() != nil {
				for _, m := range msgs {
					c.nak(m) // fetched, not written
				}
				continue
			}
			if !c.process(wctx, w, msgs) {
				failBackoff = 100 * time.Millisecond
				break
			}
			// The Nak'ed messages come back first; give the store a moment.
			select {
			case <-ctx.Done():
			case <-time.After(failBackoff):
			}
			failBackoff = min(2*failBackoff, 5*time.Second)
		case st := <-w.ends:
			if ctx.Err() == nil {
				w.endFromState(wctx, st)
			}
		case <-tick.C:
		}
		if time.Since(lastSummary) >= c.opts.SummaryEvery {
			w.writeSummaries(wctx)
			lastSummary = time.Now()
		}
	}
}

// take returns m and every message already waiting, up to maxWrite.
func (w *writer) take(m jetstream.Msg) []jetstream.Msg {
	msgs := []jetstream.Msg{m}
	for len(msgs) < maxWrite {
		select {
		case m, ok := <-w.in:
			if !ok {
				return msgs
			}
			msgs = append(msgs, m)
		default:
			return msgs
		}
	}
	return msgs
}

// item is a decoded message.
type item struct {
	msg     jetstream.Msg
	worker  string // the sender, from the subject
	run     string
	attempt int
	v       any // *metricBatch, *cluster.TelemetryBatch, *cluster.CheckpointEvent or *cluster.RunEvent
}

// process decodes msgs, dead-letters what does not decode, and applies
// the rest run by run, acking a run's messages only after its records are
// stored. It reports whether a write failed.
func (c *Collector) process(ctx context.Context, w *writer, msgs []jetstream.Msg) (failed bool) {
	var order []string
	groups := map[string][]item{}
	for _, m := range msgs {
		it, reason := w.decode(m)
		if reason != "" {
			c.deadLetter(ctx, m, DLQReason, reason)
			continue
		}
		switch reason, err := w.owners.check(ctx, it); {
		case err != nil:
			c.log.Warn("checking an event's sender failed; it will be redelivered", "run", it.run, "err", err)
			c.nak(m)
			failed = true
			continue
		case reason != "":
			c.forged.Add(1)
			c.deadLetter(ctx, m, DLQForged, reason)
			continue
		}
		if _, ok := groups[it.run]; !ok {
			order = append(order, it.run)
		}
		groups[it.run] = append(groups[it.run], it)
	}
	for _, id := range order {
		items := groups[id]
		if err := c.writeGroup(ctx, w, id, items); err != nil {
			c.log.Warn("writing run records failed; messages will be redelivered", "run", id, "messages", len(items), "err", err)
			w.ing.Forget(id)
			for _, it := range items {
				c.nak(it.msg)
			}
			failed = true
			continue
		}
		if err := c.final.notify(ctx, items); err != nil {
			c.log.Warn("telling the coordinator a run's records are final failed; messages will be redelivered", "run", id, "err", err)
			for _, it := range items {
				c.nak(it.msg)
			}
			failed = true
			continue
		}
		for _, it := range items {
			if err := it.msg.Ack(); err != nil {
				c.log.Warn("ack failed; the message will be redelivered and deduplicated", "run", id, "err", err)
				continue
			}
			c.messages.Add(1)
			c.records.Add(records(it.v))
			if md, err := it.msg.Metadata(); err == nil {
				c.lastTime.Store(md.Timestamp.UnixNano())
				c.lastLag.Store(int64(time.Since(md.Timestamp)))
			}
		}
	}
	return failed
}

// records counts the metric points and telemetry events of a message.
func records(v any) int64 {
	switch b := v.(type) {
	case *metricBatch:
		return int64(len(b.points))
	case *cluster.TelemetryBatch:
		return int64(len(b.Events))
	}
	return 0
}

// writeGroup applies one run's messages inside a "collector.write" span:
// a child of the trace context the first message carries (the worker's
// run span), linked to the contexts of the others when they differ.
func (c *Collector) writeGroup(ctx context.Context, w *writer, id string, items []item) error {
	var parent context.Context
	var links []trace.Link
	seen := map[trace.SpanID]bool{}
	for _, it := range items {
		ictx := tracing.Extract(ctx, it.msg.Headers())
		sc := trace.SpanContextFromContext(ictx)
		if !sc.IsValid() || seen[sc.SpanID()] {
			continue
		}
		seen[sc.SpanID()] = true
		if parent == nil {
			parent = ictx
		} else {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	if parent == nil {
		parent = ctx
	}
	subj := items[0].msg.Subject()
	attrs := append(tracing.Messaging("process", subj),
		attribute.String("messaging.consumer.group.name", cluster.ConsumerCollect),
		attribute.Int("messaging.batch.message_count", len(items)),
		attribute.String("gorch.run.id", id))
	wctx, span := tracing.Tracer().Start(parent, "collector.write", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attrs...), trace.WithLinks(links...))
	defer span.End()
	err := w.apply(wctx, id, items)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

func (c *Collector) nak(m jetstream.Msg) {
	if err := m.Nak(); err != nil {
		c.log.Warn("nak failed; the message will be redelivered after the ack wait", "subject", m.Subject(), "err", err)
	}
}

// decode returns the message's content, or the reason it cannot be used.
func (w *writer) decode(m jetstream.Msg) (item, string) {
	subj := m.Subject()
	worker, kind, run, ok := cluster.ParseEventSubject(subj)
	it := item{msg: m, worker: worker, run: run}
	var (
		err     error
		runID   string
		attempt int
	)
	switch {
	case !ok:
		return it, fmt.Sprintf("unexpected subject %q", subj)
	case kind == cluster.KindMetrics:
		var b *metricBatch
		if b, err = w.dec.decodeMetricBatch(m.Data()); err == nil {
			runID, attempt, it.v = b.runID, b.attempt, b
		}
	case kind == cluster.KindTelemetry:
		var b cluster.TelemetryBatch
		err, runID, attempt, it.v = cluster.Decode(m.Data(), cluster.TypeTelemetryBatch, &b), b.RunID, b.Attempt, &b
	case kind == cluster.KindCheckpoint:
		var e cluster.CheckpointEvent
		err, runID, attempt, it.v = cluster.Decode(m.Data(), cluster.TypeCheckpoint, &e), e.RunID, e.Attempt, &e
		if err == nil && e.Key == "" {
			return it, "checkpoint event without a key"
		}
	case kind == cluster.KindRun:
		var e cluster.RunEvent
		err, runID, attempt, it.v = cluster.Decode(m.Data(), cluster.TypeRunEvent, &e), e.RunID, e.Attempt, &e
		if err == nil {
			switch {
			case e.Kind == kindStarted:
			case e.Kind == kindFinished && !experiment.Status(e.Status).Terminal():
				return it, fmt.Sprintf("finished event with status %q, want succeeded, failed, cancelled or interrupted", e.Status)
			case e.Kind != kindFinished:
				return it, fmt.Sprintf("run event of kind %q, want started or finished", e.Kind)
			}
		}
	default:
		return it, fmt.Sprintf("unexpected subject %q", subj)
	}
	switch {
	case err != nil:
		return it, err.Error()
	case !experiment.ValidRunID(runID):
		return it, fmt.Sprintf("invalid run id %q", runID)
	case runID != run:
		return it, fmt.Sprintf("run id %q does not match subject %q", runID, subj)
	case attempt < 1:
		return it, fmt.Sprintf("attempt %d, want ≥ 1", attempt)
	}
	it.attempt = attempt
	return it, ""
}

// deadLetter copies m to the DLQ subject of token with the reason and
// terminates it. If the copy cannot be stored, m is Nak'ed instead, so a
// dead letter is never lost.
func (c *Collector) deadLetter(ctx context.Context, m jetstream.Msg, token, reason string) {
	c.log.Warn("dead-lettering a message", "subject", m.Subject(), "reason", reason)
	dl := nats.NewMsg(cluster.DLQSubject(token))
	dl.Data = m.Data()
	for k, v := range m.Headers() {
		if k != jetstream.MsgIDHeader {
			dl.Header[k] = v
		}
	}
	dl.Header.Set(HeaderReason, reason)
	dl.Header.Set(HeaderSubject, m.Subject())
	if md, err := m.Metadata(); err == nil {
		// Deterministic, so a dead letter copied twice (crash before Term) is stored once.
		dl.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s/%s/%d", token, md.Stream, md.Sequence.Stream))
	}
	if _, err := c.js.PublishMsg(ctx, dl); err != nil {
		c.log.Warn("dead-letter publish failed; the message will be redelivered", "subject", m.Subject(), "err", err)
		c.nak(m)
		return
	}
	if len(reason) > 200 {
		reason = reason[:200]
	}
	if err := m.TermWithReason(reason); err != nil {
		c.log.Warn("term failed", "subject", m.Subject(), "err", err)
	}
}

// writeSummaries rewrites run_summary.json of the writer's open runs
// with new records.
func (w *writer) writeSummaries(ctx context.Context) {
	for id, err := range w.ing.WriteSummaries(ctx) {
		w.c.log.Warn("writing run summary failed; will retry", "run", id, "err", err)
	}
}
