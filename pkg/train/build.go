package train

import (
	"os"
	"path/filepath"

	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/optim"
	"github.com/gorch/gorch/pkg/tensor"
)

// Fashion-MNIST pixel statistics of the training split (data.TensorDataset
// MeanStd), fixed so every run normalises identically.
const fmnistMean, fmnistStd = 0.2860, 0.3530

// Datasets returns the train and test splits a run of spec s trains and
// evaluates on, as the training loop builds them: Fashion-MNIST normalised
// (and flattened for the MLP), the grammar text cut into next-token
// windows, the synthetic sets drawn from s.Seed, train_limit applied. The
// order is the stored one; each epoch's shuffle is the loader's. s must be
// valid (ParseSpec, Validate).
func Datasets(s *Spec) (trainDS, testDS *data.TensorDataset, err error) {
	switch s.Dataset.Name {
	case "fashion-mnist":
		dir := s.Dataset.Dir
		if dir == "" {
			dir = data.FashionMNISTDir
		}
		if trainDS, err = data.LoadMNIST(dir, "train"); err != nil {
			return nil, nil, err
		}
		if testDS, err = data.LoadMNIST(dir, "test"); err != nil {
			return nil, nil, err
		}
		if trainDS, err = trainDS.Normalize(fmnistMean, fmnistStd); err != nil {
			return nil, nil, err
		}
		if testDS, err = testDS.Normalize(fmnistMean, fmnistStd); err != nil {
			return nil, nil, err
		}
		if s.Model.Name == "mlp" {
			if trainDS, err = trainDS.Flatten(); err != nil {
				return nil, nil, err
			}
			if testDS, err = testDS.Flatten(); err != nil {
				return nil, nil, err
			}
		}
	case "grammar":
		if trainDS, testDS, err = grammarSplits(s); err != nil {
			return nil, nil, err
		}
	default:
		n := s.Dataset.Size
		if n == 0 {
			n = 2048
		}
		gen := func(n int, seed uint64) (*data.TensorDataset, error) {
			switch s.Dataset.Name {
			case "blobs":
				return data.GaussianBlobs(n, 4, 8, 1.5, seed)
			case "moons":
				return data.TwoMoons(n, 0.15, seed)
			default:
				return data.Spirals(n, 3, 0.1, seed)
			}
		}
		// One draw, shuffled and split in two, so both splits follow the
		// same distribution (cluster centres, spiral extent).
		nTest := max(n/4, 1)
		all, err := gen(n+nTest, s.Seed)
		if err != nil {
			return nil, nil, err
		}
		idx := tensor.NewRNG(s.Seed ^ 0x7e57).Perm(n + nTest)
		if trainDS, err = all.Subset(idx[:n]); err != nil {
			return nil, nil, err
		}
		if testDS, err = all.Subset(idx[n:]); err != nil {
			return nil, nil, err
		}
	}
	if s.TrainLimit > 0 && s.TrainLimit < trainDS.Len() {
		if trainDS, err = trainDS.Head(s.TrainLimit); err != nil {
			return nil, nil, err
		}
	}
	return trainDS, testDS, nil
}

// grammarSplits generates the grammar text for Size training windows of
// the model's context plus a quarter as many held-out windows, which are
// the text that follows the training text.
func grammarSplits(s *Spec) (trainDS, testDS *data.TensorDataset, err error) {
	n, t := s.Dataset.Size, s.Model.Context
	if n == 0 {
		n = 2048
	}
	nTest := max(n/4, 1)
	text, err := data.GrammarText((n+nTest)*t+2, s.Seed)
	if err != nil {
		return nil, nil, err
	}
	ids, err := data.GrammarVocab().Encode(text)
	if err != nil {
		return nil, nil, err
	}
	if trainDS, err = data.NextTokenDataset(ids[:n*t+1], t); err != nil {
		return nil, nil, err
	}
	if testDS, err = data.NextTokenDataset(ids[n*t+1:], t); err != nil {
		return nil, nil, err
	}
	return trainDS, testDS, nil
}

// numClasses returns 1 + the largest label of ds.
func numClasses(ds *data.TensorDataset) int {
	c := 0
	for _, y := range ds.Y().Data() {
		c = max(c, int(y)+1)
	}
	return c
}

