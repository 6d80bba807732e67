package experiment

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

// TestWithPrefix checks where a prefixed store's objects land and which
// prefixes it refuses (the store suite runs against it in TestStores).
func TestWithPrefix(t *testing.T) {
	dir := t.TempDir()
	local, err := NewLocalStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := WithPrefix(local, "/team/a/")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), "runs/x/run.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "team", "a", "runs", "x", "run.json")); err != nil {
		t.Errorf("object not under the prefix: %v", err)
	}
	if same, err := WithPrefix(local, "/"); err != nil || same != Store(local) {
		t.Errorf("WithPrefix(\"/\") = %v, %v; want the store itself", same, err)
	}
	for _, bad := range []string{"..", "a/../b", "a//b", ".tmp-x", "a\\b"} {
		if _, err := WithPrefix(local, bad); !errors.Is(err, errs.Argument) {
			t.Errorf("WithPrefix(%q) = %v; want errs.Argument", bad, err)
		}
	}
	if _, err := s.Get(context.Background(), "../escape"); !errors.Is(err, errs.Argument) {
		t.Errorf("Get(../escape) = %v; want errs.Argument", err)
	}
}
