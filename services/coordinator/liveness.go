package coordinator

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
)

// pruneEvery is how often finished run states past their retention are
// removed.
const pruneEvery = 10 * time.Minute

// watchWorkers keeps the runs bucket honest about workers that died:
// every heartbeat interval it lists the live workers (their keys in the
// workers bucket expire after the bucket's TTL), and when a worker it saw
// alive is gone, the runs still running on it become orphaned (the ack
// wait then redelivers them to another worker). Once, a TTL after start,
// it does the same for workers that died before this coordinator came up.
// It also prunes finished run states past the runs bucket's retention.
func (c *Coordinator) watchWorkers(ctx context.Context) {
	ttl := c.workerTTL(ctx)
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	start := time.Now()
	var alive map[string]cluster.WorkerInfo
	scanned := false
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// A listing can hang when a key expires while it starts (the
		// watcher waits for a message that is gone): bound it.
		lctx, cancel := context.WithTimeout(ctx, max(ttl, 5*time.Second))
		now, err := c.liveWorkers(lctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("listing workers failed", "err", err)
			}
			continue
		}
		died := false
		for id := range alive {
			if _, ok := now[id]; !ok {
				c.log.Warn("worker heartbeat expired", "worker", id, "ttl", ttl)
				died = true
			}
		}
		alive = now
		if died || !scanned && time.Since(start) >= ttl {
			scanned = true
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			c.orphanRuns(sctx, now)
			cancel()
		}
		if time.Since(lastPrune) >= pruneEvery {
			lastPrune = time.Now()
			pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			c.pruneFinished(pctx)
			cancel()
		}
	}
}

// workerTTL is the workers bucket's TTL (cluster.WorkerTTL if unknown).
func (c *Coordinator) workerTTL(ctx context.Context) time.Duration {
	if st, err := c.workers.Status(ctx); err == nil && st.TTL() > 0 {
		return st.TTL()
	}
	return cluster.WorkerTTL
}

// liveWorkers returns the workers with a heartbeat key, by id.
func (c *Coordinator) liveWorkers(ctx context.Context) (map[string]cluster.WorkerInfo, error) {
	const op = "coordinator.workers"
	lister, err := c.workers.ListKeys(ctx)
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, op, err, "bucket %s", cluster.BucketWorkers)
	}
	out := map[string]cluster.WorkerInfo{}
	for key := range lister.Keys() { // closed early when ctx ends
		if ctx.Err() != nil {
			break
		}
		e, err := c.workers.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // expired meanwhile
		}
		if err != nil {
			return nil, errs.Wrap(errs.Cluster, op, err, "bucket %s", cluster.BucketWorkers)
		}
		var info cluster.WorkerInfo
		id := strings.TrimPrefix(key, "worker.")
		if msgpack.Unmarshal(e.Value(), &info) != nil || info.ID != id {
			info = cluster.WorkerInfo{ID: id} // alive, whatever it wrote
		}
		info.Alive = true
		out[id] = info
	}
	if ctx.Err() != nil {
		return nil, errs.Wrap(errs.Cluster, op, ctx.Err(), "listing bucket %s", cluster.BucketWorkers)
	}
	return out, nil
}

// orphanRuns marks orphaned every running run whose worker is not in
// alive, and marks the records of a finished run orphaned when the worker
// of its last attempt is not in alive before the collector said they are
// final (see orphanRecords).
func (c *Coordinator) orphanRuns(ctx context.Context, alive map[string]cluster.WorkerInfo) {
	states, err := cluster.ListStates(ctx, c.kv)
	if err != nil {
		c.log.Warn("listing runs for dead workers failed", "err", err)
		return
	}
	for _, st := range states {
		if cluster.Terminal(st.Status) {
			c.orphanRecords(ctx, st, alive)
			continue
		}
		if _, ok := alive[st.Worker]; ok || st.Status != cluster.StateRunning {
			continue
		}
		worker, attempt := st.Worker, st.Attempt
		_, _, err := c.update(ctx, st.RunID, func(s *cluster.RunState) error {
			if s.Status != cluster.StateRunning || s.Worker != worker || s.Attempt != attempt {
				return cluster.ErrStopUpdate
			}
			s.Status = cluster.StateOrphaned
			return nil
		})
		if err != nil {
			c.log.Warn("marking a run orphaned failed", "run", st.RunID, "err", err)
			continue
		}
		c.log.Warn("run orphaned: its worker's heartbeat expired", "run", st.RunID, "worker", worker, "attempt", attempt)
	}
}

