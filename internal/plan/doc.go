// Package plan compiles partitions of PyTorch's ATen graphs into runnable
// plans over pkg/tensor, for the torch.compile backend (python/gorch/compile,
// through cmd/libgorch).
//
// A [Graph] is what the backend sends: a partition's nodes in the order they
// run, each an ATen operator (its OpOverload name, "aten.addmm.default") with
// every schema argument, and the metadata (dtype, shape, strides) of inputs
// and results. [Compile] decodes and checks each node's arguments once and
// builds a kernel per node; [Plan.Run] then only calls the tensor functions,
// so a partition costs one library call per invocation, whatever its size.
// A plan is specialised to concrete shapes: sizes the graph computes
// (Dynamo's symbolic dimensions) are resolved by the backend before it sends
// the graph, so a new input shape is a new plan.
//
// [Check] answers, per node, whether a plan can run it and why not, from
// dtypes, ranks and constant arguments only (shapes may be symbolic there):
// the backend partitions a graph by it, so the Go registry is the one list
// of what gorch runs ([Ops]). gorch computes in float32; integer and bool
// tensors are accepted where an operator takes indices, targets or masks,
// and held as float32 (exact up to 2^24).
package plan
