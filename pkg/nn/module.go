package nn

import (
	"slices"
	"strconv"

	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// NamedParameter is a trainable parameter with its dotted, PyTorch-style name.
type NamedParameter struct {
	Name  string
	Param *autograd.Variable
}

// Module is a neural-network layer or model.
type Module interface {
	// Forward computes the module's output for x.
	Forward(x *autograd.Variable) (*autograd.Variable, error)
	// Parameters returns the trainable parameters in a stable order with
	// dotted names ("weight", "0.bias", ...).
	Parameters() []NamedParameter
	// Train switches training mode on (true) or off (evaluation mode).
	Train(on bool)
	// Training reports whether the module is in training mode.
	Training() bool
}

// mode implements Train/Training; its zero value is training mode.
type mode struct{ eval bool }

// Train switches training mode on or off.
func (m *mode) Train(on bool) { m.eval = !on }

// Training reports whether the module is in training mode.
func (m *mode) Training() bool { return !m.eval }

// NumParameters returns the total number of elements of m's parameters.
func NumParameters(m Module) int {
	n := 0
	for _, p := range m.Parameters() {
		if p.Param != nil && p.Param.Data != nil {
			n += p.Param.Data.Numel()
		}
	}
	return n
}

// Scope returns the tensor.Scope of m's parameters (that of the first one
// in a scope), or nil: where m's layout checks are counted and whose NoGrad
// stops m's forward pass from recording.
func Scope(m Module) *tensor.Scope {
	for _, p := range m.Parameters() {
		if p.Param != nil {
			if s := p.Param.Data.Scope(); s != nil {
				return s
			}
		}
	}
	return nil
}

// SetScope puts m's parameters in scope s (see tensor.Scope.Adopt): ops on
// them, and everything computed from them, count and record there.
func SetScope(m Module, s *tensor.Scope) {
	for _, p := range m.Parameters() {
		if p.Param != nil {
			s.Adopt(p.Param.Data)
		}
	}
}

// Sequential chains modules: the output of each is the input of the next.
type Sequential struct {
	mode
	Modules []Module
}

// NewSequential returns a Sequential of mods, all in training mode. It fails
// with errs.Argument if any module is nil.
func NewSequential(mods ...Module) (*Sequential, error) {
	for i, m := range mods {
		if m == nil {
			return nil, errs.New(errs.Argument, "nn.Sequential", "module %d is nil", i)
		}
	}
	s := &Sequential{Modules: append([]Module(nil), mods...)}
	s.Train(true)
	return s, nil
}

// Forward applies the modules in order. A Linear or Conv2d followed by a
// ReLU runs as one fused op (autograd.LinearReLU, Conv2dReLU): the same
// values and gradients, one pass and one output less.
func (s *Sequential) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	var err error
	for i := 0; i < len(s.Modules); i++ {
		m := s.Modules[i]
		if f, ok := m.(fusesReLU); ok && i+1 < len(s.Modules) && isReLU(s.Modules[i+1]) {
			x, err = f.forwardReLU(x)
			i++
		} else {
			x, err = m.Forward(x)
		}
		if err != nil {
			return nil, errs.Wrap(errs.KindOf(err), "nn.Sequential", err, "module %d (%T)", i, m)
		}
	}
	return x, nil
}

// fusesReLU is implemented by layers with a fused op for a following ReLU.
type fusesReLU interface {
	forwardReLU(x *autograd.Variable) (*autograd.Variable, error)
}

func isReLU(m Module) bool {
	_, ok := m.(*ReLU)
	return ok
}

// Parameters returns the children's parameters, each name prefixed with the
// child's index ("0.weight", "0.bias", "2.weight", ...).
func (s *Sequential) Parameters() []NamedParameter {
	var out []NamedParameter
	for i, m := range s.Modules {
		prefix := strconv.Itoa(i) + "."
		for _, p := range m.Parameters() {
			out = append(out, NamedParameter{Name: prefix + p.Name, Param: p.Param})
		}
	}
	return out
}

// Train sets the mode of the Sequential and of every child.
func (s *Sequential) Train(on bool) {
	s.mode.Train(on)
	for _, m := range s.Modules {
		m.Train(on)
	}
}

// Len returns the number of child modules.
func (s *Sequential) Len() int { return len(s.Modules) }

