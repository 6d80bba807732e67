package train

import (
	"context"
	"math"
	"testing"

	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/optim"
	"github.com/gorch/gorch/pkg/tensor"
)

// unigramEntropy returns the entropy (nats) of the token frequencies of ds's
// targets: the loss of the best model that ignores context.
func unigramEntropy(ds *data.TensorDataset) float64 {
	counts := map[float32]float64{}
	ys := ds.Y().Data()
	for _, y := range ys {
		counts[y]++
	}
	var h float64
	for _, c := range counts {
		p := c / float64(len(ys))
		h -= p * math.Log(p)
	}
	return h
}

// TestGPTTrainsOnGrammar trains a small GPT on the grammar text through the
// whole recording loop and checks that the held-out loss falls well below
// the unigram entropy of the text (the model must use its context: the
// spelling of words, word order and agreement).
func TestGPTTrainsOnGrammar(t *testing.T) {
	testutil.Long(t, "trains a GPT for seconds")
	spec := &Spec{Model: ModelSpec{Name: "gpt", Layers: 2, DModel: 32, Heads: 4, Context: 32},
		Dataset: DatasetSpec{Name: "grammar", Size: 512}, Optimizer: OptimizerSpec{Name: "adamw", LR: 3e-3},
		Steps: 300, BatchSize: 16, Seed: 1, LogEvery: 100, EvalEvery: 300}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	trainDS, testDS, err := Datasets(spec)
	if err != nil {
		t.Fatal(err)
	}
	h := unigramEntropy(trainDS)
	store, sink := newSink(t, spec)
	res, err := Run(context.Background(), spec, sink, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unigram entropy %.3f nats; held-out loss %.3f, next-char accuracy %.3f after %d steps (%d held-out windows), %.1f steps/s",
		h, res.TestLoss, res.TestAccuracy, res.Steps, testDS.Len(), res.StepsPerSec)
	if res.TestLoss > 0.45*h {
		t.Errorf("held-out loss %.3f nats; want below 0.45 × the unigram entropy %.3f", res.TestLoss, h)
	}
	if sum := summary(t, store, res.RunID); sum.Status != experiment.StatusSucceeded {
		t.Errorf("summary status %v; want succeeded", sum.Status)
	}
}

// BenchmarkGPTStep measures training steps per second of a small GPT (2
// layers, d_model 64, 4 heads, context 64, vocab 32) with AdamW at batch 16.
func BenchmarkGPTStep(b *testing.B) {
	rng := tensor.NewRNG(1)
	model, err := nn.NewGPT(nn.GPTConfig{Vocab: 32, Context: 64, Layers: 2, Dim: 64, Heads: 4}, rng, rng)
	if err != nil {
		b.Fatal(err)
	}
	opt, err := optim.NewAdamW(model.Parameters(), optim.DefaultAdamWConfig(1e-3))
	if err != nil {
		b.Fatal(err)
	}
	x, _ := tensor.Zeros(16, 64)
	y, _ := tensor.Zeros(16, 64)
	for i, xd, yd := 0, x.Data(), y.Data(); i < len(xd); i++ {
		xd[i], yd[i] = float32(i%32), float32((i+1)%32)
	}
	benchSteps(b, model, opt, x, y)
}
