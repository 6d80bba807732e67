package data

import (
	"math"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// Dataset is a finite, indexable collection of (input, target) samples.
type Dataset interface {
	// Len returns the number of samples.
	Len() int
	// Gather returns the samples at idx stacked along a new first
	// dimension: x has shape [len(idx), ...] and y [len(idx), ...]. The
	// tensors are freshly allocated and owned by the caller.
	Gather(idx []int) (x, y *tensor.Tensor, err error)
}

// TensorDataset is a dataset held in memory as two contiguous tensors, X of
// shape [N, ...] and Y of shape [N, ...]. It is immutable after creation and
// safe for concurrent reads.
type TensorDataset struct {
	x, y       *tensor.Tensor
	xd, yd     []float32 // contiguous data of x and y
	xRow, yRow int       // elements per sample
	n          int
}

// NewTensorDataset returns a dataset whose sample i is (x[i], y[i]). Both
// tensors must have at least one dimension and the same first dimension
// (errs.Shape otherwise). Non-contiguous tensors are copied; contiguous ones
// are shared, so the caller must not modify them afterwards.
func NewTensorDataset(x, y *tensor.Tensor) (*TensorDataset, error) {
	const op = "data.NewTensorDataset"
	if x == nil || y == nil {
		return nil, errs.New(errs.Argument, op, "nil tensor")
	}
	if x.Dim() == 0 || y.Dim() == 0 {
		return nil, errs.New(errs.Shape, op, "inputs of shape %v and targets of shape %v need a sample dimension", x.Shape(), y.Shape())
	}
	xs, ys := x.Shape(), y.Shape()
	if xs[0] != ys[0] {
		return nil, errs.New(errs.Shape, op, "inputs of shape %v and targets of shape %v differ in their number of samples (%d and %d)", xs, ys, xs[0], ys[0])
	}
	xc, err := x.Contiguous()
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "inputs")
	}
	yc, err := y.Contiguous()
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "targets")
	}
	return newTensorDataset(xc, yc), nil
}

// newTensorDataset builds a dataset from contiguous tensors of matching
// first dimension.
func newTensorDataset(x, y *tensor.Tensor) *TensorDataset {
	n := x.Shape()[0]
	d := &TensorDataset{x: x, y: y, xd: x.Data(), yd: y.Data(), n: n}
	d.xRow, d.yRow = rowSize(x.Shape()), rowSize(y.Shape())
	return d
}

func rowSize(shape []int) int {
	r := 1
	for _, s := range shape[1:] {
		r *= s
	}
	return r
}

// Len returns the number of samples N.
func (d *TensorDataset) Len() int { return d.n }

// X returns the input tensor [N, ...]. It shares the dataset's memory and
// must not be modified.
func (d *TensorDataset) X() *tensor.Tensor { return d.x }

// Y returns the target tensor [N, ...]. It shares the dataset's memory and
// must not be modified.
func (d *TensorDataset) Y() *tensor.Tensor { return d.y }

// SampleShapes returns the shapes of one input and one target, i.e. X's and
// Y's shapes without the first dimension.
func (d *TensorDataset) SampleShapes() (x, y []int) {
	return d.x.Shape()[1:], d.y.Shape()[1:]
}

// Get returns sample i as copies of x[i] and y[i]; negative i counts from
// the end. An out-of-range index is an errs.Argument error.
func (d *TensorDataset) Get(i int) (x, y *tensor.Tensor, err error) {
	if i < 0 {
		i += d.n
	}
	if i < 0 || i >= d.n {
		return nil, nil, errs.New(errs.Argument, "data.TensorDataset.Get", "index %d out of range for %d samples", i, d.n)
	}
	xs, ys := d.SampleShapes()
	x, err = tensor.New(d.xd[i*d.xRow:(i+1)*d.xRow], xs...)
	if err != nil {
		return nil, nil, err
	}
	y, err = tensor.New(d.yd[i*d.yRow:(i+1)*d.yRow], ys...)
	if err != nil {
		return nil, nil, err
	}
	return x, y, nil
}

