package train

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/optim"
	"github.com/gorch/gorch/pkg/tensor"
)

// Config describes a classification run.
type Config struct {
	Model       string  // "mlp" (784-256-10, ReLU) or "cnn" (LeNet-style)
	Dataset     string  // "fashion-mnist"
	DatasetDir  string  // directory of the IDX files; "" means data.FashionMNISTDir
	Epochs      int     // passes over the training split
	BatchSize   int     // samples per step
	LR          float64 // Adam learning rate
	Seed        uint64  // seeds initialisation and shuffling
	Workers     int     // backward workers; 0 means autograd's default
	TrainLimit  int     // if > 0, train on the first TrainLimit samples only
	LogEvery    int     // steps between progress lines; 0 means 100
	EvalBatch   int     // evaluation batch size; 0 means 1000
	ProgressOut io.Writer
}

// Result is the outcome of a run.
type Result struct {
	Steps        int
	TrainLoss    float64 // mean loss over the last epoch
	TestLoss     float64
	TestAccuracy float64
	Duration     time.Duration
	StepsPerSec  float64
}

func (c *Config) defaults() error {
	const op = "train.Config"
	if c.Dataset == "" {
		c.Dataset = "fashion-mnist"
	}
	if c.Dataset != "fashion-mnist" {
		return errs.New(errs.Config, op, "unknown dataset %q (want fashion-mnist)", c.Dataset)
	}
	if c.DatasetDir == "" {
		c.DatasetDir = data.FashionMNISTDir
	}
	switch c.Model {
	case "":
		c.Model = "mlp"
	case "mlp", "cnn":
	default:
		return errs.New(errs.Config, op, "unknown model %q (want mlp or cnn)", c.Model)
	}
	if c.Epochs <= 0 {
		return errs.New(errs.Config, op, "epochs must be positive, got %d", c.Epochs)
	}
	if c.BatchSize <= 0 {
		return errs.New(errs.Config, op, "batch size must be positive, got %d", c.BatchSize)
	}
	if !(c.LR > 0) {
		return errs.New(errs.Config, op, "learning rate must be positive, got %v", c.LR)
	}
	if c.LogEvery <= 0 {
		c.LogEvery = 100
	}
	if c.EvalBatch <= 0 {
		c.EvalBatch = 1000
	}
	if c.ProgressOut == nil {
		c.ProgressOut = io.Discard
	}
	return nil
}

