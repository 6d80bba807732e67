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
	"slices"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

var update = flag.Bool("update", false, "rewrite the golden checkpoint files in testdata/")

// sampleRNG is the state of tensor.NewRNG(42) after one Uint64 (the
// golden file holds these bytes).
var sampleRNG = []byte{0x70, 0x63, 0x67, 0x3a, 0x5a, 0xc3, 0x73, 0x64, 0x25, 0xf1, 0x45, 0x6c, 0xe2, 0xe0, 0xa6, 0xf1, 0xfd, 0x13, 0x88, 0x4a}

// sampleCheckpoint is a small checkpoint exercising every field: a 2-D
// tensor with NaN, ±Inf and -0, a scalar, an empty tensor, Adam-style
// optimizer state and a full train state. It is also the golden file's
// content, so changing it means regenerating testdata with -update.
func sampleCheckpoint(t testing.TB) *Checkpoint {
	t.Helper()
	nan := math.Float32frombits(0x7fc00123) // a NaN with payload
	return &Checkpoint{
		Tensors: []Tensor{
			{Name: "0.weight", Shape: []int{2, 3}, Data: []float32{1, -2.5, nan, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Copysign(0, -1))}},
			{Name: "0.bias", Shape: []int{2}, Data: []float32{0.125, 3}},
			{Name: "scale", Shape: []int{}, Data: []float32{7.5}},
			{Name: "empty", Shape: []int{0, 4}, Data: []float32{}},
		},
		ModelConfig: json.RawMessage(`{"arch":"mlp","hidden":[2],"act":"relu"}`),
		Optimizer: &OptimizerState{Type: "adam", LR: 0.001,
			Hyper: map[string]float64{"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0},
			Params: map[string]OptimizerParam{
				"0.weight": {Step: 3, Buffers: map[string][]float32{"exp_avg": {1, 2, 3, 4, 5, 6}, "exp_avg_sq": {nan, 0, 1e-30, 1e30, -1, 2}}},
				"0.bias":   {Step: 3, Buffers: map[string][]float32{"exp_avg": {0.5, 0.25}, "exp_avg_sq": {1, 1}}},
			}},
		Train: TrainState{Step: 120, Epoch: 3, Cursor: Cursor{Epoch: 3, Pos: 64}, RNG: sampleRNG,
			Scheduler: &SchedulerState{Type: "linear_warmup", Step: 120, BaseLR: 0.01,
				Inner: &SchedulerState{Type: "cosine_annealing_lr", Step: 20, BaseLR: 0.01}},
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
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("%d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for i, w := range want.Tensors {
		g := got.Tensors[i]
		if g.Name != w.Name || !slices.Equal(g.Shape, w.Shape) || !slices.Equal(bits(g.Data), bits(w.Data)) {
			t.Errorf("tensor %d = %q %v %v, want %q %v %v", i, g.Name, g.Shape, g.Data, w.Name, w.Shape, w.Data)
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

func TestCheckpointEmpty(t *testing.T) {
	got, err := decode(encode(t, &Checkpoint{}))
	if err != nil || len(got.Tensors) != 0 || got.Optimizer != nil || got.ModelConfig != nil {
		t.Errorf("empty checkpoint = %+v, %v", got, err)
	}
}

func TestCheckpointEncodeErrors(t *testing.T) {
	short := sampleCheckpoint(t)
	short.Tensors[0].Data = short.Tensors[0].Data[:5]
	negDim := &Checkpoint{Tensors: []Tensor{{Name: "w", Shape: []int{-1}}}}
	deep := &Checkpoint{Tensors: []Tensor{{Name: "w", Shape: make([]int, MaxTensorRank+1), Data: []float32{}}}}
	nanLR := sampleCheckpoint(t)
	nanLR.Optimizer.LR = math.NaN()
	negStep := sampleCheckpoint(t)
	negStep.Train.Step = -1
	badCfg := sampleCheckpoint(t)
	badCfg.ModelConfig = json.RawMessage(`{"a":`)
	clash := sampleCheckpoint(t)
	clash.Tensors = append(clash.Tensors, Tensor{Name: "optim/0.bias/exp_avg", Shape: []int{}, Data: []float32{1}})
	dup := sampleCheckpoint(t)
	dup.Tensors = append(dup.Tensors, dup.Tensors[1])
	for name, ck := range map[string]*Checkpoint{"nil": nil, "data shorter than shape": short, "negative dimension": negDim,
		"rank 9": deep, "duplicate name": dup,
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

// TestCheckpointGolden loads the committed v1 files and compares them with
// the checkpoints they were written from. Future readers must keep
// loading them; run with -update only when the writer's v1 output changes.
func TestCheckpointGolden(t *testing.T) {
	minimal := &Checkpoint{Tensors: []Tensor{{Name: "w", Shape: []int{3}, Data: []float32{1, 2, 3}}}, Train: TrainState{Step: 1}}
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
