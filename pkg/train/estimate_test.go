package train

import (
	"errors"
	"strings"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

func TestEstimateMemory(t *testing.T) {
	cases := []struct {
		spec           string
		params         int64 // bytes
		optimizerMult  int64 // optimizer state / parameters
		minGiB, maxGiB float64
	}{
		// 784*256+256 + 256*10+10 weights.
		// The lower bounds of the Fashion-MNIST runs are the peak RSS of
		// their attempt processes (540 and 650 MiB, measured with
		// gorch up): an estimate under it would let a run in that then dies.
		{`{model: {name: mlp}, dataset: {name: fashion-mnist}, optimizer: {name: adam, lr: 0.001}, steps: 10, batch_size: 64}`,
			4 * (784*256 + 256 + 256*10 + 10), 2, 0.53, 0.8},
		{`{model: {name: mlp, hidden: [16]}, dataset: {name: blobs, size: 256}, optimizer: {name: sgd, lr: 0.1}, steps: 10, batch_size: 32}`,
			4 * (8*16 + 16 + 16*4 + 4), 0, 0.1, 0.2},
		{`{model: {name: mlp, hidden: [16]}, dataset: {name: blobs, size: 256}, optimizer: {name: sgd, lr: 0.1, momentum: 0.9}, steps: 10, batch_size: 32}`,
			4 * (8*16 + 16 + 16*4 + 4), 1, 0.1, 0.2},
		// The out-of-memory spec: 784*2e7 + 2e7 + 2e7*10 + 10 weights, with Adam.
		{`{model: {name: mlp, hidden: [20000000]}, dataset: {name: fashion-mnist}, optimizer: {name: adam, lr: 0.001}, steps: 10, batch_size: 64}`,
			4 * (784*20000000 + 20000000 + 20000000*10 + 10), 2, 350, 420},
		{`{model: {name: cnn}, dataset: {name: fashion-mnist}, optimizer: {name: adam, lr: 0.001}, steps: 10, batch_size: 64}`,
			4 * leNetParams(), 2, 0.64, 0.9},
	}
	for _, c := range cases {
		spec, err := ParseSpec("test", []byte(c.spec))
		if err != nil {
			t.Fatal(err)
		}
		e, err := EstimateMemory(spec)
		if err != nil {
			t.Fatal(err)
		}
		gib := float64(e.Total()) / (1 << 30)
		if e.Parameters != c.params || e.Gradients != c.params || e.OptimizerState != c.optimizerMult*c.params || gib < c.minGiB || gib > c.maxGiB {
			t.Errorf("EstimateMemory(%s) = %+v (%.2f GiB); want parameters %d, optimizer state %d×, total %g..%g GiB",
				c.spec, e, gib, c.params, c.optimizerMult, c.minGiB, c.maxGiB)
		}
	}
}

func TestAdmit(t *testing.T) {
	spec, err := ParseSpec("oom", []byte(`{model: {name: mlp, hidden: [20000000]}, dataset: {name: fashion-mnist}, optimizer: {name: adam, lr: 0.001}, steps: 10, batch_size: 64}`))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := EstimateMemory(spec)
	err = Admit(e, 4<<30, "worker w1")
	if !errors.Is(err, errs.Memory) || !strings.Contains(err.Error(), "more than worker w1's memory limit of 4.0 GiB") ||
		!strings.Contains(err.Error(), "the run needs about 389.9 GiB (parameters 59.2 GiB") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Admit(oom spec, 4 GiB) = %v; want one line naming the estimate and the limit", err)
	}
	if err := Admit(e, 0, "worker w1"); err != nil {
		t.Errorf("Admit(no limit) = %v; want nil", err)
	}
}
