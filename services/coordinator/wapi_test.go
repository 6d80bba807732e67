package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/errs"
)

func resumeAt(id string, attempt int, step int64) *cluster.ResumePoint {
	return &cluster.ResumePoint{Attempt: attempt, Step: step, Key: fmt.Sprintf("runs/%s/checkpoints/a%d/step-%012d.rtch", id, attempt, step),
		Size: 100, CRC32C: 7}
}

// TestWorkerTransitions walks a run through the worker API: claims,
// progress, resume points and outcomes, with every request of a worker
// that does not own the attempt refused and changing nothing.
func TestWorkerTransitions(t *testing.T) {
	e := startEnv(t, true)
	id := e.submit(t)
	r := e.ask(t, "w1", cluster.WOpClaim, cluster.WorkerRequest{RunID: id})
	if r.Action != cluster.ActionTrain || r.State.Status != cluster.StateRunning || r.State.Attempt != 1 || r.State.Owner(1) != "w1" {
		t.Fatalf("claim by w1 = %+v; want train attempt 1 owned by w1", r)
	}
	steps := []struct {
		name, worker, op string
		req              cluster.WorkerRequest
		notOwner         bool
		errHas           string
		action, status   string
		unchanged        bool // an answer that must not change the state
		check            func(cluster.RunState) string
	}{
		{name: "progress by another worker", worker: "w2", op: cluster.WOpProgress, req: cluster.WorkerRequest{RunID: id, Attempt: 1, Step: 5},
			notOwner: true, errHas: `attempt 1 on worker "w1"`},
		{name: "progress", worker: "w1", op: cluster.WOpProgress, req: cluster.WorkerRequest{RunID: id, Attempt: 1, Step: 5, Total: 10},
			status: cluster.StateRunning, check: func(s cluster.RunState) string {
				return fmt.Sprintf("step %d/%d", s.Step, s.TotalSteps)
			}},
		{name: "resume point outside the attempt's prefix", worker: "w1", op: cluster.WOpCheckpoint,
			req: cluster.WorkerRequest{RunID: id, Attempt: 1, Resume: resumeAt(id, 2, 6)}, errHas: "must name an object under runs/" + id + "/checkpoints/a1/"},
		{name: "checkpoint", worker: "w1", op: cluster.WOpCheckpoint, req: cluster.WorkerRequest{RunID: id, Attempt: 1, Resume: resumeAt(id, 1, 6)},
			status: cluster.StateRunning, check: func(s cluster.RunState) string { return fmt.Sprintf("resume %d", s.Resume.Step) }},
		{name: "an older checkpoint keeps the newer", worker: "w1", op: cluster.WOpCheckpoint,
			req: cluster.WorkerRequest{RunID: id, Attempt: 1, Resume: resumeAt(id, 1, 4)}, status: cluster.StateRunning,
			check: func(s cluster.RunState) string { return fmt.Sprintf("resume %d", s.Resume.Step) }},
		{name: "retryable failure requeues", worker: "w1", op: cluster.WOpFinish, req: cluster.WorkerRequest{RunID: id, Attempt: 1,
			Outcome: &cluster.Outcome{Status: cluster.StateFailed, Error: "store down", Kind: "io", Retryable: true}},
			action: cluster.ActionNak, status: cluster.StateQueued, check: func(s cluster.RunState) string {
				return fmt.Sprintf("%s %s %v worker %q", s.Error, s.ErrorKind, s.Retryable, s.Worker)
			}},
		{name: "the same failure again (its reply was lost) gets the same answer", worker: "w1", op: cluster.WOpFinish,
			req: cluster.WorkerRequest{RunID: id, Attempt: 1,
				Outcome: &cluster.Outcome{Status: cluster.StateFailed, Error: "store down", Kind: "io", Retryable: true}},
			action: cluster.ActionNak, status: cluster.StateQueued, unchanged: true},
		{name: "w2 takes the next attempt", worker: "w2", op: cluster.WOpClaim, req: cluster.WorkerRequest{RunID: id},
			action: cluster.ActionTrain, status: cluster.StateRunning, check: func(s cluster.RunState) string {
				return fmt.Sprintf("attempt %d owners %v resume %d", s.Attempt, s.Owners, s.Resume.Step)
			}},
		{name: "the stale attempt's checkpoint is refused", worker: "w1", op: cluster.WOpCheckpoint,
			req: cluster.WorkerRequest{RunID: id, Attempt: 1, Resume: resumeAt(id, 1, 8)}, notOwner: true, errHas: "not the run's owner"},
		{name: "the stale attempt's outcome is refused", worker: "w1", op: cluster.WOpFinish,
			req: cluster.WorkerRequest{RunID: id, Attempt: 1, Outcome: &cluster.Outcome{Status: cluster.StateSucceeded}}, notOwner: true},
		{name: "a terminal failure ends the run at once", worker: "w2", op: cluster.WOpFinish, req: cluster.WorkerRequest{RunID: id, Attempt: 2,
			Outcome: &cluster.Outcome{Status: cluster.StateFailed, Error: "loss is NaN at step 3", Kind: "training"}},
			action: cluster.ActionTerm, status: cluster.StateFailed, check: func(s cluster.RunState) string {
				return fmt.Sprintf("%s %s %v resume %d", s.Error, s.ErrorKind, s.Retryable, s.Resume.Step)
			}},
		{name: "that outcome again gets the same answer", worker: "w2", op: cluster.WOpFinish, req: cluster.WorkerRequest{RunID: id, Attempt: 2,
			Outcome: &cluster.Outcome{Status: cluster.StateFailed, Error: "loss is NaN at step 3", Kind: "training"}},
			action: cluster.ActionTerm, status: cluster.StateFailed, unchanged: true},
		{name: "another outcome for that attempt is refused", worker: "w2", op: cluster.WOpFinish, req: cluster.WorkerRequest{RunID: id, Attempt: 2,
			Outcome: &cluster.Outcome{Status: cluster.StateSucceeded}}, notOwner: true},
		{name: "the old attempt's worker repeating its outcome is refused", worker: "w1", op: cluster.WOpFinish,
			req: cluster.WorkerRequest{RunID: id, Attempt: 1,
				Outcome: &cluster.Outcome{Status: cluster.StateFailed, Error: "store down", Kind: "io", Retryable: true}}, notOwner: true},
		{name: "a claim of a finished run drops the request", worker: "w3", op: cluster.WOpClaim, req: cluster.WorkerRequest{RunID: id},
			action: cluster.ActionAck, status: cluster.StateFailed},
	}
	want := map[string]string{
		"progress":                                "step 5/10",
		"checkpoint":                              "resume 6",
		"an older checkpoint keeps the newer":     "resume 6",
		"retryable failure requeues":              `store down io true worker ""`,
		"w2 takes the next attempt":               "attempt 2 owners [w1 w2] resume 6",
		"a terminal failure ends the run at once": "loss is NaN at step 3 training false resume 6",
	}
	for _, s := range steps {
		before, _ := e.cli.Status(context.Background(), id)
		r := e.ask(t, s.worker, s.op, s.req)
		switch {
		case r.NotOwner != s.notOwner:
			t.Errorf("%s: NotOwner = %v; want %v (reply %+v)", s.name, r.NotOwner, s.notOwner, r)
		case (r.Error != "") != (s.errHas != "" || s.notOwner) || !strings.Contains(r.Error, s.errHas):
			t.Errorf("%s: error %q; want one containing %q", s.name, r.Error, s.errHas)
		case r.Error != "":
			if after, _ := e.cli.Status(context.Background(), id); !after.Updated.Equal(before.Updated) {
				t.Errorf("%s: refused, yet the state changed: %+v", s.name, after)
			}
		case r.Action != s.action || r.State.Status != s.status:
			t.Errorf("%s: action %q, status %q; want %q, %q", s.name, r.Action, r.State.Status, s.action, s.status)
		case s.check != nil && s.check(r.State) != want[s.name]:
			t.Errorf("%s: %s; want %s", s.name, s.check(r.State), want[s.name])
		case s.unchanged:
			if after, _ := e.cli.Status(context.Background(), id); !after.Updated.Equal(before.Updated) || after.Attempt != before.Attempt {
				t.Errorf("%s: answered, but the state changed: %+v -> %+v", s.name, before, after)
			}
		}
	}
}

