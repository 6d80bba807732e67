package integration

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/services/coordinator"
)

const gridSweep = `name: grid
base:
  model: {name: mlp, hidden: [32]}
  dataset: {name: blobs, size: 512}
  optimizer: {name: adam, lr: 0.01}
  steps: 150
  batch_size: 32
  checkpoint_every: 25
  eval_every: 100000
grid:
  optimizer.lr: [0.01, 0.05]
  seed: [1, 2]
  steps: [150, 400]
`

// TestSweepCompletes: a grid of 8 runs submitted with `gorch sweep` all
// succeed, each with a complete summary and a checkpoint in S3.
func TestSweepCompletes(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	c := startCluster(t, "w1", "w2", "w3")
	path := filepath.Join(c.dir, "sweep.yaml")
	if err := os.WriteFile(path, []byte(gridSweep), 0o644); err != nil {
		t.Fatal(err)
	}
	_, runs, err := coordinator.ParseSweep("sweep.yaml", []byte(gridSweep))
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Fields(c.gorch("sweep", path, "--nats", c.url))
	if len(ids) != 8 || len(runs) != 8 {
		t.Fatalf("gorch sweep printed %d run ids (%v) for %d expanded runs, want 8", len(ids), ids, len(runs))
	}
	for i, id := range ids {
		c.remember(id, spec{Steps: runs[i].Spec.Steps, CkptEvery: runs[i].Spec.CkptEvery})
	}
	final := c.waitTerminal(90*time.Second, ids...)
	c.waitRecordsFinal(30*time.Second, ids...)
	rd := experiment.NewReader(c.store)
	ctx := context.Background()
	for i, id := range ids {
		st := final[id]
		if st.Status != cluster.StateSucceeded || st.Attempt != 1 || st.Step != int64(runs[i].Spec.Steps) {
			t.Errorf("run %s = %s, attempt %d, step %d; want succeeded, attempt 1, step %d", id, st.Status, st.Attempt, st.Step, runs[i].Spec.Steps)
		}
		sum, err := rd.GetSummary(ctx, id)
		if err != nil || !sum.Complete || sum.Metrics["train/loss"].Count != int64(runs[i].Spec.Steps) {
			t.Errorf("summary of %s: complete=%v, train/loss count %d, err %v; want complete with %d", id, sum.Complete,
				sum.Metrics["train/loss"].Count, err, runs[i].Spec.Steps)
		}
		arts, err := rd.Artifacts(ctx, id)
		ckpts := 0
		for _, a := range arts {
			if a.Kind == experiment.ArtifactCheckpoint {
				ckpts++
			}
		}
		keys, _ := c.store.List(ctx, "runs/"+id+"/checkpoints/")
		if err != nil || ckpts == 0 || !hasSuffix(keys, ".rtch") || st.Resume == nil || !slices.Contains(keys, st.Resume.Key) {
			t.Errorf("run %s: %d checkpoint artifacts (err %v), checkpoint objects %v; want a checkpoint, the resume point %+v", id, ckpts, err, keys, st.Resume)
		}
	}
	if out := c.gorch("status", "--json", "--nats", c.url, ids[0]); !strings.Contains(out, `"succeeded"`) {
		t.Errorf("gorch status --json %s = %s, want succeeded", ids[0], out)
	}
	if r := c.check(); r.Succeeded != 8 || r.Unique == 0 {
		t.Errorf("checker: %d succeeded, %d records; want 8 and some", r.Succeeded, r.Unique)
	}
}

