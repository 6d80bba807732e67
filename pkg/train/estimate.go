package train

import (
	"fmt"
	"math"
	"sync"

	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/tensor"
)

// MemoryEstimate is the memory a run of a spec needs, in bytes, worked
// out from the spec alone (nothing is allocated): admission control uses
// it to turn away a run that cannot fit before it starts.
type MemoryEstimate struct {
	Parameters     int64 // the model's weights
	Gradients      int64 // one gradient per weight
	OptimizerState int64 // momentum and second moments
	Activations    int64 // a training batch's forward values and their gradients, or an evaluation batch's
	Dataset        int64 // both splits, as float32 tensors, twice: loading keeps the decoded and the normalised copy
}

// estimateSlack and estimateBase turn the sum of the parts into what a
// process needs: allocator and GC headroom, and the runtime, binary and
// connections (measured: an attempt process of a tiny run peaks at about
// 30 MiB; a Fashion-MNIST MLP at 540 MiB, estimated 660 MiB; LeNet at 650
// MiB, estimated 720 MiB).
const (
	estimateSlack = 1.25
	estimateBase  = 128 << 20
)

// Total is the estimate for a whole attempt process.
func (e MemoryEstimate) Total() int64 {
	sum := float64(e.Parameters + e.Gradients + e.OptimizerState + e.Activations + e.Dataset)
	return int64(math.Min(sum*estimateSlack+estimateBase, math.MaxInt64/2))
}

// String reads "about 3.9 GiB (parameters 1.0 GiB, gradients 1.0 GiB,
// optimizer state 2.0 GiB, activations 12.0 MiB, dataset 180.0 MiB)".
func (e MemoryEstimate) String() string {
	return fmt.Sprintf("about %s (parameters %s, gradients %s, optimizer state %s, activations %s, dataset %s)",
		FormatBytes(e.Total()), FormatBytes(e.Parameters), FormatBytes(e.Gradients), FormatBytes(e.OptimizerState),
		FormatBytes(e.Activations), FormatBytes(e.Dataset))
}

// FormatBytes formats a byte count in binary units: "3.9 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// shapes of the datasets: features per sample, classes, samples of the
// training and test splits.
type dataShape struct{ features, classes, train, test int64 }

func shapeOf(s *Spec) dataShape {
	n := int64(s.Dataset.Size)
	if n == 0 {
		n = 2048
	}
	var d dataShape
	switch s.Dataset.Name {
	case "fashion-mnist":
		d = dataShape{features: 28 * 28, classes: 10, train: 60000, test: 10000}
	case "grammar":
		d = dataShape{features: int64(s.Model.Context), classes: int64(max(data.GrammarVocab().Size(), s.Model.Vocab)), train: n, test: max(n/4, 1)}
	case "blobs":
		d = dataShape{features: 8, classes: 4, train: n, test: max(n/4, 1)}
	case "moons":
		d = dataShape{features: 2, classes: 2, train: n, test: max(n/4, 1)}
	default: // spirals
		d = dataShape{features: 2, classes: 3, train: n, test: max(n/4, 1)}
	}
	if s.TrainLimit > 0 {
		d.train = min(d.train, int64(s.TrainLimit))
	}
	return d
}

// EstimateMemory estimates the memory a run of spec needs. The spec must
// be valid (ParseSpec); an invalid one is an errs.Config error.
func EstimateMemory(spec *Spec) (MemoryEstimate, error) {
	s := *spec
	if err := s.Validate(); err != nil {
		return MemoryEstimate{}, err
	}
	d := shapeOf(&s)
	const f32 = 4
	var params, trainAct, evalAct float64 // in float32 values; activations per sample
	switch s.Model.Name {
	case "cnn":
		params = float64(leNetParams())
		// LeNet's feature maps per sample, forward values and gradients.
		trainAct = 3 * (16*24*24 + 16*12*12 + 32*8*8 + 32*4*4 + 120 + 84 + 10)
	case "gpt":
		m := s.Model
		dm, t, v, l := float64(m.DModel), float64(m.Context), float64(d.classes), float64(m.Layers)
		params = l*(12*dm*dm+13*dm) + (v+t)*dm + dm*v + 2*dm
		// Per sample: each block's residual stream, attention scores and
		// MLP, forward values and gradients; the logits.
		trainAct = 3 * (l*t*(16*dm+2*float64(m.Heads)*t) + t*v)
	default: // mlp
		prev := float64(d.features)
		for _, h := range s.Model.Hidden {
			params += prev*float64(h) + float64(h)
			trainAct += 3 * float64(h) // linear output, ReLU output, their gradient
			prev = float64(h)
		}
		params += prev*float64(d.classes) + float64(d.classes)
		trainAct += 3 * float64(d.classes)
	}
	evalAct = trainAct / 3 // evaluation keeps no graph
	var optSlots float64
	switch o := s.Optimizer; {
	case o.Name == "adam" || o.Name == "adamw":
		optSlots = 2
	case o.Momentum != 0:
		optSlots = 1
	}
	act := math.Max(float64(s.BatchSize)*trainAct, float64(min(int64(s.EvalBatch), d.test))*evalAct)
	e := MemoryEstimate{
		Parameters:     clampBytes(params * f32),
		Gradients:      clampBytes(params * f32),
		OptimizerState: clampBytes(optSlots * params * f32),
		Activations:    clampBytes(act * f32),
		Dataset:        clampBytes(2 * float64(d.train+d.test) * float64(d.features+1) * f32),
	}
	return e, nil
}

func clampBytes(b float64) int64 { return int64(math.Min(b, math.MaxInt64/8)) }

// leNetParams counts LeNet's weights (by building it once: it is small).
var leNetParams = sync.OnceValue(func() int64 {
	m, err := nn.LeNet(tensor.NewRNG(0))
	if err != nil {
		return 0
	}
	var n int64
	for _, p := range m.Parameters() {
		n += int64(p.Param.Data.Numel())
	}
	return n
})

// Admit checks an estimate against a memory limit (0: no limit): an
// errs.Memory error naming both when it does not fit.
func Admit(e MemoryEstimate, limit int64, who string) error {
	if limit <= 0 || e.Total() <= limit {
		return nil
	}
	return errs.New(errs.Memory, "admission", "the run needs %s, more than %s's memory limit of %s", e, who, FormatBytes(limit))
}