// TestHandBacksAndAttempts: a hand-back requeues without using an
// attempt; retryable failures do, until MaxAttempts ends the run; a
// dead-lettered request fails its run with the reason.
func TestHandBacksAndAttempts(t *testing.T) {
	e := startEnv(t, true)
	id := e.submit(t)
	r := e.ask(t, "w1", cluster.WOpClaim, cluster.WorkerRequest{RunID: id})
	r = e.ask(t, "w1", cluster.WOpHandBack, cluster.WorkerRequest{RunID: id, Attempt: r.State.Attempt})
	if r.Action != cluster.ActionNak || r.State.Status != cluster.StateQueued || r.State.HandBacks != 1 || r.State.UsedAttempts() != 0 {
		t.Fatalf("hand-back = %+v; want queued, 1 hand-back, no attempt used", r)
	}
	for i := 1; i <= cluster.MaxAttempts; i++ {
		r = e.ask(t, "w1", cluster.WOpClaim, cluster.WorkerRequest{RunID: id})
		r = e.ask(t, "w1", cluster.WOpFinish, cluster.WorkerRequest{RunID: id, Attempt: r.State.Attempt,
			Outcome: &cluster.Outcome{Status: cluster.StateFailed, Error: "flaky", Kind: "io", Retryable: true}})
	}
	if st := r.State; r.Action != cluster.ActionTerm || st.Status != cluster.StateFailed || st.Error != "flaky (gave up after 3 attempts)" {
		t.Errorf("after %d retryable failures: %+v; want failed, gave up after 3 attempts", cluster.MaxAttempts, r)
	}

	id = e.submit(t)
	r = e.ask(t, "w1", cluster.WOpReject, cluster.WorkerRequest{RunID: id, Reason: "unsupported wire version 9"})
	if st := r.State; r.Action != cluster.ActionTerm || st.Status != cluster.StateFailed || !st.RecordsFinal ||
		st.Error != "run request dead-lettered: unsupported wire version 9" || st.ErrorKind != "unsupported" {
		t.Errorf("reject = %+v; want failed with the reason, records final", r)
	}
}

