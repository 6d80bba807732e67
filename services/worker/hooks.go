package worker

import (
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/train"
)

// Test hooks: spec tags that make an attempt misbehave at a step, for the
// fault tests. They act only when the worker runs with TestHooksEnv=1
// (Ticket.TestHooks); elsewhere the tags are plain tags. A value is
// "STEP" (every attempt) or "ATTEMPT:STEP".
const (
	// TestHooksEnv enables the hooks in a worker's environment.
	TestHooksEnv = "GORCH_TEST_HOOKS"
	// HookPanic panics inside training (in the sink's Log) at the step.
	HookPanic = "gorch.test.panic_at"
	// HookAlloc allocates memory without bound at the step, until the
	// attempt's memory limit ends it.
	HookAlloc = "gorch.test.alloc_at"
	// HookPauseBeforeWrite stops the attempt's process (SIGSTOP to
	// itself) when it checkpoints the step, after its ownership check and
	// before it writes the object, logging "test hook: paused" with its
	// pid first.
	HookPauseBeforeWrite = "gorch.test.pause_before_ckpt_write"
	// HookDieAfterOutcome kills the worker (SIGKILL to itself) once the
	// coordinator took the outcome of the attempt the value names ("1"),
	// before the worker publishes the attempt's "finished" event.
	HookDieAfterOutcome = "gorch.test.die_after_outcome"
	// HookDropClaimReplies drops the replies to the first N claims of the
	// run by each worker process (the value is N), after the coordinator
	// applied them, as a broker restart can lose them.
	HookDropClaimReplies = "gorch.test.drop_claim_replies"
)

// claimReplyDrops returns how many claim replies HookDropClaimReplies
// drops for the run req asks for.
func (w *Worker) claimReplyDrops(req *cluster.RunRequest) int {
	if !w.hooks {
		return 0
	}
	spec, err := train.ParseSpec("run "+req.RunID+" spec", req.Spec)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(spec.Tags[HookDropClaimReplies])
	if err != nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.claimDrops == nil {
		w.claimDrops = map[string]bool{}
	}
	if w.claimDrops[req.RunID] {
		return 0 // dropped for an earlier delivery already
	}
	w.claimDrops[req.RunID] = true
	return n
}

// hookAt reports whether hook is set for this attempt at step.
func (s *ClusterSink) hookAt(hook string, step int64) bool {
	if !s.t.TestHooks {
		return false
	}
	v, ok := s.spec.Tags[hook]
	if !ok {
		return false
	}
	if a, st, found := strings.Cut(v, ":"); found {
		if n, err := strconv.Atoi(a); err != nil || n != s.attempt {
			return false
		}
		v = st
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return err == nil && n == step
}

// hook runs the hooks of a metric at step (HookPanic, HookAlloc).
func (s *ClusterSink) hook(step int64) {
	if s.hookAt(HookPanic, step) {
		panic("test hook: panic at step " + strconv.FormatInt(step, 10))
	}
	if s.hookAt(HookAlloc, step) {
		s.log.Warn("test hook: allocating memory without bound", "step", step)
		var keep [][]byte
		for {
			b := make([]byte, 64<<20)
			for i := range b {
				b[i] = byte(i)
			}
			keep = append(keep, b)
		}
	}
}

// dieHook runs HookDieAfterOutcome for attempt of a run with spec.
func (w *Worker) dieHook(log *slog.Logger, spec *train.Spec, attempt int) {
	if !w.hooks || spec == nil || spec.Tags[HookDieAfterOutcome] != strconv.Itoa(attempt) {
		return
	}
	log.Warn("test hook: dying after the outcome was reported, before the finished event")
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // until the signal lands
}

// pauseHook runs HookPauseBeforeWrite for a checkpoint at step.
func (s *ClusterSink) pauseHook(step int64) {
	if s.hookAt(HookPauseBeforeWrite, step) {
		s.log.Warn("test hook: paused before the checkpoint write", "step", step, "pid", os.Getpid())
		// At this thread: a process-directed signal may wait for another
		// thread to be scheduled, and this one would write meanwhile.
		runtime.LockOSThread()
		_ = syscall.Tgkill(os.Getpid(), syscall.Gettid(), syscall.SIGSTOP)
		runtime.UnlockOSThread()
	}
}
