// Command libgorch is gorch's C ABI: built with -buildmode=c-shared into
// libgorch.so, it is how the Python package (python/gorch) and any other
// non-Go caller reach the Go code — the RTCH reader and writer, the record
// stores and the cluster client — so that each exists once.
//
// gorch.h documents the ABI. Its rules, each backed by a failure it
// prevents:
//
//   - Every export recovers panics: an escaping Go panic aborts the host
//     process (a Python interpreter, say).
//   - Every export returns 0 or 1+errs.Kind and writes a JSON error
//     object, so callers map failures onto the same taxonomy as Go.
//   - Objects live in a handle table of uint64 ids; a stale or wrong id is
//     an argument error. cgo.Handle.Value panics on a stale handle.
//   - No Go pointer is returned or stored in C memory: results are
//     malloc'd copies or mmap'd files, and caller memory is used only
//     during the call (checked by running the tests against a
//     GOEXPERIMENT=cgocheck2 build).
//   - A forked child gets GORCH_EFORK at once: the Go runtime does not
//     survive fork, and a call that needs a goroutine would hang.
//   - Nothing here calls signal.Notify, so the host keeps its signals.
package main

/*
#include <stdlib.h>
#include <stdint.h>
extern int gorch_forked;
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"unsafe"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
)

func main() {}

// abiVersion is GORCH_ABI_VERSION of gorch.h; bump it with any change to
// an export's signature or meaning.
const abiVersion = 2

// codeFork is GORCH_EFORK: the call came from a forked child.
const codeFork = 100

// errJSON is the error object every failing export writes.
type errJSON struct {
	Kind     string `json:"kind"`
	Op       string `json:"op,omitempty"`
	Message  string `json:"message"`
	Reason   string `json:"reason,omitempty"`    // a corrupt checkpoint's reason, e.g. "truncated"
	NotFound bool   `json:"not_found,omitempty"` // the error wraps fs.ErrNotExist
}

// report writes err to *errOut (if errOut is not nil) and returns its code.
func report(errOut **C.char, err error) C.int {
	kind := errs.KindOf(err)
	e := errJSON{Kind: kind.String(), Op: errs.OpOf(err), Message: err.Error(), NotFound: errors.Is(err, fs.ErrNotExist)}
	var ce *experiment.CorruptionError
	if errors.As(err, &ce) {
		e.Reason = ce.Reason.String()
	}
	setString(errOut, mustJSON(e))
	return C.int(kind) + 1
}

// guard runs f as the body of an export: it refuses forked children,
// turns a panic into an internal error, and reports f's error.
func guard(errOut **C.char, f func() error) (rc C.int) {
	if C.gorch_forked != 0 {
		setString(errOut, mustJSON(errJSON{Kind: "fork", Op: "libgorch",
			Message: "libgorch: called in a process forked after the library was loaded; the Go runtime does not survive fork: start workers with the 'spawn' or 'forkserver' method"}))
		return codeFork
	}
	defer func() {
		if r := recover(); r != nil {
			rc = report(errOut, errs.New(errs.Internal, "libgorch", "panic: %v", r))
		}
	}()
	if err := f(); err != nil {
		return report(errOut, err)
	}
	return 0
}

// setString stores a malloc'd copy of s in *out, if out is not nil.
func setString(out **C.char, s string) {
	if out != nil {
		*out = C.CString(s)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only values of this package's own types are marshalled
	}
	return string(b)
}

// goString reads a C string argument; NULL is an argument error.
func goString(op, name string, s *C.char) (string, error) {
	if s == nil {
		return "", errs.New(errs.Argument, op, "%s is NULL", name)
	}
	return C.GoString(s), nil
}

// goBytes reads n bytes at p; n < 0 or NULL with n > 0 is an argument error.
func goBytes(op, name string, p *C.char, n C.int64_t) ([]byte, error) {
	if n < 0 || (p == nil && n > 0) {
		return nil, errs.New(errs.Argument, op, "%s: bad buffer (%d bytes)", name, n)
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n)), nil
}

// needOut checks that the output pointers of op are not NULL.
func needOut(op string, ptrs ...unsafe.Pointer) error {
	for i, p := range ptrs {
		if p == nil {
			return errs.New(errs.Argument, op, "output argument %d is NULL", i+1)
		}
	}
	return nil
}

// The handle table. Ids count up from 1 and are never reused, so a stale
// id finds nothing.
var table = struct {
	sync.Mutex
	next uint64
	objs map[uint64]any
}{objs: map[uint64]any{}}

func newHandle(v any) C.uint64_t {
	table.Lock()
	defer table.Unlock()
	table.next++
	table.objs[table.next] = v
	return C.uint64_t(table.next)
}

// lookup returns handle h's object as a T.
func lookup[T any](op string, h C.uint64_t) (T, error) {
	table.Lock()
	v, ok := table.objs[uint64(h)]
	table.Unlock()
	t, isT := v.(T)
	if !ok || !isT {
		var zero T
		what := "no such handle"
		if ok {
			what = fmt.Sprintf("handle is a %T", v)
		}
		return zero, errs.New(errs.Argument, op, "invalid handle %d (%s)", uint64(h), what)
	}
	return t, nil
}

// closer is an object that holds resources beyond Go memory.
type closer interface{ close() error }

//export gorch_free
func gorch_free(p unsafe.Pointer) { C.free(p) }

//export gorch_abi_version
func gorch_abi_version() C.int { return abiVersion }

//export gorch_version
func gorch_version(out, errOut **C.char) C.int {
	return guard(errOut, func() error {
		if err := needOut("gorch_version", unsafe.Pointer(out)); err != nil {
			return err
		}
		setString(out, mustJSON(map[string]any{"version": version, "abi": abiVersion}))
		return nil
	})
}

//export gorch_close
func gorch_close(h C.uint64_t, errOut **C.char) C.int {
	return guard(errOut, func() error {
		table.Lock()
		v, ok := table.objs[uint64(h)]
		delete(table.objs, uint64(h))
		table.Unlock()
		if !ok {
			return errs.New(errs.Argument, "gorch_close", "invalid handle %d (no such handle)", uint64(h))
		}
		if c, ok := v.(closer); ok {
			return c.close()
		}
		return nil
	})
}

//export gorch_live_handles
func gorch_live_handles() C.int {
	table.Lock()
	defer table.Unlock()
	return C.int(len(table.objs))
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"
