// Command clusterbench measures gorch's cluster paths side by side in one
// process: an embedded NATS server (JetStream file store in a temp dir)
// and a local record store in a temp dir.
//
// Figures (keys in cluster-results.json):
//
//	dispatch_submitted_per_s     runs accepted by a real coordinator (Client.Submit, C concurrent clients)
//	dispatch_runs_per_s          runs started: claimed by a minimal worker-like consumer
//	                             (fetch from disp-normal, claim request to the coordinator, ack)
//	dispatch_latency_p{50,99}_ms Submit called → run claimed
//	ingest_points_per_s          K publishers → EVENTS (MetricBatch envelopes, Nats-Msg-Id)
//	                             → a real services/collector → records in the local store;
//	                             from the first publish to the last record acked by the collector
//	ingest_lag_p{50,99}_ms       per message: stored in the stream → acked by the collector
//	jetstream_raw_points_per_s   the same bytes, same publishers, to a stream without a
//	                             consumer; from the first publish to the last PubAck (the ceiling)
//	ingest_vs_raw_ratio          ingest_points_per_s / jetstream_raw_points_per_s
//	jetstream_consume_points_per_s the same bytes, same publishers, to a stream with a durable
//	                             consumer configured as the collector's, read by a consumer that
//	                             does nothing but fetch and ack each message (the collector's
//	                             own ceiling: everything JetStream does for a consumer, nothing
//	                             gorch does); from the first publish to the last ack
//	ingest_vs_consume_ratio      ingest_points_per_s / jetstream_consume_points_per_s
//	consume_vs_raw_ratio         jetstream_consume_points_per_s / jetstream_raw_points_per_s
//	raw_cpu_ns_per_point         CPU time (user+sys) of this process per point, raw phase
//	consume_cpu_ns_per_point     the same for the consume phase
//	ingest_cpu_ns_per_point      the same for the ingest phase (NATS server, publishers and
//	                             collector are all in this process); on a shared machine CPU
//	                             time varies less than wall time
//
// Each figure is measured -reps times (default 5), alternating (dispatch, raw, consume,
// ingest, dispatch, raw, consume, ingest, ...); the medians are reported.
//
// Usage (from the repository root; make bench-cluster does this):
//
//	go run ./bench/cmd/clusterbench                 # writes bench/cluster-results.json
//	go run ./bench/cmd/clusterbench -quick -o ''    # small sizes, quick check
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/cputime"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/services/collector"
	"github.com/gorch/gorch/services/coordinator"
)

type config struct {
	quick      bool
	reps       int
	runs       int // dispatch: runs per repetition
	submitters int // dispatch: concurrent clients
	claimers   int // dispatch: concurrent claimers
	publishers int // ingest: publisher goroutines (one run each)
	batches    int // ingest: batches per publisher
	points     int // ingest: points per batch
	out        string
	only       string // "ingest": measure raw and ingest only
	cpuProfile string // write CPU profiles of the measured ingest phases here
	consumer   string // the consume phase's consumer: a key of consumeDefinition
	log        io.Writer
}

func main() {
	var cfg config
	flag.BoolVar(&cfg.quick, "quick", os.Getenv("BENCH_QUICK") != "", "quick mode: small sizes, 1 repetition (also BENCH_QUICK=1)")
	flag.IntVar(&cfg.reps, "reps", 5, "repetitions per figure (quick mode: 1)")
	flag.IntVar(&cfg.runs, "runs", 2000, "dispatch: runs submitted per repetition (quick mode: 100)")
	flag.IntVar(&cfg.submitters, "submitters", 16, "dispatch: concurrent submitting clients")
	flag.IntVar(&cfg.claimers, "claimers", 8, "dispatch: concurrent claimers")
	flag.IntVar(&cfg.publishers, "publishers", 4, "ingest: publisher goroutines, one run each")
	flag.IntVar(&cfg.batches, "batches", 1000, "ingest: batches per publisher per repetition (quick mode: 20)")
	flag.IntVar(&cfg.points, "points", 256, "ingest: metric points per batch")
	flag.StringVar(&cfg.out, "o", "bench/cluster-results.json", "where to write the JSON results; empty: nowhere")
	flag.StringVar(&cfg.only, "only", "", `"ingest": skip dispatch (for profiling the collector)`)
	flag.StringVar(&cfg.consumer, "consumer", "consume", "the consume phase's no-op consumer: "+
		`"consume" (the collector's way: continuous pull, 1024 buffered, ack each), "fetch" (one Fetch of 1024 after another, ack each), "acknone" (continuous pull, no acks)`)
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of each measured ingest phase (first publish to last ack; not the warm-up) to this file, FILE.2, FILE.3, ... (go tool pprof FILE* merges them)")
	flag.Parse()
	if cfg.quick {
		cfg.reps = 1
		setIfDefault("runs", &cfg.runs, 100)
		setIfDefault("batches", &cfg.batches, 20)
	}
	cfg.log = os.Stderr
	res, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		os.Exit(1)
	}
	printTable(os.Stdout, res)
}

