package main

/*
#include <stdlib.h>
#include <stdint.h>
*/
import "C"

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
)

// ckptBuf is a verified checkpoint file's bytes outside the Go heap: a
// read-only mapping of a local file, or a malloc'd copy of a store object.
// The caller views tensors in place until it closes the handle.
type ckptBuf struct {
	mem    []byte
	mapped bool
}

func (b *ckptBuf) close() error {
	if len(b.mem) == 0 {
		return nil
	}
	if b.mapped {
		return syscall.Munmap(b.mem)
	}
	C.free(unsafe.Pointer(unsafe.SliceData(b.mem)))
	return nil
}

// ckptInfo is the JSON a checkpoint open returns.
type ckptInfo struct {
	Version    string          `json:"version"`
	Size       int64           `json:"size"`
	DataOffset int64           `json:"data_offset"`
	Parameters int64           `json:"parameters"`
	Header     json.RawMessage `json:"header"`
	Source     string          `json:"source"`
}

// mapFile maps path read-only.
func mapFile(op, path string) (*ckptBuf, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "")
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "")
	}
	if !fi.Mode().IsRegular() {
		return nil, errs.New(errs.Argument, op, "%s is not a regular file", path)
	}
	if fi.Size() == 0 {
		return &ckptBuf{}, nil
	}
	if int64(int(fi.Size())) != fi.Size() {
		return nil, errs.New(errs.Argument, op, "%s: %d bytes cannot be mapped", path, fi.Size())
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "mapping %s", path)
	}
	return &ckptBuf{mem: mem, mapped: true}, nil
}

// cCopy copies b into malloc'd memory.
func cCopy(b []byte) *ckptBuf {
	if len(b) == 0 {
		return &ckptBuf{}
	}
	p := C.malloc(C.size_t(len(b)))
	mem := unsafe.Slice((*byte)(p), len(b))
	copy(mem, b)
	return &ckptBuf{mem: mem}
}

// openVerified verifies buf with the Go reader and hands it to the caller
// as a new handle. On failure buf is released.
func openVerified(op, source string, buf *ckptBuf, h *C.uint64_t, info **C.char, data *unsafe.Pointer, size *C.int64_t) error {
	ci, err := experiment.VerifyCheckpoint(bytes.NewReader(buf.mem), int64(len(buf.mem)))
	if err != nil {
		buf.close()
		return errs.Wrap(errs.KindOf(err), op, err, "%s", source)
	}
	setString(info, mustJSON(ckptInfo{Version: fmt.Sprintf("%d.%d", ci.Major, ci.Minor), Size: ci.Size,
		DataOffset: ci.DataOffset, Parameters: ci.Parameters, Header: ci.Header, Source: source}))
	*data = unsafe.Pointer(unsafe.SliceData(buf.mem))
	*size = C.int64_t(len(buf.mem))
	*h = newHandle(buf)
	return nil
}

//export gorch_ckpt_open
func gorch_ckpt_open(path *C.char, h *C.uint64_t, info **C.char, data *unsafe.Pointer, size *C.int64_t, errOut **C.char) C.int {
	return guard(errOut, func() error {
		const op = "gorch.load_checkpoint"
		if err := needOut(op, unsafe.Pointer(h), unsafe.Pointer(info), unsafe.Pointer(data), unsafe.Pointer(size)); err != nil {
			return err
		}
		p, err := goString(op, "path", path)
		if err != nil {
			return err
		}
		buf, err := mapFile(op, p)
		if err != nil {
			return err
		}
		return openVerified(op, p, buf, h, info, data, size)
	})
}

// saveSpec describes a checkpoint to write: the arrays passed alongside
// (their shapes), which of them are the model's parameters, and the
// optimizer state whose buffers name arrays by index.
type saveSpec struct {
	Arrays      [][]int           `json:"arrays"`
	Params      [][2]any          `json:"params"` // [name, array index]
	Optimizer   *saveOptim        `json:"optimizer"`
	Train       json.RawMessage   `json:"train"`
	ModelConfig json.RawMessage   `json:"model_config"`
	Metadata    map[string]string `json:"metadata"`
}

type saveOptim struct {
	Type   string                    `json:"type"`
	LR     float64                   `json:"lr"`
	Hyper  map[string]float64        `json:"hyper"`
	Params map[string]saveOptimParam `json:"params"`
}

