package main

/*
#include <stdint.h>
*/
import "C"

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"unsafe"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/internal/plan"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// Graph plans: the torch.compile backend (python/gorch/compile) sends each
// supported partition of an ATen graph here once per input signature and
// runs it with one call per invocation. Tensors cross as data pointers into
// the caller's memory (PyTorch's), described by the plan's metadata: float32
// inputs are viewed in place and outputs written in place; integer and bool
// tensors (indices, targets, masks), which gorch holds as float32, are
// converted on the way.

// With GORCH_TEST_HOOKS=1 (the fault tests' switch, as for workers) plans
// also know the operators of plan.EnableTestOps, which panic or fail.
func init() {
	if os.Getenv("GORCH_TEST_HOOKS") == "1" {
		plan.EnableTestOps()
	}
}

// gcForPlans raises the GC target once plans are in use (unless GOGC is
// set): a plan run allocates all its activations and gradients afresh while
// the live heap between runs stays small, so at the default 100 the
// collector ran every few calls, and its background workers took CPU from
// the Python thread. At 400 a training step of the 784-256-10 MLP spent
// 10-15 % less time in the library (alternating runs, AMD EPYC).
var gcForPlans sync.Once

// planObj is a compiled plan in the handle table.
type planObj struct{ p *plan.Plan }

//export gorch_plan_ops
func gorch_plan_ops(out, errOut **C.char) C.int {
	return guard(errOut, func() error {
		if err := needOut("gorch_plan_ops", unsafe.Pointer(out)); err != nil {
			return err
		}
		setString(out, mustJSON(plan.Ops()))
		return nil
	})
}

//export gorch_plan_check
func gorch_plan_check(graph *C.char, out, errOut **C.char) C.int {
	return guard(errOut, func() error {
		const op = "gorch_plan_check"
		if err := needOut(op, unsafe.Pointer(out)); err != nil {
			return err
		}
		g, err := parseGraph(op, graph)
		if err != nil {
			return err
		}
		setString(out, mustJSON(plan.Check(g)))
		return nil
	})
}

//export gorch_plan_compile
func gorch_plan_compile(graph *C.char, h *C.uint64_t, info, errOut **C.char) C.int {
	return guard(errOut, func() error {
		const op = "gorch_plan_compile"
		if err := needOut(op, unsafe.Pointer(h), unsafe.Pointer(info)); err != nil {
			return err
		}
		g, err := parseGraph(op, graph)
		if err != nil {
			return err
		}
		p, err := plan.Compile(g)
		if err != nil {
			return err
		}
		gcForPlans.Do(func() {
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(400)
			}
		})
		*h = newHandle(&planObj{p})
		setString(info, mustJSON(map[string]any{"random": p.Random()}))
		return nil
	})
}

// parseGraph reads a graph argument.
func parseGraph(op string, graph *C.char) (*plan.Graph, error) {
	s, err := goString(op, "graph", graph)
	if err != nil {
		return nil, err
	}
	return plan.Parse([]byte(s))
}

//export gorch_plan_run
func gorch_plan_run(h C.uint64_t, ptrs *unsafe.Pointer, n C.int64_t, seed C.uint64_t, errOut **C.char) C.int {
	return guard(errOut, func() error {
		const op = "gorch_plan_run"
		obj, err := lookup[*planObj](op, h)
		if err != nil {
			return err
		}
		ins, outs := obj.p.Inputs(), obj.p.Outputs()
		if int(n) != len(ins)+len(outs) || (n > 0 && ptrs == nil) {
			return errs.New(errs.Argument, op, "%d pointers; the plan takes %d inputs and %d outputs", int64(n), len(ins), len(outs))
		}
		ps := unsafe.Slice(ptrs, int(n))
		inputs := make([]*tensor.Tensor, len(ins))
		for i, m := range ins {
			if inputs[i], err = readTensor(ps[i], m); err != nil {
				return errs.Wrap(errs.KindOf(err), op, err, "input %d", i)
			}
		}
		return obj.p.RunWith(inputs, uint64(seed), func(results []*tensor.Tensor) error {
			for j, m := range outs {
				if err := writeTensor(ps[len(ins)+j], m, results[j]); err != nil {
					return errs.Wrap(errs.KindOf(err), op, err, "output %d", j)
				}
			}
			return nil
		})
	})
}

// view returns the float32 tensor m describes at p, in place.
func view(p unsafe.Pointer, m plan.Meta) (*tensor.Tensor, error) {
	n := m.Extent()
	if n > 0 && p == nil {
		return nil, errs.New(errs.Argument, "gorch_plan_run", "NULL data pointer for a tensor of shape %v", m.Shape)
	}
	var data []float32
	if n > 0 {
		data = unsafe.Slice((*float32)(p), n)
	}
	return tensor.FromStorage(tensor.WrapStorage(data), m.Shape, strides(m), 0)
}

func strides(m plan.Meta) []int {
	if m.Strides == nil {
		return plan.Contiguous(m.Shape)
	}
	return m.Strides
}

// maxExact is the largest integer magnitude float32 holds exactly.
const maxExact = 1 << 24

