package testutil

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

// BadCall is one call of a public function with bad input. It must return
// a *errs.TorchError whose Op is Op and whose kind is neither Other nor
// Internal, and it must not panic.
type BadCall struct {
	Op   string
	Call func() error
}

// CheckBadCalls runs every call of walk (keyed by function name) and
// reports panics, untyped errors, missing errors and wrong op names.
func CheckBadCalls(t *testing.T, walk map[string][]BadCall) {
	t.Helper()
	for name, calls := range walk {
		for i, c := range calls {
			err := func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("PANIC: %v", r)
					}
				}()
				return c.Call()
			}()
			var te *errs.TorchError
			switch {
			case err == nil:
				t.Errorf("%s call %d: no error", name, i)
			case strings.HasPrefix(err.Error(), "PANIC"):
				t.Errorf("%s call %d: %v", name, i, err)
			case !errors.As(err, &te):
				t.Errorf("%s call %d: error %q is not a *errs.TorchError", name, i, err)
			case te.Kind == errs.Other || te.Kind == errs.Internal:
				t.Errorf("%s call %d: error %q has kind %v", name, i, err, te.Kind)
			case te.Op != c.Op:
				t.Errorf("%s call %d: error %q names op %q, want %q", name, i, err, te.Op, c.Op)
			}
		}
	}
}

// ExportedErrorFuncs parses the non-test Go files in dir and lists its
// exported functions and methods of exported types (as "Type.Method")
// whose last result is an error.
func ExportedErrorFuncs(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || !fd.Name.IsExported() || fd.Type.Results == nil {
				continue
			}
			res := fd.Type.Results.List
			if id, ok := res[len(res)-1].Type.(*ast.Ident); !ok || id.Name != "error" {
				continue
			}
			name := fd.Name.Name
			if fd.Recv != nil {
				typ := fd.Recv.List[0].Type
				if st, ok := typ.(*ast.StarExpr); ok {
					typ = st.X
				}
				id, ok := typ.(*ast.Ident)
				if !ok || !ast.IsExported(id.Name) {
					continue
				}
				name = id.Name + "." + name
			}
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// RequireWalked fails t for every exported error-returning function of dir
// without an entry in walk, and if the source walk finds fewer than min.
func RequireWalked(t *testing.T, dir string, walk map[string][]BadCall, min int) {
	t.Helper()
	fns := ExportedErrorFuncs(t, dir)
	if len(fns) < min {
		t.Fatalf("found only %d public functions returning errors in %s; the source walk is broken", len(fns), dir)
	}
	for _, fn := range fns {
		if _, ok := walk[fn]; !ok {
			t.Errorf("public function %s returns an error but has no entry in the no-panic walk", fn)
		}
	}
}