// TestClaimsThatGiveUpLeaveRecordsToTheCollector: attempts taken over by
// claims (their workers died, or lost the message's lease) until the
// next claim gives up: the run fails, and its records are marked orphaned
// (the collector ends them from the state), not final — no worker ended
// them. A run that never started has final records at once.
func TestClaimsThatGiveUpLeaveRecordsToTheCollector(t *testing.T) {
	e := startEnv(t, true)
	id := e.submit(t)
	var r cluster.WorkerReply
	for i := 0; i <= cluster.MaxAttempts; i++ {
		r = e.ask(t, "w1", cluster.WOpClaim, cluster.WorkerRequest{RunID: id})
	}
	if st := r.State; r.Action != cluster.ActionTerm || st.Status != cluster.StateFailed || st.Attempt != cluster.MaxAttempts ||
		st.RecordsFinal || !st.RecordsOrphaned || st.Error != "gave up after 3 attempts" {
		t.Errorf("claim after %d taken-over attempts = %+v; want failed, gave up, records orphaned and not final", cluster.MaxAttempts, r)
	}
}

// TestClaimsAreIdempotent: a claim repeated by the same worker process
// for the same RUNS message (its reply was lost; the message may have
// been redelivered meanwhile) is answered with the attempt it started,
// even the last one; a claim for an older delivery than the current
// attempt's is left alone; the same worker after its attempt started (a
// crashed attempt process), a restarted worker process and another
// worker's newer delivery get a new attempt; a cancel still wins.
func TestClaimsAreIdempotent(t *testing.T) {
	e := startEnv(t, true)
	claimBy := func(id string, inst string, seq, dlv uint64, started int) cluster.WorkerRequest {
		return cluster.WorkerRequest{RunID: id, Claim: &cluster.ClaimInfo{Instance: inst, Seq: seq, Delivered: dlv}, Started: started}
	}
	type step struct {
		name, worker string
		req          cluster.WorkerRequest
		want         string // action, status, attempt, worker, owners, claim
	}
	a, b := e.submit(t), e.submit(t)
	steps := []step{
		{"first claim", "w1", claimBy(a, "p1", 1, 1, 0), "train running 1 w1 [w1] p1/1/1"},
		{"the same claim again (reply lost)", "w1", claimBy(a, "p1", 1, 1, 0), "train running 1 w1 [w1] p1/1/1"},
		{"redelivered to the same process (reply lost, message nak'ed)", "w1", claimBy(a, "p1", 1, 2, 0), "train running 1 w1 [w1] p1/1/2"},
		{"another worker's claim for an older delivery", "w2", claimBy(a, "p2", 1, 1, 0), "leave running 1 w1 [w1] p1/1/2"},
		{"the process started attempt 1 and it died", "w1", claimBy(a, "p1", 1, 3, 1), "train running 2 w1 [w1 w1] p1/1/3"},
		{"a restarted process with the same worker id", "w1", claimBy(a, "p9", 1, 4, 0), "train running 3 w1 [w1 w1 w1] p9/1/4"},
		{"the last attempt's claim repeated", "w1", claimBy(a, "p9", 1, 4, 0), "train running 3 w1 [w1 w1 w1] p9/1/4"},
		{"a takeover with every attempt used", "w2", claimBy(a, "p2", 1, 5, 0), "term failed 3  [w1 w1 w1] p9/1/4"},

		{"first claim", "w1", claimBy(b, "p1", 2, 1, 0), "train running 1 w1 [w1] p1/2/1"},
		{"takeover by another worker after the lease ran out", "w2", claimBy(b, "p2", 2, 2, 0), "train running 2 w2 [w1 w2] p2/2/2"},
		{"the first worker's claim retried (its reply was lost)", "w1", claimBy(b, "p1", 2, 1, 0), "leave running 2 w2 [w1 w2] p2/2/2"},
		{"the first worker's next delivery takes over", "w1", claimBy(b, "p1", 2, 3, 0), "train running 3 w1 [w1 w2 w1] p1/2/3"},
	}
	for i, s := range steps {
		r := e.ask(t, s.worker, cluster.WOpClaim, s.req)
		st := r.State
		claim := "-"
		if c := st.Claim; c != nil {
			claim = fmt.Sprintf("%s/%d/%d", c.Instance, c.Seq, c.Delivered)
		}
		got := fmt.Sprintf("%s %s %d %s %v %s", r.Action, st.Status, st.Attempt, st.Worker, st.Owners, claim)
		if r.Error != "" || got != s.want {
			t.Errorf("step %d (%s): claim by %s = %q (err %q); want %q", i+1, s.name, s.worker, got, r.Error, s.want)
		}
	}
	if st, err := e.cli.Status(context.Background(), a); err != nil || st.Error != "gave up after 3 attempts" || !st.RecordsOrphaned {
		t.Errorf("status of %s = error %q, records orphaned %v (%v); want gave up after 3 attempts, orphaned", a, st.Error, st.RecordsOrphaned, err)
	}
	// The stale attempt stays fenced: its progress is refused.
	if r := e.ask(t, "w2", cluster.WOpProgress, cluster.WorkerRequest{RunID: b, Attempt: 2, Step: 3}); !r.NotOwner {
		t.Errorf("progress of taken-over attempt 2 = %+v; want not owner", r)
	}
	if err := e.cli.Cancel(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	r := e.ask(t, "w1", cluster.WOpClaim, claimBy(b, "p1", 2, 3, 0))
	if r.Action != cluster.ActionAck || r.State.Status != cluster.StateCancelled {
		t.Errorf("repeated claim of a run being cancelled = %s %s; want ack cancelled", r.Action, r.State.Status)
	}
}

// TestOrphanedAndWorkers: a worker's heartbeat shows in `workers`; when it
// expires, the coordinator marks the worker's running run orphaned, and
// the records of a run it finished without the collector saying they are
// final (it died before its "finished" event) orphaned too; a claim takes
// the orphaned run over.
func TestOrphanedAndWorkers(t *testing.T) {
	e := startEnv(t, true)
	ctx := context.Background()
	wkv, err := e.js.KeyValue(ctx, cluster.BucketWorkers)
	if err != nil {
		t.Fatal(err)
	}
	finish := func(id string) {
		e.ask(t, "w1", cluster.WOpClaim, cluster.WorkerRequest{RunID: id})
		r := e.ask(t, "w1", cluster.WOpFinish, cluster.WorkerRequest{RunID: id, Attempt: 1, Outcome: &cluster.Outcome{Status: cluster.StateSucceeded}})
		if r.State.Finished.IsZero() || !r.State.Finished.Equal(r.State.Updated) {
			t.Errorf("finished run %+v; want Finished set to its last update", r.State)
		}
	}
	unreported, final := e.submit(t), e.submit(t)
	finish(unreported)
	finish(final)
	e.final(t, final, 1, cluster.StateSucceeded)
	id := e.submit(t)
	e.ask(t, "w1", cluster.WOpClaim, cluster.WorkerRequest{RunID: id})
	beat := func() {
		b, _ := msgpack.Marshal(&cluster.WorkerInfo{ID: "w1", Host: "h", Slots: 2, Busy: 1, MemoryLimit: 3 << 30, Runs: []string{id},
			Version: "test", Seen: time.Now().UTC()})
		if _, err := wkv.Put(ctx, cluster.WorkerKey("w1"), b); err != nil {
			t.Fatal(err)
		}
	}
	beat()
	ws, err := e.cli.Workers(ctx)
	if err != nil || len(ws) != 1 || ws[0].ID != "w1" || ws[0].Slots != 2 || ws[0].MemoryLimit != 3<<30 || len(ws[0].Runs) != 1 || !ws[0].Alive {
		t.Fatalf("Workers = %+v, %v; want w1 with 2 slots, a 3 GiB limit and one run", ws, err)
	}
	// Heartbeat past the coordinator's first look, then fall silent.
	for range 5 {
		beat()
		time.Sleep(300 * time.Millisecond)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if st, err := e.cli.Status(ctx, id); err != nil || st.Status != cluster.StateOrphaned || st.Worker != "w1" || st.Attempt != 1 {
			return fmt.Errorf("state %+v, %v; want orphaned on w1, attempt 1", st, err)
		}
		return nil
	})
	if ws, err := e.cli.Workers(ctx); err != nil || len(ws) != 0 {
		t.Errorf("Workers after w1 fell silent = %+v, %v; want none", ws, err)
	}
	if st, err := e.cli.Status(ctx, unreported); err != nil || !st.RecordsOrphaned || st.RecordsFinal || st.Status != cluster.StateSucceeded {
		t.Errorf("run w1 finished, records not final: %+v, %v; want succeeded, records orphaned", st, err)
	}
	if st, err := e.cli.Status(ctx, final); err != nil || st.RecordsOrphaned || !st.RecordsFinal {
		t.Errorf("run w1 finished, records final: %+v, %v; want records final, not orphaned", st, err)
	}
	r := e.ask(t, "w2", cluster.WOpClaim, cluster.WorkerRequest{RunID: id})
	if r.Action != cluster.ActionTrain || r.State.Status != cluster.StateRunning || r.State.Attempt != 2 || r.State.Worker != "w2" {
		t.Errorf("claim of the orphaned run = %+v; want attempt 2 on w2", r)
	}
}

