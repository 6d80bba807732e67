package tensor

// STUB: the kernels helper replaces this file with real implementations in
// matmul.go and conv.go, then deletes it.

// Matmul is torch.matmul: 1-D, 2-D and batched operands, batch dims broadcast.
func Matmul(a, b *Tensor) (*Tensor, error) { return nil, notImpl("matmul") }

// Linear returns x·wᵀ + b for x [..., in], w [out, in] and b [out] or nil.
func Linear(x, w, b *Tensor) (*Tensor, error) { return nil, notImpl("linear") }

// Conv2dOptions configures a 2-D convolution. Zero strides mean 1.
type Conv2dOptions struct {
	Stride  [2]int // (height, width)
	Padding [2]int // zero padding on each side (height, width)
}

// Conv2d convolves x [N, C, H, W] with w [O, C, KH, KW], adding b [O] (or nil).
func Conv2d(x, w, b *Tensor, opt Conv2dOptions) (*Tensor, error) { return nil, notImpl("conv2d") }

// Conv2dBackward returns the gradients of conv2d's input, weight and bias
// given the gradient of its output.
func Conv2dBackward(x, w, gradOut *Tensor, opt Conv2dOptions) (gx, gw, gb *Tensor, err error) {
	return nil, nil, nil, notImpl("conv2d_backward")
}

// Pool2dOptions configures 2-D pooling. A zero Stride means Stride = Kernel.
type Pool2dOptions struct {
	Kernel  [2]int
	Stride  [2]int
	Padding [2]int
}

// MaxPool2d returns the maxima of x [N, C, H, W] over windows and the flat
// (h*W+w) index of each maximum within its input plane, as float32.
func MaxPool2d(x *Tensor, opt Pool2dOptions) (out, indices *Tensor, err error) {
	return nil, nil, notImpl("max_pool2d")
}

// MaxPool2dBackward routes gradOut to the positions in indices, for an input of inputShape.
func MaxPool2dBackward(gradOut, indices *Tensor, inputShape []int) (*Tensor, error) {
	return nil, notImpl("max_pool2d_backward")
}

// AvgPool2d averages x [N, C, H, W] over windows (padding counted, as PyTorch's default).
func AvgPool2d(x *Tensor, opt Pool2dOptions) (*Tensor, error) { return nil, notImpl("avg_pool2d") }

// AvgPool2dBackward spreads gradOut evenly over each window.
func AvgPool2dBackward(gradOut *Tensor, inputShape []int, opt Pool2dOptions) (*Tensor, error) {
	return nil, notImpl("avg_pool2d_backward")
}
