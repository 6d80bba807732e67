package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/services/worker"
)

// attemptLimit is the memory limit of each attempt in the isolation
// tests: small enough that the allocating hook reaches it at once.
const attemptLimit = "300MiB"

// oomSpec is the spec that cannot fit: an MLP with a hidden
// layer of 20 million units (about 390 GiB with Adam).
const oomSpec = `model: {name: mlp, hidden: [20000000]}
dataset: {name: fashion-mnist}
optimizer: {name: adam, lr: 0.001}
steps: 100
batch_size: 64
`

// hooksEnv turns on the workers' test hooks.
func hooksEnv(string) []string { return []string{worker.TestHooksEnv + "=1"} }

// TestFaultAttemptsFailAlone: one failure stays one failure. Against a
// cluster with one worker process of 2 slots, and against `gorch up`, each
// with a per-attempt limit of 300 MiB:
//
//   - the spec whose model cannot fit (hidden: [20000000]) is refused at
//     submit, naming its estimate and the workers' limit;
//   - a run whose attempt allocates without bound (test hook) ends failed
//     "out of memory (limit 300.0 MiB)", one that panics inside training
//     (test hook) ends failed with the panic's line, and one whose loss
//     turns NaN (sgd, lr 1e6) ends failed with it — each after ONE attempt,
//     with a kind that is not retried;
//   - a run on the same worker meanwhile succeeds, and one submitted after
//     them too;
//   - no service process exits, and the checker finds nothing lost or
//     duplicated and one terminal state per run.
func TestFaultAttemptsFailAlone(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	t.Run("worker", func(t *testing.T) {
		c := startClusterEnv(t, hooksEnv)
		c.start("worker-w1", append(c.workerArgs("w1", c.url, c.s3.Endpoint), "--slots", "2", "--max-memory", attemptLimit)...)
		c.waitWorkers("w1")
		checkAttemptsFailAlone(c)
	})
	t.Run("up", func(t *testing.T) {
		c := startUpCluster(t, hooksEnv, 1, "--workers", "1", "--slots", "2", "--max-memory", attemptLimit)
		checkAttemptsFailAlone(c)
	})
}

func checkAttemptsFailAlone(c *testCluster) {
	t := c.t
	ctx := context.Background()
	_, err := c.client.Submit(ctx, []byte(oomSpec), cluster.PriorityNormal)
	if !errors.Is(err, errs.Memory) || !strings.Contains(err.Error(), "the run needs about 389.9 GiB") ||
		!strings.Contains(err.Error(), "memory limit of 300.0 MiB") || strings.Contains(err.Error(), "\n") {
		t.Errorf("submitting the spec that cannot fit: %v; want one line naming its estimate and the 300 MiB limit", err)
	} else {
		t.Logf("refused at submit: %v", err)
	}
	good := c.submit(spec{Steps: 3000, CkptEvery: 500, Hidden: "[64, 64]", Batch: 64, Seed: 1})
	bad := []struct {
		id, kind, reason string
	}{
		{c.submit(spec{Steps: 300, CkptEvery: 100, Seed: 2, Tags: map[string]string{worker.HookAlloc: "20"}}),
			"memory", "out of memory (limit 300.0 MiB)"},
		{c.submit(spec{Steps: 300, CkptEvery: 100, Seed: 3, Tags: map[string]string{worker.HookPanic: "20"}}),
			"internal", "panic: test hook: panic at step 20"},
		{c.submit(spec{Steps: 300, CkptEvery: 100, Seed: 4, Optimizer: "{name: sgd, lr: 1.0e+6}"}),
			"training", "loss is"},
	}
	var ids []string
	for _, b := range bad {
		ids = append(ids, b.id)
	}
	final := c.waitTerminal(90*time.Second, ids...)
	for _, b := range bad {
		st := final[b.id]
		if st.Status != cluster.StateFailed || st.Attempt != 1 || st.ErrorKind != b.kind || st.Retryable || !strings.Contains(st.Error, b.reason) {
			t.Errorf("run %s: %s after %d attempts, error %q (%s, retryable %v); want failed after ONE attempt, a %s error %q",
				b.id, st.Status, st.Attempt, st.Error, st.ErrorKind, st.Retryable, b.kind, b.reason)
		} else {
			t.Logf("failed after one attempt: %s (%s, not retried)", st.Error, st.ErrorKind)
		}
	}
	after := c.submit(spec{Steps: 200, CkptEvery: 100, Seed: 5})
	for id, st := range c.waitTerminal(120*time.Second, good, after) {
		if st.Status != cluster.StateSucceeded || st.Attempt != 1 {
			t.Errorf("run %s beside the failures: %s after %d attempts (%s); want succeeded on the first", id, st.Status, st.Attempt, st.Error)
		}
	}
	c.mu.Lock()
	for _, p := range c.procs {
		if p.exited() {
			t.Errorf("service %s exited: %v", p.name, p.err)
		}
	}
	c.mu.Unlock()
	c.waitRecordsFinal(30*time.Second, append(ids, good, after)...)
	c.waitCollectorDrained(30 * time.Second)
	if r := c.check(); r.Failed != len(bad) || r.Succeeded != 2 {
		t.Errorf("checker: %d failed, %d succeeded; want %d and 2", r.Failed, r.Succeeded, len(bad))
	}
}