// TestRecordsFinal: the collector's notice marks the records of a run's
// terminal attempt final; a notice for another attempt or a run still
// going changes nothing.
func TestRecordsFinal(t *testing.T) {
	e := startEnv(t, true)
	ctx := context.Background()
	id := e.submit(t)
	e.ask(t, "w1", cluster.WOpClaim, cluster.WorkerRequest{RunID: id})
	e.final(t, id, 1, cluster.StateSucceeded) // not finished yet
	if st, _ := e.cli.Status(ctx, id); st.RecordsFinal {
		t.Errorf("records final while the run is running: %+v", st)
	}
	e.ask(t, "w1", cluster.WOpFinish, cluster.WorkerRequest{RunID: id, Attempt: 1, Outcome: &cluster.Outcome{Status: cluster.StateSucceeded, Step: 10}})
	e.final(t, id, 2, cluster.StateSucceeded) // another attempt
	if st, _ := e.cli.Status(ctx, id); st.RecordsFinal {
		t.Errorf("records final after a notice for attempt 2: %+v", st)
	}
	e.final(t, id, 1, cluster.StateSucceeded)
	if st, _ := e.cli.Status(ctx, id); !st.RecordsFinal || st.Status != cluster.StateSucceeded || st.Step != 10 {
		t.Errorf("after the notice: %+v; want succeeded at step 10 with records final", st)
	}
}

