package coordinator

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
)

// getState reads a run's state. A value that does not decode is
// quarantined first (see quarantine), so a reader sees a failed run with
// the reason, never an error for the one bad key.
func (c *Coordinator) getState(ctx context.Context, id string) (cluster.RunState, uint64, error) {
	st, rev, err := cluster.GetState(ctx, c.kv, id)
	if errors.Is(err, cluster.ErrMalformed) {
		return c.quarantine(ctx, st, rev)
	}
	return st, rev, err
}

// update changes a run's state by compare-and-set (cluster.UpdateState),
// quarantining a malformed value first. It stamps Updated, and Finished
// when the run becomes terminal.
func (c *Coordinator) update(ctx context.Context, id string, mutate func(*cluster.RunState) error) (cluster.RunState, uint64, error) {
	st, rev, err := cluster.UpdateState(ctx, c.kv, id, func(s *cluster.RunState) error {
		was := s.Status
		err := mutate(s)
		if err == nil {
			s.Updated = c.now()
			if cluster.Terminal(s.Status) && !cluster.Terminal(was) {
				s.Finished = s.Updated
			}
		}
		return err
	})
	if !errors.Is(err, cluster.ErrMalformed) {
		return st, rev, err
	}
	if _, _, err := c.quarantine(ctx, st, rev); err != nil {
		return st, rev, err
	}
	return c.update(ctx, id, mutate)
}

// quarantine replaces a malformed run state (st as decodeState made it,
// at revision rev) with a failed one that says why, so status, cancel and
// the run's worker get a clear answer instead of an error on every try.
func (c *Coordinator) quarantine(ctx context.Context, st cluster.RunState, rev uint64) (cluster.RunState, uint64, error) {
	const op = "coordinator.quarantine"
	now := c.now()
	q := cluster.RunState{RunID: st.RunID, Status: cluster.StateFailed, ErrorKind: errs.Unsupported.String(),
		Error:     fmt.Sprintf("quarantined: the run's state in bucket %s could not be read (%s)", cluster.BucketRuns, st.Error),
		Submitted: now, Updated: now}
	b, err := msgpack.Marshal(&q)
	if err != nil {
		return st, rev, errs.Wrap(errs.Internal, op, err, "run %s", st.RunID)
	}
	nrev, err := c.kv.Update(ctx, cluster.RunKey(st.RunID), b, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return cluster.GetState(ctx, c.kv, st.RunID) // someone else fixed it
	}
	if err != nil {
		return st, rev, errs.Wrap(errs.Cluster, op, err, "run %s", st.RunID)
	}
	c.log.Warn("quarantined a malformed run state", "run", st.RunID, "reason", st.Error)
	return q, nrev, nil
}
