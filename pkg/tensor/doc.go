// Package tensor implements gorch's dense float32 tensors.
//
// A [Tensor] is a view of a [Storage]: a shape, a stride per dimension and
// an offset into the storage's elements. Several tensors may share one
// storage; the view operations ([Tensor.View], [Tensor.Transpose],
// [Tensor.Narrow], [Tensor.Expand], ...) copy nothing.
//
// # Layout validation
//
// Every operation validates the layout of each input before it touches
// memory: rank at most [MaxRank], no negative sizes or strides, an element
// count that does not overflow, and every reachable element inside the
// storage. A failure is an error of kind [errs.Layout] naming the operation;
// no public function panics on bad input. The number of checks and failures
// per operation is counted in the [Scope] of the operation's inputs and read
// with [Scope.LayoutStats]; training gives each run its own scope and
// persists the counters into the run's summary.
//
// # Errors
//
// Functions return errors of the kinds in package errs: [errs.Layout] for an
// invalid view, [errs.Shape] for incompatible shapes, [errs.Argument] for an
// out-of-range dimension, index or parameter. Messages name the operation and
// the shapes, as in "matmul: shapes [2 3] and [4 5] cannot be multiplied".
//
// # Broadcasting
//
// Binary elementwise operations broadcast as NumPy and PyTorch do: shapes are
// aligned at their last dimension, and a dimension of size 1 stretches to
// match the other operand.
package tensor
