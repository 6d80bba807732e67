package tensor

import (
	"fmt"
	"math"

	"github.com/gorch/gorch/pkg/errs"
)

// MaxRank is the largest number of dimensions a tensor may have.
const MaxRank = 8

// Storage is a flat buffer of float32 elements shared by tensor views.
type Storage struct {
	data  []float32
	scope *Scope // the scope of every tensor on this storage; nil: none
}

// NewStorage returns a zeroed storage of n elements.
func NewStorage(n int) (*Storage, error) {
	if n < 0 {
		return nil, errs.New(errs.Argument, "NewStorage", "negative length %d", n)
	}
	return &Storage{data: make([]float32, n)}, nil
}

// WrapStorage returns a storage over data without copying it. The caller
// keeps ownership: data may be memory exported by another runtime (numpy,
// PyTorch) and must stay valid while any tensor uses the storage.
func WrapStorage(data []float32) *Storage { return &Storage{data: data} }

// Data returns the storage's elements. Writes through it are visible to
// every tensor that views the storage.
func (s *Storage) Data() []float32 { return s.data }

// Len returns the number of elements in the storage.
func (s *Storage) Len() int { return len(s.data) }

// Tensor is a strided view of a Storage.
type Tensor struct {
	storage *Storage
	shape   []int
	strides []int
	offset  int
}

// contiguousStrides returns the row-major strides of shape.
func contiguousStrides(shape []int) []int {
	strides := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = s
		if shape[i] > 1 {
			s *= shape[i]
		}
	}
	return strides
}

// checkShape validates a shape supplied by a caller and returns its element count.
func checkShape(op string, shape []int) (int, error) {
	if len(shape) > MaxRank {
		return 0, errs.New(errs.Argument, op, "rank %d exceeds the maximum %d", len(shape), MaxRank)
	}
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, errs.New(errs.Argument, op, "negative size %d in dimension %d of shape %v", d, i, shape)
		}
		if d != 0 && n > math.MaxInt32*8/d {
			return 0, errs.New(errs.Argument, op, "shape %v has too many elements", shape)
		}
		n *= d
	}
	return n, nil
}

// newContiguous allocates a zeroed contiguous tensor in scope sc; shape must
// be valid. An operation passes scopeOf(its inputs).
func newContiguous(sc *Scope, shape []int) *Tensor { return newTensor(sc, shape, true) }

// newUninit is newContiguous for an operation that writes every element of
// its output: storage recycled by sc's arena is not cleared first.
func newUninit(sc *Scope, shape []int) *Tensor { return newTensor(sc, shape, false) }

func newTensor(sc *Scope, shape []int, zero bool) *Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	sh := append([]int(nil), shape...)
	return &Tensor{storage: &Storage{data: alloc(sc, n, zero), scope: sc}, shape: sh, strides: contiguousStrides(sh)}
}

// fromData wraps data (not copied) as a contiguous tensor in scope sc;
// len(data) must match shape.
func fromData(sc *Scope, data []float32, shape []int) *Tensor {
	sh := append([]int(nil), shape...)
	return &Tensor{storage: &Storage{data: data, scope: sc}, shape: sh, strides: contiguousStrides(sh)}
}

// Zeros returns a contiguous tensor of the given shape filled with zeros.
func Zeros(shape ...int) (*Tensor, error) {
	if _, err := checkShape("Zeros", shape); err != nil {
		return nil, err
	}
	return newContiguous(nil, shape), nil
}

// Full returns a contiguous tensor of the given shape filled with v.
func Full(v float32, shape ...int) (*Tensor, error) {
	if _, err := checkShape("Full", shape); err != nil {
		return nil, err
	}
	t := newContiguous(nil, shape)
	fill(t.storage.data, v)
	return t, nil
}

// Ones returns a contiguous tensor of the given shape filled with ones.
func Ones(shape ...int) (*Tensor, error) { return Full(1, shape...) }

// Scalar returns a 0-dimensional tensor holding v.
func Scalar(v float32) *Tensor { return fromData(nil, []float32{v}, nil) }

// New returns a contiguous tensor of the given shape holding a copy of data.
// With no shape, the tensor is 1-dimensional of length len(data).
func New(data []float32, shape ...int) (*Tensor, error) {
	if shape == nil {
		shape = []int{len(data)}
	}
	n, err := checkShape("New", shape)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, errs.New(errs.Shape, "New", "%d elements cannot have shape %v", len(data), shape)
	}
	return fromData(nil, append([]float32(nil), data...), shape), nil
}

// Arange returns the 1-dimensional tensor [0, 1, ..., n-1].
func Arange(n int) (*Tensor, error) {
	if _, err := checkShape("Arange", []int{n}); err != nil {
		return nil, err
	}
	t := newContiguous(nil, []int{n})
	for i := range t.storage.data {
		t.storage.data[i] = float32(i)
	}
	return t, nil
}

var statFromStorage = stat("from_storage")

// FromStorage returns a view of s with the given shape, strides and offset.
// The layout is validated: every reachable element must lie inside s.
func FromStorage(s *Storage, shape, strides []int, offset int) (*Tensor, error) {
	if s == nil {
		return nil, errs.New(errs.Argument, "from_storage", "nil storage")
	}
	if len(strides) != len(shape) {
		return nil, errs.New(errs.Layout, "from_storage", "shape %v and strides %v differ in rank", shape, strides)
	}
	t := &Tensor{storage: s, shape: append([]int(nil), shape...), strides: append([]int(nil), strides...), offset: offset}
	if err := check(statFromStorage, t); err != nil {
		return nil, err
	}
	return t, nil
}

