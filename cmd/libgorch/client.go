package main

/*
#include <stdint.h>
*/
import "C"

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/natsconn"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/services/coordinator"
)

// clusterClient is a NATS connection and the coordinator client on it:
// the Go client itself, so the wire contract has one implementation.
type clusterClient struct {
	nc *nats.Conn
	c  *coordinator.Client
}

func (c *clusterClient) close() error {
	c.nc.Close()
	return nil
}

//export gorch_client_open
func gorch_client_open(url, opts *C.char, h *C.uint64_t, errOut **C.char) C.int {
	return guard(errOut, func() error {
		const op = "gorch.Client"
		if err := needOut(op, unsafe.Pointer(h)); err != nil {
			return err
		}
		u, err := goString(op, "url", url)
		if err != nil {
			return err
		}
		// The CLI's connection options (natsconn.Options' JSON names:
		// creds, nkey, user, password_file, tls_ca, tls_cert, tls_key),
		// plus the request timeout.
		var o struct {
			natsconn.Options
			TimeoutS float64 `json:"timeout_s"`
		}
		if opts != nil {
			dec := json.NewDecoder(bytes.NewReader([]byte(C.GoString(opts))))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&o); err != nil {
				return errs.Wrap(errs.Argument, op, err, "client options")
			}
		}
		if (o.TLSCert == "") != (o.TLSKey == "") {
			return errs.New(errs.Argument, op, "tls_cert and tls_key go together")
		}
		co := o.Options
		co.Name, co.InboxPrefix = "gorch-python", cluster.InboxPrefix(cluster.RoleClient, "")
		nc, err := natsconn.Dial(context.Background(), u, co)
		if err != nil {
			return err
		}
		c := coordinator.NewClient(nc)
		if o.TimeoutS > 0 {
			c.Timeout = time.Duration(o.TimeoutS * float64(time.Second))
		}
		*h = newHandle(&clusterClient{nc: nc, c: c})
		return nil
	})
}

// withClient is the common body of the client exports: f's result goes to
// *out as JSON (when out is not nil).
func withClient(errOut **C.char, op string, h C.uint64_t, out **C.char, f func(ctx context.Context, c *clusterClient) (any, error)) C.int {
	return guard(errOut, func() error {
		c, err := lookup[*clusterClient](op, h)
		if err != nil {
			return err
		}
		v, err := f(context.Background(), c)
		if err != nil {
			return err
		}
		if out != nil {
			setString(out, mustJSON(v))
		}
		return nil
	})
}

//export gorch_client_submit
func gorch_client_submit(h C.uint64_t, spec *C.char, n C.int64_t, prio *C.char, ids, errOut **C.char) C.int {
	const op = "gorch.Client.submit"
	return withClient(errOut, op, h, ids, func(ctx context.Context, c *clusterClient) (any, error) {
		b, err := goBytes(op, "spec", spec, n)
		if err != nil {
			return nil, err
		}
		p := ""
		if prio != nil {
			p = C.GoString(prio)
		}
		pr, err := cluster.ParsePriority(p)
		if err != nil {
			return nil, err
		}
		return c.c.Submit(ctx, b, pr)
	})
}

//export gorch_client_sweep
func gorch_client_sweep(h C.uint64_t, sweep *C.char, n C.int64_t, ids, errOut **C.char) C.int {
	const op = "gorch.Client.sweep"
	return withClient(errOut, op, h, ids, func(ctx context.Context, c *clusterClient) (any, error) {
		b, err := goBytes(op, "sweep", sweep, n)
		if err != nil {
			return nil, err
		}
		return c.c.Sweep(ctx, b)
	})
}

//export gorch_client_status
func gorch_client_status(h C.uint64_t, run *C.char, out, errOut **C.char) C.int {
	const op = "gorch.Client.status"
	return withClient(errOut, op, h, out, func(ctx context.Context, c *clusterClient) (any, error) {
		if run == nil {
			return c.c.List(ctx)
		}
		return c.c.Status(ctx, C.GoString(run))
	})
}

//export gorch_client_cancel
func gorch_client_cancel(h C.uint64_t, run *C.char, errOut **C.char) C.int {
	const op = "gorch.Run.cancel"
	return withClient(errOut, op, h, nil, func(ctx context.Context, c *clusterClient) (any, error) {
		id, err := goString(op, "run", run)
		if err != nil {
			return nil, err
		}
		return nil, c.c.Cancel(ctx, id)
	})
}

// waitPoll is how often wait asks the coordinator for the run's state.
const waitPoll = 200 * time.Millisecond

//export gorch_client_wait
func gorch_client_wait(h C.uint64_t, run *C.char, waitMS C.int64_t, done *C.int32_t, out, errOut **C.char) C.int {
	const op = "gorch.Run.wait"
	return withClient(errOut, op, h, out, func(ctx context.Context, c *clusterClient) (any, error) {
		if err := needOut(op, unsafe.Pointer(done), unsafe.Pointer(out)); err != nil {
			return nil, err
		}
		id, err := goString(op, "run", run)
		if err != nil {
			return nil, err
		}
		deadline := time.Now().Add(time.Duration(waitMS) * time.Millisecond)
		for {
			st, err := c.c.Status(ctx, id)
			if err != nil {
				return nil, err
			}
			// RecordsFinal: the coordinator heard from the collector that
			// the terminal attempt's records are all written.
			final := cluster.Terminal(st.Status) && st.RecordsFinal
			if final || time.Now().After(deadline) {
				*done = 0
				if final {
					*done = 1
				}
				return st, nil
			}
			time.Sleep(min(waitPoll, time.Until(deadline)+time.Millisecond))
		}
	})
}

// chanIter feeds a goroutine's values to gorch_iter_next_json pages.
type chanIter struct {
	ch     chan any
	errc   chan error
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	done   bool
}

func (it *chanIter) close() error {
	it.cancel()
	it.wg.Wait()
	return nil
}

func (it *chanIter) page(max int, wait time.Duration) ([]any, bool, error) {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.done {
		return nil, true, nil
	}
	var out []any
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(out) < max {
		var v any
		var ok bool
		if len(out) == 0 {
			select {
			case v, ok = <-it.ch:
			case <-timer.C:
				return out, false, nil
			}
		} else {
			select {
			case v, ok = <-it.ch:
			default:
				return out, false, nil
			}
		}
		if !ok {
			it.done = true
			return out, true, <-it.errc
		}
		out = append(out, v)
	}
	return out, false, nil
}

//export gorch_client_follow
func gorch_client_follow(h C.uint64_t, run *C.char, follow C.int32_t, it *C.uint64_t, errOut **C.char) C.int {
	const op = "gorch.Run.follow"
	return withClient(errOut, op, h, nil, func(_ context.Context, c *clusterClient) (any, error) {
		if err := needOut(op, unsafe.Pointer(it)); err != nil {
			return nil, err
		}
		id, err := goString(op, "run", run)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		ci := &chanIter{ch: make(chan any, 256), errc: make(chan error, 1), cancel: cancel}
		ci.wg.Go(func() {
			var ferr error
			defer func() {
				if r := recover(); r != nil { // a panic here would end the host process
					ferr = errs.New(errs.Internal, op, "panic: %v", r)
				}
				ci.errc <- ferr
				close(ci.ch)
			}()
			for p, err := range c.c.Metrics(ctx, id, follow != 0) {
				if err != nil {
					ferr = err
					return
				}
				select {
				case ci.ch <- p:
				case <-ctx.Done():
					return
				}
			}
		})
		*it = newHandle(jsonPager(ci))
		return nil, nil
	})
}