// readTensor returns input m at p: a view for float32, a float32 copy of
// integer and bool tensors.
func readTensor(p unsafe.Pointer, m plan.Meta) (*tensor.Tensor, error) {
	if m.Dtype == "float32" {
		return view(p, m)
	}
	t, err := tensor.Zeros(m.Shape...)
	if err != nil {
		return nil, err
	}
	if err := convert(p, m, t.Data(), false); err != nil {
		return nil, err
	}
	return t, nil
}

// writeTensor writes result t into output m at p, converting to m's dtype.
func writeTensor(p unsafe.Pointer, m plan.Meta, t *tensor.Tensor) error {
	if m.Dtype == "float32" {
		dst, err := view(p, m)
		if err != nil {
			return err
		}
		if dst.IsContiguous() && (t.IsContiguous() || m.Numel() < 4096) {
			copy(dst.Data(), t.Data()) // a memmove where it can be
			return nil
		}
		return tensor.CopyInto(dst, t)
	}
	return convert(p, m, t.Data(), true)
}

// convert copies between the integer or bool tensor m at p and vals, its
// elements in row-major order as float32: out of m (write false; values
// beyond 2^24 are refused, float32 would round them) or into m (write true,
// rounding to the nearest integer; bool is vals != 0).
func convert(p unsafe.Pointer, m plan.Meta, vals []float32, write bool) error {
	switch m.Dtype {
	case "int64":
		return convertAs[int64](p, m, vals, write)
	case "int32":
		return convertAs[int32](p, m, vals, write)
	case "int16":
		return convertAs[int16](p, m, vals, write)
	case "int8":
		return convertAs[int8](p, m, vals, write)
	case "uint8":
		return convertAs[uint8](p, m, vals, write)
	case "bool":
		if write {
			for i, v := range vals {
				if v != 0 {
					vals[i] = 1
				}
			}
		}
		return convertAs[uint8](p, m, vals, write)
	}
	return errs.New(errs.Unsupported, "gorch_plan_run", "dtype %s", m.Dtype)
}

func convertAs[T int64 | int32 | int16 | int8 | uint8](p unsafe.Pointer, m plan.Meta, vals []float32, write bool) error {
	n := m.Extent()
	if n == 0 {
		return nil
	}
	mem := unsafe.Slice((*T)(p), n)
	st := strides(m)
	if slices.Equal(st, plan.Contiguous(m.Shape)) { // the usual case: one plain loop
		mem = mem[:len(vals)]
		if write {
			for i, v := range vals {
				mem[i] = T(math.RoundToEven(float64(v)))
			}
			return nil
		}
		for i, v := range mem {
			if int64(v) > maxExact || int64(v) < -maxExact {
				return errs.New(errs.Unsupported, "gorch_plan_run", "%s value %d is not exact in float32", m.Dtype, int64(v))
			}
			vals[i] = float32(v)
		}
		return nil
	}
	if !write {
		return forEachOffset(m.Shape, st, func(i, off int) error {
			v := mem[off]
			if int64(v) > maxExact || int64(v) < -maxExact {
				return errs.New(errs.Unsupported, "gorch_plan_run", "%s value %d is not exact in float32", m.Dtype, int64(v))
			}
			vals[i] = float32(v)
			return nil
		})
	}
	return forEachOffset(m.Shape, st, func(i, off int) error {
		mem[off] = T(math.RoundToEven(float64(vals[i])))
		return nil
	})
}

// forEachOffset calls f with each element's row-major index and its offset
// under strides.
func forEachOffset(shape, strides []int, f func(i, off int) error) error {
	n := 1
	for _, s := range shape {
		n *= s
	}
	idx := make([]int, len(shape))
	off := 0
	for i := 0; i < n; i++ {
		if err := f(i, off); err != nil {
			return err
		}
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			off += strides[d]
			if idx[d] < shape[d] {
				break
			}
			off -= idx[d] * strides[d]
			idx[d] = 0
		}
	}
	return nil
}

// threads is the kernel backend before gorch_set_num_threads capped it.
var threads struct {
	sync.Mutex
	base kernels.Backend
}

//export gorch_set_num_threads
func gorch_set_num_threads(n C.int32_t, errOut **C.char) C.int {
	return guard(errOut, func() error {
		if n < 1 {
			return errs.New(errs.Argument, "gorch_set_num_threads", "%d threads", int32(n))
		}
		threads.Lock()
		defer threads.Unlock()
		if threads.base == nil {
			threads.base = kernels.Default()
		}
		// The cap goes on the kernels (and through kernels.Threads on every
		// parallel loop of the engine), not on GOMAXPROCS: with GOMAXPROCS
		// 1 each call from the host's thread had to take the only P back
		// from the scheduler, a thread handoff that cost 40-60 µs of wall
		// clock per call (a one-operator graph: 104 -> 45 µs per call, and
		// the MLP's forward partition 1250 -> 790 µs; Intel Xeon, 2 cores).
		if int(n) > runtime.GOMAXPROCS(0) {
			runtime.GOMAXPROCS(int(n))
		}
		kernels.SetDefault(kernels.WithThreads(threads.base, int(n)))
		return nil
	})
}
