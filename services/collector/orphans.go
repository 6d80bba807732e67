package collector

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/experiment"
)

// resendOrphan is how long an orphaned attempt's end waits for its
// RecordsFinal before its writer is asked again (after a failed write).
const resendOrphan = 10 * time.Second

// orphan is a run whose records the coordinator marked orphaned
// (cluster.RunState.RecordsOrphaned): its last attempt's worker died
// after reporting the outcome and before publishing the "finished" event.
type orphan struct {
	st cluster.RunState
	// mark bounds the EVENTS sequence of every event the dead worker
	// published: the stream's last sequence when the mark was seen.
	mark uint64
	sent time.Time // when its writer was last asked to end it
}

// watchOrphans ends the records of runs marked RecordsOrphaned, from
// their run state, until ctx ends: it watches the runs bucket, and once
// the collector has acked every event up to an orphan's mark (so the
// attempt's records, and a "finished" event that did get out, are
// applied first), it asks the run's writer to end the attempt. The
// coordinator sets RecordsFinal on the writer's notice, which ends the
// watch of that run.
func (c *Collector) watchOrphans(ctx context.Context, ws []*writer) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.watchOrphansOnce(ctx, ws)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("watching the runs bucket for orphaned records failed; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (c *Collector) watchOrphansOnce(ctx context.Context, ws []*writer) error {
	w, err := c.runs.Watch(ctx, cluster.RunKey("*"))
	if err != nil {
		return err
	}
	defer w.Stop()
	tick := time.NewTicker(c.opts.SummaryEvery)
	defer tick.Stop()
	orphans := map[string]*orphan{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("the watch of the runs bucket ended")
			}
			if e != nil {
				if err := c.noteOrphan(ctx, orphans, e); err != nil {
					return err
				}
			}
		case <-tick.C:
			if err := c.endOrphans(ctx, ws, orphans); err != nil {
				return err
			}
		}
	}
}

// noteOrphan keeps orphans up to date with one entry of the runs bucket.
func (c *Collector) noteOrphan(ctx context.Context, orphans map[string]*orphan, e jetstream.KeyValueEntry) error {
	id := strings.TrimPrefix(e.Key(), cluster.RunKey(""))
	var st cluster.RunState
	if e.Operation() != jetstream.KeyValuePut || cluster.Unmarshal(e.Value(), &st) != nil ||
		!st.RecordsOrphaned || st.RecordsFinal || !cluster.Terminal(st.Status) || st.RunID != id {
		delete(orphans, id)
		return nil
	}
	if o := orphans[id]; o != nil {
		o.st = st
		return nil
	}
	info, err := c.cons.Info(ctx)
	if err != nil {
		return err
	}
	orphans[id] = &orphan{st: st, mark: info.Delivered.Stream + info.NumPending}
	c.log.Info("a run's records are orphaned; ending them from its state once the events before are written",
		"run", id, "attempt", st.Attempt, "status", st.Status, "events_up_to", orphans[id].mark)
	return nil
}

// endOrphans asks the writers to end the orphans whose mark the
// collector's ack floor has passed.
func (c *Collector) endOrphans(ctx context.Context, ws []*writer, orphans map[string]*orphan) error {
	if len(orphans) == 0 {
		return nil
	}
	info, err := c.cons.Info(ctx)
	if err != nil {
		return err
	}
	idle := info.NumPending == 0 && info.NumAckPending == 0
	for id, o := range orphans {
		if !idle && info.AckFloor.Stream < o.mark || time.Since(o.sent) < resendOrphan {
			continue
		}
		select {
		case ws[shard(id, len(ws))].ends <- o.st:
			o.sent = time.Now()
		default: // the writer is busy: next tick
		}
	}
	return nil
}

// endFromState ends the records of run state st's terminal attempt with
// the state's status, error and end time, and tells the coordinator they
// are final. An end applied before (the "finished" event did get out)
// stays as it was; the notice is sent all the same.
func (w *writer) endFromState(ctx context.Context, st cluster.RunState) {
	finished := st.Finished
	if finished.IsZero() {
		finished = st.Updated
	}
	err := w.ing.End(ctx, st.RunID, experiment.AttemptEnd{Attempt: st.Attempt, Status: experiment.Status(st.Status),
		Error: st.Error, Finished: finished})
	if err == nil {
		err = w.ing.Flush(ctx, st.RunID)
	}
	if err == nil {
		err = w.c.final.send(ctx, st.RunID, st.Attempt, st.Status)
	}
	if err != nil {
		w.ing.Forget(st.RunID)
		w.c.log.Warn("ending orphaned records failed; will retry", "run", st.RunID, "attempt", st.Attempt, "err", err)
		return
	}
	w.c.log.Info("ended a run's records from its state", "run", st.RunID, "attempt", st.Attempt, "status", st.Status)
}
