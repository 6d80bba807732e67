package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
)

// childEnv makes the test binary an attempt process (see TestMain).
const childEnv = "GORCH_WORKER_TEST_CHILD"

// TestMain lets the test binary stand in for `gorch worker attempt`: the
// tests set childEnv before starting a worker whose attempt command is
// this binary, and its children see it.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		signal.Ignore(os.Interrupt, syscall.SIGTERM)
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		if err := RunChild(context.Background(), os.Stdin, os.NewFile(3, "result"), log); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childSpec is a synthetic run with tags (test hooks).
func childSpec(steps int, opt string, tags string) []byte {
	return fmt.Appendf(nil, `{"model":{"name":"mlp","hidden":[16]},"dataset":{"name":"blobs","size":256},"optimizer":%s,
		"steps":%d,"batch_size":32,"seed":3,"eval_every":%d,"checkpoint_every":10,"tags":{%s}}`, opt, steps, steps, tags)
}

// TestChildAttemptsFailAlone: a worker with two slots runs each attempt
// in a process of its own, limited to 256 MiB. An attempt that runs out of
// memory, one that panics inside training and one whose loss turns NaN
// each end their run failed after one attempt, with the reason and the
// error's kind; a run beside them succeeds, and so does one submitted
// after them: the worker never stopped.
func TestChildAttemptsFailAlone(t *testing.T) {
	t.Setenv(childEnv, "1")
	t.Setenv(TestHooksEnv, "1")
	e := newEnvPort(t, 0)
	const limit = 256 << 20
	adam := `{"name":"adam","lr":0.003}`
	good := e.submit(childSpec(400, adam, ""))
	oom := e.submit(childSpec(400, adam, fmt.Sprintf("%q: %q", HookAlloc, "5")))
	panics := e.submit(childSpec(400, adam, fmt.Sprintf("%q: %q", HookPanic, "5")))
	nan := e.submit(childSpec(400, `{"name":"sgd","lr":1e30}`, ""))
	e.startWorkerOpts(Options{ID: "wc", Slots: 2, MemoryLimit: limit, Child: &ChildOptions{
		Command: []string{os.Args[0]}, NATS: e.ns.ClientURL(), Store: StoreConfig{Dir: e.dir},
		Connect: cluster.ConnectOptions{Name: "wc-attempt", InboxPrefix: cluster.InboxPrefix(cluster.RoleWorker, "wc")}}})
	for _, c := range []struct {
		id, kind, reason string
	}{
		{oom, errs.Memory.String(), "attempt: out of memory (limit 256.0 MiB)"},
		{panics, errs.Internal.String(), "panic: test hook: panic at step 5"},
		{nan, errs.Training.String(), "loss is"},
	} {
		st := e.waitState(c.id, 60*time.Second, "failed", status(cluster.StateFailed))
		if st.Attempt != 1 || st.ErrorKind != c.kind || st.Retryable || !strings.Contains(st.Error, c.reason) {
			t.Errorf("run %s: %s after %d attempts, error %q (%s, retryable %v); want failed after 1 attempt, %s error %q",
				c.id, st.Status, st.Attempt, st.Error, st.ErrorKind, st.Retryable, c.kind, c.reason)
		}
	}
	if st := e.waitState(good, 60*time.Second, "succeeded", status(cluster.StateSucceeded)); st.Attempt != 1 || st.Step != 400 {
		t.Errorf("the run beside them: %+v; want succeeded on attempt 1", st)
	}
	after := e.submit(childSpec(50, adam, ""))
	if st := e.waitState(after, 60*time.Second, "succeeded", status(cluster.StateSucceeded)); st.Worker != "wc" {
		t.Errorf("a run after the failures: %+v; want succeeded on wc", st)
	}
	ws, err := e.cli.Workers(context.Background())
	if err != nil || len(ws) != 1 || ws[0].MemoryLimit != limit || ws[0].Slots != 2 {
		t.Errorf("Workers = %+v, %v; want wc with 2 slots and a 256 MiB limit", ws, err)
	}
}

// TestChildFailureReasons: how an attempt process that ended without a
// result is described, from its exit, its last stderr lines and its
// memory group.
func TestChildFailureReasons(t *testing.T) {
	exit := func(script string) error { return exec.Command("sh", "-c", script).Run() }
	cases := []struct {
		name     string
		err      error
		tail     []string
		want     string
		kind     errs.Kind
		retrying bool
	}{
		{"go out of memory", exit("exit 2"), []string{"fatal error: runtime: out of memory", "", "goroutine 1 [running]:"},
			"attempt: out of memory (limit 1.0 GiB)", errs.Memory, false},
		{"a panic in another goroutine", exit("exit 2"), []string{"level=INFO msg=training", "panic: index out of range [3] with length 3",
			"", "goroutine 7 [running]:"}, "attempt: panic: index out of range [3] with length 3", errs.Internal, false},
		{"a fatal error", exit("exit 2"), []string{"fatal error: concurrent map writes"}, "attempt: crashed: concurrent map writes",
			errs.Internal, false},
		{"SIGSEGV", exit("kill -SEGV $$"), nil, "attempt: crashed: SIGSEGV", errs.Internal, false},
		{"SIGKILL from outside", exit("kill -KILL $$"), nil, "attempt: killed (SIGKILL)", errs.Other, true},
		{"an exit without a result", exit("exit 3"), []string{"level=ERROR msg=bad"},
			"attempt: the attempt process ended without a result (exit status 3): level=ERROR msg=bad", errs.Other, true},
	}
	for _, c := range cases {
		r := childFailure(c.err, c.tail, nil, 1<<30)
		if r.Status != cluster.StateFailed || r.Error != c.want || r.Kind != c.kind.String() || r.Retryable != c.retrying {
			t.Errorf("%s: %+v; want failed %q (%s, retryable %v)", c.name, r, c.want, c.kind, c.retrying)
		}
	}
}
