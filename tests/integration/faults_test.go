package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/services/worker"
)

// Fault-injection tests (the fault matrix F2–F6, F8 of the cluster notes).
// Each one drives a workload, injects one fault and runs the checker;
// `make test-faults` runs them with the cluster tests.

// pauseSpec trains long enough (several seconds) for a worker to be
// paused past its lease and resumed while the new owner still trains,
// with few enough checkpoints that a pause lands between two of them.
var pauseSpec = spec{Steps: 5000, CkptEvery: 200, Hidden: "[64, 64]", Batch: 64, Seed: 7}

// shortSpec is the suite's short synthetic run.
func shortSpec(steps, seed int) spec { return spec{Steps: steps, CkptEvery: 25, Seed: seed} }

// ckptEvents returns run id's checkpoint events in stream order.
func (c *testCluster) ckptEvents(id string) []cluster.CheckpointEvent {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := c.js.OrderedConsumer(ctx, cluster.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{cluster.EventFilter(cluster.KindCheckpoint, id)}})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []cluster.CheckpointEvent
	err = drain(ctx, cons, func(m jetstream.Msg) error {
		var ev cluster.CheckpointEvent
		if err := cluster.Decode(m.Data(), cluster.TypeCheckpoint, &ev); err != nil {
			return err
		}
		out = append(out, ev)
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// restartNATS shuts the embedded server down, waits down, and starts a
// new one on the same store directory and port; the services reconnect.
func (c *testCluster) restartNATS(down time.Duration) {
	c.t.Helper()
	c.mu.Lock()
	old := c.ns
	c.mu.Unlock()
	port := old.Addr().(*net.TCPAddr).Port
	storeDir := old.JetStreamConfig().StoreDir
	old.Shutdown()
	old.WaitForShutdown()
	time.Sleep(down)
	var ns2 = old
	var err error
	for try := 0; try < 50; try++ { // the port may take a moment to free
		if ns2, err = cluster.StartEmbedded(cluster.EmbeddedOptions{StoreDir: storeDir, Port: port}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("restarting NATS on port %d: %v", port, err)
	}
	c.mu.Lock()
	c.ns = ns2
	c.mu.Unlock()
	// The test's own watch of the runs bucket ended with the old server.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for c.nc.Status() != nats.CONNECTED && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	var kv jetstream.KeyValue
	var err2 error
	for kv == nil && ctx.Err() == nil { // JetStream may still be recovering its streams
		if kv, err2 = c.js.KeyValue(ctx, cluster.BucketRuns); err2 != nil {
			kv = nil
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := c.states.Rewatch(ctx, kv); err != nil {
		c.t.Fatalf("watching the runs bucket again after the restart: %v", err)
	}
}

// streamMsgs returns the number of messages in a stream.
func (c *testCluster) streamMsgs(name string) uint64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.js.Stream(ctx, name)
	if err != nil {
		c.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return info.State.Msgs
}

// waitRunsDrained waits until the RUNS work queue is empty: every
// accepted request was settled.
func (c *testCluster) waitRunsDrained(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for n := c.streamMsgs(cluster.StreamRuns); n != 0; n = c.streamMsgs(cluster.StreamRuns) {
		if time.Now().After(deadline) {
			c.t.Errorf("RUNS still holds %d messages %s after every run ended", n, timeout)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitCollectorDrained waits until the collector's consumer has no
// message pending or awaiting an ack.
func (c *testCluster) waitCollectorDrained(timeout time.Duration) {
	c.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		cons, err := c.js.Consumer(ctx, cluster.StreamEvents, cluster.ConsumerCollect)
		if err == nil {
			info, err := cons.Info(ctx)
			if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				return
			}
			if err == nil && time.Now().After(deadline) {
				c.t.Errorf("collector consumer still has %d pending and %d unacked messages after %s", info.NumPending, info.NumAckPending, timeout)
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Errorf("collector consumer info: %v", err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pauseAt is the checkpoint step at which the SIGSTOP test's worker
// pauses itself (test hook), between its ownership check and its write.
const pauseAt = 400

// TestFaultWorkerSIGSTOP (F2): a worker stops (SIGSTOP, by a test hook)
// exactly between its ownership check for the checkpoint of step pauseAt
// and the write of that checkpoint, and stays stopped past its ack
// deadline. Another worker takes the run over (attempt 2), resumes from
// the paused attempt's last resume point and records its own
// checkpoints. Resumed (SIGCONT) while the new owner trains, the stale
// attempt writes its checkpoint object (under its own attempt's prefix)
// and is refused when it asks to record it: the run's resume point is
// never the stale object, no state revision names the stale attempt after
// the takeover, it announces no checkpoint after the new owner's, and its
// late metrics stay under attempt 1.
func TestFaultWorkerSIGSTOP(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	c := startClusterEnv(t, func(string) []string { return []string{worker.TestHooksEnv + "=1"} }, "w1", "w2")
	s := pauseSpec
	s.Tags = map[string]string{worker.HookPauseBeforeWrite: fmt.Sprintf("1:%d", pauseAt)}
	id := c.submit(s)
	first := c.waitState(id, 60*time.Second, "running on its first attempt", func(st cluster.RunState) bool {
		return st.Status == cluster.StateRunning && st.Attempt == 1 || cluster.Terminal(st.Status)
	})
	victim := c.procByName("worker-" + first.Worker)
	pid := c.waitHookPause(victim)
	stoppedAt := time.Now()
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT); victim.resume() })
	before := c.state(id)
	// Another worker takes over after the ack deadline and checkpoints.
	takeover := c.waitState(id, testAckWait+30*time.Second, "taken over", func(st cluster.RunState) bool {
		return st.Attempt >= 2 || cluster.Terminal(st.Status)
	})
	tookOver := time.Since(stoppedAt)
	owner := c.waitState(id, 60*time.Second, "checkpointed by the new owner", func(st cluster.RunState) bool {
		return st.Attempt != 2 || cluster.Terminal(st.Status) || st.Resume != nil && st.Resume.Attempt == 2
	})
	if owner.Status != cluster.StateRunning || owner.Attempt != 2 || owner.Worker == first.Worker {
		t.Fatalf("after the pause the run is %s, attempt %d on %q; want running, attempt 2, not on %s (its trail: %s)",
			owner.Status, owner.Attempt, owner.Worker, first.Worker, statusTrail(c.states.History(id)))
	}
	if takeover.Resume == nil || before.Resume == nil || *takeover.Resume != *before.Resume || before.Resume.Step >= pauseAt {
		t.Errorf("attempt 2 claimed with resume point %+v; want the paused attempt's last one %+v, before step %d", takeover.Resume, before.Resume, pauseAt)
	}
	_ = syscall.Kill(pid, syscall.SIGCONT)
	victim.resume()
	contAt := time.Now()
	// The stale attempt goes on exactly where it stopped: it writes its
	// checkpoint object, then asks to record it and is refused.
	stale := worker.CheckpointPrefix(id, 1) + fmt.Sprintf("step-%012d.rtch", pauseAt)
	testutil.Eventually(t, 30*time.Second, func() error {
		if _, err := c.store.Get(context.Background(), stale); err != nil {
			return fmt.Errorf("the stale attempt's checkpoint object: %w", err)
		}
		if n := strings.Count(readFile(victim.log), "not the run's owner"); n == 0 {
			return errors.New("no refusal in the stale worker's log")
		}
		return nil
	})
	final := c.waitTerminal(90*time.Second, id)[id]
	if victim.exited() {
		t.Errorf("paused worker exited after SIGCONT: %v", victim.err)
	}
	if final.Status != cluster.StateSucceeded || final.Attempt != 2 || final.Worker != owner.Worker || final.Step != int64(s.Steps) {
		t.Errorf("final state %s, attempt %d on %q, step %d; want succeeded, attempt 2 on %s, step %d",
			final.Status, final.Attempt, final.Worker, final.Step, owner.Worker, s.Steps)
	}
	for _, h := range c.states.History(id) {
		if h.Resume != nil && h.Resume.Key == stale {
			t.Errorf("the run's resume point became the stale attempt's object %s: %+v", stale, h)
		}
	}
	// Fencing: state, records, checkpoint events and resume points.
	fr := c.checkTakeoverFenced(id, first.Worker, s.Steps)
	t.Logf("%s paused itself (pid %d) before writing checkpoint %d, resume point then step %d; taken over by %s after %s (ack wait %s), "+
		"resumed from checkpoint %d; SIGCONT %s later: stale object %s written, its record refused, resume point unchanged; "+
		"stale attempt recorded %d train/loss steps past the resume point (kept under attempt 1); %d checkpoint events (attempt 1 before attempt 2)",
		first.Worker, pid, pauseAt, before.Resume.Step, owner.Worker, tookOver.Round(time.Millisecond), testAckWait, fr.Resumed,
		contAt.Sub(stoppedAt).Round(time.Millisecond), stale, fr.Late, fr.Events)
	if r := c.check(); r.Succeeded != 1 {
		t.Errorf("checker: %d succeeded, want 1", r.Succeeded)
	}
}

// hookPause matches the log line of worker.HookPauseBeforeWrite.
var hookPause = regexp.MustCompile(`test hook: paused before the checkpoint write.* pid=(\d+)`)

// waitHookPause waits until p's log says a process of it paused itself
// at the hook and that process is stopped, and returns its pid.
func (c *testCluster) waitHookPause(p *proc) int {
	c.t.Helper()
	pid := 0
	testutil.Eventually(c.t, 60*time.Second, func() error {
		m := hookPause.FindStringSubmatch(readFile(p.log))
		if m == nil {
			return fmt.Errorf("%s did not reach the pause hook", p.name)
		}
		pid, _ = strconv.Atoi(m[1])
		if st := procState(pid); st != "T" {
			return fmt.Errorf("process %d of %s paused at the hook is in state %q, want T (stopped)", pid, p.name, st)
		}
		return nil
	})
	p.pause(c.t) // the rest of the worker too: its lease runs out
	return pid
}

// procState is the state letter of process pid (/proc/PID/stat), or "".
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestFaultCollectorSIGKILL (F3): the collector is killed (SIGKILL) three
// times while runs publish, and restarted each time: the records it had
// not acknowledged are redelivered to the new one, and after dedup none is
// lost or stored twice.
func TestFaultCollectorSIGKILL(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	c := startCluster(t, "w1", "w2")
	var ids []string
	for i := range 6 {
		ids = append(ids, c.submit(shortSpec(1200+100*i, i+1)))
	}
	kills := 0
	for range 3 {
		time.Sleep(900 * time.Millisecond)
		col := c.procByName("collector")
		col.signal(t, syscall.SIGKILL)
		if !col.wait(10 * time.Second) {
			t.Fatal("collector survived SIGKILL")
		}
		kills++
		time.Sleep(200 * time.Millisecond)
		c.start("collector", append([]string{"collector", "--nats", c.url}, c.s3Flags()...)...)
	}
	final := c.waitTerminal(120*time.Second, ids...)
	for _, id := range ids {
		if final[id].Status != cluster.StateSucceeded {
			t.Errorf("run %s = %s, want succeeded", id, final[id].Status)
		}
	}
	t.Logf("collector killed and restarted %d times", kills)
	// Records a killed collector fetched but never acked come back after
	// AckWait, possibly behind their run's "finished" event: wait until
	// the collector has settled every message before checking.
	c.waitCollectorDrained(2*testAckWait + 30*time.Second)
	if r := c.check(); r.Succeeded != len(ids) || r.Unique == 0 {
		t.Errorf("checker: %d succeeded, %d unique records; want %d and some", r.Succeeded, r.Unique, len(ids))
	}
}

// TestFaultNATSRestart (F4): the NATS server (embedded in the test
// process) is shut down while runs train and wait in the queue, with one
// worker killed just before, and restarted on the same store and port. The
// services reconnect; no accepted run is lost, the dead worker's un-acked
// run is redelivered, runs submitted after the restart run too, and every
// run ends in exactly one terminal state with the RUNS queue drained.
func TestFaultNATSRestart(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	c := startCluster(t, "w1", "w2", "w3")
	var ids []string
	for i := range 6 {
		ids = append(ids, c.submit(shortSpec(2500, i+1)))
	}
	// Wait for three runs training past a checkpoint; kill the worker of one.
	var victim cluster.RunState
	deadline := time.Now().Add(60 * time.Second)
	for victim.RunID == "" {
		running := 0
		var cand cluster.RunState
		for _, id := range ids {
			if st := c.state(id); st.Status == cluster.StateRunning && st.Step >= 25 {
				running++
				cand = st
			}
		}
		if running == 3 {
			victim = cand
		} else if time.Now().After(deadline) {
			t.Fatalf("three runs never trained at once (%d running)", running)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.procByName("worker-"+victim.Worker).signal(t, syscall.SIGKILL)
	before := c.streamMsgs(cluster.StreamRuns)
	t0 := time.Now()
	c.restartNATS(2 * time.Second)
	t.Logf("NATS down %s with %d run requests in RUNS (3 training, one of them on killed %s)",
		time.Since(t0).Round(time.Millisecond), before, victim.Worker)
	if after := c.streamMsgs(cluster.StreamRuns); after != before {
		t.Errorf("RUNS held %d messages before the restart and %d after", before, after)
	}
	c.startWorker("spare")
	// Runs submitted after the restart, once the coordinator has
	// reconnected (a submission it never answered was not accepted).
	for i := range 2 {
		sp := shortSpec(300, 100+i)
		for try := 0; ; try++ {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			got, err := c.client.Submit(sctx, sp.yaml(), cluster.PriorityNormal)
			cancel()
			if err == nil && len(got) == 1 {
				c.remember(got[0], sp)
				ids = append(ids, got[0])
				break
			}
			if try == 30 {
				t.Fatalf("submit after the NATS restart: %v %v", got, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	final := c.waitTerminal(testAckWait+120*time.Second, ids...)
	for _, id := range ids {
		if final[id].Status != cluster.StateSucceeded {
			t.Errorf("run %s = %s (%s), want succeeded", id, final[id].Status, final[id].Error)
		}
	}
	if st := final[victim.RunID]; st.Attempt < 2 || st.Worker == victim.Worker {
		t.Errorf("the killed worker's run ended on %q at attempt %d; want redelivered to another worker", st.Worker, st.Attempt)
	}
	c.waitRunsDrained(10 * time.Second)
	// The test's watch of the runs bucket does not resume after the
	// restart; take the revisions since from each key's history (the
	// last five), which hold the terminal transitions.
	if err := c.states.Backfill(context.Background(), c.kv, ids); err != nil {
		t.Fatal(err)
	}
	if r := c.check(); r.Succeeded != len(ids) {
		t.Errorf("checker: %d succeeded, want %d", r.Succeeded, len(ids))
	}
}

// TestFaultS3Outage (F6): the S3 server is stopped for 20 s while runs
// train. Workers block in their checkpoint write, retrying with backoff
// (no attempt fails); the collector Naks and backs off, so its backlog
// stays in the EVENTS stream; after the server returns on the same
// directory and port everything lands: every run succeeds on its first
// attempt and the checker finds nothing lost and every summary complete.
func TestFaultS3Outage(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	c := startCluster(t, "w1", "w2")
	var ids []string
	for i := range 4 {
		ids = append(ids, c.submit(shortSpec(1500, i+1)))
	}
	for _, id := range ids[:2] {
		c.waitState(id, 60*time.Second, "running past a checkpoint", func(st cluster.RunState) bool {
			return st.Status == cluster.StateRunning && st.Step >= 50 || cluster.Terminal(st.Status)
		})
	}
	c.s3.Stop()
	stoppedAt := time.Now()
	ctx := context.Background()
	cons, err := c.js.Consumer(ctx, cluster.StreamEvents, cluster.ConsumerCollect)
	if err != nil {
		t.Fatal(err)
	}
	var maxBacklog uint64
	for time.Since(stoppedAt) < 20*time.Second {
		if info, err := cons.Info(ctx); err == nil {
			maxBacklog = max(maxBacklog, info.NumPending+uint64(info.NumAckPending))
		}
		time.Sleep(500 * time.Millisecond)
	}
	mid := map[string]cluster.RunState{}
	for _, id := range ids {
		mid[id] = c.state(id)
	}
	c.s3.Restart(t)
	t.Logf("S3 down %s; collector backlog in EVENTS up to %d messages; states at the end of the outage: %s",
		time.Since(stoppedAt).Round(time.Millisecond), maxBacklog, func() string {
			var parts []string
			for _, id := range ids {
				parts = append(parts, mid[id].Status+"@"+strconv.FormatInt(mid[id].Step, 10))
			}
			return strings.Join(parts, " ")
		}())
	if maxBacklog == 0 {
		t.Errorf("no backlog in EVENTS while S3 was down")
	}
	final := c.waitTerminal(120*time.Second, ids...)
	for _, id := range ids {
		if st := final[id]; st.Status != cluster.StateSucceeded || st.Attempt != 1 {
			t.Errorf("run %s = %s after %d attempts (%s); want succeeded on attempt 1 (store writes retried)", id, st.Status, st.Attempt, st.Error)
		}
	}
	if r := c.check(); r.Succeeded != len(ids) {
		t.Errorf("checker: %d succeeded, want %d", r.Succeeded, len(ids))
	}
}

// TestFaultBadMessages (F8): malformed, unknown-version and wrong-type
// messages on the RUNS and EVENTS streams, and a request for a run with
// no state, are dead-lettered with their reason (DLQ stream, Gorch-Reason
// header) and terminated; sweeps with a bad parameter are rejected with a
// reason and create no run; and the consumers keep going: a good run
// submitted afterwards succeeds with complete records.
func TestFaultBadMessages(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	c := startCluster(t, "w1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	envelope := func(v uint8, typ string, body any) []byte {
		b, err := msgpack.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		e, err := msgpack.Marshal(&cluster.Envelope{V: v, Type: typ, Body: b})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ghost := "ghost-run-1"
	c.mu.Lock()
	c.injected = map[string]bool{ghost: true}
	c.mu.Unlock()
	req := cluster.RunRequest{RunID: ghost, Spec: []byte(`{}`), Priority: cluster.PriorityNormal, Submitted: time.Now()}
	bad := []struct {
		subject string
		data    []byte
		dlq     string // DLQ subject it must reach
		reason  string // in its Gorch-Reason
	}{
		{cluster.DispatchSubject(cluster.PriorityNormal), []byte{0xc1, 0x00}, "dlq.undecodable", "malformed envelope"},
		{cluster.DispatchSubject(cluster.PriorityNormal), envelope(99, cluster.TypeRunRequest, &req), "dlq.undecodable", "unsupported wire version 99"},
		{cluster.DispatchSubject(cluster.PriorityHigh), envelope(cluster.WireVersion, cluster.TypeMetricBatch, &req), "dlq.undecodable", "message type"},
		{cluster.DispatchSubject(cluster.PriorityLow), envelope(cluster.WireVersion, cluster.TypeRunRequest, &req), "dlq.nostate", "no state"},
		{cluster.EventSubject("w1", cluster.KindMetrics, ghost), []byte("garbage"), "dlq.collector", "malformed envelope"},
		{cluster.EventSubject("w1", cluster.KindMetrics, ghost), envelope(7, cluster.TypeMetricBatch, &cluster.MetricBatch{RunID: ghost, Attempt: 1, Seq: 1}),
			"dlq.collector", "unsupported wire version 7"},
		{cluster.EventSubject("w1", cluster.KindCheckpoint, ghost), envelope(cluster.WireVersion, cluster.TypeCheckpoint,
			&cluster.CheckpointEvent{RunID: ghost, Attempt: 1}), "dlq.collector", "without a key"},
		{"ev.bogus." + ghost, []byte("x"), "dlq.collector", "unexpected subject"},
		{cluster.EventSubject("w1", cluster.KindMetrics, ghost), envelope(cluster.WireVersion, cluster.TypeMetricBatch,
			&cluster.MetricBatch{RunID: ghost, Attempt: 1, Seq: 1}), "dlq.forged", "which has no state"},
	}
	for _, b := range bad {
		if _, err := c.js.Publish(ctx, b.subject, b.data); err != nil {
			t.Fatalf("publish to %s: %v", b.subject, err)
		}
	}
	// Sweeps with a bad parameter are rejected whole.
	for _, sw := range []struct{ yaml, want string }{
		{strings.Replace(gridSweep, "  seed: [1, 2]", "  model.bogus: [1, 2]", 1), "bogus"},
		{strings.Replace(gridSweep, "  seed: [1, 2]", "  batch_size: [32, -4]", 1), "batch"},
	} {
		ids, err := c.client.Sweep(ctx, []byte(sw.yaml))
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), sw.want) {
			t.Errorf("sweep with a bad %s: runs %v, err %v; want rejected naming it", sw.want, ids, err)
		} else {
			t.Logf("bad sweep rejected: %v", err)
		}
	}
	if runs, err := c.client.List(ctx); err != nil || len(runs) != 0 {
		t.Errorf("after the rejected sweeps the cluster lists %d runs (err %v), want 0", len(runs), err)
	}
	// The consumers keep going.
	good := c.submit(shortSpec(300, 3))
	final := c.waitTerminal(60*time.Second, good)[good]
	if final.Status != cluster.StateSucceeded {
		t.Errorf("good run after the bad messages = %s, want succeeded", final.Status)
	}
	// Every bad message is in the DLQ with its reason.
	cons, err := c.js.OrderedConsumer(ctx, cluster.StreamDLQ, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	type dead struct{ subject, from, reason string }
	var dl []dead
	deadline := time.Now().Add(20 * time.Second)
	for len(dl) < len(bad) && time.Now().Before(deadline) {
		batch, err := cons.Fetch(64, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			dl = append(dl, dead{m.Subject(), m.Headers().Get("Gorch-Subject"), m.Headers().Get("Gorch-Reason")})
		}
	}
	for _, b := range bad {
		found := false
		for _, d := range dl {
			if d.subject == b.dlq && d.from == b.subject && strings.Contains(d.reason, b.reason) {
				found = true
			}
		}
		if !found {
			t.Errorf("no dead letter on %s from %s with reason %q; DLQ holds %+v", b.dlq, b.subject, b.reason, dl)
		}
	}
	for _, d := range dl {
		t.Logf("dead letter %s from %s: %s", d.subject, d.from, d.reason)
	}
	if len(dl) != len(bad) {
		t.Errorf("DLQ holds %d messages, want %d (one per bad message)", len(dl), len(bad))
	}
	c.waitRunsDrained(10 * time.Second)
	if _, err := c.kv.Get(ctx, cluster.RunKey(ghost)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("ghost run has a state (err %v); a dead letter must not create one", err)
	}
	if r := c.check(); r.Succeeded != 1 {
		t.Errorf("checker: %d succeeded, want 1", r.Succeeded)
	}
}

// fencedTakeover is what checkTakeoverFenced found.
type fencedTakeover struct {
	Resumed int64 // the step attempt 2 resumed from
	Late    int   // attempt 1's train/loss steps past that point (kept under attempt 1)
	Events  int   // checkpoint events announced
}

// checkTakeoverFenced asserts that attempt 2 took run id over from
// staleWorker's attempt 1 cleanly: no state revision after the takeover
// names attempt 1 or staleWorker, and none records a resume point of
// attempt 1 (the resume point's step never goes back); records exist for
// attempts 1 and 2 only and attempt 2 resumed from attempt 1's
// checkpoint; every attempt-1 checkpoint event precedes attempt 2's and
// none lies past the resume point; the final resume point is attempt 2's
// checkpoint at step total, in the store with its size.
func (c *testCluster) checkTakeoverFenced(id, staleWorker string, total int) fencedTakeover {
	t := c.t
	t.Helper()
	hist := c.states.History(id)
	claimed := false
	var claimResume *cluster.ResumePoint
	var lastStep int64
	for _, h := range hist {
		if h.Attempt >= 2 && !claimed {
			claimed, claimResume = true, h.Resume
		}
		if claimed && (h.Attempt < 2 || h.Worker == staleWorker) {
			t.Errorf("stale write after the takeover: %s attempt %d on %q (trail %s)", h.Status, h.Attempt, h.Worker, statusTrail(hist))
		}
		if r := h.Resume; r != nil {
			if r.Step < lastStep {
				t.Errorf("the resume point went back from step %d to %d", lastStep, r.Step)
			}
			lastStep = r.Step
			if claimed && r.Attempt < 2 && (claimResume == nil || *r != *claimResume) {
				t.Errorf("a resume point of attempt %d recorded after the takeover: %+v", r.Attempt, r)
			}
		}
	}
	steps := c.attemptSteps(id)
	if len(steps[1]) == 0 || len(steps[2]) == 0 {
		t.Fatalf("train/loss records per attempt: %d and %d, want both", len(steps[1]), len(steps[2]))
	}
	for a := range steps {
		if a != 1 && a != 2 {
			t.Errorf("records of attempt %d; only attempts 1 and 2 ran", a)
		}
	}
	r := fencedTakeover{Resumed: steps[2][0] - 1}
	for _, st := range steps[1] {
		if st > r.Resumed {
			r.Late++
		}
	}
	evs := c.ckptEvents(id)
	r.Events = len(evs)
	seen2 := false
	for _, ev := range evs {
		switch {
		case ev.Attempt == 2:
			seen2 = true
		case seen2:
			t.Errorf("checkpoint of stale attempt %d at step %d announced after the new owner's", ev.Attempt, ev.Step)
		case ev.Step > r.Resumed:
			t.Errorf("stale attempt %d announced checkpoint %d, past the resume point %d", ev.Attempt, ev.Step, r.Resumed)
		}
	}
	final := c.state(id)
	if rp := final.Resume; rp == nil || rp.Attempt != 2 || rp.Step != int64(total) {
		t.Errorf("final resume point %+v; want attempt 2's at step %d", rp, total)
	} else if b, err := c.store.Get(context.Background(), rp.Key); err != nil || int64(len(b)) != rp.Size {
		t.Errorf("final resume point's object %s: %d bytes, %v; want %d", rp.Key, len(b), err, rp.Size)
	}
	return r
}

// TestFaultWorkerDiesBeforeFinishedEvent: a worker reports its attempt's
// outcome to the coordinator (the run succeeds) and dies (test hook:
// SIGKILL to itself) before it publishes the attempt's "finished" event,
// which is what ends the records and makes the collector tell the
// coordinator they are final. Once the worker's heartbeat expires, the
// coordinator marks the run's records orphaned, the collector ends them
// from the run state after the attempt's records, and the run's records
// become final: the summary succeeded with every step, run.json ending
// when the coordinator took the outcome, and nothing lost.
func TestFaultWorkerDiesBeforeFinishedEvent(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	c := startClusterSetup(t, hooksEnv, cluster.SetupOptions{WorkerTTL: 3 * time.Second}, "w1")
	const steps = 300
	id := c.submit(spec{Steps: steps, CkptEvery: 100, Seed: 11, Tags: map[string]string{worker.HookDieAfterOutcome: "1"}})
	w1 := c.procByName("worker-w1")
	if !w1.wait(90 * time.Second) {
		t.Fatal("worker w1 still running 90s after the submit; its hook should have killed it")
	}
	st := c.state(id)
	if st.Status != cluster.StateSucceeded || st.Attempt != 1 || st.RecordsFinal {
		t.Fatalf("run after its worker died = %s, attempt %d, records final %v; want succeeded, attempt 1, records not final yet",
			st.Status, st.Attempt, st.RecordsFinal)
	}
	t.Logf("worker w1 died (%v) after the coordinator took the outcome: run %s succeeded, records not final", w1.err, id)
	c.waitRecordsFinal(60*time.Second, id)
	st = c.waitTerminal(30*time.Second, id)[id]
	if !st.RecordsOrphaned {
		t.Errorf("run %s: records final, not marked orphaned: %+v; want the collector to have ended them from the state", id, st)
	}
	sum, err := experiment.NewReader(c.store).GetSummary(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Status != experiment.StatusSucceeded || !sum.Complete || sum.Metrics["train/loss"].Count != steps || !sum.Run.Finished.Equal(st.Finished) {
		t.Errorf("summary: %s, complete %v, train/loss count %d, finished %v; want succeeded, complete, %d, %v (the coordinator's end)",
			sum.Status, sum.Complete, sum.Metrics["train/loss"].Count, sum.Run.Finished, steps, st.Finished)
	}
	if r := c.check(); r.Succeeded != 1 {
		t.Errorf("checker: %d succeeded; want 1", r.Succeeded)
	}
}

// TestFaultClaimReplyLost: the coordinator applies a worker's claim of a
// run but the reply never reaches the worker — twice (test hook: the
// worker drops the first two replies, as a NATS restart can lose them;
// the failure TestFaultNATSRestart once saw burnt every attempt of a run
// that never trained). The worker claims again and is answered with the
// attempt its first claim started: the run succeeds on attempt 1 and its
// records have that one attempt, complete, with nothing lost.
func TestFaultClaimReplyLost(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	c := startClusterEnv(t, hooksEnv, "w1")
	const steps = 200
	id := c.submit(spec{Steps: steps, CkptEvery: 50, Seed: 12, Tags: map[string]string{worker.HookDropClaimReplies: "2"}})
	other := c.submit(shortSpec(100, 13))
	final := c.waitTerminal(90*time.Second, id, other)
	for _, r := range []string{id, other} {
		if st := final[r]; st.Status != cluster.StateSucceeded || st.Attempt != 1 || fmt.Sprint(st.Owners) != "[w1]" {
			t.Errorf("run %s = %s at attempt %d, owners %v (%s); want succeeded on attempt 1 of w1", r, st.Status, st.Attempt, st.Owners, st.Error)
		}
	}
	c.waitRecordsFinal(60*time.Second, id)
	sum, err := experiment.NewReader(c.store).GetSummary(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Status != experiment.StatusSucceeded || !sum.Complete || sum.Run.Attempt != 1 || len(sum.Run.Attempts) != 1 ||
		sum.Metrics["train/loss"].Count != steps {
		t.Errorf("summary: %s, complete %v, attempt %d, %d attempts, train/loss count %d; want succeeded, complete, attempt 1 only, %d",
			sum.Status, sum.Complete, sum.Run.Attempt, len(sum.Run.Attempts), sum.Metrics["train/loss"].Count, steps)
	}
	if got := logCount(t, c.procByName("worker-w1"), "test hook: dropped the claim's reply"); got != 2 {
		t.Errorf("worker w1 dropped %d claim replies; want 2", got)
	}
	if got := logCount(t, c.procByName("coordinator"), "claim repeated"); got != 2 {
		t.Errorf("coordinator answered %d repeated claims; want 2", got)
	}
	if r := c.check(); r.Succeeded != 2 {
		t.Errorf("checker: %d succeeded; want 2", r.Succeeded)
	}
}

// logCount counts the lines of p's log that contain s.
func logCount(t *testing.T, p *proc, s string) int {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), s)
}
