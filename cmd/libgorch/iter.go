package main

/*
#include <stdint.h>
*/
import "C"

import (
	"context"
	"encoding/json"
	"iter"
	"sync"
	"time"
	"unsafe"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
)

// pullIter pages through an iter.Seq2 (a run's metrics or telemetry read
// segment by segment), so a caller never holds more than a page.
type pullIter[T any] struct {
	mu      sync.Mutex
	next    func() (T, error, bool)
	stop    func()
	pending *T // read but did not fit the last page
	done    bool
}

func newPullIter[T any](seq iter.Seq2[T, error]) *pullIter[T] {
	next, stop := iter.Pull2(seq)
	return &pullIter[T]{next: next, stop: stop}
}

// take returns the next value; ok is false at the end.
func (p *pullIter[T]) take() (v T, ok bool, err error) {
	if p.pending != nil {
		v, p.pending = *p.pending, nil
		return v, true, nil
	}
	if p.done {
		return v, false, nil
	}
	v, err, ok = p.next()
	if !ok || err != nil {
		p.done = true
		p.stop()
	}
	return v, ok && err == nil, err
}

func (p *pullIter[T]) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	p.stop()
	return nil
}

// page returns up to max values as JSON items (the jsonPager interface).
func (p *pullIter[T]) page(max int, _ time.Duration) ([]any, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []any
	for len(out) < max {
		v, ok, err := p.take()
		if err != nil {
			return nil, true, err
		}
		if !ok {
			return out, true, nil
		}
		out = append(out, v)
	}
	return out, false, nil
}

// metricIter pages a run's metrics into the caller's columns.
type metricIter struct {
	*pullIter[experiment.Metric]
	want  map[string]bool // nil: every metric
	names []string
	index map[string]int32
}

// openRunIter is the body of an export that opens an iterator over a run
// of store handle h: it checks the out pointer it, resolves the run, and
// sets *it to a handle of what open makes.
func openRunIter(op string, h C.uint64_t, run *C.char, it *C.uint64_t, open func(ctx context.Context, rs *recordStore, id string) (any, error)) error {
	if err := needOut(op, unsafe.Pointer(it)); err != nil {
		return err
	}
	ctx := context.Background()
	rs, id, err := storeRun(ctx, op, h, run)
	if err != nil {
		return err
	}
	v, err := open(ctx, rs, id)
	if err != nil {
		return err
	}
	*it = newHandle(v)
	return nil
}

//export gorch_metrics_open
func gorch_metrics_open(h C.uint64_t, run, names *C.char, it *C.uint64_t, errOut **C.char) C.int {
	const op = "gorch.Run.metrics"
	return guard(errOut, func() error {
		return openRunIter(op, h, run, it, func(ctx context.Context, rs *recordStore, id string) (any, error) {
			m := &metricIter{pullIter: newPullIter(rs.rd.ReadMetrics(ctx, id)), index: map[string]int32{}}
			if names != nil {
				var list []string
				if err := json.Unmarshal([]byte(C.GoString(names)), &list); err != nil {
					return nil, errs.Wrap(errs.Argument, op, err, "names")
				}
				m.want = map[string]bool{}
				for _, n := range list {
					m.want[n] = true
				}
			}
			return m, nil
		})
	})
}

//export gorch_metrics_next
func gorch_metrics_next(h C.uint64_t, cap C.int64_t, step *C.int64_t, name *C.int32_t, value *C.double, timeNS *C.int64_t,
	attempt *C.int32_t, n *C.int64_t, names, errOut **C.char) C.int {
	return guard(errOut, func() error {
		const op = "gorch.Run.metrics"
		if err := needOut(op, unsafe.Pointer(n), unsafe.Pointer(names)); err != nil {
			return err
		}
		if cap < 0 || (cap > 0 && (step == nil || name == nil || value == nil || timeNS == nil || attempt == nil)) {
			return errs.New(errs.Argument, op, "bad page buffers (capacity %d)", int64(cap))
		}
		m, err := lookup[*metricIter](op, h)
		if err != nil {
			return err
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		k := 0
		if cap > 0 {
			steps, nameIdx := unsafe.Slice(step, int(cap)), unsafe.Slice(name, int(cap))
			values, times, attempts := unsafe.Slice(value, int(cap)), unsafe.Slice(timeNS, int(cap)), unsafe.Slice(attempt, int(cap))
			for k < int(cap) {
				v, ok, err := m.take()
				if err != nil {
					return err
				}
				if !ok {
					break
				}
				if m.want != nil && !m.want[v.Name] {
					continue
				}
				i, seen := m.index[v.Name]
				if !seen {
					i = int32(len(m.names))
					m.index[v.Name] = i
					m.names = append(m.names, v.Name)
				}
				steps[k], nameIdx[k], values[k] = C.int64_t(v.Step), C.int32_t(i), C.double(v.Value)
				times[k], attempts[k] = C.int64_t(v.Time.UnixNano()), C.int32_t(v.Attempt)
				k++
			}
		}
		*n = C.int64_t(k)
		setString(names, mustJSON(append([]string{}, m.names...)))
		return nil
	})
}

//export gorch_telemetry_open
func gorch_telemetry_open(h C.uint64_t, run *C.char, it *C.uint64_t, errOut **C.char) C.int {
	return guard(errOut, func() error {
		return openRunIter("gorch.Run.telemetry", h, run, it, func(ctx context.Context, rs *recordStore, id string) (any, error) {
			return jsonPager(newPullIter(rs.rd.ReadTelemetry(ctx, id))), nil
		})
	})
}

// jsonPager is an iterator read through gorch_iter_next_json.
type jsonPager interface {
	// page returns up to max items, waiting up to wait for the first;
	// done says nothing more will come.
	page(max int, wait time.Duration) (items []any, done bool, err error)
}

//export gorch_iter_next_json
func gorch_iter_next_json(h C.uint64_t, max, waitMS C.int64_t, done *C.int32_t, out, errOut **C.char) C.int {
	return guard(errOut, func() error {
		const op = "gorch.iter"
		if err := needOut(op, unsafe.Pointer(out), unsafe.Pointer(done)); err != nil {
			return err
		}
		if max <= 0 || waitMS < 0 {
			return errs.New(errs.Argument, op, "page size %d and wait %d ms: want > 0 and >= 0", int64(max), int64(waitMS))
		}
		p, err := lookup[jsonPager](op, h)
		if err != nil {
			return err
		}
		items, end, err := p.page(int(max), time.Duration(waitMS)*time.Millisecond)
		if err != nil {
			return err
		}
		if items == nil {
			items = []any{}
		}
		*done = 0
		if end {
			*done = 1
		}
		setString(out, mustJSON(items))
		return nil
	})
}
