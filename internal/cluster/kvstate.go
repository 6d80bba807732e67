package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/pkg/errs"
)

// CASRetries is how often UpdateState re-reads and retries a
// compare-and-set that lost to a concurrent writer.
const CASRetries = 5

// ErrStopUpdate, returned by an UpdateState mutation, ends the update
// without writing and without an error: the state is already what the
// caller wants.
var ErrStopUpdate = errors.New("cluster: no update needed")

// ErrMalformed is wrapped by GetState's error for a value that does not
// decode; the state it returns then has Status StateMalformed and the
// decode error in Error.
var ErrMalformed = errors.New("malformed run state")

// GetState reads run.<id> from the runs bucket and returns the state and
// its revision (for a later Update). A missing run is an errs.Experiment
// error "run <id> not found".
func GetState(ctx context.Context, kv jetstream.KeyValue, runID string) (RunState, uint64, error) {
	const op = "cluster.GetState"
	var st RunState
	e, err := kv.Get(ctx, RunKey(runID))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted), errors.Is(err, jetstream.ErrInvalidKey):
		return st, 0, errs.New(errs.Experiment, "", "run %s not found", runID)
	case err != nil:
		return st, 0, errs.Wrap(errs.Cluster, op, err, "reading run %s", runID)
	}
	st, err = decodeState(runID, e.Value())
	if err != nil {
		return st, e.Revision(), errs.Wrap(errs.Cluster, op, err, "run %s", runID)
	}
	return st, e.Revision(), nil
}

// decodeState decodes a runs-bucket value. A value that does not decode,
// or names another run, gives a StateMalformed state and an error
// wrapping ErrMalformed.
func decodeState(runID string, b []byte) (RunState, error) {
	var st RunState
	err := Unmarshal(b, &st)
	if err == nil && st.RunID != runID {
		err = errors.New("names run " + st.RunID)
	}
	if err != nil {
		return RunState{RunID: runID, Status: StateMalformed, Error: "malformed state: " + err.Error()}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return st, nil
}

// CreateState writes the first state of a run; it fails if the run exists.
func CreateState(ctx context.Context, kv jetstream.KeyValue, st RunState) (uint64, error) {
	const op = "cluster.CreateState"
	b, err := msgpack.Marshal(&st)
	if err != nil {
		return 0, errs.Wrap(errs.Cluster, op, err, "run %s", st.RunID)
	}
	rev, err := kv.Create(ctx, RunKey(st.RunID), b)
	if err != nil {
		return 0, errs.Wrap(errs.Cluster, op, err, "run %s", st.RunID)
	}
	return rev, nil
}

// UpdateState changes a run's state by compare-and-set: it reads the
// state, calls mutate on a copy and writes it with kv.Update at the
// revision read. When another writer got there first it re-reads and
// calls mutate again, up to CASRetries times. mutate decides on the state
// it is given (it may be called more than once) and returns an error to
// abort, or ErrStopUpdate to leave the state as it is. UpdateState returns
// the state as written (or as read, after ErrStopUpdate) and its revision.
func UpdateState(ctx context.Context, kv jetstream.KeyValue, runID string, mutate func(*RunState) error) (RunState, uint64, error) {
	const op = "cluster.UpdateState"
	for try := 0; ; try++ {
		st, rev, err := GetState(ctx, kv, runID)
		if err != nil {
			return st, rev, err // a malformed value's revision, for whoever repairs it
		}
		next := st
		switch err := mutate(&next); {
		case errors.Is(err, ErrStopUpdate):
			return st, rev, nil
		case err != nil:
			return st, rev, err
		}
		b, err := msgpack.Marshal(&next)
		if err != nil {
			return st, rev, errs.Wrap(errs.Cluster, op, err, "run %s", runID)
		}
		newRev, err := kv.Update(ctx, RunKey(runID), b, rev)
		if err == nil {
			return next, newRev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) || try >= CASRetries {
			return st, rev, errs.Wrap(errs.Cluster, op, err, "run %s (revision %d, try %d)", runID, rev, try+1)
		}
	}
}

// ListStates returns the state of every run in the bucket, oldest
// submission first (ties by run id).
func ListStates(ctx context.Context, kv jetstream.KeyValue) ([]RunState, error) {
	const op = "cluster.ListStates"
	w, err := kv.Watch(ctx, "run.>", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, op, err, "watching %s", BucketRuns)
	}
	defer w.Stop()
	var out []RunState
	for {
		select {
		case <-ctx.Done():
			return nil, errs.Wrap(errs.Cluster, op, ctx.Err(), "listing runs")
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errs.New(errs.Cluster, op, "watcher of %s stopped", BucketRuns)
			}
			if e == nil { // the initial values are all delivered
				slices.SortFunc(out, func(a, b RunState) int {
					if c := a.Submitted.Compare(b.Submitted); c != 0 {
						return c
					}
					return cmp.Compare(a.RunID, b.RunID)
				})
				return out, nil
			}
			// One bad value must not hide every other run: it is listed
			// as malformed.
			st, _ := decodeState(strings.TrimPrefix(e.Key(), "run."), e.Value())
			out = append(out, st)
		}
	}
}
