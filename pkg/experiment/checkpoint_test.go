package experiment

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/optim"
	"github.com/gorch/gorch/pkg/tensor"
)

var update = flag.Bool("update", false, "rewrite the golden checkpoint files in testdata/")

func mustTensor(t testing.TB, d []float32, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.New(d, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// sampleCheckpoint is a small checkpoint exercising every field: a 2-D
// tensor with NaN, ±Inf and -0, a scalar, an empty tensor, Adam-style
// optimizer state and a full train state. It is also the golden file's
// content, so changing it means regenerating testdata with -update.
func sampleCheckpoint(t testing.TB) *Checkpoint {
	t.Helper()
	nan := math.Float32frombits(0x7fc00123) // a NaN with payload
	td := nn.NewTensorDict()
	td.Set("0.weight", mustTensor(t, []float32{1, -2.5, nan, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Copysign(0, -1))}, 2, 3))
	td.Set("0.bias", mustTensor(t, []float32{0.125, 3}, 2))
	td.Set("scale", tensor.Scalar(7.5))
	td.Set("empty", mustTensor(t, nil, 0, 4))
	rng := tensor.NewRNG(42)
	rng.Uint64()
	return &Checkpoint{
		Tensors:     td,
		ModelConfig: json.RawMessage(`{"arch":"mlp","hidden":[2],"act":"relu"}`),
		Optimizer: &optim.State{Type: "adam", LR: 0.001,
			Hyper: map[string]float64{"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0},
			Params: map[string]optim.ParamState{
				"0.weight": {Step: 3, Buffers: map[string][]float32{"exp_avg": {1, 2, 3, 4, 5, 6}, "exp_avg_sq": {nan, 0, 1e-30, 1e30, -1, 2}}},
				"0.bias":   {Step: 3, Buffers: map[string][]float32{"exp_avg": {0.5, 0.25}, "exp_avg_sq": {1, 1}}},
			}},
		Train: TrainState{Step: 120, Epoch: 3, Cursor: data.Cursor{Epoch: 3, Pos: 64}, RNG: rng.State(),
			Scheduler: &optim.SchedulerState{Type: "linear_warmup", Step: 120, BaseLR: 0.01,
				Inner: &optim.SchedulerState{Type: "cosine_annealing_lr", Step: 20, BaseLR: 0.01}},
			Extra: map[string]json.RawMessage{"best_loss": json.RawMessage(`0.25`)}},
		Metadata: map[string]string{"git_commit": "abc123"},
	}
}

func encode(t testing.TB, ck *Checkpoint) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := EncodeCheckpoint(&buf, ck); err != nil {
		t.Fatalf("EncodeCheckpoint: %v", err)
	}
	return buf.Bytes()
}

func decode(b []byte) (*Checkpoint, error) {
	return DecodeCheckpoint(bytes.NewReader(b), int64(len(b)))
}

// bits returns the raw bits of d, so NaNs compare equal bit for bit.
func bits(d []float32) []uint32 {
	out := make([]uint32, len(d))
	for i, v := range d {
		out[i] = math.Float32bits(v)
	}
	return out
}

// assertSame fails unless got holds exactly want's content, bit for bit.
func assertSame(t *testing.T, got, want *Checkpoint) {
	t.Helper()
	if !reflect.DeepEqual(got.Tensors.Keys, want.Tensors.Keys) {
		t.Fatalf("keys = %q, want %q", got.Tensors.Keys, want.Tensors.Keys)
	}
	for _, k := range want.Tensors.Keys {
		g, w := got.Tensors.Tensors[k], want.Tensors.Tensors[k]
		if !tensor.EqualShape(g.Shape(), w.Shape()) || !reflect.DeepEqual(bits(g.Data()), bits(w.Data())) {
			t.Errorf("tensor %q = %v %v, want %v %v", k, g.Shape(), g.Data(), w.Shape(), w.Data())
		}
	}
	var cw bytes.Buffer
	if len(want.ModelConfig) > 0 {
		json.Compact(&cw, want.ModelConfig)
	}
	if !bytes.Equal(got.ModelConfig, cw.Bytes()) {
		t.Errorf("model config = %s, want %s", got.ModelConfig, cw.Bytes())
	}
	if !reflect.DeepEqual(got.Train, want.Train) || !reflect.DeepEqual(got.Metadata, want.Metadata) {
		t.Errorf("train = %+v %v, want %+v %v", got.Train, got.Metadata, want.Train, want.Metadata)
	}
	if (got.Optimizer == nil) != (want.Optimizer == nil) {
		t.Fatalf("optimizer = %v, want %v", got.Optimizer, want.Optimizer)
	}
	if want.Optimizer == nil {
		return
	}
	g, w := *got.Optimizer, *want.Optimizer
	if g.Type != w.Type || g.LR != w.LR || !reflect.DeepEqual(g.Hyper, w.Hyper) || len(g.Params) != len(w.Params) {
		t.Fatalf("optimizer = %+v, want %+v", g, w)
	}
	for n, wp := range w.Params {
		gp, ok := g.Params[n]
		if !ok || gp.Step != wp.Step || len(gp.Buffers) != len(wp.Buffers) {
			t.Fatalf("optimizer param %q = %+v, want %+v", n, gp, wp)
		}
		for b, wv := range wp.Buffers {
			if !reflect.DeepEqual(bits(gp.Buffers[b]), bits(wv)) {
				t.Errorf("optimizer buffer %q/%q = %v, want %v", n, b, gp.Buffers[b], wv)
			}
		}
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	ck := sampleCheckpoint(t)
	b := encode(t, ck)
	if len(b)%dataAlign != footerSize%dataAlign {
		t.Errorf("file of %d bytes: data section not aligned", len(b))
	}
	got, err := decode(b)
	if err != nil {
		t.Fatalf("DecodeCheckpoint: %v", err)
	}
	assertSame(t, got, ck)
	if again := encode(t, got); !bytes.Equal(again, b) {
		t.Errorf("re-encoding a decoded checkpoint changed its bytes")
	}
	info, err := VerifyCheckpoint(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("VerifyCheckpoint: %v", err)
	}
	if info.Major != 1 || info.Minor != 0 || info.Size != int64(len(b)) || info.Train.Step != 120 ||
		len(info.Tensors) != 4+4 || info.Parameters != 6+2+1 || info.Optimizer != "adam" {
		t.Errorf("VerifyCheckpoint = %+v", info)
	}
	if ti := info.Tensors[0]; ti.Name != "0.weight" || !reflect.DeepEqual(ti.Shape, []int{2, 3}) || ti.NBytes != 24 || ti.Group != "param" {
		t.Errorf("tensor 0 = %+v", ti)
	}
}

func TestCheckpointNonContiguousAndEmpty(t *testing.T) {
	x := mustTensor(t, []float32{1, 2, 3, 4, 5, 6}, 2, 3)
	xt, err := tensor.FromStorage(x.Storage(), []int{3, 2}, []int{1, 3}, 0) // the transpose
	if err != nil {
		t.Fatal(err)
	}
	td := nn.NewTensorDict()
	td.Set("t", xt)
	got, err := decode(encode(t, &Checkpoint{Tensors: td}))
	if err != nil {
		t.Fatal(err)
	}
	if g := got.Tensors.Tensors["t"]; !reflect.DeepEqual(g.Data(), []float32{1, 4, 2, 5, 3, 6}) {
		t.Errorf("transpose round trip = %v", g.Data())
	}
	if got.Optimizer != nil || got.ModelConfig != nil {
		t.Errorf("empty fields = %v, %s", got.Optimizer, got.ModelConfig)
	}
	got, err = decode(encode(t, &Checkpoint{Tensors: nn.NewTensorDict()}))
	if err != nil || got.Tensors.Len() != 0 {
		t.Errorf("empty checkpoint = %v, %v", got, err)
	}
}

func TestCheckpointEncodeErrors(t *testing.T) {
	bad := nn.NewTensorDict()
	bad.Keys = append(bad.Keys, "ghost")
	nanLR := sampleCheckpoint(t)
	nanLR.Optimizer.LR = math.NaN()
	negStep := sampleCheckpoint(t)
	negStep.Train.Step = -1
	badCfg := sampleCheckpoint(t)
	badCfg.ModelConfig = json.RawMessage(`{"a":`)
	clash := sampleCheckpoint(t)
	clash.Tensors.Set("optim/0.bias/exp_avg", tensor.Scalar(1))
	for name, ck := range map[string]*Checkpoint{"nil": nil, "nil tensors": {}, "keys disagree": {Tensors: bad},
		"NaN LR": nanLR, "negative step": negStep, "bad config": badCfg, "name clash": clash} {
		var buf bytes.Buffer
		if err := EncodeCheckpoint(&buf, ck); !errors.Is(err, errs.Argument) || buf.Len() != 0 {
			t.Errorf("EncodeCheckpoint(%s) = %v with %d bytes written, want errs.Argument and nothing written", name, err, buf.Len())
		}
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return w.n, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestCheckpointEncodeIOError(t *testing.T) {
	if err := EncodeCheckpoint(&failWriter{n: 100}, sampleCheckpoint(t)); !errors.Is(err, errs.IO) {
		t.Errorf("EncodeCheckpoint(failing writer) = %v, want errs.IO", err)
	}
}

func TestCheckpointFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "step-120.rtch")
	ck := sampleCheckpoint(t)
	if err := SaveCheckpointFile(path, ck); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCheckpointFile(path)
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, got, ck)

	// A failed save leaves the old file alone and no temporary behind.
	bad := sampleCheckpoint(t)
	bad.Optimizer.LR = math.Inf(1)
	if err := SaveCheckpointFile(path, bad); !errors.Is(err, errs.Argument) {
		t.Errorf("SaveCheckpointFile(Inf LR) = %v, want errs.Argument", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries after a failed save, want 1", len(ents))
	}
	if _, err := LoadCheckpointFile(path); err != nil {
		t.Errorf("old checkpoint no longer loads: %v", err)
	}
	if err := SaveCheckpointFile(filepath.Join(dir, "missing", "x.rtch"), ck); !errors.Is(err, errs.IO) {
		t.Errorf("SaveCheckpointFile(missing dir) = %v, want errs.IO", err)
	}
	if _, err := LoadCheckpointFile(filepath.Join(dir, "nope.rtch")); !errors.Is(err, errs.IO) {
		t.Errorf("LoadCheckpointFile(missing) = %v, want errs.IO", err)
	}
	// A truncated file is a checkpoint error with its reason reachable.
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)-1], 0o644)
	_, err = LoadCheckpointFile(path)
	var ce *CorruptionError
	if !errors.Is(err, errs.Checkpoint) || !errors.As(err, &ce) || ce.Reason != ReasonTruncated {
		t.Errorf("LoadCheckpointFile(truncated) = %v, want a truncated CorruptionError", err)
	}
}

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

