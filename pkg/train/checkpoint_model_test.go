package train

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/optim"
	"github.com/gorch/gorch/pkg/tensor"
)

func newLinearModel(t *testing.T, in, out int, seed uint64) *nn.Sequential {
	t.Helper()
	l, err := nn.NewLinear(in, out, true, tensor.NewRNG(seed))
	if err != nil {
		t.Fatal(err)
	}
	m, err := nn.NewSequential(l)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func bitsOf(d []float32) []uint32 {
	out := make([]uint32, len(d))
	for i, v := range d {
		out[i] = math.Float32bits(v)
	}
	return out
}

// roundTrip encodes ck as RTCH and decodes it again.
func roundTrip(t *testing.T, ck *experiment.Checkpoint) *experiment.Checkpoint {
	t.Helper()
	var buf bytes.Buffer
	if err := experiment.EncodeCheckpoint(&buf, ck); err != nil {
		t.Fatal(err)
	}
	got, err := experiment.DecodeCheckpoint(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestCheckpointModel: a model and its Adam state survive
// CheckpointFromModel → RTCH → ApplyCheckpoint bit for bit, and a model
// of another shape is refused without being changed.
func TestCheckpointModel(t *testing.T) {
	src := newLinearModel(t, 4, 3, 1)
	opt, err := optim.NewAdam(src.Parameters(), optim.AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	if err != nil {
		t.Fatal(err)
	}
	ck, err := CheckpointFromModel(src, opt, experiment.TrainState{Step: 5})
	if err != nil {
		t.Fatal(err)
	}
	got := roundTrip(t, ck)
	dst := newLinearModel(t, 4, 3, 2)
	opt2, _ := optim.NewAdam(dst.Parameters(), optim.AdamConfig{LR: 0.5, Beta1: 0.5, Beta2: 0.5, Eps: 1})
	if err := ApplyCheckpoint(got, dst, opt2); err != nil {
		t.Fatalf("ApplyCheckpoint: %v", err)
	}
	for i, p := range dst.Parameters() {
		if w := src.Parameters()[i].Param.Data.Data(); !reflect.DeepEqual(bitsOf(p.Param.Data.Data()), bitsOf(w)) {
			t.Errorf("parameter %q = %v, want %v", p.Name, p.Param.Data.Data(), w)
		}
	}
	if opt2.LR() != 0.01 {
		t.Errorf("restored optimizer LR = %v, want 0.01", opt2.LR())
	}

	var mm *MismatchError
	wrongShape := newLinearModel(t, 5, 3, 2)
	before := bitsOf(wrongShape.Parameters()[1].Param.Data.Data())
	if err := ApplyCheckpoint(got, wrongShape, nil); !errors.Is(err, errs.Shape) || !errors.As(err, &mm) || mm.Name != "0.weight" {
		t.Errorf("ApplyCheckpoint(wrong shape) = %v, want errs.Shape naming 0.weight", err)
	}
	if !reflect.DeepEqual(bitsOf(wrongShape.Parameters()[1].Param.Data.Data()), before) {
		t.Errorf("a failed ApplyCheckpoint changed the model")
	}
	l, _ := nn.NewLinear(4, 3, false, tensor.NewRNG(3))
	noBias, _ := nn.NewSequential(l)
	if err := ApplyCheckpoint(got, noBias, nil); !errors.Is(err, errs.Shape) || !errors.As(err, &mm) ||
		!reflect.DeepEqual(mm.Unexpected, []string{"0.bias"}) || len(mm.Missing) != 0 {
		t.Errorf("ApplyCheckpoint(no bias) = %v, want errs.Shape with unexpected [0.bias]", err)
	}
	deeper, _ := nn.NewSequential(l, l)
	if err := ApplyCheckpoint(got, deeper, nil); !errors.As(err, &mm) || len(mm.Missing) != 1 || mm.Missing[0] != "1.weight" {
		t.Errorf("ApplyCheckpoint(two layers) = %v, want missing [1.weight]", err)
	}
	got.Optimizer = nil
	if err := ApplyCheckpoint(got, dst, opt2); !errors.Is(err, errs.Checkpoint) {
		t.Errorf("ApplyCheckpoint(no optimizer state) = %v, want errs.Checkpoint", err)
	}
}

// TestCheckpointStateCopies: the scheduler chain and the data cursor
// survive the conversion to RTCH's copies and back, and RTCH's tensor
// rank limit is the engine's.
func TestCheckpointStateCopies(t *testing.T) {
	s := &optim.SchedulerState{Type: "linear_warmup", Step: 7, BaseLR: 0.1,
		Inner: &optim.SchedulerState{Type: "cosine_annealing_lr", Step: 2, BaseLR: 0.1}}
	if got := schedulerFromCheckpoint(schedulerToCheckpoint(s)); !reflect.DeepEqual(got, s) {
		t.Errorf("scheduler round trip = %+v, want %+v", got, s)
	}
	if schedulerToCheckpoint(nil) != nil || schedulerFromCheckpoint(nil) != nil {
		t.Errorf("a nil scheduler state did not stay nil")
	}
	c := cursorFromCheckpoint(cursorToCheckpoint(data.Cursor{Epoch: 3, Pos: 64}))
	if c.Epoch != 3 || c.Pos != 64 {
		t.Errorf("cursor round trip = %+v, want {3 64}", c)
	}
	if experiment.MaxTensorRank != tensor.MaxRank {
		t.Errorf("experiment.MaxTensorRank = %d, tensor.MaxRank = %d", experiment.MaxTensorRank, tensor.MaxRank)
	}
}
