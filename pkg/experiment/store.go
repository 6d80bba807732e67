package experiment

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"

	"github.com/gorch/gorch/pkg/errs"
)

// Store is the key-value object store run records live in: a local
// directory ([LocalStore]) or an S3-compatible bucket ([S3Store]).
//
// Keys are slash-separated paths such as "runs/<id>/run.json". Objects are
// written whole and atomically: a reader sees the previous object or the
// new one, never a part. There is no append; growing logs are written as a
// series of numbered segment objects (see the package documentation).
//
// Every error is a *errs.TorchError: errs.IO when storage failed,
// errs.Experiment (wrapping fs.ErrNotExist, see [IsNotFound]) when an object
// is missing, errs.Argument for a malformed key.
type Store interface {
	// Put writes data as the object key, replacing any previous object.
	Put(ctx context.Context, key string, data []byte) error
	// PutFrom writes everything r yields as the object key. If r fails,
	// nothing is written.
	PutFrom(ctx context.Context, key string, r io.Reader) error
	// Get reads the whole object key.
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns the keys of every object whose key starts with prefix,
	// sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// ListDir returns the direct children of prefix (which is "" or ends in
	// "/"), sorted: objects as their keys, deeper levels as their prefix
	// ending in "/", like an S3 listing with delimiter "/".
	ListDir(ctx context.Context, prefix string) ([]string, error)
	// Delete removes the object key. Deleting a missing object is not an
	// error.
	Delete(ctx context.Context, key string) error
}

// IsNotFound reports whether err says that an object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func notFound(op, key string) error {
	return errs.Wrap(errs.Experiment, op, fs.ErrNotExist, "no object %q", key)
}

// tmpPrefix starts the name of a local temp file; keys may not use it.
const tmpPrefix = ".tmp-"

// checkKey rejects keys that are empty, absolute, have empty, "." or ".."
// segments, backslashes or NUL bytes, or name a temp file.
func checkKey(op, key string) error {
	bad := key == "" || strings.ContainsAny(key, "\\\x00")
	if !bad {
		for seg := range strings.SplitSeq(key, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, tmpPrefix) {
				bad = true
				break
			}
		}
	}
	if bad {
		return errs.New(errs.Argument, op, "invalid store key %q", key)
	}
	return nil
}

// checkPrefix accepts "" or a valid key prefix.
func checkPrefix(op, prefix string) error {
	if prefix == "" {
		return nil
	}
	p := strings.TrimSuffix(prefix, "/")
	if p == "" {
		return errs.New(errs.Argument, op, "invalid store prefix %q", prefix)
	}
	if strings.HasSuffix(prefix, "/") {
		return checkKey(op, p)
	}
	// A partial last segment ("runs/2026") is fine; check the rest.
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		if err := checkKey(op, p[:i]); err != nil {
			return err
		}
	}
	if strings.ContainsAny(p, "\\\x00") {
		return errs.New(errs.Argument, op, "invalid store prefix %q", prefix)
	}
	return nil
}