// Classify trains the configured model on the dataset's training split and
// evaluates it on the test split after every epoch.
func Classify(ctx context.Context, cfg Config) (Result, error) {
	var res Result
	if err := cfg.defaults(); err != nil {
		return res, err
	}
	trainDS, testDS, err := loadFashionMNIST(cfg)
	if err != nil {
		return res, err
	}
	rng := tensor.NewRNG(cfg.Seed)
	var model *nn.Sequential
	if cfg.Model == "mlp" {
		model, err = nn.MLP([]int{784, 256, 10}, rng)
	} else {
		model, err = nn.LeNet(rng)
	}
	if err != nil {
		return res, err
	}
	opt, err := optim.NewAdam(model.Parameters(), optim.DefaultAdamConfig(cfg.LR))
	if err != nil {
		return res, err
	}
	loader, err := data.NewLoader(trainDS, data.LoaderOptions{BatchSize: cfg.BatchSize, Shuffle: true, Seed: cfg.Seed})
	if err != nil {
		return res, err
	}
	bw := autograd.BackwardOptions{Workers: cfg.Workers}
	start := time.Now()
	total := cfg.Epochs * loader.BatchesPerEpoch()
	for epoch := 0; epoch < cfg.Epochs; epoch++ {
		if err := loader.StartEpoch(epoch); err != nil {
			return res, err
		}
		model.Train(true)
		var lossSum float64
		var lossN int
		for loader.Next() {
			if err := ctx.Err(); err != nil {
				return res, errs.Wrap(errs.Training, "train", err, "stopped at step %d", res.Steps)
			}
			x, y := loader.Batch()
			out, err := model.Forward(autograd.Const(x))
			if err != nil {
				return res, err
			}
			loss, err := autograd.CrossEntropy(out, y)
			if err != nil {
				return res, err
			}
			opt.ZeroGrad()
			if err := loss.BackwardWith(bw); err != nil {
				return res, err
			}
			if err := opt.Step(); err != nil {
				return res, err
			}
			lv, _ := loss.Item()
			if math.IsNaN(float64(lv)) || math.IsInf(float64(lv), 0) {
				return res, errs.New(errs.Training, "train", "loss is %v at step %d", lv, res.Steps)
			}
			lossSum += float64(lv)
			lossN++
			res.Steps++
			if res.Steps%cfg.LogEvery == 0 {
				el := time.Since(start).Seconds()
				rate := float64(res.Steps) / el
				eta := time.Duration(float64(total-res.Steps) / rate * float64(time.Second)).Round(time.Second)
				fmt.Fprintf(cfg.ProgressOut, "epoch %d step %d/%d loss %.4f %.1f steps/s eta %s\n",
					epoch+1, res.Steps, total, lossSum/float64(lossN), rate, eta)
			}
		}
		if err := loader.Err(); err != nil {
			return res, err
		}
		res.TrainLoss = lossSum / float64(max(lossN, 1))
		model.Train(false)
		res.TestLoss, res.TestAccuracy, err = Evaluate(model, testDS, cfg.EvalBatch)
		if err != nil {
			return res, err
		}
		fmt.Fprintf(cfg.ProgressOut, "epoch %d done: train loss %.4f, test loss %.4f, test accuracy %.2f%%\n",
			epoch+1, res.TrainLoss, res.TestLoss, 100*res.TestAccuracy)
	}
	res.Duration = time.Since(start)
	res.StepsPerSec = float64(res.Steps) / res.Duration.Seconds()
	return res, nil
}

func loadFashionMNIST(cfg Config) (train, test *data.TensorDataset, err error) {
	if train, err = data.LoadMNIST(cfg.DatasetDir, "train"); err != nil {
		return nil, nil, err
	}
	if test, err = data.LoadMNIST(cfg.DatasetDir, "test"); err != nil {
		return nil, nil, err
	}
	if cfg.TrainLimit > 0 && cfg.TrainLimit < train.Len() {
		if train, err = train.Head(cfg.TrainLimit); err != nil {
			return nil, nil, err
		}
	}
	mean, std := train.MeanStd()
	if train, err = train.Normalize(float32(mean), float32(std)); err != nil {
		return nil, nil, err
	}
	if test, err = test.Normalize(float32(mean), float32(std)); err != nil {
		return nil, nil, err
	}
	if cfg.Model == "mlp" {
		if train, err = train.Flatten(); err != nil {
			return nil, nil, err
		}
		if test, err = test.Flatten(); err != nil {
			return nil, nil, err
		}
	}
	return train, test, nil
}

// Evaluate returns the mean cross-entropy and the accuracy of model on ds,
// in batches, without recording a graph.
func Evaluate(model nn.Module, ds *data.TensorDataset, batch int) (loss, acc float64, err error) {
	n := ds.Len()
	if n == 0 {
		return 0, 0, errs.New(errs.Data, "evaluate", "empty dataset")
	}
	var correct int
	var lossSum float64
	err = autograd.NoGrad(func() error {
		for startIdx := 0; startIdx < n; startIdx += batch {
			m := min(batch, n-startIdx)
			idx := make([]int, m)
			for i := range idx {
				idx[i] = startIdx + i
			}
			x, y, err := ds.Gather(idx)
			if err != nil {
				return err
			}
			out, err := model.Forward(autograd.Const(x))
			if err != nil {
				return err
			}
			l, err := autograd.CrossEntropy(out, y)
			if err != nil {
				return err
			}
			lv, _ := l.Item()
			lossSum += float64(lv) * float64(m)
			pred, err := tensor.Argmax(out.Data, 1, false)
			if err != nil {
				return err
			}
			yd := y.Data()
			for i, p := range pred.Data() {
				if p == yd[i] {
					correct++
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return lossSum / float64(n), float64(correct) / float64(n), nil
}