// Gather returns the samples at idx as new tensors of shapes [len(idx), ...],
// copying whole rows. An index outside [0, N) is an errs.Argument error.
func (d *TensorDataset) Gather(idx []int) (x, y *tensor.Tensor, err error) {
	const op = "data.TensorDataset.Gather"
	for _, i := range idx {
		if i < 0 || i >= d.n {
			return nil, nil, errs.New(errs.Argument, op, "index %d out of range for %d samples", i, d.n)
		}
	}
	xb := make([]float32, len(idx)*d.xRow)
	yb := make([]float32, len(idx)*d.yRow)
	gatherRows(xb, d.xd, idx, d.xRow)
	gatherRows(yb, d.yd, idx, d.yRow)
	xs, ys := d.x.Shape(), d.y.Shape()
	xs[0], ys[0] = len(idx), len(idx)
	if x, err = wrap(op, xb, xs); err != nil {
		return nil, nil, err
	}
	if y, err = wrap(op, yb, ys); err != nil {
		return nil, nil, err
	}
	return x, y, nil
}

// gatherRows copies rows idx of src (row length row) into dst, in order.
func gatherRows(dst, src []float32, idx []int, row int) {
	if row == 1 {
		for k, i := range idx {
			dst[k] = src[i]
		}
		return
	}
	for k, i := range idx {
		copy(dst[k*row:(k+1)*row], src[i*row:(i+1)*row])
	}
}

// wrap returns a contiguous tensor of the given shape over buf, without
// copying it; len(buf) must equal the shape's element count.
func wrap(op string, buf []float32, shape []int) (*tensor.Tensor, error) {
	strides := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = s
		s *= max(shape[i], 1)
	}
	t, err := tensor.FromStorage(tensor.WrapStorage(buf), shape, strides, 0)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, op, err, "wrapping a batch of shape %v", shape)
	}
	return t, nil
}

// Subset returns a dataset of the samples at idx (copied, in that order).
func (d *TensorDataset) Subset(idx []int) (*TensorDataset, error) {
	x, y, err := d.Gather(idx)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), "data.TensorDataset.Subset", err, "")
	}
	return newTensorDataset(x, y), nil
}

// Head returns a dataset of the first min(n, N) samples, sharing memory
// with d. A negative n is an errs.Argument error.
func (d *TensorDataset) Head(n int) (*TensorDataset, error) {
	if n < 0 {
		return nil, errs.New(errs.Argument, "data.TensorDataset.Head", "negative count %d", n)
	}
	n = min(n, d.n)
	x, err := d.x.Narrow(0, 0, n)
	if err != nil {
		return nil, err
	}
	y, err := d.y.Narrow(0, 0, n)
	if err != nil {
		return nil, err
	}
	return newTensorDataset(x, y), nil
}

// Flatten returns a dataset whose inputs are reshaped to [N, D], D being the
// product of X's trailing dimensions (e.g. [N,1,28,28] -> [N,784]). Memory
// is shared with d.
func (d *TensorDataset) Flatten() (*TensorDataset, error) {
	x, err := d.x.Reshape(d.n, d.xRow)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), "data.TensorDataset.Flatten", err, "")
	}
	return newTensorDataset(x, d.y), nil
}

// MeanStd returns the mean and (population) standard deviation of all the
// elements of X, accumulated in float64.
func (d *TensorDataset) MeanStd() (mean, std float64) {
	if len(d.xd) == 0 {
		return 0, 0
	}
	var s float64
	for _, v := range d.xd {
		s += float64(v)
	}
	mean = s / float64(len(d.xd))
	var ss float64
	for _, v := range d.xd {
		dv := float64(v) - mean
		ss += dv * dv
	}
	return mean, math.Sqrt(ss / float64(len(d.xd)))
}

// Normalize returns a dataset whose inputs are (X - mean) / std, in a new
// buffer; Y is shared. std must be positive and finite (errs.Argument).
// Use MeanStd on the training split to obtain mean and std, and apply the
// same values to the test split.
func (d *TensorDataset) Normalize(mean, std float32) (*TensorDataset, error) {
	if !(std > 0) || math.IsInf(float64(std), 0) || math.IsNaN(float64(mean)) || math.IsInf(float64(mean), 0) {
		return nil, errs.New(errs.Argument, "data.TensorDataset.Normalize", "mean %v and std %v must be finite with std > 0", mean, std)
	}
	out := make([]float32, len(d.xd))
	inv := 1 / std
	for i, v := range d.xd {
		out[i] = (v - mean) * inv
	}
	x, err := wrap("data.TensorDataset.Normalize", out, d.x.Shape())
	if err != nil {
		return nil, err
	}
	return newTensorDataset(x, d.y), nil
}
