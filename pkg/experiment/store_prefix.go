package experiment

import (
	"context"
	"io"
	"strings"
)

// prefixStore keeps every key of a Store under a fixed prefix, so that
// several deployments (or teams) share one bucket: WithPrefix(s3,
// "team-a") stores runs/<id>/run.json as team-a/runs/<id>/run.json.
type prefixStore struct {
	inner  Store
	prefix string // ends in "/"
}

// WithPrefix returns store with every key under prefix ("a" or "a/b";
// slashes at either end are ignored). An empty prefix returns store
// itself; a prefix that is not a valid key is an errs.Argument error.
func WithPrefix(store Store, prefix string) (Store, error) {
	p := strings.Trim(prefix, "/")
	if p == "" {
		return store, nil
	}
	if err := checkKey("experiment.WithPrefix", p); err != nil {
		return nil, err
	}
	return &prefixStore{inner: store, prefix: p + "/"}, nil
}

func (s *prefixStore) Put(ctx context.Context, key string, data []byte) error {
	if err := checkKey("experiment.Store.Put", key); err != nil {
		return err
	}
	return s.inner.Put(ctx, s.prefix+key, data)
}

func (s *prefixStore) PutFrom(ctx context.Context, key string, r io.Reader) error {
	if err := checkKey("experiment.Store.PutFrom", key); err != nil {
		return err
	}
	return s.inner.PutFrom(ctx, s.prefix+key, r)
}

func (s *prefixStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey("experiment.Store.Get", key); err != nil {
		return nil, err
	}
	return s.inner.Get(ctx, s.prefix+key)
}

func (s *prefixStore) Delete(ctx context.Context, key string) error {
	if err := checkKey("experiment.Store.Delete", key); err != nil {
		return err
	}
	return s.inner.Delete(ctx, s.prefix+key)
}

func (s *prefixStore) List(ctx context.Context, prefix string) ([]string, error) {
	if err := checkPrefix("experiment.Store.List", prefix); err != nil {
		return nil, err
	}
	return s.strip(s.inner.List(ctx, s.prefix+prefix))
}

func (s *prefixStore) ListDir(ctx context.Context, prefix string) ([]string, error) {
	if err := checkPrefix("experiment.Store.ListDir", prefix); err != nil {
		return nil, err
	}
	return s.strip(s.inner.ListDir(ctx, s.prefix+prefix))
}

// strip removes the prefix from listed keys.
func (s *prefixStore) strip(keys []string, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		keys[i] = strings.TrimPrefix(k, s.prefix)
	}
	return keys, nil
}