func hasSuffix(keys []string, suffix string) bool {
	for _, k := range keys {
		if strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}

// TestCancel: a running run stops and ends cancelled; a queued run
// cancelled before any worker takes it ends cancelled without starting.
func TestCancel(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	c := startCluster(t, "w1", "w2")
	long := spec{Steps: 100000, CkptEvery: 500}
	a, b := c.submit(long), c.submit(long)
	for _, id := range []string{a, b} {
		c.waitState(id, 30*time.Second, "running", func(st cluster.RunState) bool { return st.Status == cluster.StateRunning })
	}
	queued := c.submit(spec{Steps: 200, CkptEvery: 25})
	if st := c.state(queued); st.Status != cluster.StateQueued {
		t.Fatalf("third run with both slots busy is %s, want queued", st.Status)
	}
	ctx := context.Background()
	if err := c.client.Cancel(ctx, queued); err != nil {
		t.Fatal(err)
	}
	if st := c.state(queued); st.Status != cluster.StateCancelled {
		t.Errorf("queued run after cancel is %s, want cancelled at once", st.Status)
	}
	// Cancel one through the client and one through the CLI.
	if err := c.client.Cancel(ctx, a); err != nil {
		t.Fatal(err)
	}
	if out := c.gorch("cancel", b, "--nats", c.url); !strings.Contains(out, b) {
		t.Errorf("gorch cancel %s printed %q", b, out)
	}
	final := c.waitTerminal(30*time.Second, a, b, queued)
	for _, id := range []string{a, b} {
		if st := final[id]; st.Status != cluster.StateCancelled || st.Step >= int64(long.Steps) {
			t.Errorf("running run %s after cancel: %s at step %d, want cancelled before step %d", id, st.Status, st.Step, long.Steps)
		}
	}
	// The freed workers receive the cancelled run's request and must drop it.
	time.Sleep(time.Second)
	if st := c.state(queued); st.Status != cluster.StateCancelled || st.Attempt != 0 || st.Worker != "" {
		t.Errorf("queued-then-cancelled run = %s, attempt %d, worker %q; want cancelled, never started", st.Status, st.Attempt, st.Worker)
	}
	if keys, _ := c.store.List(ctx, "runs/"+queued+"/"); len(keys) != 0 {
		t.Errorf("run cancelled while queued has records in S3: %v", keys)
	}
	r := c.check()
	if r.Cancelled != 3 {
		t.Errorf("checker: %d cancelled, want 3", r.Cancelled)
	}
}

// TestPoisonRun: a run whose loss turns NaN fails on its first attempt
// and is not retried (a training error is deterministic): it ends failed
// with its error and kind, while other runs succeed.
func TestPoisonRun(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	c := startCluster(t, "w1", "w2")
	poison := c.submit(spec{Steps: 300, CkptEvery: 25, Optimizer: "{name: sgd, lr: 1.0e+30}"})
	var good []string
	for i := range 3 {
		good = append(good, c.submit(spec{Steps: 200 + 50*i, CkptEvery: 25, Seed: i}))
	}
	final := c.waitTerminal(90*time.Second, append([]string{poison}, good...)...)
	st := final[poison]
	if st.Status != cluster.StateFailed || st.Attempt != 1 || !strings.Contains(st.Error, "loss is") || st.ErrorKind != "training" || st.Retryable {
		t.Errorf("poison run = %s after %d attempts, error %q (%s, retryable %v); want failed after 1 with the loss error, a training error",
			st.Status, st.Attempt, st.Error, st.ErrorKind, st.Retryable)
	}
	sum, err := experiment.NewReader(c.store).GetSummary(context.Background(), poison)
	if err != nil || sum.Status != experiment.StatusFailed || !strings.Contains(sum.Run.Error, "loss is") {
		t.Errorf("poison run summary: %s, error %q (%v); want failed with the loss error", sum.Status, sum.Run.Error, err)
	}
	for _, id := range good {
		if final[id].Status != cluster.StateSucceeded {
			t.Errorf("run %s beside the poison run = %s, want succeeded", id, final[id].Status)
		}
	}
	r := c.check()
	if r.Failed != 1 || r.Succeeded != 3 {
		t.Errorf("checker: %d failed, %d succeeded; want 1 and 3", r.Failed, r.Succeeded)
	}
}

// longSpec lasts several seconds: enough checkpoints to kill a worker
// between two of them.
var longSpec = spec{Steps: 3000, CkptEvery: 200, Hidden: "[64, 64]", Batch: 64}

// TestWorkerSIGKILL: workers killed with SIGKILL mid-run lose their runs
// to redelivery (after AckWait); other workers resume them from their last
// checkpoints and they succeed with every step recorded once after dedup.
// Each seed is one run on its own worker, killed after its seed's
// checkpoint (1st, 2nd or 3rd) plus a seeded delay, so the kills land at
// different points between checkpoints. The seeds run side by side, so
// they share one AckWait (testAckWait). GORCH_INTEG_KILLS sets their number
// (default 5).
func TestWorkerSIGKILL(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	seeds := 5
	if n, err := strconv.Atoi(os.Getenv("GORCH_INTEG_KILLS")); err == nil && n > 0 {
		seeds = n
	}
	var workers []string
	for i := 1; i <= seeds; i++ {
		workers = append(workers, "w"+strconv.Itoa(i))
	}
	c := startCluster(t, workers...)
	type victim struct {
		id     string
		after  int64         // kill once the state's step reaches this checkpoint,
		delay  time.Duration // and this long after
		seen   time.Time
		killed cluster.RunState // the state read just before the kill
		killAt time.Time
	}
	var vs []*victim
	for seed := 1; seed <= seeds; seed++ {
		s := longSpec
		s.Seed = seed
		k := int64(1 + (seed-1)%3)
		vs = append(vs, &victim{id: c.submit(s), after: k * int64(s.CkptEvery), delay: time.Duration(seed*37%200) * time.Millisecond})
	}
	deadline := time.Now().Add(90 * time.Second)
	for left := len(vs); left > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d runs never reached their kill point", left)
		}
		for _, v := range vs {
			if !v.killAt.IsZero() {
				continue
			}
			st := c.state(v.id)
			switch {
			case cluster.Terminal(st.Status):
				t.Fatalf("run %s ended %s before its kill point (step %d)", v.id, st.Status, v.after)
			case st.Status != cluster.StateRunning || st.Resume == nil || st.Resume.Step < v.after:
				continue
			case v.seen.IsZero():
				v.seen = time.Now()
			}
			if time.Since(v.seen) < v.delay {
				continue
			}
			c.procByName("worker-"+st.Worker).signal(t, syscall.SIGKILL)
			v.killed, v.killAt = st, time.Now()
			left--
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Fresh workers take the redelivered runs.
	for i := range min(seeds, 3) {
		c.startWorker("spare" + strconv.Itoa(i+1))
	}
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.id
	}
	final := c.waitTerminal(testAckWait+90*time.Second, ids...)
	for i, v := range vs {
		seed, st, killed := i+1, final[v.id], v.killed
		if st.Status != cluster.StateSucceeded || st.Attempt != 2 || st.Worker == killed.Worker || st.Worker == "" {
			t.Errorf("seed %d: run %s = %s, attempt %d on %q; want succeeded, attempt 2, on a worker other than %s",
				seed, v.id, st.Status, st.Attempt, st.Worker, killed.Worker)
		}
		steps := c.attemptSteps(v.id)
		if len(steps[2]) == 0 {
			t.Errorf("seed %d: attempt 2 recorded no train/loss", seed)
			continue
		}
		resumed := steps[2][0] - 1
		if resumed < killed.Resume.Step || resumed%int64(longSpec.CkptEvery) != 0 {
			t.Errorf("seed %d: attempt 2 starts at step %d; want right after a checkpoint at or past step %d (the resume point when killed)",
				seed, steps[2][0], killed.Resume.Step)
		}
		t.Logf("seed %d: killed %s at state step %d (resume point %d); attempt 1 recorded steps %d..%d; attempt 2 on %s resumed from checkpoint %d",
			seed, killed.Worker, killed.Step, killed.Resume.Step, first(steps[1]), last(steps[1]), st.Worker, resumed)
		c.checkExactRecords(v.id, int64(longSpec.Steps), resumed)
	}
	if r := c.check(); r.Succeeded != seeds {
		t.Errorf("checker: %d succeeded, want %d", r.Succeeded, seeds)
	}
}

