package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/gorch/gorch/pkg/data"
	"github.com/gorch/gorch/pkg/errs"
)

// Spec is a run specification, read from YAML or JSON. Field names are the
// JSON/YAML keys; unknown keys and wrong types are errors naming the key.
type Spec struct {
	Name       string            `json:"name,omitempty"`
	Model      ModelSpec         `json:"model"`
	Dataset    DatasetSpec       `json:"dataset"`
	Optimizer  OptimizerSpec     `json:"optimizer"`
	Schedule   ScheduleSpec      `json:"schedule,omitzero"`
	Epochs     int               `json:"epochs,omitempty"` // passes over the training split; or
	Steps      int               `json:"steps,omitempty"`  // optimizer steps in total
	BatchSize  int               `json:"batch_size"`
	Seed       uint64            `json:"seed"`
	EvalEvery  int               `json:"eval_every,omitempty"`       // steps between evaluations; 0: at each epoch end
	CkptEvery  int               `json:"checkpoint_every,omitempty"` // steps between checkpoints; 0: only at the end
	KeepLast   int               `json:"keep_last,omitempty"`        // checkpoints to keep; 0 means 3
	Tags       map[string]string `json:"tags,omitempty"`
	LogEvery   int               `json:"log_every,omitempty"` // steps between progress reports; 0 means 100
	Backward   int               `json:"backward_workers,omitempty"`
	EvalBatch  int               `json:"eval_batch,omitempty"` // 0 means 1000
	TrainLimit int               `json:"train_limit,omitempty"`
}

// ModelSpec selects and sizes the model.
type ModelSpec struct {
	Name    string  `json:"name"`              // "mlp", "cnn" or "gpt"
	Hidden  []int   `json:"hidden,omitempty"`  // mlp hidden sizes; default [256]
	Dropout float32 `json:"dropout,omitempty"` // mlp: after each hidden layer; gpt: embeddings and residuals
	// gpt: a decoder-only transformer language model (nn.GPT).
	Layers  int `json:"layers,omitempty"`  // transformer blocks; default 2
	DModel  int `json:"d_model,omitempty"` // width; default 64
	Heads   int `json:"heads,omitempty"`   // attention heads; default 4, must divide d_model
	Context int `json:"context,omitempty"` // tokens per sample; default 64
	Vocab   int `json:"vocab,omitempty"`   // tokens; default (0) the dataset's vocabulary
}

// gptDefaults fills in and checks the gpt fields.
func (m *ModelSpec) gptDefaults() error {
	for _, f := range []struct {
		v   *int
		def int
	}{{&m.Layers, 2}, {&m.DModel, 64}, {&m.Heads, 4}, {&m.Context, 64}} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	for field, v := range map[string]int{"model.layers": m.Layers, "model.d_model": m.DModel, "model.heads": m.Heads,
		"model.context": m.Context} {
		if v < 0 {
			return specErr(field, "must be positive, got %d", v)
		}
	}
	if v := data.GrammarVocab().Size(); m.Vocab != 0 && m.Vocab < v {
		return specErr("model.vocab", "%d is smaller than the dataset's %d tokens", m.Vocab, v)
	}
	if m.DModel%m.Heads != 0 {
		return specErr("model.heads", "%d heads do not divide d_model %d", m.Heads, m.DModel)
	}
	if !(m.Dropout >= 0 && m.Dropout < 1) {
		return specErr("model.dropout", "must be in [0, 1), got %v", m.Dropout)
	}
	return nil
}

// DatasetSpec selects the data.
type DatasetSpec struct {
	Name string `json:"name"`           // fashion-mnist, blobs, moons, spirals, grammar (text)
	Dir  string `json:"dir,omitempty"`  // fashion-mnist: directory of the IDX files
	Size int    `json:"size,omitempty"` // synthetic and grammar: training samples (default 2048)
}

// OptimizerSpec selects the optimizer.
type OptimizerSpec struct {
	Name        string  `json:"name"` // sgd, adam, adamw
	LR          float64 `json:"lr"`
	Momentum    float64 `json:"momentum,omitempty"`
	Nesterov    bool    `json:"nesterov,omitempty"`
	WeightDecay float64 `json:"weight_decay,omitempty"`
	ClipNorm    float64 `json:"clip_norm,omitempty"` // gradient-norm clipping; 0: off
}

// ScheduleSpec selects the learning-rate schedule.
type ScheduleSpec struct {
	Name     string  `json:"name,omitempty"` // constant (default), step, cosine
	StepSize int     `json:"step_size,omitempty"`
	Gamma    float64 `json:"gamma,omitempty"`
	Warmup   int     `json:"warmup,omitempty"` // linear warm-up steps
	MinLR    float64 `json:"min_lr,omitempty"`
}

// ParseSpec reads a spec from YAML or JSON (JSON is YAML) and validates it.
// source names the input in error messages.
func ParseSpec(source string, b []byte) (*Spec, error) {
	const op = "spec"
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, errs.New(errs.Config, op, "%s: %v", source, cleanYAMLError(err))
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return nil, errs.New(errs.Config, op, "%s: empty spec", source)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, errs.New(errs.Config, op, "%s: %s", source, describeJSONError(err))
	}
	if err := s.Validate(); err != nil {
		msg := err.Error()
		var te *errs.TorchError
		if errors.As(err, &te) && te.Err == nil {
			msg = te.Msg // Validate's errors already say "spec"
		}
		return nil, errs.New(errs.Config, op, "%s: %s", source, msg)
	}
	return &s, nil
}

// LoadSpec reads and validates the spec file at path.
func LoadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errs.Wrap(errs.Config, "spec", err, "")
	}
	return ParseSpec(filepath.Base(path), b)
}

