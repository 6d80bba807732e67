package nn

import (
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// MLP returns a multilayer perceptron with Linear layers (with bias)
// between consecutive sizes and ReLU between them (none after the last):
// MLP([]int{4, 16, 3}) is Linear(4,16) ReLU Linear(16,3), whose parameters
// are "0.weight", "0.bias", "2.weight", "2.bias".
func MLP(sizes []int, rng *tensor.RNG) (*Sequential, error) {
	const op = "nn.MLP"
	if len(sizes) < 2 {
		return nil, errs.New(errs.Argument, op, "need at least 2 sizes, got %v", sizes)
	}
	var mods []Module
	for i := 0; i+1 < len(sizes); i++ {
		l, err := NewLinear(sizes[i], sizes[i+1], true, rng)
		if err != nil {
			return nil, errs.Wrap(errs.KindOf(err), op, err, "layer %d of sizes %v", i, sizes)
		}
		mods = append(mods, l)
		if i+2 < len(sizes) {
			mods = append(mods, &ReLU{})
		}
	}
	return NewSequential(mods...)
}

// LeNet returns a small CNN for [N, 1, 28, 28] inputs and 10 classes:
//
//	0 Conv2d(1→16, 5)  1 ReLU  2 MaxPool2d(2)
//	3 Conv2d(16→32, 5) 4 ReLU  5 MaxPool2d(2)
//	6 Flatten  7 Linear(512→128)  8 ReLU  9 Linear(128→10)
func LeNet(rng *tensor.RNG) (*Sequential, error) {
	const op = "nn.LeNet"
	c1, err := NewConv2d(1, 16, 5, 1, 0, true, rng)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	c2, err := NewConv2d(16, 32, 5, 1, 0, true, rng)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	f1, err := NewLinear(32*4*4, 128, true, rng)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	f2, err := NewLinear(128, 10, true, rng)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	p1, _ := NewMaxPool2d(2, 2)
	p2, _ := NewMaxPool2d(2, 2)
	return NewSequential(c1, &ReLU{}, p1, c2, &ReLU{}, p2, &Flatten{}, f1, &ReLU{}, f2)
}