// TestWorkerSIGTERM: a worker stopped with SIGTERM checkpoints its run and
// hands it back at once (Nak, no AckWait); another worker resumes it, and
// no more than one checkpoint interval of steps is redone.
func TestWorkerSIGTERM(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	c := startCluster(t, "w1", "w2")
	s := longSpec
	id := c.submit(s)
	st := c.waitState(id, 60*time.Second, "running past a checkpoint", func(st cluster.RunState) bool {
		return st.Status == cluster.StateRunning && st.Resume != nil
	})
	victim := c.procByName("worker-" + st.Worker)
	victim.signal(t, syscall.SIGTERM)
	termAt := time.Now()
	if !victim.wait(20 * time.Second) {
		t.Errorf("worker %s still running 20s after SIGTERM", st.Worker)
	} else if victim.err != nil {
		t.Errorf("worker %s exited with %v after SIGTERM, want 0", st.Worker, victim.err)
	}
	resumed := c.waitState(id, 15*time.Second, "running on another worker", func(rs cluster.RunState) bool {
		return rs.Attempt == 2 || cluster.Terminal(rs.Status)
	})
	handBack := time.Since(termAt)
	if handBack > testAckWait/2 {
		t.Errorf("run taken up again %s after SIGTERM; a handed-back run should not wait for AckWait", handBack)
	}
	final := c.waitTerminal(60*time.Second, id)[id]
	if final.Status != cluster.StateSucceeded || final.Attempt != 2 || final.Worker == st.Worker {
		t.Errorf("run = %s, attempt %d on %q; want succeeded, attempt 2, not on %s", final.Status, final.Attempt, final.Worker, st.Worker)
	}
	// The history shows the hand-back: queued, attempt 1, with a checkpoint.
	handedBack := false
	for _, h := range c.states.History(id) {
		if h.Status == cluster.StateQueued && h.Attempt == 1 && h.Resume != nil && h.Worker == "" {
			handedBack = true
		}
	}
	if !handedBack {
		t.Errorf("state history %s has no queued{attempt 1, checkpoint} hand-back", statusTrail(c.states.History(id)))
	}
	steps := c.attemptSteps(id)
	if len(steps[1]) == 0 || len(steps[2]) == 0 {
		t.Fatalf("train/loss steps per attempt: %d and %d, want both", len(steps[1]), len(steps[2]))
	}
	lost := last(steps[1]) - (steps[2][0] - 1) // steps attempt 1 recorded past the resume point
	t.Logf("SIGTERM at state step %d; attempt 1 recorded up to %d, attempt 2 (on %s, %s later) resumed at %d: %d steps redone",
		st.Step, last(steps[1]), resumed.Worker, handBack.Round(time.Millisecond), steps[2][0], lost)
	if lost < 0 || lost > int64(s.CkptEvery) {
		t.Errorf("attempt 2 starts at step %d after attempt 1 recorded up to %d: %d steps lost, want 0..%d", steps[2][0], last(steps[1]), lost, s.CkptEvery)
	}
	c.check()
}

func (c *testCluster) procByName(name string) *proc {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range slices.Backward(c.procs) { // the newest of a restarted service
		if p.name == name {
			return p
		}
	}
	c.t.Fatalf("no process %s", name)
	return nil
}

func first(s []int64) int64 {
	if len(s) == 0 {
		return -1
	}
	return s[0]
}

func last(s []int64) int64 {
	if len(s) == 0 {
		return -1
	}
	return s[len(s)-1]
}
