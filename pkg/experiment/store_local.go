package experiment

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gorch/gorch/pkg/errs"
)

// LocalStore is a [Store] over a local directory, the default record store
// (`gorch train --data-dir`). A key is a path below the root.
//
// Put writes a temp file in the target's directory, fsyncs it, renames it
// over the target and fsyncs the directory, so a crash leaves the old
// object or the new one, and a failed write leaves no file behind. Temp
// files are named ".tmp-*" and never listed. A LocalStore is safe for
// concurrent use.
type LocalStore struct {
	root string
}

// NewLocalStore returns a store rooted at dir, creating dir if needed.
func NewLocalStore(dir string) (*LocalStore, error) {
	const op = "experiment.NewLocalStore"
	if dir == "" {
		return nil, errs.New(errs.Argument, op, "empty directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "")
	}
	return &LocalStore{root: abs}, nil
}

// Root returns the store's directory.
func (s *LocalStore) Root() string { return s.root }

func (s *LocalStore) path(key string) string {
	return filepath.Join(s.root, filepath.FromSlash(key))
}

// Put implements [Store].
func (s *LocalStore) Put(ctx context.Context, key string, data []byte) error {
	return s.put(ctx, "experiment.LocalStore.Put", key, bytes.NewReader(data))
}

// PutFrom implements [Store].
func (s *LocalStore) PutFrom(ctx context.Context, key string, r io.Reader) error {
	return s.put(ctx, "experiment.LocalStore.PutFrom", key, r)
}

func (s *LocalStore) put(ctx context.Context, op, key string, r io.Reader) (err error) {
	if err := checkKey(op, key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return errs.Wrap(errs.IO, op, err, "put %q", key)
	}
	dst := s.path(key)
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return errs.Wrap(errs.IO, op, err, "put %q", key)
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return errs.Wrap(errs.IO, op, err, "put %q", key)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = io.Copy(f, r); err != nil {
		return errs.Wrap(errs.IO, op, err, "put %q", key)
	}
	if err = f.Sync(); err != nil {
		return errs.Wrap(errs.IO, op, err, "put %q", key)
	}
	if err = f.Close(); err != nil {
		return errs.Wrap(errs.IO, op, err, "put %q", key)
	}
	if err = os.Chmod(tmp, 0o644); err != nil {
		return errs.Wrap(errs.IO, op, err, "put %q", key)
	}
	if err = os.Rename(tmp, dst); err != nil {
		return errs.Wrap(errs.IO, op, err, "put %q", key)
	}
	if d, derr := os.Open(dir); derr == nil { // make the rename durable
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Get implements [Store].
func (s *LocalStore) Get(ctx context.Context, key string) ([]byte, error) {
	const op = "experiment.LocalStore.Get"
	if err := checkKey(op, key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "get %q", key)
	}
	b, err := os.ReadFile(s.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, notFound(op, key)
		}
		return nil, errs.Wrap(errs.IO, op, err, "get %q", key)
	}
	return b, nil
}

// List implements [Store].
func (s *LocalStore) List(ctx context.Context, prefix string) ([]string, error) {
	const op = "experiment.LocalStore.List"
	if err := checkPrefix(op, prefix); err != nil {
		return nil, err
	}
	base := prefix
	if !strings.HasSuffix(base, "/") {
		base = path.Dir(base)
		if base == "." {
			base = ""
		}
	}
	var keys []string
	root := s.path(base)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) || d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "list %q", prefix)
	}
	slices.Sort(keys)
	return keys, nil
}

// ListDir implements [Store].
func (s *LocalStore) ListDir(ctx context.Context, prefix string) ([]string, error) {
	const op = "experiment.LocalStore.ListDir"
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return nil, errs.New(errs.Argument, op, "prefix %q does not end in /", prefix)
	}
	if err := checkPrefix(op, prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "list %q", prefix)
	}
	ents, err := os.ReadDir(s.path(prefix))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, errs.Wrap(errs.IO, op, err, "list %q", prefix)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		k := prefix + e.Name()
		if e.IsDir() {
			k += "/"
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// Delete implements [Store].
func (s *LocalStore) Delete(ctx context.Context, key string) error {
	const op = "experiment.LocalStore.Delete"
	if err := checkKey(op, key); err != nil {
		return err
	}
	if err := os.Remove(s.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errs.Wrap(errs.IO, op, err, "delete %q", key)
	}
	return nil
}
