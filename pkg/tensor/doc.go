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
// # Memory reuse
//
// An operation's output gets fresh, zeroed memory unless its scope has an
// [Arena] ([Scope.SetArena]): then the storage comes from the tensors of the
// previous training step, freed together by [Arena.Reset], without the
// clearing pass when the operation writes every element (matrix products,
// linear and element-wise ops, [Tensor.Clone]). Training runs each step so.
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
//
// # ATen operators
//
// The ATen graphs that torch.compile's AOTAutograd produces for an MLP, a
// LeNet CNN and a pre-norm transformer language model, forward and
// backward (listed by scripts/aten_ops.py), use these operators; each has a
// function here with the operator's semantics (integer tensors, such as
// indices and class targets, are passed as float32 holding integers; bool
// masks as 0/1):
//
//	addmm, mm, bmm                       [Addmm], [Matmul], [Bmm]
//	t, transpose, view, _unsafe_view     [Tensor.T], [Tensor.Transpose], [Tensor.View], [Tensor.Reshape]
//	expand, clone, split, cat, arange    [Tensor.Expand], [Tensor.Clone], [Tensor.Narrow], [Concat], [Arange]
//	add, mul, sum.dim_IntList, eq        [Add], [Mul], [Sum], [Eq]
//	relu, threshold_backward             [Relu], [ReluBackward]
//	convolution(_backward)               [Conv2d], [Conv2dBackward]
//	max_pool2d_with_indices(_backward)   [MaxPool2d], [MaxPool2dBackward]
//	native_layer_norm(_backward)         [LayerNorm], [LayerNormBackward]
//	gelu, gelu_backward                  [Gelu], [GeluTanh], [GeluBackward]
//	embedding, embedding_dense_backward  [Embedding], [EmbeddingBackward]
//	_softmax, _softmax_backward_data     [Softmax], [SoftmaxBackward]
//	_log_softmax(_backward_data)         [LogSoftmax], [LogSoftmaxBackward]
//	nll_loss_forward, nll_loss_backward  [NLLLoss], [NLLLossBackward]
//	masked_fill, tril, triu, rsqrt       [MaskedFill], [Tril], [Triu], [Rsqrt]
//	native_dropout(_backward)            [Dropout], [DropoutBackward]
//	_scaled_dot_product_flash_attention_for_cpu(_backward)
//	                                     [ScaledDotProductAttention], [ScaledDotProductAttentionBackward]
package tensor