func TestCheckpointModel(t *testing.T) {
	src := newLinearModel(t, 4, 3, 1)
	opt, err := optim.NewAdam(src.Parameters(), optim.AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	if err != nil {
		t.Fatal(err)
	}
	ck, err := CheckpointFromModel(src, opt, TrainState{Step: 5})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode(encode(t, ck))
	if err != nil {
		t.Fatal(err)
	}
	dst := newLinearModel(t, 4, 3, 2)
	if err := got.ApplyTo(dst); err != nil {
		t.Fatalf("ApplyTo: %v", err)
	}
	for i, p := range dst.Parameters() {
		if w := src.Parameters()[i].Param.Data.Data(); !reflect.DeepEqual(bits(p.Param.Data.Data()), bits(w)) {
			t.Errorf("parameter %q = %v, want %v", p.Name, p.Param.Data.Data(), w)
		}
	}
	opt2, _ := optim.NewAdam(dst.Parameters(), optim.AdamConfig{LR: 0.5, Beta1: 0.5, Beta2: 0.5, Eps: 1})
	if err := opt2.LoadStateDict(*got.Optimizer); err != nil || opt2.LR() != 0.01 {
		t.Errorf("optimizer restore = %v, LR %v", err, opt2.LR())
	}

	var mm *MismatchError
	wrongShape := newLinearModel(t, 5, 3, 2)
	before := bits(wrongShape.Parameters()[1].Param.Data.Data())
	if err := got.ApplyTo(wrongShape); !errors.Is(err, errs.Shape) || !errors.As(err, &mm) || mm.Name != "0.weight" {
		t.Errorf("ApplyTo(wrong shape) = %v, want errs.Shape naming 0.weight", err)
	}
	if !reflect.DeepEqual(bits(wrongShape.Parameters()[1].Param.Data.Data()), before) {
		t.Errorf("a failed ApplyTo changed the model")
	}
	l, _ := nn.NewLinear(4, 3, false, tensor.NewRNG(3))
	noBias, _ := nn.NewSequential(l)
	if err := got.ApplyTo(noBias); !errors.Is(err, errs.Shape) || !errors.As(err, &mm) ||
		!reflect.DeepEqual(mm.Unexpected, []string{"0.bias"}) || len(mm.Missing) != 0 {
		t.Errorf("ApplyTo(no bias) = %v, want errs.Shape with unexpected [0.bias]", err)
	}
	deeper, _ := nn.NewSequential(l, l)
	if err := got.ApplyTo(deeper); !errors.As(err, &mm) || len(mm.Missing) != 1 || mm.Missing[0] != "1.weight" {
		t.Errorf("ApplyTo(two layers) = %v, want missing [1.weight]", err)
	}
}

// TestCheckpointGolden loads the committed v1 files and compares them with
// the checkpoints they were written from. Future readers must keep
// loading them; run with -update only when the writer's v1 output changes.
func TestCheckpointGolden(t *testing.T) {
	minimal := &Checkpoint{Tensors: nn.NewTensorDict(), Train: TrainState{Step: 1}}
	minimal.Tensors.Set("w", mustTensor(t, []float32{1, 2, 3}, 3))
	for _, g := range []struct {
		file string
		ck   *Checkpoint
	}{{"checkpoint_v1_small.rtch", sampleCheckpoint(t)}, {"checkpoint_v1_minimal.rtch", minimal}} {
		path := filepath.Join("testdata", g.file)
		want := encode(t, g.ck)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		got, err := decode(b)
		if err != nil {
			t.Fatalf("%s: %v", g.file, err)
		}
		assertSame(t, got, g.ck)
		if !bytes.Equal(b, want) {
			t.Errorf("%s: the v1 writer's output changed; if intended, run go test -update", g.file)
		}
	}
}
