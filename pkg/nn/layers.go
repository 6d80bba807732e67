package nn

import (
	"math"

	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// uniformParam draws a parameter of shape from U(-bound, bound).
func uniformParam(op string, rng *tensor.RNG, bound float64, shape ...int) (*autograd.Variable, error) {
	b := float32(bound)
	t, err := tensor.Uniform(rng, -b, b, shape...)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	return autograd.Param(t), nil
}

// weightBias returns the named weight and optional bias.
func weightBias(w, b *autograd.Variable) []NamedParameter {
	ps := []NamedParameter{{Name: "weight", Param: w}}
	if b != nil {
		ps = append(ps, NamedParameter{Name: "bias", Param: b})
	}
	return ps
}

// Linear applies y = x·Wᵀ + b to the last dimension of x.
type Linear struct {
	mode
	In, Out int
	Weight  *autograd.Variable // [Out, In]
	Bias    *autograd.Variable // [Out], or nil without bias
}

// NewLinear returns a Linear layer from in to out features, initialised as
// PyTorch does: weight and bias from U(-1/√in, 1/√in).
func NewLinear(in, out int, bias bool, rng *tensor.RNG) (*Linear, error) {
	const op = "nn.Linear"
	if in <= 0 || out <= 0 {
		return nil, errs.New(errs.Argument, op, "in_features %d and out_features %d must be positive", in, out)
	}
	if rng == nil {
		return nil, errs.New(errs.Argument, op, "nil RNG")
	}
	bound := 1 / math.Sqrt(float64(in))
	w, err := uniformParam(op, rng, bound, out, in)
	if err != nil {
		return nil, err
	}
	l := &Linear{In: in, Out: out, Weight: w}
	if bias {
		if l.Bias, err = uniformParam(op, rng, bound, out); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Forward returns x·Wᵀ + b.
func (l *Linear) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	return autograd.Linear(x, l.Weight, l.Bias)
}

// Parameters returns "weight" and, if present, "bias".
func (l *Linear) Parameters() []NamedParameter { return weightBias(l.Weight, l.Bias) }

func (l *Linear) forwardReLU(x *autograd.Variable) (*autograd.Variable, error) {
	return autograd.LinearReLU(x, l.Weight, l.Bias)
}

// Conv2d is a 2-D convolution over [N, C, H, W] inputs with square kernels.
type Conv2d struct {
	mode
	InC, OutC, Kernel int
	Options           tensor.Conv2dOptions
	Weight            *autograd.Variable // [OutC, InC, Kernel, Kernel]
	Bias              *autograd.Variable // [OutC], or nil without bias
}

// NewConv2d returns a convolution from inC to outC channels with a
// kernel×kernel window, the given stride and zero padding, initialised as
// PyTorch does with fan_in = inC·kernel·kernel.
func NewConv2d(inC, outC, kernel, stride, padding int, bias bool, rng *tensor.RNG) (*Conv2d, error) {
	const op = "nn.Conv2d"
	switch {
	case inC <= 0 || outC <= 0:
		return nil, errs.New(errs.Argument, op, "in_channels %d and out_channels %d must be positive", inC, outC)
	case kernel <= 0:
		return nil, errs.New(errs.Argument, op, "kernel size %d must be positive", kernel)
	case stride <= 0:
		return nil, errs.New(errs.Argument, op, "stride %d must be positive", stride)
	case padding < 0:
		return nil, errs.New(errs.Argument, op, "padding %d is negative", padding)
	case rng == nil:
		return nil, errs.New(errs.Argument, op, "nil RNG")
	}
	bound := 1 / math.Sqrt(float64(inC*kernel*kernel))
	w, err := uniformParam(op, rng, bound, outC, inC, kernel, kernel)
	if err != nil {
		return nil, err
	}
	c := &Conv2d{InC: inC, OutC: outC, Kernel: kernel, Weight: w,
		Options: tensor.Conv2dOptions{Stride: [2]int{stride, stride}, Padding: [2]int{padding, padding}}}
	if bias {
		if c.Bias, err = uniformParam(op, rng, bound, outC); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Forward convolves x [N, InC, H, W].
func (c *Conv2d) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	return autograd.Conv2d(x, c.Weight, c.Bias, c.Options)
}

func (c *Conv2d) forwardReLU(x *autograd.Variable) (*autograd.Variable, error) {
	return autograd.Conv2dReLU(x, c.Weight, c.Bias, c.Options)
}

// Parameters returns "weight" and, if present, "bias".
func (c *Conv2d) Parameters() []NamedParameter { return weightBias(c.Weight, c.Bias) }

// noParams is embedded by parameter-free layers.
type noParams struct{ mode }

// Parameters returns nil: the layer has no parameters.
func (noParams) Parameters() []NamedParameter { return nil }

func poolOptions(op string, kernel, stride int) (tensor.Pool2dOptions, error) {
	if kernel <= 0 {
		return tensor.Pool2dOptions{}, errs.New(errs.Argument, op, "kernel size %d must be positive", kernel)
	}
	if stride < 0 {
		return tensor.Pool2dOptions{}, errs.New(errs.Argument, op, "stride %d is negative", stride)
	}
	if stride == 0 {
		stride = kernel
	}
	return tensor.Pool2dOptions{Kernel: [2]int{kernel, kernel}, Stride: [2]int{stride, stride}}, nil
}

// MaxPool2d takes maxima over square windows of [N, C, H, W] inputs.
type MaxPool2d struct {
	noParams
	Options tensor.Pool2dOptions
}

// NewMaxPool2d returns a max pool with a kernel×kernel window; stride 0
// means stride = kernel (PyTorch's default).
func NewMaxPool2d(kernel, stride int) (*MaxPool2d, error) {
	o, err := poolOptions("nn.MaxPool2d", kernel, stride)
	if err != nil {
		return nil, err
	}
	return &MaxPool2d{Options: o}, nil
}

// Forward pools x.
func (p *MaxPool2d) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	return autograd.MaxPool2d(x, p.Options)
}

// AvgPool2d averages over square windows of [N, C, H, W] inputs.
type AvgPool2d struct {
	noParams
	Options tensor.Pool2dOptions
}

// NewAvgPool2d returns an average pool with a kernel×kernel window; stride
// 0 means stride = kernel.
func NewAvgPool2d(kernel, stride int) (*AvgPool2d, error) {
	o, err := poolOptions("nn.AvgPool2d", kernel, stride)
	if err != nil {
		return nil, err
	}
	return &AvgPool2d{Options: o}, nil
}

// Forward pools x.
func (p *AvgPool2d) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	return autograd.AvgPool2d(x, p.Options)
}

// Flatten merges every dimension from 1 on: [N, ...] -> [N, prod(...)].
type Flatten struct{ noParams }

// Forward flattens x from dimension 1.
func (Flatten) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	if x != nil && x.Data != nil && x.Data.Dim() < 2 {
		return nil, errs.New(errs.Shape, "nn.Flatten", "input of shape %v has no dimension 1 to flatten from", x.Data.Shape())
	}
	return autograd.Flatten(x, 1, -1)
}