// buildModel makes the spec's model for samples shaped like ds's. init
// seeds the weights; dropout draws from rng.
func buildModel(s *Spec, ds *data.TensorDataset, classes int, init, rng *tensor.RNG) (nn.Module, error) {
	switch s.Model.Name {
	case "cnn":
		return nn.LeNet(init)
	case "gpt":
		return buildGPT(s, init, rng)
	}
	xs, _ := ds.SampleShapes()
	in := 1
	for _, d := range xs {
		in *= d
	}
	var mods []nn.Module
	prev := in
	for _, h := range s.Model.Hidden {
		l, err := nn.NewLinear(prev, h, true, init)
		if err != nil {
			return nil, err
		}
		mods = append(mods, l, &nn.ReLU{})
		if s.Model.Dropout > 0 {
			d, err := nn.NewDropout(s.Model.Dropout, rng)
			if err != nil {
				return nil, err
			}
			mods = append(mods, d)
		}
		prev = h
	}
	out, err := nn.NewLinear(prev, classes, true, init)
	if err != nil {
		return nil, err
	}
	return nn.NewSequential(append(mods, out)...)
}

// buildGPT makes the spec's GPT over the grammar vocabulary (or a larger
// model.vocab, e.g. to match another model's).
func buildGPT(s *Spec, init, rng *tensor.RNG) (nn.Module, error) {
	m := s.Model
	vocab := max(data.GrammarVocab().Size(), m.Vocab) // Validate checked m.Vocab
	return nn.NewGPT(nn.GPTConfig{Vocab: vocab, Context: m.Context, Layers: m.Layers, Dim: m.DModel, Heads: m.Heads, Dropout: m.Dropout}, init, rng)
}

func buildOptimizer(s *Spec, params []nn.NamedParameter) (optim.Optimizer, error) {
	o := s.Optimizer
	switch o.Name {
	case "sgd":
		return optim.NewSGD(params, optim.SGDConfig{LR: o.LR, Momentum: o.Momentum, WeightDecay: o.WeightDecay, Nesterov: o.Nesterov})
	case "adamw":
		c := optim.DefaultAdamWConfig(o.LR)
		if o.WeightDecay != 0 {
			c.WeightDecay = o.WeightDecay
		}
		return optim.NewAdamW(params, c)
	default:
		c := optim.DefaultAdamConfig(o.LR)
		c.WeightDecay = o.WeightDecay
		return optim.NewAdam(params, c)
	}
}

// buildSchedule returns the spec's LR schedule over total steps, or nil
// for a constant LR.
func buildSchedule(s *Spec, opt optim.Optimizer, total int) (optim.Scheduler, error) {
	sc := s.Schedule
	var after optim.Scheduler
	var err error
	switch sc.Name {
	case "cosine":
		after, err = optim.NewCosineAnnealingLR(opt, max(total-sc.Warmup, 1), sc.MinLR)
	case "step":
		gamma := sc.Gamma
		if gamma == 0 {
			gamma = 0.1
		}
		after, err = optim.NewStepLR(opt, sc.StepSize, gamma)
	}
	if err != nil {
		return nil, errs.Wrap(errs.Config, "spec", err, "schedule")
	}
	if sc.Warmup > 0 {
		w, err := optim.NewLinearWarmup(opt, sc.Warmup, 0.01, after)
		if err != nil {
			return nil, errs.Wrap(errs.Config, "spec", err, "schedule")
		}
		return w, nil
	}
	return after, nil
}

// CheckDataset reports, before any run is created, a dataset that cannot
// be read: for Fashion-MNIST, a missing or unreadable IDX file.
func CheckDataset(s *Spec) error {
	if s.Dataset.Name != "fashion-mnist" {
		return nil
	}
	dir := s.Dataset.Dir
	if dir == "" {
		dir = data.FashionMNISTDir
	}
	for _, split := range []string{"train", "t10k"} {
		for _, kind := range []string{"images-idx3", "labels-idx1"} {
			name := split + "-" + kind + "-ubyte"
			f, err := os.Open(filepath.Join(dir, name+".gz"))
			if err != nil {
				f, err = os.Open(filepath.Join(dir, name))
			}
			if err != nil {
				return errs.Wrap(errs.Data, "spec", err,
					"field \"dataset.dir\": Fashion-MNIST file %s missing or unreadable in %s (apt-get install -y dataset-fashion-mnist)", name+".gz", dir)
			}
			f.Close()
		}
	}
	return nil
}