// setIfDefault sets *v to q unless the flag name was given.
func setIfDefault(name string, v *int, q int) {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	if !set {
		*v = q
	}
}

// env is the in-process cluster.
type env struct {
	ns    *server.Server
	nc    *nats.Conn // coordinator, claimers, lag sniffer
	js    jetstream.JetStream
	kv    jetstream.KeyValue
	cli   *coordinator.Client
	coll  *collector.Collector
	pubs  []*nats.Conn // one connection per publisher (workers are separate processes)
	pjs   []jetstream.JetStream
	stop  func()
	store string

	consumed atomic.Int64 // messages acked by the consume phase's no-op consumer
}

const (
	rawStream     = "RAWBENCH"
	consumeStream = "CONSBENCH"
)

// benchWorker is the worker id the benchmark claims runs and publishes
// metrics as.
const benchWorker = "clusterbench"

func startEnv(cfg config) (*env, error) {
	dir, err := os.MkdirTemp("", "clusterbench-*")
	if err != nil {
		return nil, err
	}
	e := &env{store: dir}
	ns, err := cluster.StartEmbedded(cluster.EmbeddedOptions{StoreDir: dir + "/nats", Port: -1})
	if err != nil {
		return nil, err
	}
	e.ns = ns
	conn := func(name string) (*nats.Conn, error) {
		return cluster.Connect("", cluster.ConnectOptions{Name: name, InProcess: ns})
	}
	if err := setup(conn); err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The dispatch claimers send no heartbeat, so the coordinator reports
	// their runs orphaned: expected here, and thousands of lines.
	coordLog := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	// The coordinator and the collector have their own connections, as in `gorch up`.
	cnc, err := conn("coordinator")
	if err != nil {
		return nil, err
	}
	coord, err := coordinator.New(context.Background(), cnc, coordinator.Options{Logger: coordLog})
	if err != nil {
		return nil, err
	}
	store, err := experiment.NewLocalStore(dir + "/records")
	if err != nil {
		return nil, err
	}
	knc, err := conn("collector")
	if err != nil {
		return nil, err
	}
	coll, err := collector.New(context.Background(), knc, collector.Options{Store: store, Logger: quiet})
	if err != nil {
		return nil, err
	}
	e.coll = coll
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = coord.Run(ctx) }()
	go func() { defer wg.Done(); _ = coll.Run(ctx) }()
	if e.nc, err = conn("bench"); err != nil {
		cancel()
		return nil, err
	}
	e.js, _ = jetstream.New(e.nc)
	e.kv, err = e.js.KeyValue(ctx, cluster.BucketRuns)
	if err != nil {
		cancel()
		return nil, err
	}
	if _, err := e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: rawStream, Subjects: []string{"rawbench.>"}, Retention: jetstream.LimitsPolicy,
		Storage: jetstream.FileStorage, Duplicates: cluster.DedupWindow,
	}); err != nil {
		cancel()
		return nil, err
	}
	// The consume phase's stream and consumer: the EVENTS stream's and the
	// collector consumer's settings, read on a connection of its own.
	if _, err := e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: consumeStream, Subjects: []string{"consbench.>"}, Retention: jetstream.LimitsPolicy,
		Storage: jetstream.FileStorage, Duplicates: cluster.DedupWindow,
	}); err != nil {
		cancel()
		return nil, err
	}
	ccfg, err := e.js.Consumer(ctx, cluster.StreamEvents, cluster.ConsumerCollect)
	if err != nil {
		cancel()
		return nil, err
	}
	cc := ccfg.CachedInfo().Config
	ccc := jetstream.ConsumerConfig{Durable: "consbench", AckPolicy: cc.AckPolicy, AckWait: cc.AckWait, MaxAckPending: cc.MaxAckPending}
	if cfg.consumer == "acknone" {
		ccc.AckPolicy = jetstream.AckNonePolicy
	}
	if _, err := e.js.CreateOrUpdateConsumer(ctx, consumeStream, ccc); err != nil {
		cancel()
		return nil, err
	}
	cnc2, err := conn("consumer")
	if err != nil {
		cancel()
		return nil, err
	}
	wg.Add(1)
	go func() { defer wg.Done(); e.consumeLoop(ctx, cnc2, cfg.consumer) }()
	e.cli = coordinator.NewClient(e.nc)
	for i := range cfg.publishers {
		pnc, err := conn(fmt.Sprintf("publisher-%d", i))
		if err != nil {
			cancel()
			return nil, err
		}
		pjs, _ := jetstream.New(pnc, jetstream.WithPublishAsyncMaxPending(256))
		e.pubs, e.pjs = append(e.pubs, pnc), append(e.pjs, pjs)
	}
	e.stop = func() {
		cancel()
		wg.Wait()
		for _, c := range append(e.pubs, e.nc, cnc, knc, cnc2) {
			c.Close()
		}
		ns.Shutdown()
		ns.WaitForShutdown()
		_ = os.RemoveAll(dir)
	}
	// Wait for the coordinator to answer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := e.cli.List(ctx); err == nil {
			break
		} else if time.Now().After(deadline) {
			e.stop()
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return e, nil
}