// TensorDict is an ordered map from parameter names to tensors.
type TensorDict struct {
	Keys    []string                  // the names, in the module's parameter order
	Tensors map[string]*tensor.Tensor // the values by name
}

// NewTensorDict returns an empty TensorDict.
func NewTensorDict() *TensorDict { return &TensorDict{Tensors: map[string]*tensor.Tensor{}} }

// Set adds or replaces the tensor under key, keeping the first insertion order.
func (d *TensorDict) Set(key string, t *tensor.Tensor) {
	if d.Tensors == nil {
		d.Tensors = map[string]*tensor.Tensor{}
	}
	if _, ok := d.Tensors[key]; !ok {
		d.Keys = append(d.Keys, key)
	}
	d.Tensors[key] = t
}

// Get returns the tensor under key.
func (d *TensorDict) Get(key string) (*tensor.Tensor, bool) {
	t, ok := d.Tensors[key]
	return t, ok
}

// Len returns the number of entries.
func (d *TensorDict) Len() int { return len(d.Keys) }

// StateDict returns a snapshot of m's parameters: contiguous copies keyed by
// parameter name, in parameter order. Later training does not change it.
func StateDict(m Module) (*TensorDict, error) {
	d := NewTensorDict()
	for _, p := range m.Parameters() {
		if p.Param == nil || p.Param.Data == nil {
			return nil, errs.New(errs.Argument, "nn.StateDict", "parameter %q is nil", p.Name)
		}
		if _, dup := d.Tensors[p.Name]; dup {
			return nil, errs.New(errs.Internal, "nn.StateDict", "duplicate parameter name %q", p.Name)
		}
		c, err := p.Param.Data.Clone()
		if err != nil {
			return nil, errs.Wrap(errs.KindOf(err), "nn.StateDict", err, "parameter %q", p.Name)
		}
		d.Set(p.Name, c)
	}
	return d, nil
}

// LoadStateDict copies the tensors of sd into m's parameters in place, so
// the parameter Variables stay the same objects (optimizers keep working).
//
// Every entry whose name matches a parameter must have the parameter's
// shape, or LoadStateDict fails with errs.Shape naming the key and both
// shapes. With strict set, parameters missing from sd and entries of sd
// that are not parameters fail with errs.Argument listing them; without it
// they are ignored. Nothing is written unless every check passes.
func LoadStateDict(m Module, sd *TensorDict, strict bool) error {
	const op = "nn.LoadStateDict"
	if sd == nil {
		return errs.New(errs.Argument, op, "nil state dict")
	}
	params := m.Parameters()
	known := make(map[string]bool, len(params))
	var missing, unexpected []string
	type pair struct {
		dst, src *tensor.Tensor
	}
	var copies []pair
	for _, p := range params {
		known[p.Name] = true
		src, ok := sd.Tensors[p.Name]
		if !ok {
			missing = append(missing, p.Name)
			continue
		}
		if src == nil {
			return errs.New(errs.Argument, op, "entry %q is nil", p.Name)
		}
		if p.Param == nil || p.Param.Data == nil {
			return errs.New(errs.Argument, op, "parameter %q is nil", p.Name)
		}
		if !tensor.EqualShape(src.Shape(), p.Param.Data.Shape()) {
			return errs.New(errs.Shape, op, "size mismatch for %q: state dict has shape %v, parameter has shape %v",
				p.Name, src.Shape(), p.Param.Data.Shape())
		}
		copies = append(copies, pair{p.Param.Data, src})
	}
	keys := sd.Keys
	if len(keys) != len(sd.Tensors) { // tolerate a hand-built map without Keys
		keys = keys[:0:0]
		for k := range sd.Tensors {
			keys = append(keys, k)
		}
		slices.Sort(keys)
	}
	for _, k := range keys {
		if !known[k] {
			unexpected = append(unexpected, k)
		}
	}
	if strict && (len(missing) > 0 || len(unexpected) > 0) {
		return errs.New(errs.Argument, op, "missing keys %q, unexpected keys %q", missing, unexpected)
	}
	for _, c := range copies {
		if err := tensor.CopyInto(c.dst, c.src); err != nil {
			return errs.Wrap(errs.KindOf(err), op, err, "")
		}
	}
	return nil
}
