package main

/*
#include <stdint.h>
*/
import "C"

import (
	"unsafe"

	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/train"
)

// datasetSplit is one split of a run spec's dataset, open for reading.
type datasetSplit struct {
	ds *data.TensorDataset
}

//export gorch_dataset_open
func gorch_dataset_open(spec *C.char, split *C.char, h *C.uint64_t, info **C.char, errOut **C.char) C.int {
	return guard(errOut, func() error {
		const op = "gorch.dataset"
		if err := needOut(op, unsafe.Pointer(h), unsafe.Pointer(info)); err != nil {
			return err
		}
		if spec == nil || split == nil {
			return errs.New(errs.Argument, op, "spec and split must not be NULL")
		}
		s, err := train.ParseSpec("run spec", []byte(C.GoString(spec)))
		if err != nil {
			return err
		}
		which := C.GoString(split)
		if which != "train" && which != "test" {
			return errs.New(errs.Argument, op, "split %q: want train or test", which)
		}
		trainDS, testDS, err := train.Datasets(s)
		if err != nil {
			return err
		}
		ds := trainDS
		if which == "test" {
			ds = testDS
		}
		xType := "float32"
		if s.Dataset.Name == "grammar" {
			xType = "int64" // token ids
		}
		*h = newHandle(&datasetSplit{ds: ds})
		setString(info, mustJSON(map[string]any{
			"split": which, "dataset": s.Dataset.Name, "len": ds.Len(),
			"x_shape": ds.X().Shape(), "x_dtype": xType, "y_shape": ds.Y().Shape(),
		}))
		return nil
	})
}

//export gorch_dataset_read
func gorch_dataset_read(h C.uint64_t, x *C.float, nx C.int64_t, y *C.float, ny C.int64_t, errOut **C.char) C.int {
	return guard(errOut, func() error {
		const op = "gorch.dataset"
		d, err := lookup[*datasetSplit](op, h)
		if err != nil {
			return err
		}
		for _, part := range []struct {
			name string
			dst  *C.float
			n    C.int64_t
			src  []float32
		}{{"x", x, nx, d.ds.X().Data()}, {"y", y, ny, d.ds.Y().Data()}} {
			if int(part.n) != len(part.src) {
				return errs.New(errs.Argument, op, "%s buffer of %d floats; the split has %d", part.name, int64(part.n), len(part.src))
			}
			if len(part.src) == 0 {
				continue
			}
			if part.dst == nil {
				return errs.New(errs.Argument, op, "%s buffer is NULL", part.name)
			}
			copy(unsafe.Slice((*float32)(unsafe.Pointer(part.dst)), len(part.src)), part.src)
		}
		return nil
	})
}