const noopSpec = `
model: {name: mlp}
dataset: {name: blobs}
optimizer: {name: sgd, lr: 0.1}
steps: 1
batch_size: 1
`

type dispatchResult struct {
	submittedPerS, startedPerS float64
	p50, p99                   time.Duration
}

// dispatch submits cfg.runs no-op runs through the coordinator and claims
// them like a worker does.
func dispatch(e *env, cfg config) (dispatchResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cons, err := e.js.Consumer(ctx, cluster.StreamRuns, cluster.DispatchConsumer(cluster.PriorityNormal))
	if err != nil {
		return dispatchResult{}, err
	}
	var (
		mu       sync.Mutex
		claimed  = make(map[string]time.Time, cfg.runs)
		submitAt = make(map[string]time.Time, cfg.runs)
		nClaimed atomic.Int64
		claimErr atomic.Value
		done     = make(chan struct{})
	)
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	var cwg sync.WaitGroup
	for range cfg.claimers {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for cctx.Err() == nil {
				batch, err := cons.Fetch(16, jetstream.FetchMaxWait(100*time.Millisecond))
				if err != nil {
					continue
				}
				for m := range batch.Messages() {
					var req cluster.RunRequest
					if err := cluster.Decode(m.Data(), cluster.TypeRunRequest, &req); err != nil {
						claimErr.Store(err)
						_ = m.Term()
						continue
					}
					// The claim a worker sends: the coordinator does the CAS.
					body, err := cluster.Encode(cluster.TypeWorkerRequest, &cluster.WorkerRequest{RunID: req.RunID})
					if err == nil {
						var rm *nats.Msg
						rm, err = e.nc.RequestWithContext(cctx, cluster.WorkerAPISubject(benchWorker, cluster.WOpClaim), body)
						var r cluster.WorkerReply
						if err == nil {
							err = cluster.Decode(rm.Data, cluster.TypeWorkerReply, &r)
						}
						if err == nil && r.Error != "" {
							err = errors.New(r.Error)
						}
					}
					if err != nil {
						claimErr.Store(err)
						_ = m.Nak()
						continue
					}
					if err := m.Ack(); err != nil {
						claimErr.Store(err)
					}
					now := time.Now()
					mu.Lock()
					claimed[req.RunID] = now
					mu.Unlock()
					if nClaimed.Add(1) == int64(cfg.runs) {
						close(done)
					}
				}
			}
		}()
	}
	spec := []byte(noopSpec)
	var next atomic.Int64
	var swg sync.WaitGroup
	var subErr atomic.Value
	var lastSubmit atomic.Int64
	start := time.Now()
	for range cfg.submitters {
		swg.Add(1)
		go func() {
			defer swg.Done()
			for next.Add(1) <= int64(cfg.runs) {
				t0 := time.Now()
				ids, err := e.cli.Submit(ctx, spec, "")
				if err != nil || len(ids) != 1 {
					subErr.Store(fmt.Errorf("submit: %v (%d ids)", err, len(ids)))
					return
				}
				mu.Lock()
				submitAt[ids[0]] = t0
				mu.Unlock()
				t := time.Since(start)
				for {
					old := lastSubmit.Load()
					if int64(t) <= old || lastSubmit.CompareAndSwap(old, int64(t)) {
						break
					}
				}
			}
		}()
	}
	swg.Wait()
	if err, _ := subErr.Load().(error); err != nil {
		return dispatchResult{}, err
	}
	select {
	case <-done:
	case <-ctx.Done():
		err, _ := claimErr.Load().(error)
		return dispatchResult{}, fmt.Errorf("dispatch: %d of %d runs claimed before the timeout (last claim error: %v)", nClaimed.Load(), cfg.runs, err)
	}
	ccancel()
	cwg.Wait()
	var last time.Time
	lat := make([]time.Duration, 0, cfg.runs)
	for id, t := range claimed {
		if t.After(last) {
			last = t
		}
		if t0, ok := submitAt[id]; ok {
			lat = append(lat, t.Sub(t0))
		}
	}
	return dispatchResult{
		submittedPerS: float64(cfg.runs) / time.Duration(lastSubmit.Load()).Seconds(),
		startedPerS:   float64(cfg.runs) / last.Sub(start).Seconds(),
		p50:           pct(lat, 50), p99: pct(lat, 99),
	}, nil
}

