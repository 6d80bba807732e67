package coordinator

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
)

// Client calls a coordinator over NATS. Errors are *errs.TorchError with
// the kind the coordinator gave: errs.Config for a bad spec or sweep,
// errs.Experiment for an unknown run ("run X not found") or one already
// finished, errs.Cluster when no coordinator answers.
type Client struct {
	nc *nats.Conn
	// Timeout bounds each request but sweeps; default 5 s.
	Timeout time.Duration
	// SweepTimeout bounds a sweep request, which submits every run of
	// the sweep before it answers; default 2 minutes.
	SweepTimeout time.Duration
}

// NewClient returns a client using nc.
func NewClient(nc *nats.Conn) *Client {
	return &Client{nc: nc, Timeout: 5 * time.Second, SweepTimeout: 2 * time.Minute}
}

// Submit submits a run spec (YAML or JSON) at a priority ("" is normal)
// and returns the new run's id.
func (c *Client) Submit(ctx context.Context, spec []byte, prio cluster.Priority) ([]string, error) {
	r, err := c.call(ctx, cluster.OpSubmit, &cluster.APIRequest{Spec: spec, Priority: prio}, c.Timeout)
	if err != nil {
		return nil, err
	}
	return r.RunIDs, nil
}

// Sweep submits a sweep (see [Sweep] for the format) and returns the ids
// of its runs, in expansion order.
func (c *Client) Sweep(ctx context.Context, sweep []byte) ([]string, error) {
	r, err := c.call(ctx, cluster.OpSweep, &cluster.APIRequest{Sweep: sweep}, c.SweepTimeout)
	if r != nil && len(r.RunIDs) > 0 {
		return r.RunIDs, err // a sweep that failed part-way: the runs submitted
	}
	if err != nil {
		return nil, err
	}
	return r.RunIDs, nil
}

// Cancel cancels a queued or running run.
func (c *Client) Cancel(ctx context.Context, id string) error {
	_, err := c.call(ctx, cluster.OpCancel, &cluster.APIRequest{RunID: id}, c.Timeout)
	return err
}

// Status returns a run's state.
func (c *Client) Status(ctx context.Context, id string) (cluster.RunState, error) {
	r, err := c.call(ctx, cluster.OpStatus, &cluster.APIRequest{RunID: id}, c.Timeout)
	if err != nil {
		return cluster.RunState{}, err
	}
	if len(r.States) != 1 {
		return cluster.RunState{}, errs.New(errs.Cluster, cluster.OpStatus, "coordinator answered with %d states for run %s", len(r.States), id)
	}
	return r.States[0], nil
}

// List returns every run's state, oldest submission first.
func (c *Client) List(ctx context.Context) ([]cluster.RunState, error) {
	r, err := c.call(ctx, cluster.OpList, &cluster.APIRequest{}, c.Timeout)
	if err != nil {
		return nil, err
	}
	return r.States, nil
}

// Workers returns the workers with a live heartbeat, by id.
func (c *Client) Workers(ctx context.Context) ([]cluster.WorkerInfo, error) {
	r, err := c.call(ctx, cluster.OpWorkers, &cluster.APIRequest{}, c.Timeout)
	if err != nil {
		return nil, err
	}
	return r.Workers, nil
}

// call sends one request and decodes the reply. A reply with Error comes
// back as a *errs.TorchError of the reply's Kind, together with the reply.
func (c *Client) call(ctx context.Context, op string, req *cluster.APIRequest, timeout time.Duration) (*cluster.APIReply, error) {
	subj := cluster.APISubject(op)
	b, err := cluster.Encode(cluster.TypeAPIRequest, req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := c.nc.RequestWithContext(ctx, subj, b)
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, errs.New(errs.Cluster, op, "no coordinator answered on %s within %s (is gorch up / gorch coordinator running?)", subj, timeout)
	case err != nil:
		return nil, errs.Wrap(errs.Cluster, op, err, "request on %s", subj)
	}
	var r cluster.APIReply
	if err := cluster.Decode(m.Data, cluster.TypeAPIReply, &r); err != nil {
		return nil, errs.Wrap(errs.Cluster, op, err, "reply on %s", subj)
	}
	if r.Error != "" {
		return &r, &errs.TorchError{Kind: errs.ParseKind(r.Kind), Op: op, Msg: r.Error}
	}
	return &r, nil
}