// orphanRecords sets RecordsOrphaned on a finished run whose records are
// not final while the worker of its last attempt is dead: that worker
// reported the attempt's outcome, then died before it published the
// attempt's "finished" event, which would have ended the records and had
// the collector send capi.final. The collector ends them from the run
// state instead (and then sends capi.final), so RecordsFinal still comes.
// A "finished" event that did get out is applied first: the collector
// ends the records only once it has processed every event published
// before it saw the mark.
func (c *Coordinator) orphanRecords(ctx context.Context, st cluster.RunState, alive map[string]cluster.WorkerInfo) {
	worker := st.Owner(st.Attempt)
	if _, ok := alive[worker]; ok || worker == "" || st.RecordsFinal || st.RecordsOrphaned {
		return
	}
	_, _, err := c.update(ctx, st.RunID, func(s *cluster.RunState) error {
		if s.RecordsFinal || s.RecordsOrphaned || s.Attempt != st.Attempt || !cluster.Terminal(s.Status) {
			return cluster.ErrStopUpdate
		}
		s.RecordsOrphaned = true
		return nil
	})
	if err != nil {
		c.log.Warn("marking a run's records orphaned failed", "run", st.RunID, "err", err)
		return
	}
	c.log.Warn("run's records orphaned: its worker died before reporting the attempt's end to the collector; the collector ends them from the run state",
		"run", st.RunID, "worker", worker, "attempt", st.Attempt, "status", st.Status)
}

// pruneFinished removes the states of runs that finished longer ago than
// the runs bucket's retention (MetaFinishedTTL).
func (c *Coordinator) pruneFinished(ctx context.Context) {
	ttl, err := cluster.FinishedTTL(ctx, c.kv)
	if err != nil || ttl <= 0 {
		return
	}
	states, err := cluster.ListStates(ctx, c.kv)
	if err != nil {
		c.log.Warn("listing runs to prune failed", "err", err)
		return
	}
	pruned := 0
	for _, st := range states {
		if !cluster.Terminal(st.Status) || c.now().Sub(st.Updated) < ttl {
			continue
		}
		_, rev, err := cluster.GetState(ctx, c.kv, st.RunID)
		if err == nil {
			err = c.kv.Purge(ctx, cluster.RunKey(st.RunID), jetstream.LastRevision(rev))
		}
		if err != nil {
			c.log.Warn("pruning a finished run failed", "run", st.RunID, "err", err)
			continue
		}
		pruned++
	}
	if pruned > 0 {
		c.log.Info("pruned finished run states", "runs", pruned, "older_than", ttl)
	}
}

// workersFresh is how old a listing of the live workers admission may
// use: listing them is a watch of the workers bucket, too dear for every
// submit of a sweep.
const workersFresh = time.Second

// workerCache is the last listing of the live workers.
type workerCache struct {
	mu   sync.Mutex
	at   time.Time
	live map[string]cluster.WorkerInfo
}

// workersNow returns the live workers as listed at most workersFresh ago.
func (c *Coordinator) workersNow(ctx context.Context) (map[string]cluster.WorkerInfo, error) {
	c.cache.mu.Lock()
	defer c.cache.mu.Unlock()
	if time.Since(c.cache.at) < workersFresh {
		return c.cache.live, nil
	}
	live, err := c.liveWorkers(ctx)
	if err != nil {
		return nil, err
	}
	c.cache.at, c.cache.live = time.Now(), live
	return live, nil
}

// listWorkers answers `gorch workers`: every worker with a live
// heartbeat, by id.
func (c *Coordinator) listWorkers(ctx context.Context, _ *cluster.APIRequest) (*cluster.APIReply, error) {
	live, err := c.liveWorkers(ctx)
	if err != nil {
		return nil, err
	}
	reply := &cluster.APIReply{}
	for _, id := range slices.Sorted(maps.Keys(live)) {
		reply.Workers = append(reply.Workers, live[id])
	}
	return reply, nil
}