// setup creates the cluster's streams and buckets, as `gorch setup` does.
func setup(conn func(string) (*nats.Conn, error)) error {
	nc, err := conn("setup")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	_, err = cluster.Setup(context.Background(), js, cluster.SetupOptions{})
	return err
}

// claimRuns writes a running state claimed by benchWorker for each run, as
// the coordinator would, so that the collector accepts benchWorker's
// events of attempt 1.
func claimRuns(e *env, ids []string) error {
	for _, id := range ids {
		st := cluster.RunState{RunID: id, Status: cluster.StateRunning, Attempt: 1, Worker: benchWorker, Owners: []string{benchWorker}}
		if _, err := cluster.CreateState(context.Background(), e.kv, st); err != nil {
			return err
		}
	}
	return nil
}

// encodeBatches builds each publisher's MetricBatch envelopes for a fresh
// run (one run per publisher, attempt 1), outside the timed section.
func encodeBatches(cfg config) ([]string, [][][]byte, error) {
	ids := make([]string, cfg.publishers)
	out := make([][][]byte, cfg.publishers)
	now := time.Now().UTC()
	names := []string{"loss", "acc", "lr", "grad_norm"}
	for p := range cfg.publishers {
		ids[p] = experiment.NewRunID()
		for s := 1; s <= cfg.batches; s++ {
			b := cluster.MetricBatch{RunID: ids[p], Attempt: 1, Seq: int64(s), Points: make([]cluster.MetricPoint, cfg.points)}
			for i := range b.Points {
				k := (s-1)*cfg.points + i
				b.Points[i] = cluster.MetricPoint{Step: int64(k / len(names)), Name: names[k%len(names)], Value: float64(k) * 0.001, Time: now}
			}
			msg, err := cluster.Encode(cluster.TypeMetricBatch, &b)
			if err != nil {
				return nil, nil, err
			}
			out[p] = append(out[p], msg)
		}
	}
	return ids, out, nil
}