var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

// describeJSONError turns encoding/json's messages into ones naming the key.
func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q: cannot use %s as %s", te.Field, te.Value, te.Type)
	}
	if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Sprintf("unknown field %q", m[1])
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func cleanYAMLError(err error) string {
	return strings.TrimPrefix(strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "), "yaml: ")
}

func specErr(field, format string, args ...any) error {
	return errs.New(errs.Config, "spec", "field %q: %s", field, fmt.Sprintf(format, args...))
}

// Validate checks the spec and fills in defaults.
func (s *Spec) Validate() error {
	switch s.Model.Name {
	case "mlp":
		if len(s.Model.Hidden) == 0 {
			s.Model.Hidden = []int{256}
		}
		for _, h := range s.Model.Hidden {
			if h <= 0 {
				return specErr("model.hidden", "sizes must be positive, got %v", s.Model.Hidden)
			}
		}
		if !(s.Model.Dropout >= 0 && s.Model.Dropout < 1) {
			return specErr("model.dropout", "must be in [0, 1), got %v", s.Model.Dropout)
		}
	case "cnn":
		if s.Dataset.Name != "" && s.Dataset.Name != "fashion-mnist" {
			return specErr("model.name", "cnn needs 28x28 images (dataset fashion-mnist), not %q", s.Dataset.Name)
		}
	case "gpt":
		if s.Dataset.Name != "" && s.Dataset.Name != "grammar" {
			return specErr("model.name", "gpt is a language model and needs a text dataset (grammar), not %q", s.Dataset.Name)
		}
		if err := s.Model.gptDefaults(); err != nil {
			return err
		}
	case "":
		return specErr("model.name", "missing (want mlp, cnn or gpt)")
	default:
		return specErr("model.name", "unknown model %q (want mlp, cnn or gpt)", s.Model.Name)
	}
	switch s.Dataset.Name {
	case "fashion-mnist", "blobs", "moons", "spirals":
	case "grammar":
		if s.Model.Name != "gpt" {
			return specErr("dataset.name", "grammar is text for a language model (model gpt), not %q", s.Model.Name)
		}
	case "":
		return specErr("dataset.name", "missing (want fashion-mnist, blobs, moons, spirals or grammar)")
	default:
		return specErr("dataset.name", "unknown dataset %q (want fashion-mnist, blobs, moons, spirals or grammar)", s.Dataset.Name)
	}
	if s.Dataset.Size < 0 {
		return specErr("dataset.size", "must not be negative, got %d", s.Dataset.Size)
	}
	switch s.Optimizer.Name {
	case "sgd", "adam", "adamw":
	case "":
		return specErr("optimizer.name", "missing (want sgd, adam or adamw)")
	default:
		return specErr("optimizer.name", "unknown optimizer %q (want sgd, adam or adamw)", s.Optimizer.Name)
	}
	if !(s.Optimizer.LR > 0) {
		return specErr("optimizer.lr", "must be positive, got %v", s.Optimizer.LR)
	}
	if s.Optimizer.ClipNorm < 0 {
		return specErr("optimizer.clip_norm", "must not be negative")
	}
	switch s.Schedule.Name {
	case "", "constant", "cosine":
	case "step":
		if s.Schedule.StepSize <= 0 {
			return specErr("schedule.step_size", "must be positive for a step schedule, got %d", s.Schedule.StepSize)
		}
	default:
		return specErr("schedule.name", "unknown schedule %q (want constant, step or cosine)", s.Schedule.Name)
	}
	if s.Schedule.Warmup < 0 {
		return specErr("schedule.warmup", "must not be negative")
	}
	switch {
	case s.Epochs < 0:
		return specErr("epochs", "must not be negative, got %d", s.Epochs)
	case s.Steps < 0:
		return specErr("steps", "must not be negative, got %d", s.Steps)
	case s.Epochs == 0 && s.Steps == 0:
		return specErr("epochs", "set epochs or steps")
	case s.Epochs > 0 && s.Steps > 0:
		return specErr("steps", "set epochs or steps, not both")
	}
	if s.BatchSize <= 0 {
		return specErr("batch_size", "must be positive, got %d", s.BatchSize)
	}
	for field, v := range map[string]int{"eval_every": s.EvalEvery, "checkpoint_every": s.CkptEvery, "keep_last": s.KeepLast,
		"log_every": s.LogEvery, "backward_workers": s.Backward, "eval_batch": s.EvalBatch, "train_limit": s.TrainLimit} {
		if v < 0 {
			return specErr(field, "must not be negative, got %d", v)
		}
	}
	if s.KeepLast == 0 {
		s.KeepLast = 3
	}
	if s.LogEvery == 0 {
		s.LogEvery = 100
	}
	if s.EvalBatch == 0 {
		s.EvalBatch = 1000
	}
	return nil
}

// JSON returns the spec as indented JSON (what run.json records).
func (s *Spec) JSON() json.RawMessage {
	b, _ := json.Marshal(s) // a Spec always marshals
	return b
}

// Hyperparameters returns the numeric settings, for run comparison.
func (s *Spec) Hyperparameters() map[string]float64 {
	h := map[string]float64{
		"lr": s.Optimizer.LR, "batch_size": float64(s.BatchSize), "seed": float64(s.Seed),
	}
	if s.Epochs > 0 {
		h["epochs"] = float64(s.Epochs)
	}
	if s.Steps > 0 {
		h["steps"] = float64(s.Steps)
	}
	if s.Optimizer.Momentum != 0 {
		h["momentum"] = s.Optimizer.Momentum
	}
	if s.Optimizer.WeightDecay != 0 {
		h["weight_decay"] = s.Optimizer.WeightDecay
	}
	return h
}
