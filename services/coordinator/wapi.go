package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/train"
)

// errNotOwner marks a worker request for an attempt the worker does not
// own (any more).
var errNotOwner = errors.New("not the run's owner")

// serveWorker answers one request on wapi.<worker>.<op>. The worker is the
// subject's, never the body's: NATS permissions make the subject the
// worker's identity.
func (c *Coordinator) serveWorker(ctx context.Context, m *nats.Msg) {
	worker, op, ok := cluster.ParseWorkerAPISubject(m.Subject)
	if m.Reply == "" || !ok {
		c.log.Warn("worker request dropped", "subject", m.Subject, "has_reply", m.Reply != "")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	var req cluster.WorkerRequest
	reply, err := &cluster.WorkerReply{}, cluster.Decode(m.Data, cluster.TypeWorkerRequest, &req)
	if err == nil {
		reply, err = guard(op, func() (*cluster.WorkerReply, error) { return c.workerOp(ctx, worker, op, &req) })
	}
	if err != nil {
		reply.Error, reply.Kind, reply.NotOwner = err.Error(), errs.KindOf(err).String(), errors.Is(err, errNotOwner)
		c.log.Warn("worker request refused", "worker", worker, "op", op, "run", req.RunID, "attempt", req.Attempt, "err", reply.Error)
	} else {
		c.log.Debug("worker request", "worker", worker, "op", op, "run", req.RunID, "attempt", reply.State.Attempt,
			"status", reply.State.Status, "action", reply.Action)
	}
	c.respond(m, op, cluster.TypeWorkerReply, reply)
}

// workerOp applies one worker operation to the run's state.
func (c *Coordinator) workerOp(ctx context.Context, worker, op string, req *cluster.WorkerRequest) (*cluster.WorkerReply, error) {
	if err := checkRunID(req.RunID); err != nil {
		return &cluster.WorkerReply{}, err
	}
	var mutate func(*cluster.RunState) (string, error)
	repeated := false // a claim answered with the attempt it started before
	switch op {
	case cluster.WOpClaim:
		elsewhere := c.fitsElsewhere(ctx, worker, req.MemoryLimit)
		mutate = func(s *cluster.RunState) (string, error) {
			was := s.Attempt
			action, err := claim(s, worker, req, elsewhere)
			repeated = action == cluster.ActionTrain && s.Attempt == was
			return action, err
		}
	case cluster.WOpProgress:
		mutate = func(s *cluster.RunState) (string, error) { return "", progress(s, worker, req) }
	case cluster.WOpCheckpoint:
		mutate = func(s *cluster.RunState) (string, error) { return "", checkpoint(s, worker, req) }
	case cluster.WOpFinish:
		mutate = func(s *cluster.RunState) (string, error) { return finish(s, worker, req) }
	case cluster.WOpHandBack:
		mutate = func(s *cluster.RunState) (string, error) { return handBack(s, worker, req) }
	case cluster.WOpReject:
		mutate = func(s *cluster.RunState) (string, error) { return reject(s, req) }
	default:
		return &cluster.WorkerReply{}, errs.New(errs.Argument, op, "unknown worker operation %q", op)
	}
	var action string
	st, _, err := c.update(ctx, req.RunID, func(s *cluster.RunState) error {
		var err error
		action, err = mutate(s)
		return err
	})
	reply := &cluster.WorkerReply{Action: action, State: st}
	switch {
	case err != nil || action == "":
	case repeated:
		c.log.Info("claim repeated (its reply was lost): answering the attempt it started", "run", st.RunID, "worker", worker,
			"attempt", st.Attempt, "delivered", req.Claim.Delivered)
	case op == cluster.WOpClaim && action == cluster.ActionLeave:
		c.log.Info("stale claim: the run's message was delivered again since; leaving the attempt of the newer delivery", "run", st.RunID,
			"worker", worker, "delivered", req.Claim.Delivered, "attempt", st.Attempt, "attempt_worker", st.Worker)
	case action != cluster.ActionTrain:
		c.log.Info("run settled", "run", st.RunID, "worker", worker, "op", op, "status", st.Status, "attempt", st.Attempt, "error", st.Error)
	}
	return reply, err
}

// owned fails with errNotOwner unless worker owns attempt of s: running
// (or orphaned: the worker was only silent) with that attempt and worker.
func owned(s *cluster.RunState, worker string, attempt int) error {
	if (s.Status != cluster.StateRunning && s.Status != cluster.StateOrphaned) || s.Attempt != attempt || s.Worker != worker {
		return errs.Wrap(errs.Cluster, "", errNotOwner, "run %s is %s, attempt %d on worker %q (this is attempt %d on %q)",
			s.RunID, s.Status, s.Attempt, s.Worker, attempt, worker)
	}
	s.Status = cluster.StateRunning
	return nil
}

// fitsElsewhere returns whether a run too big for worker's limit could
// go to another live worker (one with a larger limit, or none), for an
// estimate of est bytes.
func (c *Coordinator) fitsElsewhere(ctx context.Context, worker string, limit int64) func(est int64) bool {
	return func(est int64) bool {
		live, err := c.workersNow(ctx)
		if err != nil {
			return true // unsure: let another worker try
		}
		for id, w := range live {
			if id != worker && (w.MemoryLimit <= 0 || w.MemoryLimit >= est) {
				return true
			}
		}
		return false
	}
}

// claim starts the next attempt of a run on worker, or settles a run
// that must not start. The RUNS message was delivered to worker, so a
// running run's lease ran out: its attempt is taken over — unless the
// claim repeats the one that started the current attempt (see
// repeatedClaim), or holds an older delivery of the message than that
// claim did (see staleClaim). A run whose memory estimate exceeds the
// worker's limit goes back to the queue when another live worker could
// take it, and fails otherwise.
func claim(s *cluster.RunState, worker string, req *cluster.WorkerRequest, elsewhere func(int64) bool) (string, error) {
	switch {
	case cluster.Terminal(s.Status):
		return cluster.ActionAck, cluster.ErrStopUpdate
	case s.CancelRequested:
		// No attempt will report on the run again: its records are final.
		s.Status, s.Worker, s.RecordsFinal = cluster.StateCancelled, "", true
		return cluster.ActionAck, nil
	case repeatedClaim(s, worker, req):
		// The reply to this claim was lost: answer the attempt it started.
		if s.Status == cluster.StateRunning && req.Claim.Delivered <= s.Claim.Delivered {
			return cluster.ActionTrain, cluster.ErrStopUpdate
		}
		c := *s.Claim
		c.Delivered = max(c.Delivered, req.Claim.Delivered)
		s.Status, s.Claim = cluster.StateRunning, &c
		return cluster.ActionTrain, nil
	case staleClaim(s, req):
		return cluster.ActionLeave, cluster.ErrStopUpdate
	case s.UsedAttempts() >= cluster.MaxAttempts:
		s.Status, s.Worker = cluster.StateFailed, ""
		// The last attempt's worker did not end its records (it died, or
		// lost the message's lease, before it reported the attempt's end):
		// unless no attempt ever started, the collector ends them from
		// this state. (A claim whose reply was lost is repeated and gets
		// its attempt back, see repeatedClaim; it ends up here only when
		// the message went to another worker or process meanwhile.)
		s.RecordsFinal, s.RecordsOrphaned = s.Attempt == 0, s.Attempt > 0
		if s.Error == "" {
			s.Error = fmt.Sprintf("gave up after %d attempts", s.UsedAttempts())
		}
		return cluster.ActionTerm, nil
	case req.MemoryLimit > 0 && s.MemoryEstimate > req.MemoryLimit:
		if elsewhere(s.MemoryEstimate) {
			return cluster.ActionNak, cluster.ErrStopUpdate
		}
		s.Status, s.Worker, s.RecordsFinal, s.Retryable = cluster.StateFailed, "", true, false
		s.Error = fmt.Sprintf("admission: the run needs about %s (estimated from its spec), more than worker %s's memory limit of %s",
			train.FormatBytes(s.MemoryEstimate), worker, train.FormatBytes(req.MemoryLimit))
		s.ErrorKind = errs.Memory.String()
		return cluster.ActionTerm, nil
	}
	s.Status, s.Worker = cluster.StateRunning, worker
	s.Attempt++
	for len(s.Owners) < s.Attempt-1 {
		s.Owners = append(s.Owners, "") // attempts from before owners were recorded
	}
	s.Owners = append(s.Owners[:s.Attempt-1], worker)
	s.Claim = nil
	if req.Claim != nil {
		c := *req.Claim
		s.Claim = &c
	}
	return cluster.ActionTrain, nil
}

// repeatedClaim reports whether req repeats the claim that started s's
// current attempt: the same worker process, for the same RUNS message,
// and the process has not started that attempt. Its reply was lost (the
// broker restarted, the request timed out), so the process does not know
// the attempt; a new one would use up an attempt that never ran. A
// process whose attempt started and died (a crashed attempt process
// whose outcome did not get through) names that attempt in Started and
// gets a new one, so no attempt's records are written twice.
func repeatedClaim(s *cluster.RunState, worker string, req *cluster.WorkerRequest) bool {
	return (s.Status == cluster.StateRunning || s.Status == cluster.StateOrphaned) && s.Worker == worker &&
		s.Claim != nil && req.Claim != nil && req.Claim.Instance != "" &&
		req.Claim.Instance == s.Claim.Instance && req.Claim.Seq == s.Claim.Seq && req.Started < s.Attempt
}

// staleClaim reports whether req holds an older delivery of the RUNS
// message than the claim of s's running attempt: the message was
// delivered again since (the claimant's lease ran out while its claim was
// on the way or being retried), and the attempt of the newer delivery is
// not taken over by the older one.
func staleClaim(s *cluster.RunState, req *cluster.WorkerRequest) bool {
	return s.Status == cluster.StateRunning && s.Claim != nil && req.Claim != nil && req.Claim.Seq != 0 &&
		req.Claim.Seq == s.Claim.Seq && req.Claim.Delivered < s.Claim.Delivered
}

func progress(s *cluster.RunState, worker string, req *cluster.WorkerRequest) error {
	was := s.Status
	if err := owned(s, worker, req.Attempt); err != nil {
		return err
	}
	if was == s.Status && req.Step <= s.Step && (req.Total == 0 || req.Total == s.TotalSteps) {
		return cluster.ErrStopUpdate // nothing new: answer the state as it is
	}
	s.Step = max(s.Step, req.Step)
	if req.Total > 0 {
		s.TotalSteps = req.Total
	}
	return nil
}

// checkpoint records the resume point of an owned attempt: an object
// under the attempt's own prefix, so no other attempt's late write can
// replace what a resume loads.
func checkpoint(s *cluster.RunState, worker string, req *cluster.WorkerRequest) error {
	if err := owned(s, worker, req.Attempt); err != nil {
		return err
	}
	r := req.Resume
	prefix := fmt.Sprintf("runs/%s/checkpoints/a%d/", s.RunID, req.Attempt)
	switch {
	case r == nil || r.Attempt != req.Attempt || !strings.HasPrefix(r.Key, prefix) || r.Size <= 0:
		return errs.New(errs.Argument, cluster.WOpCheckpoint, "run %s attempt %d: resume point %+v must name an object under %s", s.RunID, req.Attempt, r, prefix)
	case s.Resume != nil && r.Step < s.Resume.Step:
		return cluster.ErrStopUpdate // an older checkpoint (a retried request): keep the newer
	}
	rp := *r
	s.Resume, s.Step = &rp, max(s.Step, r.Step)
	return nil
}

// finish records an owned attempt's outcome. A failure whose kind a retry
// cannot help ends the run at once; another goes back to the queue until
// MaxAttempts attempts were used.
func finish(s *cluster.RunState, worker string, req *cluster.WorkerRequest) (string, error) {
	if action, ok := finishedBefore(s, worker, req); ok {
		return action, cluster.ErrStopUpdate
	}
	if err := owned(s, worker, req.Attempt); err != nil {
		return "", err
	}
	o := req.Outcome
	if o == nil {
		return "", errs.New(errs.Argument, cluster.WOpFinish, "run %s: finish without an outcome", s.RunID)
	}
	switch o.Status {
	case cluster.StateSucceeded:
		s.Status, s.Error, s.ErrorKind, s.Retryable = cluster.StateSucceeded, "", "", false
		s.Step = max(s.Step, o.Step)
		return cluster.ActionAck, nil
	case cluster.StateCancelled:
		s.Status = cluster.StateCancelled
		return cluster.ActionAck, nil
	case cluster.StateFailed:
	default:
		return "", errs.New(errs.Argument, cluster.WOpFinish, "run %s: outcome %q, want succeeded, failed or cancelled", s.RunID, o.Status)
	}
	s.Error, s.ErrorKind, s.Retryable = o.Error, o.Kind, o.Retryable
	switch {
	case s.CancelRequested:
		s.Status = cluster.StateCancelled
		return cluster.ActionAck, nil
	case !o.Retryable:
		s.Status = cluster.StateFailed
		return cluster.ActionTerm, nil
	case s.UsedAttempts() >= cluster.MaxAttempts:
		s.Status = cluster.StateFailed
		s.Error = fmt.Sprintf("%s (gave up after %d attempts)", o.Error, s.UsedAttempts())
		return cluster.ActionTerm, nil
	}
	s.Status, s.Worker = cluster.StateQueued, ""
	return cluster.ActionNak, nil
}

// finishedBefore reports whether req repeats the outcome that worker
// already recorded for its attempt — a finish whose reply was lost, sent
// again — and the action finish answered it with. The repeat gets the same
// answer and changes nothing, so the worker settles its message at once
// instead of leaving it to be redelivered.
func finishedBefore(s *cluster.RunState, worker string, req *cluster.WorkerRequest) (string, bool) {
	o := req.Outcome
	if o == nil || req.Attempt < 1 || s.Attempt != req.Attempt || s.Owner(req.Attempt) != worker {
		return "", false
	}
	failed := o.Status == cluster.StateFailed && s.ErrorKind == o.Kind && strings.HasPrefix(s.Error, o.Error)
	switch {
	case s.Status == cluster.StateSucceeded && o.Status == cluster.StateSucceeded:
		return cluster.ActionAck, true
	case s.Status == cluster.StateCancelled && (o.Status == cluster.StateCancelled || failed && s.CancelRequested):
		return cluster.ActionAck, true
	case s.Status == cluster.StateFailed && failed:
		return cluster.ActionTerm, true
	case s.Status == cluster.StateQueued && s.Worker == "" && failed && o.Retryable:
		return cluster.ActionNak, true
	}
	return "", false
}

// handBack gives an owned attempt back to the queue (its worker is
// stopping) without using up an attempt.
func handBack(s *cluster.RunState, worker string, req *cluster.WorkerRequest) (string, error) {
	if err := owned(s, worker, req.Attempt); err != nil {
		return "", err
	}
	if s.CancelRequested {
		s.Status = cluster.StateCancelled
		return cluster.ActionAck, nil
	}
	s.Status, s.Worker = cluster.StateQueued, ""
	s.HandBacks++
	return cluster.ActionNak, nil
}

// reject fails a run whose RUNS message a worker dead-lettered: no worker
// can ever start it.
func reject(s *cluster.RunState, req *cluster.WorkerRequest) (string, error) {
	if cluster.Terminal(s.Status) {
		return cluster.ActionAck, cluster.ErrStopUpdate
	}
	s.Status, s.Worker, s.RecordsFinal = cluster.StateFailed, "", true
	s.Error, s.ErrorKind, s.Retryable = "run request dead-lettered: "+req.Reason, errs.Unsupported.String(), false
	return cluster.ActionTerm, nil
}

// serveFinal records that the collector wrote the final records of a
// run's terminal attempt.
func (c *Coordinator) serveFinal(ctx context.Context, m *nats.Msg) {
	const op = "final"
	if m.Reply == "" {
		return
	}
	var n cluster.FinalNotice
	err := cluster.Decode(m.Data, cluster.TypeFinalNotice, &n)
	if err == nil {
		err = checkRunID(n.RunID)
	}
	if err == nil {
		_, _, err = c.update(ctx, n.RunID, func(s *cluster.RunState) error {
			if s.RecordsFinal || !cluster.Terminal(s.Status) || s.Attempt != n.Attempt || s.Status != n.Status {
				return cluster.ErrStopUpdate // not this attempt's end, or already known
			}
			s.RecordsFinal = true
			return nil
		})
	}
	reply := &cluster.APIReply{}
	if err != nil {
		reply.Error, reply.Kind = err.Error(), errs.KindOf(err).String()
		c.log.Warn("records-final notice failed", "run", n.RunID, "err", err)
	}
	c.respond(m, op, cluster.TypeAPIReply, reply)
}