// ReLU is max(x, 0).
type ReLU struct{ noParams }

// Forward applies ReLU.
func (ReLU) Forward(x *autograd.Variable) (*autograd.Variable, error) { return autograd.Relu(x) }

// GELU is the Gaussian error linear unit, exact (erf) by default; Tanh
// selects its tanh approximation, torch's approximate="tanh".
type GELU struct {
	noParams
	Tanh bool
}

// Forward applies GELU.
func (g GELU) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	if g.Tanh {
		return autograd.GeluTanh(x)
	}
	return autograd.Gelu(x)
}

// Tanh is the hyperbolic tangent.
type Tanh struct{ noParams }

// Forward applies tanh.
func (Tanh) Forward(x *autograd.Variable) (*autograd.Variable, error) { return autograd.Tanh(x) }

// Sigmoid is the logistic function.
type Sigmoid struct{ noParams }

// Forward applies the sigmoid.
func (Sigmoid) Forward(x *autograd.Variable) (*autograd.Variable, error) { return autograd.Sigmoid(x) }

// Dropout zeroes each element with probability P and scales the rest by
// 1/(1-P) in training mode; in evaluation mode it is the identity.
type Dropout struct {
	noParams
	P   float32
	RNG *tensor.RNG
}

// NewDropout returns a Dropout layer; p must lie in [0, 1] and rng must be
// set (it draws the masks, so runs are reproducible from its seed).
func NewDropout(p float32, rng *tensor.RNG) (*Dropout, error) {
	const op = "nn.Dropout"
	if !(p >= 0 && p <= 1) {
		return nil, errs.New(errs.Argument, op, "probability %v is outside [0, 1]", p)
	}
	if rng == nil {
		return nil, errs.New(errs.Argument, op, "nil RNG")
	}
	return &Dropout{P: p, RNG: rng}, nil
}

// Forward applies dropout in training mode and returns x in evaluation mode.
func (d *Dropout) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	return autograd.Dropout(x, d.P, d.RNG, d.Training())
}