// final sends the collector's notice that the records of run id's attempt
// are final.
func (e *env) final(t *testing.T, id string, attempt int, status string) {
	t.Helper()
	b, _ := cluster.Encode(cluster.TypeFinalNotice, &cluster.FinalNotice{RunID: id, Attempt: attempt, Status: status})
	m, err := e.nc.Request(cluster.CollectorFinalSubject, b, 5*time.Second)
	var r cluster.APIReply
	if err == nil {
		err = cluster.Decode(m.Data, cluster.TypeAPIReply, &r)
	}
	if err != nil || r.Error != "" {
		t.Fatalf("final notice: %v %s", err, r.Error)
	}
}

// TestMalformedStateIsQuarantined: a value in the runs bucket that does
// not decode makes its run failed with the reason, instead of failing
// every status and cancel.
func TestMalformedStateIsQuarantined(t *testing.T) {
	e := startEnv(t, true)
	ctx := context.Background()
	const id = "20990101T000000.000000Z-0000beef"
	if _, err := e.kv.Put(ctx, cluster.RunKey(id), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	st, err := e.cli.Status(ctx, id)
	if err != nil || st.Status != cluster.StateFailed || !strings.HasPrefix(st.Error, "quarantined: the run's state in bucket runs could not be read") {
		t.Errorf("Status(malformed) = %+v, %v; want failed, quarantined", st, err)
	}
	if err := e.cli.Cancel(ctx, id); err == nil || !strings.Contains(err.Error(), "already failed") {
		t.Errorf("Cancel(quarantined) = %v; want already failed", err)
	}
	if r := e.ask(t, "w1", cluster.WOpClaim, cluster.WorkerRequest{RunID: id}); r.Action != cluster.ActionAck {
		t.Errorf("claim of a quarantined run = %+v; want ack (drop the request)", r)
	}
}

// oomSpec is the spec that does not fit: an MLP with a hidden
// layer of 20 million units (about 390 GiB with Adam).
const oomSpec = `
model: {name: mlp, hidden: [20000000]}
dataset: {name: fashion-mnist}
optimizer: {name: adam, lr: 0.001}
steps: 10
batch_size: 64
`

// TestAdmission: with workers' limits known from their heartbeats, a run
// that fits none is refused at submit (a sweep all or nothing) with one
// line naming the estimate and the limit; a run submitted while no
// worker was known fails at its claim by a worker too small for it, or
// goes back to the queue when a bigger worker is alive.
func TestAdmission(t *testing.T) {
	e := startEnv(t, true)
	ctx := context.Background()
	// Submitted before any worker is known: accepted.
	early, err := e.cli.Submit(ctx, []byte(oomSpec), "")
	if err != nil {
		t.Fatalf("Submit with no worker known = %v; want accepted (the claim decides)", err)
	}
	wkv, err := e.js.KeyValue(ctx, cluster.BucketWorkers)
	if err != nil {
		t.Fatal(err)
	}
	beat := func(id string, limit int64) {
		b, _ := msgpack.Marshal(&cluster.WorkerInfo{ID: id, Slots: 1, MemoryLimit: limit, Seen: time.Now().UTC()})
		if _, err := wkv.Put(ctx, cluster.WorkerKey(id), b); err != nil {
			t.Fatal(err)
		}
	}
	beat("small", 4<<30)
	time.Sleep(workersFresh) // the coordinator's listing of the workers is at most this old
	_, err = e.cli.Submit(ctx, []byte(oomSpec), "")
	if !errors.Is(err, errs.Memory) || !strings.Contains(err.Error(), "the run needs about 389.9 GiB (parameters 59.2 GiB") ||
		!strings.Contains(err.Error(), "more than every worker's memory limit of 4.0 GiB") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Submit(oom spec) with a 4 GiB worker = %v; want a memory error naming the estimate and the limit", err)
	}
	sweep := "name: mix\nbase:\n" + indent(oomSpec) + "grid:\n  model.hidden: [[16], [20000000]]\n"
	if ids, err := e.cli.Sweep(ctx, []byte(sweep)); !errors.Is(err, errs.Memory) || len(ids) != 0 || !strings.Contains(err.Error(), "run mix-1") {
		t.Errorf("Sweep with one run too big = %v, %v; want refused whole, naming mix-1", ids, err)
	}
	if states, _ := e.cli.List(ctx); len(states) != 1 {
		t.Errorf("after the refusals the cluster lists %d runs, want the one submitted before", len(states))
	}

	// The claim of the early run by the small worker.
	beat("big", 0)           // no limit: the run may fit there
	time.Sleep(workersFresh) // for the coordinator to see it
	r := e.ask(t, "small", cluster.WOpClaim, cluster.WorkerRequest{RunID: early[0], MemoryLimit: 4 << 30})
	if r.Action != cluster.ActionNak || r.State.Status != cluster.StateQueued || r.State.Attempt != 0 {
		t.Errorf("claim by a too small worker while a bigger one lives = %+v; want nak, still queued", r)
	}
	if err := wkv.Delete(ctx, cluster.WorkerKey("big")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(workersFresh)
	r = e.ask(t, "small", cluster.WOpClaim, cluster.WorkerRequest{RunID: early[0], MemoryLimit: 4 << 30})
	if st := r.State; r.Action != cluster.ActionTerm || st.Status != cluster.StateFailed || st.Attempt != 0 || st.ErrorKind != "memory" ||
		!strings.HasPrefix(st.Error, "admission: the run needs about 389.9 GiB") || !strings.Contains(st.Error, "worker small's memory limit of 4.0 GiB") {
		t.Errorf("claim by a too small worker, none bigger = %+v; want failed at once with the estimate and the limit", r)
	}
}

// TestRepeatedFinishIsAnsweredAgain: a worker that sends its success
// again (the first reply was lost) is told to ack, and nothing changes;
// the same outcome from another worker is refused.
func TestRepeatedFinishIsAnsweredAgain(t *testing.T) {
	e := startEnv(t, true)
	id := e.submit(t)
	e.ask(t, "w1", cluster.WOpClaim, cluster.WorkerRequest{RunID: id})
	done := cluster.WorkerRequest{RunID: id, Attempt: 1, Outcome: &cluster.Outcome{Status: cluster.StateSucceeded, Step: 10}}
	first := e.ask(t, "w1", cluster.WOpFinish, done)
	again := e.ask(t, "w1", cluster.WOpFinish, done)
	if first.Action != cluster.ActionAck || again.Action != cluster.ActionAck || again.Error != "" ||
		again.State.Status != cluster.StateSucceeded || !again.State.Updated.Equal(first.State.Updated) {
		t.Errorf("finish, then the same finish: %+v, %+v; want ack twice, the state written once", first, again)
	}
	if r := e.ask(t, "w2", cluster.WOpFinish, done); !r.NotOwner {
		t.Errorf("the same outcome from another worker = %+v; want refused as not the owner", r)
	}
}
