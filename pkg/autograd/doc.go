// Package autograd implements reverse-mode automatic differentiation over
// gorch tensors.
//
// A [Variable] wraps a tensor. Operations on variables (Add, Matmul,
// Conv2d, CrossEntropy, ...) compute their result eagerly and, when any
// input requires a gradient, record a node holding the backward function.
// [Variable.Backward] walks the recorded graph from a scalar (or from an
// explicit upstream gradient) and accumulates gradients into the Grad field
// of every leaf that requires one.
//
// # Scheduling
//
// The backward pass counts, for every node, how many consumers must deliver
// a gradient before the node can run, and runs ready nodes on a bounded pool
// of workers ([BackwardOptions.Workers]; 1 runs everything on the calling
// goroutine). Gradients arriving at a node are kept in a slot per edge and
// summed in a fixed edge order, so the results are bit-identical whatever
// the number of workers. The first error stops the pass and is returned.
//
// # Grad mode
//
// Grad mode belongs to a [tensor.Scope], the engine state of one run: inside
// [tensor.Scope.NoGrad], ops whose inputs are in that scope (a model's
// parameters adopted by it, and everything computed from them) record
// nothing, whichever goroutine runs them; other scopes keep recording.
// [Variable.Detach] returns a variable that shares data but no history.
package autograd
