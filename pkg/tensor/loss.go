package tensor

import "github.com/gorch/gorch/pkg/errs"

// Reduction says how a loss combines its per-sample values; the values
// are ATen's (at::Reduction), so a backend can pass them through.
type Reduction int

// The reductions of a loss.
const (
	ReduceNone Reduction = iota // one loss per sample
	ReduceMean                  // weighted mean over the samples
	ReduceSum                   // sum over the samples
)

var (
	statNLLLoss         = stat("nll_loss")
	statNLLLossBackward = stat("nll_loss_backward")
)

// nll is the validated geometry of an NLL loss call.
type nll struct {
	n, c    int
	batched bool      // input [N, C] (else [C] with a 0-d target)
	target  []int     // class per sample, or ignoreIndex
	weight  []float32 // per class, nil for 1
}

func (l nll) classWeight(k int) float64 {
	if l.weight == nil {
		return 1
	}
	return float64(l.weight[k])
}

func nllGeometry(op string, x, target, weight *Tensor, red Reduction, ignoreIndex int) (nll, error) {
	var l nll
	if red < ReduceNone || red > ReduceSum {
		return l, errs.New(errs.Argument, op, "unknown reduction %d", red)
	}
	switch {
	case len(x.shape) == 2 && len(target.shape) == 1 && target.shape[0] == x.shape[0]:
		l.n, l.c, l.batched = x.shape[0], x.shape[1], true
	case len(x.shape) == 1 && len(target.shape) == 0:
		l.n, l.c = 1, x.shape[0]
	default:
		return l, errs.New(errs.Shape, op, "input of shape %v and target of shape %v: want [N, C] and [N], or [C] and []", x.shape, target.shape)
	}
	if weight != nil {
		if !EqualShape(weight.shape, []int{l.c}) {
			return l, errs.New(errs.Shape, op, "weight of shape %v for %d classes", weight.shape, l.c)
		}
		l.weight = values(weight)
	}
	l.target = make([]int, l.n)
	for i, v := range values(target) {
		if float64(v) == float64(ignoreIndex) {
			l.target[i] = ignoreIndex
			continue
		}
		k, err := toIndex(op, v, l.c)
		if err != nil {
			return l, errs.New(errs.Argument, op, "target %v at position %d is not a class index in [0, %d)", v, i, l.c)
		}
		if k == ignoreIndex {
			return l, errs.New(errs.Argument, op, "target %v at position %d is the ignore index", v, i)
		}
		l.target[i] = k
	}
	return l, nil
}

// NLLLoss returns the negative log-likelihood of log-probabilities x at the
// class indices in target, as torch.nll_loss_forward: x is [N, C] with
// target [N], or [C] with a 0-d target; weight ([C], or nil for ones)
// scales each class; samples whose target is ignoreIndex count with weight
// 0. It returns the loss (shape [N] for ReduceNone, 0-d otherwise) and the
// total weight of the counted samples (0-d; 0 for ReduceNone, as ATen
// leaves it), which NLLLossBackward takes.
// The mean of zero total weight is NaN, as in PyTorch.
func NLLLoss(x, target, weight *Tensor, red Reduction, ignoreIndex int) (loss, totalWeight *Tensor, err error) {
	s := statNLLLoss
	if err := checkOptional(s, []*Tensor{x, target}, weight); err != nil {
		return nil, nil, err
	}
	l, err := nllGeometry(s.name, x, target, weight, red, ignoreIndex)
	if err != nil {
		return nil, nil, err
	}
	xd := values(x)
	per := make([]float64, l.n)
	var sum, total float64
	for i, k := range l.target {
		if k == ignoreIndex {
			continue
		}
		w := l.classWeight(k)
		per[i] = -w * float64(xd[i*l.c+k])
		sum += per[i]
		total += w
	}
	sc := scopeOf(x, target, weight)
	scalar := func(v float64) *Tensor { return fromData(sc, []float32{float32(v)}, nil) }
	totalWeight = scalar(total)
	switch {
	case red == ReduceNone && l.batched:
		return fromData(sc, toF32(per, 1), []int{l.n}), scalar(0), nil
	case red == ReduceNone:
		return scalar(per[0]), scalar(0), nil
	case red == ReduceMean:
		return scalar(sum / total), totalWeight, nil
	}
	return scalar(sum), totalWeight, nil
}

// NLLLossBackward returns the gradient of NLLLoss with respect to x for the
// upstream gradient g (shaped like the loss), as torch.nll_loss_backward:
// -weight[target]·g at each sample's target class (divided by totalWeight
// for ReduceMean), 0 elsewhere and on ignored samples.
func NLLLossBackward(g, x, target, weight *Tensor, red Reduction, ignoreIndex int, totalWeight *Tensor) (*Tensor, error) {
	s := statNLLLossBackward
	if err := checkOptional(s, []*Tensor{g, x, target, totalWeight}, weight); err != nil {
		return nil, err
	}
	l, err := nllGeometry(s.name, x, target, weight, red, ignoreIndex)
	if err != nil {
		return nil, err
	}
	wantN := 1
	if red == ReduceNone && l.batched {
		wantN = l.n
	}
	if g.Numel() != wantN || totalWeight.Numel() != 1 {
		return nil, errs.New(errs.Shape, s.name, "gradient of shape %v and total weight of shape %v do not fit a loss over input %v", g.shape, totalWeight.shape, x.shape)
	}
	gd := values(g)
	scale := 1.0
	if red == ReduceMean {
		scale = 1 / float64(values(totalWeight)[0])
	}
	out := newContiguous(scopeOf(g, x, target), x.shape)
	od := out.storage.data
	for i, k := range l.target {
		if k == ignoreIndex {
			continue
		}
		gi := float64(gd[0])
		if wantN > 1 {
			gi = float64(gd[i])
		}
		od[i*l.c+k] = float32(-l.classWeight(k) * gi * scale)
	}
	return out, nil
}