// Shape returns a copy of the tensor's shape.
func (t *Tensor) Shape() []int {
	if t == nil {
		return nil
	}
	return append(make([]int, 0, len(t.shape)), t.shape...)
}

// Strides returns a copy of the tensor's strides, in elements.
func (t *Tensor) Strides() []int {
	if t == nil {
		return nil
	}
	return append(make([]int, 0, len(t.strides)), t.strides...)
}

// Offset returns the index in the storage of the tensor's first element.
func (t *Tensor) Offset() int {
	if t == nil {
		return 0
	}
	return t.offset
}

// Storage returns the storage the tensor views.
func (t *Tensor) Storage() *Storage {
	if t == nil {
		return nil
	}
	return t.storage
}

// Dim returns the number of dimensions.
func (t *Tensor) Dim() int {
	if t == nil {
		return 0
	}
	return len(t.shape)
}

// Numel returns the number of elements.
func (t *Tensor) Numel() int {
	if t == nil {
		return 0
	}
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// Size returns the size of dimension dim; negative dims count from the end.
func (t *Tensor) Size(dim int) (int, error) {
	if t == nil {
		return 0, errs.New(errs.Argument, "size", "nil tensor")
	}
	d, err := normDim("size", dim, len(t.shape))
	if err != nil {
		return 0, err
	}
	return t.shape[d], nil
}

// IsContiguous reports whether the tensor's elements lie in row-major order
// without gaps. Dimensions of size 1 may have any stride.
func (t *Tensor) IsContiguous() bool {
	if t == nil {
		return true
	}
	expect := 1
	for i := len(t.shape) - 1; i >= 0; i-- {
		d := t.shape[i]
		if d == 0 {
			return true
		}
		if d != 1 && t.strides[i] != expect {
			return false
		}
		expect *= d
	}
	return true
}

// Data returns the tensor's elements in row-major order. If the tensor is
// contiguous the slice aliases its storage, so writes are visible to every
// view; otherwise it is a fresh copy.
func (t *Tensor) Data() []float32 {
	if t == nil {
		return nil
	}
	if t.IsContiguous() {
		return t.storage.data[t.offset : t.offset+t.Numel()]
	}
	return t.copyData()
}

// ToSlice returns a fresh copy of the tensor's elements in row-major order.
func (t *Tensor) ToSlice() []float32 {
	if t == nil {
		return nil
	}
	if t.IsContiguous() {
		return append([]float32(nil), t.storage.data[t.offset:t.offset+t.Numel()]...)
	}
	return t.copyData()
}

// Item returns the value of a one-element tensor.
func (t *Tensor) Item() (float32, error) {
	if err := check(statItem, t); err != nil {
		return 0, err
	}
	if t.Numel() != 1 {
		return 0, errs.New(errs.Shape, "item", "tensor of shape %v has %d elements, not 1", t.shape, t.Numel())
	}
	return t.storage.data[t.offset], nil
}

// index returns the storage index of the element at idx.
func (t *Tensor) index(op string, idx []int) (int, error) {
	if len(idx) != len(t.shape) {
		return 0, errs.New(errs.Argument, op, "%d indices for a tensor of shape %v", len(idx), t.shape)
	}
	p := t.offset
	for i, x := range idx {
		if x < 0 {
			x += t.shape[i]
		}
		if x < 0 || x >= t.shape[i] {
			return 0, errs.New(errs.Argument, op, "index %d out of range for dimension %d of shape %v", idx[i], i, t.shape)
		}
		p += x * t.strides[i]
	}
	return p, nil
}

// At returns the element at idx; negative indices count from the end.
func (t *Tensor) At(idx ...int) (float32, error) {
	if err := check(statAt, t); err != nil {
		return 0, err
	}
	p, err := t.index("at", idx)
	if err != nil {
		return 0, err
	}
	return t.storage.data[p], nil
}

// SetAt writes v at idx, in place, through the tensor's storage.
func (t *Tensor) SetAt(v float32, idx ...int) error {
	if err := check(statAt, t); err != nil {
		return err
	}
	p, err := t.index("set_at", idx)
	if err != nil {
		return err
	}
	t.storage.data[p] = v
	return nil
}

// String formats the tensor's shape and up to 16 elements.
func (t *Tensor) String() string {
	if t == nil {
		return "tensor(nil)"
	}
	if t.validLayout() != nil {
		return fmt.Sprintf("tensor(invalid layout, shape %v)", t.shape)
	}
	d := t.Data()
	if len(d) > 16 {
		return fmt.Sprintf("tensor(%v..., shape=%v)", d[:16], t.shape)
	}
	return fmt.Sprintf("tensor(%v, shape=%v)", d, t.shape)
}

// normDim maps a possibly negative dim into [0, rank).
func normDim(op string, dim, rank int) (int, error) {
	if dim < -rank || dim >= rank {
		if rank == 0 {
			return 0, errs.New(errs.Argument, op, "dimension %d out of range for a 0-dimensional tensor", dim)
		}
		return 0, errs.New(errs.Argument, op, "dimension %d out of range [%d, %d]", dim, -rank, rank-1)
	}
	if dim < 0 {
		dim += rank
	}
	return dim, nil
}

func fill(d []float32, v float32) {
	for i := range d {
		d[i] = v
	}
}

// EqualShape reports whether a and b have the same shape.
func EqualShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
