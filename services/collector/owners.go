package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
)

// owners answers whether an event's sender (the worker in its subject)
// claimed the event's attempt, from the runs bucket. Who claimed an
// attempt never changes, so answers are cached (up to maxOwners runs).
// maxOwners bounds the runs an owners cache remembers.
const maxOwners = 10000

type owners struct {
	kv    jetstream.KeyValue
	known map[string][]string // run -> RunState.Owners as last read
}

func newOwners(kv jetstream.KeyValue) *owners {
	return &owners{kv: kv, known: map[string][]string{}}
}

// check returns why it is refused ("" if the sender owns the attempt),
// or an error when the runs bucket cannot be read.
func (o *owners) check(ctx context.Context, it item) (string, error) {
	owner := ""
	if a := o.known[it.run]; it.attempt <= len(a) {
		owner = a[it.attempt-1]
	} else {
		st, _, err := cluster.GetState(ctx, o.kv, it.run)
		switch {
		case errors.Is(err, errs.Experiment):
			return fmt.Sprintf("worker %s sent an event of run %s, which has no state", it.worker, it.run), nil
		case errors.Is(err, cluster.ErrMalformed):
			return fmt.Sprintf("worker %s sent an event of run %s, whose state is malformed", it.worker, it.run), nil
		case err != nil:
			return "", err
		}
		if len(o.known) >= maxOwners {
			clear(o.known)
		}
		o.known[it.run] = st.Owners
		owner = st.Owner(it.attempt)
	}
	switch owner {
	case it.worker:
		return "", nil
	case "":
		return fmt.Sprintf("worker %s sent an event of attempt %d of run %s, which nobody claimed", it.worker, it.attempt, it.run), nil
	}
	return fmt.Sprintf("worker %s sent an event of attempt %d of run %s, which worker %s claimed", it.worker, it.attempt, it.run, owner), nil
}

// finalNotices tells the coordinator (on capi.final) that the final
// records of a run's attempt are written, so the run state can say so.
type finalNotices struct {
	nc  *nats.Conn
	log *slog.Logger
}

// notify sends a notice for every "finished" event with a terminal status
// in items, which are durably written. It fails when a coordinator did
// not answer (the items are then redelivered and notify tries again).
func (f *finalNotices) notify(ctx context.Context, items []item) error {
	for _, it := range items {
		ev, ok := it.v.(*cluster.RunEvent)
		if !ok || ev.Kind != kindFinished || ev.Status == string(experiment.StatusInterrupted) {
			continue
		}
		if err := f.send(ctx, ev.RunID, ev.Attempt, ev.Status); err != nil {
			return err
		}
	}
	return nil
}

// send tells the coordinator that the records of run's attempt, which
// ended status, are final. It fails when a coordinator did not answer;
// with no coordinator subscribed at all it logs and goes on.
func (f *finalNotices) send(ctx context.Context, run string, attempt int, status string) error {
	b, err := cluster.Encode(cluster.TypeFinalNotice, &cluster.FinalNotice{RunID: run, Attempt: attempt, Status: status})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	m, err := f.nc.RequestWithContext(rctx, cluster.CollectorFinalSubject, b)
	cancel()
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		f.log.Warn("no coordinator to tell that a run's records are final", "run", run, "attempt", attempt)
		return nil
	case err != nil:
		return errs.Wrap(errs.Cluster, "collector.final", err, "run %s", run)
	}
	var r cluster.APIReply
	if err := cluster.Decode(m.Data, cluster.TypeAPIReply, &r); err != nil {
		f.log.Warn("undecodable answer to a records-final notice", "run", run, "err", err)
	} else if r.Error != "" {
		f.log.Warn("the coordinator refused a records-final notice", "run", run, "err", r.Error)
	}
	return nil
}
