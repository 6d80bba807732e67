package main

/*
#include <stdint.h>
*/
import "C"

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"unsafe"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/train"
)

// s3JSON names S3Config's fields as the Python package does.
type s3JSON struct {
	Endpoint     string `json:"endpoint"`
	Bucket       string `json:"bucket"`
	Prefix       string `json:"prefix"` // keys live under it (experiment.WithPrefix)
	AccessKey    string `json:"access_key"`
	SecretKey    string `json:"secret_key"`
	Region       string `json:"region"`
	Insecure     bool   `json:"insecure"`
	CreateBucket bool   `json:"create_bucket"`
}

// recordStore is an open store and its reader.
type recordStore struct {
	store experiment.Store
	rd    *experiment.Reader
}

func openStore(op, cfg string) (*recordStore, error) {
	var c struct {
		Path string  `json:"path"`
		S3   *s3JSON `json:"s3"`
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(cfg)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, errs.Wrap(errs.Argument, op, err, "store configuration")
	}
	var st experiment.Store
	var err error
	switch {
	case c.S3 != nil && c.Path == "":
		s := c.S3
		st, err = experiment.NewS3Store(context.Background(), experiment.S3Config{Endpoint: s.Endpoint, Bucket: s.Bucket,
			AccessKey: s.AccessKey, SecretKey: s.SecretKey, Region: s.Region, Insecure: s.Insecure, CreateBucket: s.CreateBucket})
		if err == nil {
			st, err = experiment.WithPrefix(st, s.Prefix)
		}
	case c.Path != "" && c.S3 == nil:
		st, err = openLocal(op, c.Path)
	default:
		return nil, errs.New(errs.Argument, op, "store configuration needs exactly one of path and s3")
	}
	if err != nil {
		return nil, err
	}
	return &recordStore{store: st, rd: experiment.NewReader(st)}, nil
}

// openLocal opens an existing store directory: reading a mistyped path
// is an error, not a new empty store.
func openLocal(op, dir string) (experiment.Store, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, errs.Wrap(errs.Experiment, op, err, "store directory")
	}
	if !fi.IsDir() {
		return nil, errs.New(errs.Argument, op, "store path %q is not a directory", dir)
	}
	return experiment.NewLocalStore(dir)
}

//export gorch_store_open
func gorch_store_open(cfg *C.char, h *C.uint64_t, errOut **C.char) C.int {
	return guard(errOut, func() error {
		const op = "gorch.Store"
		if err := needOut(op, unsafe.Pointer(h)); err != nil {
			return err
		}
		s, err := goString(op, "cfg", cfg)
		if err != nil {
			return err
		}
		rs, err := openStore(op, s)
		if err != nil {
			return err
		}
		*h = newHandle(rs)
		return nil
	})
}

// withStore is the common body of the store exports: it resolves the
// store handle and the run id (if run is not nil) and stores f's result
// as JSON in *out.
func withStore(errOut **C.char, op string, h C.uint64_t, run *C.char, out **C.char, f func(ctx context.Context, rs *recordStore, id string) (any, error)) C.int {
	return guard(errOut, func() error {
		if err := needOut(op, unsafe.Pointer(out)); err != nil {
			return err
		}
		rs, err := lookup[*recordStore](op, h)
		if err != nil {
			return err
		}
		id := ""
		if run != nil {
			id = C.GoString(run)
		}
		v, err := f(context.Background(), rs, id)
		if err != nil {
			return err
		}
		setString(out, mustJSON(v))
		return nil
	})
}

//export gorch_store_runs
func gorch_store_runs(h C.uint64_t, out, errOut **C.char) C.int {
	return withStore(errOut, "gorch.Store.runs", h, nil, out, func(ctx context.Context, rs *recordStore, _ string) (any, error) {
		return rs.rd.ListRuns(ctx)
	})
}

// runJSON is one run's records: its summary (or, before the first
// summary, a summary holding run.json only) and artifacts.
type runJSON struct {
	Summary    experiment.Summary    `json:"summary"`
	HasSummary bool                  `json:"has_summary"`
	Artifacts  []experiment.Artifact `json:"artifacts"`
}

//export gorch_store_run
func gorch_store_run(h C.uint64_t, run *C.char, out, errOut **C.char) C.int {
	return withStore(errOut, "gorch.Store.run", h, run, out, func(ctx context.Context, rs *recordStore, id string) (any, error) {
		var r runJSON
		var err error
		r.Summary, err = rs.rd.GetSummary(ctx, id)
		r.HasSummary = err == nil
		if experiment.IsNotFound(err) {
			var run experiment.Run
			if run, err = rs.rd.GetRun(ctx, id); err == nil {
				r.Summary = experiment.Summary{Run: run, Status: run.Status}
			}
		}
		if err != nil {
			return nil, err
		}
		r.Artifacts, err = rs.rd.Artifacts(ctx, id)
		return r, err
	})
}

// storeRun resolves a store handle and a run id argument, and checks that
// the run exists (a missing run is a not-found error, not an empty result).
func storeRun(ctx context.Context, op string, h C.uint64_t, run *C.char) (*recordStore, string, error) {
	rs, err := lookup[*recordStore](op, h)
	if err != nil {
		return nil, "", err
	}
	id, err := goString(op, "run", run)
	if err != nil {
		return nil, "", err
	}
	if _, err := rs.rd.GetRun(ctx, id); err != nil {
		return nil, "", err
	}
	return rs, id, nil
}

// ckptEntry is one checkpoint object of a run.
type ckptEntry struct {
	Step int64  `json:"step"`
	Key  string `json:"key"`
}

//export gorch_store_checkpoints
func gorch_store_checkpoints(h C.uint64_t, run *C.char, out, errOut **C.char) C.int {
	return withStore(errOut, "gorch.Run.checkpoints", h, run, out, func(ctx context.Context, rs *recordStore, id string) (any, error) {
		if _, err := rs.rd.GetRun(ctx, id); err != nil {
			return nil, err
		}
		keys, err := train.NewCheckpoints(rs.store, id, 1).Keys(ctx)
		if err != nil {
			return nil, err
		}
		list := []ckptEntry{}
		for _, k := range keys {
			var step int64
			if _, err := fmt.Sscanf(path.Base(k), "step-%d.rtch", &step); err == nil {
				list = append(list, ckptEntry{Step: step, Key: k})
			}
		}
		return list, nil
	})
}

//export gorch_store_checkpoint
func gorch_store_checkpoint(h C.uint64_t, run *C.char, step C.int64_t, ck *C.uint64_t, info **C.char, data *unsafe.Pointer, size *C.int64_t, errOut **C.char) C.int {
	return guard(errOut, func() error {
		const op = "gorch.Run.checkpoint"
		if err := needOut(op, unsafe.Pointer(ck), unsafe.Pointer(info), unsafe.Pointer(data), unsafe.Pointer(size)); err != nil {
			return err
		}
		ctx := context.Background()
		rs, id, err := storeRun(ctx, op, h, run)
		if err != nil {
			return err
		}
		c := train.NewCheckpoints(rs.store, id, 1)
		b, err := c.Pull(ctx, int64(step))
		if err != nil {
			return err
		}
		src := c.Key(int64(step))
		if step < 0 {
			src = c.Prefix() + "LATEST"
		}
		return openVerified(op, src, cCopy(b), ck, info, data, size)
	})
}
