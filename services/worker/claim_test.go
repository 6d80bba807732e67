package worker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
)

// tagged adds spec tags to a blobSpec.
func tagged(spec []byte, tags string) []byte {
	s := string(spec)
	return []byte(s[:strings.LastIndex(s, "}")] + `,"tags":{` + tags + `}}`)
}

// oneAttempt checks that run id succeeded on attempt 1 of worker, with
// every event of attempt 1.
func (e *env) oneAttempt(id, worker string, steps int) {
	e.t.Helper()
	st := e.waitState(id, 60*time.Second, "succeeded", status(cluster.StateSucceeded))
	if st.Attempt != 1 || fmt.Sprint(st.Owners) != "["+worker+"]" || st.Step != int64(steps) {
		e.t.Errorf("run %s: attempt %d, owners %v, step %d; want attempt 1 of %s, step %d", id, st.Attempt, st.Owners, st.Step, worker, steps)
	}
	var evs []string
	for _, ev := range e.runEvents(id) {
		evs = append(evs, fmt.Sprintf("%s/%d/%s", ev.Kind, ev.Attempt, ev.Status))
	}
	if fmt.Sprint(evs) != "[started/1/ finished/1/succeeded]" {
		e.t.Errorf("run %s: run events %v; want attempt 1 started and succeeded", id, evs)
	}
	ms := e.metricSteps(id)
	if len(ms) != 1 || len(ms[1]) != steps {
		e.t.Errorf("run %s: train/loss points by attempt %v; want %d of attempt 1 only", id, ms, steps)
	}
}

// fetchRun fetches the next message of the normal dispatch consumer as
// the test (standing in for a worker's slot).
func (e *env) fetchRun() jetstream.Msg {
	e.t.Helper()
	c, err := e.js.Consumer(context.Background(), cluster.StreamRuns, cluster.DispatchConsumer(cluster.PriorityNormal))
	if err != nil {
		e.t.Fatal(err)
	}
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	for m := range batch.Messages() {
		return m
	}
	e.t.Fatalf("no run message to fetch (%v)", batch.Error())
	return nil
}

// TestLostClaimRepliesUseNoAttempt: the coordinator applies a claim but
// its reply never reaches the worker (dropped by the test hook, or lost
// while the message went back to the queue and came again): the worker
// claims again and gets the attempt its lost claim started, so the run
// succeeds on attempt 1 with no other attempt's events.
func TestLostClaimRepliesUseNoAttempt(t *testing.T) {
	t.Setenv(TestHooksEnv, "1")
	e := newEnv(t)
	ctx := context.Background()

	t.Run("retried in place", func(t *testing.T) {
		id := e.submit(tagged(blobSpec(20, 3e-3, "adam"), `"`+HookDropClaimReplies+`":"2"`))
		stop := e.startWorker("w1", 1)
		defer stop()
		e.oneAttempt(id, "w1", 20)
	})

	t.Run("redelivered", func(t *testing.T) {
		id := e.submit(blobSpec(20, 3e-3, "adam"))
		w, err := New(context.Background(), e.connect("w2", cluster.RoleWorker), Options{ID: "w2", Store: e.store, Logger: quiet(), PublishEvery: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		// The worker's claim for delivery 1 reaches the coordinator; its
		// reply is lost (the test drops it) and the message goes back.
		m := e.fetchRun()
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		r, err := w.api.call(ctx, cluster.WOpClaim, &cluster.WorkerRequest{RunID: id,
			Claim: &cluster.ClaimInfo{Instance: w.instance, Seq: md.Sequence.Stream, Delivered: md.NumDelivered}})
		if err != nil || r.Action != cluster.ActionTrain || r.State.Attempt != 1 {
			t.Fatalf("first claim = %+v, %v; want attempt 1", r, err)
		}
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.Run(rctx) }()
		defer func() { cancel(); <-done }()
		e.oneAttempt(id, "w2", 20)
		if st := e.state(id); st.Claim == nil || st.Claim.Delivered != 2 || st.Claim.Instance != w.instance {
			t.Errorf("run %s: claim %+v; want delivery 2 of instance %s", id, st.Claim, w.instance)
		}
	})

	t.Run("delivered again while held", func(t *testing.T) {
		id := e.submit(blobSpec(20, 3e-3, "adam"))
		w, err := New(context.Background(), e.connect("w3", cluster.RoleWorker), Options{ID: "w3", Store: e.store, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		// A slot of w3 holds the run (delivery 1); the message comes
		// again (delivery 2) to another slot, which keeps the first
		// slot's attempt: no claim, the new delivery handed over.
		m1 := e.fetchRun()
		run, held := w.hold(id, m1)
		if !held {
			t.Fatal("hold of a run no slot holds = false")
		}
		if err := m1.Nak(); err != nil {
			t.Fatal(err)
		}
		m2 := e.fetchRun()
		w.handle(ctx, m2)
		if st := e.state(id); st.Status != cluster.StateQueued || st.Attempt != 0 {
			t.Errorf("run %s after the second delivery: %s attempt %d; want queued, no attempt", id, st.Status, st.Attempt)
		}
		if w.message(run) != m2 {
			t.Error("the holding slot did not get the newer delivery")
		}
		w.release(id)
		// Still in RUNS: the second slot neither acked nor terminated it.
		if err := m2.Nak(); err != nil {
			t.Fatal(err)
		}
		stop := e.startWorker("w4", 1)
		defer stop()
		e.oneAttempt(id, "w4", 20)
	})
}