type saveOptimParam struct {
	Step    int64          `json:"step"`
	Buffers map[string]int `json:"buffers"`
}

//export gorch_ckpt_save
func gorch_ckpt_save(path, spec *C.char, n C.int64_t, data **C.float, errOut **C.char) C.int {
	return guard(errOut, func() error {
		const op = "gorch.save_checkpoint"
		p, err := goString(op, "path", path)
		if err != nil {
			return err
		}
		js, err := goString(op, "spec", spec)
		if err != nil {
			return err
		}
		var s saveSpec
		dec := json.NewDecoder(bytes.NewReader([]byte(js)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return errs.Wrap(errs.Argument, op, err, "checkpoint description")
		}
		if int64(n) != int64(len(s.Arrays)) || (n > 0 && data == nil) {
			return errs.New(errs.Argument, op, "%d arrays described, %d passed", len(s.Arrays), int64(n))
		}
		var ptrs []*C.float
		if n > 0 {
			ptrs = unsafe.Slice(data, int(n))
		}
		arrays, err := copyArrays(op, s.Arrays, ptrs)
		if err != nil {
			return err
		}
		ck, err := s.checkpoint(op, arrays)
		if err != nil {
			return err
		}
		return experiment.SaveCheckpointFile(p, ck)
	})
}

// copyArrays copies each caller array into Go memory.
func copyArrays(op string, shapes [][]int, ptrs []*C.float) ([][]float32, error) {
	out := make([][]float32, len(shapes))
	for i, sh := range shapes {
		numel := 1
		for _, d := range sh {
			if d < 0 || (d > 0 && numel > (1<<40)/d) {
				return nil, errs.New(errs.Argument, op, "array %d: bad shape %v", i, sh)
			}
			numel *= d
		}
		if numel > 0 && ptrs[i] == nil {
			return nil, errs.New(errs.Argument, op, "array %d: NULL data for shape %v", i, sh)
		}
		out[i] = make([]float32, numel)
		if numel > 0 {
			copy(out[i], unsafe.Slice((*float32)(unsafe.Pointer(ptrs[i])), numel))
		}
	}
	return out, nil
}

// checkpoint assembles the experiment.Checkpoint s describes.
func (s *saveSpec) checkpoint(op string, arrays [][]float32) (*experiment.Checkpoint, error) {
	array := func(what string, i any) (int, error) {
		f, ok := i.(float64)
		if !ok || f != float64(int(f)) || int(f) < 0 || int(f) >= len(arrays) {
			return 0, errs.New(errs.Argument, op, "%s: array index %v out of range [0, %d)", what, i, len(arrays))
		}
		return int(f), nil
	}
	ck := &experiment.Checkpoint{ModelConfig: s.ModelConfig, Metadata: s.Metadata}
	seen := map[string]bool{}
	for _, pr := range s.Params {
		name, ok := pr[0].(string)
		if !ok {
			return nil, errs.New(errs.Argument, op, "parameter name %v is not a string", pr[0])
		}
		i, err := array("parameter "+name, pr[1])
		if err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, errs.New(errs.Argument, op, "duplicate parameter %q", name)
		}
		seen[name] = true
		ck.Tensors = append(ck.Tensors, experiment.Tensor{Name: name, Shape: s.Arrays[i], Data: arrays[i]})
	}
	if len(s.Train) > 0 {
		dec := json.NewDecoder(bytes.NewReader(s.Train))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ck.Train); err != nil {
			return nil, errs.Wrap(errs.Argument, op, err, "train state")
		}
	}
	if o := s.Optimizer; o != nil {
		st := &experiment.OptimizerState{Type: o.Type, LR: o.LR, Hyper: o.Hyper, Params: map[string]experiment.OptimizerParam{}}
		for pname, ps := range o.Params {
			p := experiment.OptimizerParam{Step: ps.Step, Buffers: map[string][]float32{}}
			for buf, i := range ps.Buffers {
				j, err := array(fmt.Sprintf("optimizer buffer %s of %s", buf, pname), float64(i))
				if err != nil {
					return nil, err
				}
				p.Buffers[buf] = arrays[j]
			}
			st.Params[pname] = p
		}
		ck.Optimizer = st
	}
	return ck, nil
}