// publishAll publishes every publisher's batches (async, at most 256 in
// flight per publisher) with their Nats-Msg-Id and waits for every PubAck.
func publishAll(e *env, ids []string, msgs [][][]byte, subject func(run string) string) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(ids))
	for p := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			js := e.pjs[p]
			subj := subject(ids[p])
			var futs []jetstream.PubAckFuture
			for s, b := range msgs[p] {
				m := nats.NewMsg(subj)
				m.Data = b
				f, err := js.PublishMsgAsync(m, jetstream.WithMsgID(cluster.MsgID(ids[p], 1, "metrics", int64(s+1))), jetstream.WithStallWait(time.Minute))
				if err != nil {
					errc <- err
					return
				}
				futs = append(futs, f)
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(2 * time.Minute):
				errc <- errors.New("publish: PubAcks not complete after 2 minutes")
				return
			}
			for _, f := range futs {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

type rawResult struct {
	pointsPerS, cpuNsPerPoint float64
}

// raw publishes the same bytes to a stream nobody consumes.
func raw(e *env, cfg config) (rawResult, error) {
	return publishPhase(e, cfg, "rawbench.", rawStream, nil)
}

// publishPhase publishes cfg's batches under subject prefix into stream,
// waits for wait (if any: it returns once the phase's messages are
// consumed), then purges the stream, and reports the phase's points per
// second and CPU per point from the first publish to the end of the wait.
func publishPhase(e *env, cfg config, prefix, stream string, wait func(start time.Time) error) (rawResult, error) {
	ids, msgs, err := encodeBatches(cfg)
	if err != nil {
		return rawResult{}, err
	}
	cpu0, start := cputime.Process(), time.Now()
	if err := publishAll(e, ids, msgs, func(run string) string { return prefix + run }); err != nil {
		return rawResult{}, err
	}
	if wait != nil {
		if err := wait(start); err != nil {
			return rawResult{}, err
		}
	}
	el, cpu := time.Since(start), cputime.Process()-cpu0
	if s, err := e.js.Stream(context.Background(), stream); err == nil {
		_ = s.Purge(context.Background())
	}
	n := float64(cfg.publishers * cfg.batches * cfg.points)
	return rawResult{pointsPerS: n / el.Seconds(), cpuNsPerPoint: float64(cpu) / n}, nil
}

// consumeDefinition says, per -consumer mode, what the consume phase measures.
var consumeDefinition = map[string]string{
	"consume": "same envelopes and Msg-Ids, same publishers, stream with a durable consumer configured as the collector's, read as the collector reads it (a continuous pull, 1024 buffered) by a consumer that only acks each message; first publish → last ack",
	"fetch":   "same envelopes and Msg-Ids, same publishers, stream with a durable consumer configured as the collector's, read by one Fetch (1024, 500 ms) after another, acking each message; first publish → last ack",
	"acknone": "same envelopes and Msg-Ids, same publishers, stream with a durable consumer without acks (AckNone), read by a continuous pull (Consume, 1024 buffered) that only counts; first publish → last message",
}

// consumeLoop reads the consume phase's consumer, doing nothing else with
// the messages, until ctx is cancelled. Mode "consume" pulls as the
// collector pulls from EVENTS (continuously, 1024 buffered: the next pull
// request goes out before a batch is used up) and acks every message;
// "fetch" fetches batches of 1024 (at most 500 ms of wait) one after
// another and acks every message; "acknone" pulls continuously from a
// consumer without acks.
func (e *env) consumeLoop(ctx context.Context, nc *nats.Conn, mode string) {
	js, _ := jetstream.New(nc)
	cons, err := js.Consumer(ctx, consumeStream, "consbench")
	if err != nil {
		return
	}
	if mode != "fetch" {
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if mode == "acknone" || m.Ack() == nil {
				e.consumed.Add(1)
			}
		}, jetstream.PullMaxMessages(1024))
		if err != nil {
			return
		}
		<-ctx.Done()
		cc.Stop()
		return
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(1024, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for m := range batch.Messages() {
			if m.Ack() == nil {
				e.consumed.Add(1)
			}
		}
	}
}

