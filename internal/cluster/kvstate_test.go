package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/pkg/errs"
)

func TestStateHelpers(t *testing.T) {
	js := embeddedJS(t)
	ctx := context.Background()
	if _, err := Setup(ctx, js, SetupOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, _ := js.KeyValue(ctx, BucketRuns)

	if states, err := ListStates(ctx, kv); err != nil || len(states) != 0 {
		t.Fatalf("ListStates(empty) = %v, %v", states, err)
	}
	if _, _, err := GetState(ctx, kv, "nope"); !errors.Is(err, errs.Experiment) || err.Error() != "run nope not found" {
		t.Errorf("GetState(missing) = %v", err)
	}
	t0 := time.Unix(100, 0).UTC()
	for _, id := range []string{"b", "a"} {
		if _, err := CreateState(ctx, kv, RunState{RunID: id, Status: StateQueued, Submitted: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := CreateState(ctx, kv, RunState{RunID: "a"}); err == nil {
		t.Error("CreateState of an existing run succeeded")
	}

	// A writer that slips in between read and write forces a retry.
	calls := 0
	st, _, err := UpdateState(ctx, kv, "a", func(s *RunState) error {
		calls++
		if calls == 1 {
			b, _ := msgpack.Marshal(&RunState{RunID: "a", Status: StateRunning, Attempt: 1, Submitted: t0})
			if _, err := kv.Put(ctx, RunKey("a"), b); err != nil {
				t.Fatal(err)
			}
		}
		s.Step = 7
		return nil
	})
	if err != nil || calls != 2 || st.Status != StateRunning || st.Attempt != 1 || st.Step != 7 {
		t.Errorf("UpdateState after a conflict = %+v, %v (%d calls); want the concurrent write kept and step 7", st, err, calls)
	}
	if _, _, err := UpdateState(ctx, kv, "a", func(*RunState) error { return ErrStopUpdate }); err != nil {
		t.Errorf("UpdateState(ErrStopUpdate) = %v", err)
	}
	states, err := ListStates(ctx, kv)
	if err != nil || len(states) != 2 || states[0].RunID != "a" || states[1].RunID != "b" || states[0].Step != 7 {
		t.Errorf("ListStates = %+v, %v", states, err)
	}
	// A value that does not decode: GetState and UpdateState say so (with
	// its revision), ListStates lists it as malformed.
	rev, err := kv.Put(ctx, RunKey("c"), []byte{0xc1})
	if err != nil {
		t.Fatal(err)
	}
	if st, r, err := GetState(ctx, kv, "c"); !errors.Is(err, ErrMalformed) || r != rev || st.Status != StateMalformed {
		t.Errorf("GetState(malformed) = %+v, %d, %v; want StateMalformed at revision %d and ErrMalformed", st, r, err, rev)
	}
	if _, r, err := UpdateState(ctx, kv, "c", func(*RunState) error { return nil }); !errors.Is(err, ErrMalformed) || r != rev {
		t.Errorf("UpdateState(malformed) = %d, %v; want revision %d and ErrMalformed", r, err, rev)
	}
	if states, err := ListStates(ctx, kv); err != nil || len(states) != 3 || states[0].Status != StateMalformed {
		t.Errorf("ListStates with a malformed value = %+v, %v; want it listed first as malformed", states, err)
	}
}
