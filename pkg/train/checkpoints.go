package train

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
)

// Checkpoints is a run's checkpoint directory in a store:
// runs/<id>/checkpoints/step-<N>.rtch objects and a LATEST pointer that
// is written after the object it names, so a reader never follows it to a
// missing or partial checkpoint. [RecordSink] and the cluster worker both
// keep their checkpoints through it.
type Checkpoints struct {
	store    experiment.Store
	runID    string
	keepLast int
}

// NewCheckpoints returns the checkpoint directory of runID in store.
// Save keeps the newest keepLast checkpoints (at least one).
func NewCheckpoints(store experiment.Store, runID string, keepLast int) *Checkpoints {
	return &Checkpoints{store: store, runID: runID, keepLast: max(keepLast, 1)}
}

// Prefix is the store prefix the checkpoints live under.
func (c *Checkpoints) Prefix() string { return "runs/" + c.runID + "/checkpoints/" }

// Key is the store key of the checkpoint taken after step.
func (c *Checkpoints) Key(step int64) string {
	return c.Prefix() + fmt.Sprintf("step-%012d.rtch", step)
}

// latestPointer is the LATEST pointer's content.
type latestPointer struct {
	Key  string `json:"key"`
	Step int64  `json:"step"`
}

// Save writes the checkpoint object, then the LATEST pointer, and deletes
// checkpoints beyond the newest keepLast. It returns the object's key and
// size.
func (c *Checkpoints) Save(ctx context.Context, step int64, ck *experiment.Checkpoint) (key string, size int64, err error) {
	return c.SaveGuarded(ctx, step, ck, nil)
}

// SaveGuarded is Save with a fence: guard (if not nil) is called before
// each write — the object, the LATEST pointer and the pruning — and its
// error stops the save there. The cluster worker passes an ownership check,
// so an attempt that lost its run (a paused or partitioned worker) does not
// move LATEST behind the new owner's back.
func (c *Checkpoints) SaveGuarded(ctx context.Context, step int64, ck *experiment.Checkpoint,
	guard func(context.Context) error) (key string, size int64, err error) {
	if guard == nil {
		guard = func(context.Context) error { return nil }
	}
	var buf bytes.Buffer
	if err := experiment.EncodeCheckpoint(&buf, ck); err != nil {
		return "", 0, err
	}
	key, size = c.Key(step), int64(buf.Len())
	if err := guard(ctx); err != nil {
		return "", 0, err
	}
	if err := c.store.Put(ctx, key, buf.Bytes()); err != nil {
		return "", 0, err
	}
	ptr, _ := json.Marshal(latestPointer{Key: key, Step: step}) // always marshals
	if err := guard(ctx); err != nil {
		return "", 0, err
	}
	if err := c.store.Put(ctx, c.Prefix()+"LATEST", ptr); err != nil {
		return "", 0, err
	}
	if err := guard(ctx); err != nil {
		return "", 0, err
	}
	return key, size, c.prune(ctx, key)
}

// Keys lists the run's checkpoint objects, oldest first: those of a
// cluster run's attempts (under a<N>/, see the worker) by attempt, then
// by step.
func (c *Checkpoints) Keys(ctx context.Context) ([]string, error) {
	keys, err := c.store.List(ctx, c.Prefix())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		if b := path.Base(k); strings.HasPrefix(b, "step-") && strings.HasSuffix(b, ".rtch") {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { // zero-padded steps sort numerically
		if ai, aj := attemptOf(out[i]), attemptOf(out[j]); ai != aj {
			return ai < aj
		}
		return out[i] < out[j]
	})
	return out, nil
}

// attemptOf is N of a checkpoint key under a<N>/, or 0.
func attemptOf(key string) int {
	dir := path.Base(path.Dir(key))
	n, err := strconv.Atoi(strings.TrimPrefix(dir, "a"))
	if !strings.HasPrefix(dir, "a") || err != nil {
		return 0
	}
	return n
}

// prune keeps the newest keepLast checkpoints and never deletes keep.
func (c *Checkpoints) prune(ctx context.Context, keep string) error {
	keys, err := c.Keys(ctx)
	if err != nil {
		return err
	}
	for i := 0; i < len(keys)-c.keepLast; i++ {
		if keys[i] == keep {
			continue
		}
		if err := c.store.Delete(ctx, keys[i]); err != nil && !experiment.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// latestKey returns the key LATEST names, or "" if it is missing or unreadable.
func (c *Checkpoints) latestKey(ctx context.Context) string {
	b, err := c.store.Get(ctx, c.Prefix()+"LATEST")
	if err != nil {
		return ""
	}
	var l latestPointer
	if json.Unmarshal(b, &l) != nil {
		return ""
	}
	return l.Key
}

// Load returns the checkpoint LATEST points to, or, if that is missing or
// invalid, the newest checkpoint that decodes and verifies; nil if the run
// has no checkpoint.
func (c *Checkpoints) Load(ctx context.Context) (*experiment.Checkpoint, error) {
	keys, err := c.Keys(ctx)
	if err != nil {
		return nil, err
	}
	if k := c.latestKey(ctx); k != "" {
		keys = append(keys, k) // tried first
	}
	var firstErr error
	for i := len(keys) - 1; i >= 0; i-- {
		b, err := c.store.Get(ctx, keys[i])
		if err == nil {
			var ck *experiment.Checkpoint
			if ck, err = experiment.DecodeCheckpoint(bytes.NewReader(b), int64(len(b))); err == nil {
				return ck, nil
			}
		}
		if firstErr == nil && !experiment.IsNotFound(err) {
			firstErr = err
		}
	}
	if firstErr != nil && len(keys) > 0 {
		return nil, errs.Wrap(errs.Checkpoint, "resume", firstErr, "no valid checkpoint for run %s", c.runID)
	}
	return nil, nil
}

// Pull returns the encoded checkpoint taken after step (-1: the one LATEST
// names, or the newest object if LATEST is missing; for a cluster run, the
// newest attempt's), verified: a corrupt
// object is an errs.Checkpoint error, a missing one wraps fs.ErrNotExist.
func (c *Checkpoints) Pull(ctx context.Context, step int64) ([]byte, error) {
	const op = "checkpoints.Pull"
	key := ""
	if step >= 0 {
		key = c.Key(step)
		keys, err := c.Keys(ctx)
		if err != nil {
			return nil, err
		}
		for _, k := range keys { // the newest attempt's, for a cluster run
			if path.Base(k) == path.Base(key) {
				key = k
			}
		}
	} else if key = c.latestKey(ctx); key == "" {
		keys, err := c.Keys(ctx)
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			return nil, errs.Wrap(errs.Experiment, op, fs.ErrNotExist, "run %s has no checkpoint", c.runID)
		}
		key = keys[len(keys)-1]
	}
	b, err := c.store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if _, err := experiment.VerifyCheckpoint(bytes.NewReader(b), int64(len(b))); err != nil {
		return nil, errs.Wrap(errs.Checkpoint, op, err, "%s", key)
	}
	return b, nil
}