// consume publishes the same bytes to a stream whose consumer only
// fetches and acks, and waits until every message is acked.
func consume(e *env, cfg config) (rawResult, error) {
	msgs := int64(cfg.publishers * cfg.batches)
	want := e.consumed.Load() + msgs
	return publishPhase(e, cfg, "consbench.", consumeStream, func(start time.Time) error {
		for deadline := start.Add(5 * time.Minute); e.consumed.Load() < want; {
			if time.Now().After(deadline) {
				return fmt.Errorf("consume: %d of %d messages acked in 5 minutes", e.consumed.Load()-(want-msgs), msgs)
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	})
}

type ingestResult struct {
	pointsPerS    float64
	cpuNsPerPoint float64
	p50, p99      time.Duration
	lagSamples    int
}

// ackTime returns the stream timestamp encoded in a JetStream ack subject
// ($JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>,
// or the v2 form with domain and account hash).
func ackTime(subj string) (time.Time, bool) {
	t := strings.Split(subj, ".")
	var tok string
	switch {
	case len(t) == 9:
		tok = t[7]
	case len(t) >= 11:
		tok = t[9]
	default:
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(tok, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// ingest publishes through EVENTS into the collector and waits until the
// collector has acked every record. A CPU profile of the timed section
// goes to prof unless it is empty.
func ingest(e *env, cfg config, prof string) (ingestResult, error) {
	ids, msgs, err := encodeBatches(cfg)
	if err != nil {
		return ingestResult{}, err
	}
	if err := claimRuns(e, ids); err != nil {
		return ingestResult{}, err
	}
	want := e.coll.Stats().Records + int64(cfg.publishers*cfg.batches*cfg.points)
	// Every ack the collector sends passes through the server on its ack
	// subject; a plain subscription sees each one as it is sent.
	var mu sync.Mutex
	lags := make([]time.Duration, 0, cfg.publishers*cfg.batches)
	sub, err := e.nc.Subscribe("$JS.ACK."+cluster.StreamEvents+"."+cluster.ConsumerCollect+".>", func(m *nats.Msg) {
		now := time.Now()
		if t, ok := ackTime(m.Subject); ok {
			mu.Lock()
			lags = append(lags, now.Sub(t))
			mu.Unlock()
		}
	})
	if err != nil {
		return ingestResult{}, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	_ = e.nc.Flush()
	stopProfile := func() {}
	if prof != "" {
		if stopProfile, err = startProfile(prof); err != nil {
			_ = sub.Unsubscribe()
			return ingestResult{}, err
		}
	}
	cpu0, start := cputime.Process(), time.Now()
	perr := make(chan error, 1)
	go func() {
		perr <- publishAll(e, ids, msgs, func(run string) string { return cluster.EventSubject(benchWorker, cluster.KindMetrics, run) })
	}()
	deadline := start.Add(5 * time.Minute)
	for e.coll.Stats().Records < want {
		if time.Now().After(deadline) {
			stopProfile()
			_ = sub.Unsubscribe()
			return ingestResult{}, fmt.Errorf("ingest: collector wrote %d of %d records in 5 minutes", e.coll.Stats().Records-(want-int64(cfg.publishers*cfg.batches*cfg.points)), cfg.publishers*cfg.batches*cfg.points)
		}
		time.Sleep(time.Millisecond)
	}
	el, cpu := time.Since(start), cputime.Process()-cpu0
	stopProfile()
	if err := <-perr; err != nil {
		_ = sub.Unsubscribe()
		return ingestResult{}, err
	}
	_ = e.nc.Flush()
	time.Sleep(20 * time.Millisecond) // the last acks' copies
	_ = sub.Unsubscribe()
	mu.Lock()
	defer mu.Unlock()
	n := float64(cfg.publishers * cfg.batches * cfg.points)
	r := ingestResult{pointsPerS: n / el.Seconds(), cpuNsPerPoint: float64(cpu) / n, lagSamples: len(lags)}
	if len(lags) == 0 {
		// No ack copies seen: fall back to the collector's own last lag.
		l := e.coll.Stats().IngestLag
		r.p50, r.p99 = l, l
	} else {
		r.p50, r.p99 = pct(lags, 50), pct(lags, 99)
	}
	return r, nil
}

// pct returns the p-th percentile (nearest rank) of d; it sorts d.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(math.Ceil(p/100*float64(len(d)))) - 1
	return d[max(0, min(i, len(d)-1))]
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// run measures every figure cfg.reps times, alternating, and returns the
// results (and writes them to cfg.out unless it is empty).
func run(cfg config) (map[string]any, error) {
	if cfg.reps < 1 || cfg.runs < 1 || cfg.submitters < 1 || cfg.claimers < 1 || cfg.publishers < 1 || cfg.batches < 1 || cfg.points < 1 {
		return nil, errors.New("every count must be ≥ 1")
	}
	if cfg.consumer == "" {
		cfg.consumer = "consume"
	}
	if _, ok := consumeDefinition[cfg.consumer]; !ok {
		return nil, fmt.Errorf("-consumer %q: want fetch, consume or acknone", cfg.consumer)
	}
	if cfg.log == nil {
		cfg.log = io.Discard
	}
	began := time.Now()
	load0 := loadavg()
	e, err := startEnv(cfg)
	if err != nil {
		return nil, err
	}
	defer e.stop()
	// Warm-up: a few runs and batches through every path.
	wcfg := cfg
	wcfg.runs, wcfg.batches = min(cfg.runs, 50), min(cfg.batches, 10)
	if _, err := dispatch(e, wcfg); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	if _, err := raw(e, wcfg); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	if _, err := consume(e, wcfg); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	if _, err := ingest(e, wcfg, ""); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	var sub, started, dp50, dp99, rawR, ing, lp50, lp99, ratio, rawCPU, ingCPU []float64
	var consR, consCPU, ingCons, consRaw []float64
	for rep := range cfg.reps {
		var d dispatchResult
		if cfg.only != "ingest" {
			if d, err = dispatch(e, cfg); err != nil {
				return nil, err
			}
		}
		rw, err := raw(e, cfg)
		if err != nil {
			return nil, err
		}
		cs, err := consume(e, cfg)
		if err != nil {
			return nil, err
		}
		prof := ""
		if cfg.cpuProfile != "" {
			prof = cfg.cpuProfile
			if rep > 0 {
				prof += "." + strconv.Itoa(rep+1)
			}
		}
		in, err := ingest(e, cfg, prof)
		if err != nil {
			return nil, err
		}
		sub, started = append(sub, d.submittedPerS), append(started, d.startedPerS)
		dp50, dp99 = append(dp50, ms(d.p50)), append(dp99, ms(d.p99))
		rawR, ing = append(rawR, rw.pointsPerS), append(ing, in.pointsPerS)
		rawCPU, ingCPU = append(rawCPU, rw.cpuNsPerPoint), append(ingCPU, in.cpuNsPerPoint)
		lp50, lp99 = append(lp50, ms(in.p50)), append(lp99, ms(in.p99))
		ratio = append(ratio, in.pointsPerS/rw.pointsPerS)
		consR, consCPU = append(consR, cs.pointsPerS), append(consCPU, cs.cpuNsPerPoint)
		ingCons, consRaw = append(ingCons, in.pointsPerS/cs.pointsPerS), append(consRaw, cs.pointsPerS/rw.pointsPerS)
		fmt.Fprintf(cfg.log, "rep %d: dispatch %.0f submitted/s %.0f started/s p50 %.1f ms p99 %.1f ms | raw %.0f points/s (%.0f ns CPU/point) | consume %.0f points/s (%.2f of raw, %.0f ns CPU/point) | ingest %.0f points/s (%.2f of raw, %.2f of consume, %.0f ns CPU/point) lag p50 %.1f ms p99 %.1f ms (%d acks)\n",
			rep+1, d.submittedPerS, d.startedPerS, ms(d.p50), ms(d.p99), rw.pointsPerS, rw.cpuNsPerPoint, cs.pointsPerS, cs.pointsPerS/rw.pointsPerS, cs.cpuNsPerPoint,
			in.pointsPerS, in.pointsPerS/rw.pointsPerS, in.pointsPerS/cs.pointsPerS, in.cpuNsPerPoint, ms(in.p50), ms(in.p99), in.lagSamples)
	}
	res := map[string]any{
		"dispatch_submitted_per_s":   round3(median(sub)),
		"dispatch_runs_per_s":        round3(median(started)),
		"dispatch_latency_p50_ms":    round3(median(dp50)),
		"dispatch_latency_p99_ms":    round3(median(dp99)),
		"ingest_points_per_s":        round3(median(ing)),
		"ingest_lag_p50_ms":          round3(median(lp50)),
		"ingest_lag_p99_ms":          round3(median(lp99)),
		"jetstream_raw_points_per_s": round3(median(rawR)),
		"ingest_vs_raw_ratio":        math.Round(median(ratio)*1e6) / 1e6,
		"raw_cpu_ns_per_point":       round3(median(rawCPU)),
		"ingest_cpu_ns_per_point":    round3(median(ingCPU)),

		"jetstream_consume_points_per_s": round3(median(consR)),
		"consume_cpu_ns_per_point":       round3(median(consCPU)),
		"ingest_vs_consume_ratio":        math.Round(median(ingCons)*1e6) / 1e6,
		"consume_vs_raw_ratio":           math.Round(median(consRaw)*1e6) / 1e6,
	}
	res["meta"] = map[string]any{
		"date":          time.Now().UTC().Format(time.RFC3339),
		"cpu":           cpuModel(),
		"duration_s":    int(time.Since(began).Seconds()),
		"go_version":    runtime.Version(),
		"goos":          runtime.GOOS,
		"goarch":        runtime.GOARCH,
		"num_cpu":       runtime.NumCPU(),
		"gomaxprocs":    runtime.GOMAXPROCS(0),
		"nats_server":   server.VERSION,
		"loadavg_start": load0,
		"loadavg_end":   loadavg(),
		"quick":         cfg.quick,
		"reps":          cfg.reps,
		"statistic":     "median",
		"order":         "alternating: dispatch, raw, consume, ingest per repetition, after a warm-up",
		"dispatch_runs": cfg.runs, "dispatch_submitters": cfg.submitters, "dispatch_claimers": cfg.claimers,
		"ingest_publishers": cfg.publishers, "ingest_batches_per_publisher": cfg.batches, "ingest_points_per_batch": cfg.points,
		"ingest_bytes_per_batch": batchBytes(cfg),
		"storage":                "embedded NATS, JetStream file store and local record store in a temp dir",
		"runs_per_s_definition":  "runs claimed (claim request answered by the coordinator's CAS queued→running, RunRequest acked) per second from the first Submit",
		"lag_definition":         "per EVENTS message: stream timestamp → the collector's ack (seen on its ack subject)",
		"raw_definition":         "same envelopes and Msg-Ids, same publishers, stream without consumer; first publish → last PubAck",
		"consume_definition":     consumeDefinition[cfg.consumer],
		"consumer":               cfg.consumer,
	}
	if cfg.out != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(cfg.out, append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// startProfile starts a CPU profile into path and returns its stop.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func batchBytes(cfg config) int {
	c := cfg
	c.publishers, c.batches = 1, 1
	_, m, err := encodeBatches(c)
	if err != nil {
		return 0
	}
	return len(m[0][0])
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// consumerMode returns the -consumer mode recorded in res's meta.
func consumerMode(res map[string]any) string {
	meta, _ := res["meta"].(map[string]any)
	m, _ := meta["consumer"].(string)
	return m
}

func printTable(w io.Writer, res map[string]any) {
	f := func(k string) float64 { v, _ := res[k].(float64); return v }
	type row struct{ figure, value, unit, note string }
	rows := []row{
		{"dispatch: runs submitted", fmt.Sprintf("%.0f", f("dispatch_submitted_per_s")), "runs/s", ""},
		{"dispatch: runs started", fmt.Sprintf("%.0f", f("dispatch_runs_per_s")), "runs/s", fmt.Sprintf("%.2fx of target 1,000", f("dispatch_runs_per_s")/1000)},
		{"dispatch latency p50", fmt.Sprintf("%.1f", f("dispatch_latency_p50_ms")), "ms", ""},
		{"dispatch latency p99", fmt.Sprintf("%.1f", f("dispatch_latency_p99_ms")), "ms", ""},
		{"raw JetStream publish", fmt.Sprintf("%.0f", f("jetstream_raw_points_per_s")), "points/s", "ceiling"},
		{"ingest (publish → collector → store)", fmt.Sprintf("%.0f", f("ingest_points_per_s")), "points/s", fmt.Sprintf("%.2fx of target 1 M", f("ingest_points_per_s")/1e6)},
		{"JetStream consume, no-op consumer (" + consumerMode(res) + ")", fmt.Sprintf("%.0f", f("jetstream_consume_points_per_s")), "points/s", fmt.Sprintf("%.2f of raw: a consumer's ceiling", f("consume_vs_raw_ratio"))},
		{"ingest / raw", fmt.Sprintf("%.2f", f("ingest_vs_raw_ratio")), "ratio", "target ≥ 0.50"},
		{"ingest / consume", fmt.Sprintf("%.2f", f("ingest_vs_consume_ratio")), "ratio", ""},
		{"ingest lag p50", fmt.Sprintf("%.1f", f("ingest_lag_p50_ms")), "ms", ""},
		{"ingest lag p99", fmt.Sprintf("%.1f", f("ingest_lag_p99_ms")), "ms", "target ≤ 1000"},
		{"CPU per point, raw", fmt.Sprintf("%.0f", f("raw_cpu_ns_per_point")), "ns", "whole process"},
		{"CPU per point, consume", fmt.Sprintf("%.0f", f("consume_cpu_ns_per_point")), "ns", fmt.Sprintf("%.1fx of raw", f("consume_cpu_ns_per_point")/f("raw_cpu_ns_per_point"))},
		{"CPU per point, ingest", fmt.Sprintf("%.0f", f("ingest_cpu_ns_per_point")), "ns", fmt.Sprintf("%.1fx of raw", f("ingest_cpu_ns_per_point")/f("raw_cpu_ns_per_point"))},
	}
	fmt.Fprintf(w, "%-42s %14s  %-9s %s\n", "figure", "value", "unit", "ratio/target")
	for _, r := range rows {
		fmt.Fprintf(w, "%-42s %14s  %-9s %s\n", r.figure, r.value, r.unit, r.note)
	}
}
