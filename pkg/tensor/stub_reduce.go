package tensor

// STUB: the reductions/indexing helper replaces this file with real
// implementations in reduce.go, softmax.go and index.go, then deletes it.

import "github.com/gorch/gorch/pkg/errs"

func notImpl(op string) error { return errs.New(errs.Internal, op, "not implemented") }

// Sum reduces t over dims (all dims when dims is empty), keeping reduced dims
// as size 1 when keepDim is set.
func Sum(t *Tensor, dims []int, keepDim bool) (*Tensor, error) { return nil, notImpl("sum") }

// Mean averages t over dims (all dims when dims is empty).
func Mean(t *Tensor, dims []int, keepDim bool) (*Tensor, error) { return nil, notImpl("mean") }

// Max returns the maximum values of t along dim and their indices (as
// float32 values), like torch.max(t, dim, keepdim).
func Max(t *Tensor, dim int, keepDim bool) (values, indices *Tensor, err error) {
	return nil, nil, notImpl("max")
}

// MaxAll returns the maximum over all elements as a 0-d tensor.
func MaxAll(t *Tensor) (*Tensor, error) { return nil, notImpl("max") }

// Argmax returns the indices (as float32) of the maxima of t along dim.
func Argmax(t *Tensor, dim int, keepDim bool) (*Tensor, error) { return nil, notImpl("argmax") }

// SumTo sums t over broadcast dimensions so the result has shape shape
// (the reverse of broadcasting; used for gradients).
func SumTo(t *Tensor, shape []int) (*Tensor, error) { return nil, notImpl("sum_to") }

// Softmax returns softmax of t along dim (numerically stable).
func Softmax(t *Tensor, dim int) (*Tensor, error) { return nil, notImpl("softmax") }

// LogSoftmax returns log(softmax(t)) along dim (numerically stable).
func LogSoftmax(t *Tensor, dim int) (*Tensor, error) { return nil, notImpl("log_softmax") }

// Concat joins tensors along an existing dim.
func Concat(ts []*Tensor, dim int) (*Tensor, error) { return nil, notImpl("concat") }

// Stack joins tensors along a new dim.
func Stack(ts []*Tensor, dim int) (*Tensor, error) { return nil, notImpl("stack") }

// Where returns a where cond != 0, b elsewhere, all three broadcast.
func Where(cond, a, b *Tensor) (*Tensor, error) { return nil, notImpl("where") }

// IndexSelect picks entries of t along dim at the integer positions in index (1-D).
func IndexSelect(t *Tensor, dim int, index *Tensor) (*Tensor, error) {
	return nil, notImpl("index_select")
}

// IndexAdd returns a copy of t with src's slices added at index along dim
// (the adjoint of IndexSelect).
func IndexAdd(t *Tensor, dim int, index, src *Tensor) (*Tensor, error) {
	return nil, notImpl("index_add")
}

// Gather picks t[..., index[i,j,..], ...] along dim, like torch.gather.
func Gather(t *Tensor, dim int, index *Tensor) (*Tensor, error) { return nil, notImpl("gather") }

// ScatterAdd returns a copy of t with src added at index along dim, like
// torch.scatter_add (the adjoint of Gather).
func ScatterAdd(t *Tensor, dim int, index, src *Tensor) (*Tensor, error) {
	return nil, notImpl("scatter_add")
}
