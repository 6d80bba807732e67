package worker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
)

// casRetries bounds the re-reads of updateState when other writers (the
// coordinator setting CancelRequested) get in between.
const casRetries = 5

// errNoState: the run has no key in the runs bucket.
var errNoState = errors.New("run has no state")

// errNotOwner, from an updateState mutation: the state no longer names
// this worker's attempt as the run's owner.
var errNotOwner = errors.New("not the run's owner")

// getState reads run.<id> and its revision.
func (w *Worker) getState(ctx context.Context, id string) (cluster.RunState, uint64, error) {
	const op = "worker.getState"
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var st cluster.RunState
	e, err := w.runs.Get(ctx, cluster.RunKey(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return st, 0, errs.Wrap(errs.Experiment, op, errNoState, "run %s", id)
	case err != nil:
		return st, 0, errs.Wrap(errs.Cluster, op, err, "run %s", id)
	}
	if err := msgpack.Unmarshal(e.Value(), &st); err != nil {
		return st, 0, errs.Wrap(errs.Cluster, op, err, "run %s: malformed state", id)
	}
	return st, e.Revision(), nil
}

// casState writes st if the key is still at rev; a lost race wraps
// jetstream.ErrKeyRevisionMismatch.
func (w *Worker) casState(ctx context.Context, st cluster.RunState, rev uint64) (uint64, error) {
	const op = "worker.casState"
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	st.Updated = time.Now().UTC()
	b, err := msgpack.Marshal(&st)
	if err != nil {
		return 0, errs.Wrap(errs.Cluster, op, err, "run %s", st.RunID)
	}
	nrev, err := w.runs.Update(ctx, cluster.RunKey(st.RunID), b, rev)
	if err != nil {
		return 0, errs.Wrap(errs.Cluster, op, err, "run %s (revision %d)", st.RunID, rev)
	}
	return nrev, nil
}

// updateState reads the state, applies mutate and writes it by
// compare-and-set, re-reading after a lost race. mutate's error aborts.
func (w *Worker) updateState(ctx context.Context, id string, mutate func(*cluster.RunState) error) (cluster.RunState, uint64, error) {
	for try := 0; ; try++ {
		st, rev, err := w.getState(ctx, id)
		if err != nil {
			return st, 0, err
		}
		if err := mutate(&st); err != nil {
			return st, rev, err
		}
		nrev, err := w.casState(ctx, st, rev)
		if err == nil || !errors.Is(err, jetstream.ErrKeyRevisionMismatch) || try >= casRetries {
			return st, nrev, err
		}
	}
}

// owned is an updateState guard: the state must name attempt of this
// worker as running.
func (w *Worker) owned(st *cluster.RunState, attempt int) error {
	if st.Status != cluster.StateRunning || st.Worker != w.opts.ID || st.Attempt != attempt {
		return errs.Wrap(errs.Cluster, "worker", errNotOwner, "run %s is %s, attempt %d on worker %q (this is attempt %d on %q)",
			st.RunID, st.Status, st.Attempt, st.Worker, attempt, w.opts.ID)
	}
	return nil
}
