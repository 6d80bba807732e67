package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
)

// errNotOwner: the coordinator refused a request because the attempt is
// not (or no longer) this worker's.
var errNotOwner = errors.New("not the run's owner")

// coordAPI sends a worker's requests to the coordinator, on
// wapi.<worker>.<op>: the only way a worker changes a run's state.
type coordAPI struct {
	nc     *nats.Conn
	worker string
}

// call sends one request and decodes the reply. A refusal for ownership
// wraps errNotOwner; another refusal is a *errs.TorchError of the kind
// the coordinator gave; no answer is an errs.Cluster error.
func (a *coordAPI) call(ctx context.Context, op string, req *cluster.WorkerRequest) (*cluster.WorkerReply, error) {
	subj := cluster.WorkerAPISubject(a.worker, op)
	b, err := cluster.Encode(cluster.TypeWorkerRequest, req)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	m, err := a.nc.RequestWithContext(rctx, subj, b)
	if err != nil {
		return nil, errs.Wrap(errs.Cluster, op, err, "run %s: no answer on %s", req.RunID, subj)
	}
	var r cluster.WorkerReply
	if err := cluster.Decode(m.Data, cluster.TypeWorkerReply, &r); err != nil {
		return nil, errs.Wrap(errs.Cluster, op, err, "reply on %s", subj)
	}
	switch {
	case r.NotOwner:
		return &r, errs.Wrap(errs.Cluster, op, errNotOwner, "%s", r.Error)
	case r.Error != "":
		return &r, &errs.TorchError{Kind: errs.ParseKind(r.Kind), Op: op, Msg: r.Error}
	}
	return &r, nil
}

// Retries of store writes and reads and of coordinator requests that fail
// transiently (the S3 server, the broker or the coordinator restarting):
// with backoff from retryBase doubling to retryMax, for up to retryFor,
// before the attempt fails. The run's ack deadline keeps being extended
// meanwhile.
const (
	retryFor  = 2 * time.Minute
	retryBase = 200 * time.Millisecond
	retryMax  = 5 * time.Second
)

// retry calls f until it succeeds, fails with an error that is not
// transient (anything but errs.IO and errs.Cluster, and always
// errNotOwner), ctx ends, or retryFor passes.
func retry(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	deadline := time.Now().Add(retryFor)
	wait := retryBase
	for try := 1; ; try++ {
		err := f()
		transient := err != nil && !errors.Is(err, errNotOwner) && (errors.Is(err, errs.IO) || errors.Is(err, errs.Cluster))
		if !transient || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		log.Warn(what+" failed; retrying", "try", try, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}
