package experiment

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/gorch/gorch/pkg/errs"
)

// Status is the lifecycle state of a run, stored as a lower-case string.
type Status string

// The states of a run. A run is created queued or running and ends in one
// of the terminal states (see [Status.Terminal]).
const (
	StatusQueued      Status = "queued"
	StatusRunning     Status = "running"
	StatusSucceeded   Status = "succeeded"
	StatusFailed      Status = "failed"
	StatusCancelled   Status = "cancelled"
	StatusInterrupted Status = "interrupted"
)

// Valid reports whether s is one of the defined states.
func (s Status) Valid() bool {
	switch s {
	case StatusQueued, StatusRunning, StatusSucceeded, StatusFailed, StatusCancelled, StatusInterrupted:
		return true
	}
	return false
}

// Terminal reports whether s is a state a run ends in.
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusCancelled, StatusInterrupted:
		return true
	}
	return false
}

// UnmarshalText rejects unknown states with an errs.Experiment error.
func (s *Status) UnmarshalText(b []byte) error {
	v := Status(b)
	if !v.Valid() {
		return errs.New(errs.Experiment, "experiment.Status", "unknown run status %q", string(b))
	}
	*s = v
	return nil
}

// Run is the content of runs/<id>/run.json: what was run, where, and how it
// ended.
type Run struct {
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Status   Status    `json:"status"`
	Created  time.Time `json:"created"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Config is the full run spec, verbatim JSON.
	Config          json.RawMessage    `json:"config,omitempty"`
	Hyperparameters map[string]float64 `json:"hyperparameters,omitempty"`
	Tags            map[string]string  `json:"tags,omitempty"`
	Seed            uint64             `json:"seed"`
	Host            string             `json:"host,omitempty"`
	GorchVersion    string             `json:"gorch_version,omitempty"`
	// Attempt counts starts of the run: 1 for the first, +1 per resume.
	Attempt int `json:"attempt"`
	// Error is the failure message of a failed or interrupted run.
	Error string `json:"error,omitempty"`
	// Attempts has an entry for each attempt that began training, oldest
	// first. Started and Finished above are the current attempt's.
	Attempts []Attempt `json:"attempts,omitempty"`
}

// Attempt is one attempt of a run. ResumeStep is what makes records
// exact across attempts: an attempt that resumed from the checkpoint
// taken after step S supersedes every value earlier attempts logged after
// S (they trained the same steps again, or abandoned them), and readers
// return one value per (step, name): see [Reader.ReadMetrics].
type Attempt struct {
	Attempt int `json:"attempt"`
	// ResumeStep is the step of the checkpoint the attempt resumed from;
	// 0 for an attempt that started from scratch.
	ResumeStep int64     `json:"resume_step"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	Status     Status    `json:"status,omitempty"` // its outcome, once it finished
	// Published is the number of metric values the attempt's producer
	// reported publishing (cluster runs); values it published that the
	// store lacks count as dropped.
	Published int64 `json:"published,omitempty"`
}

// Duration is Finished-Started for a finished attempt, zero otherwise.
func (a *Attempt) Duration() time.Duration {
	if a.Started.IsZero() || a.Finished.IsZero() {
		return 0
	}
	return a.Finished.Sub(a.Started)
}

// attemptEntry returns the entry of attempt a, adding it (in attempt
// order) if r has none.
func (r *Run) attemptEntry(a int) *Attempt {
	i := 0
	for i < len(r.Attempts) && r.Attempts[i].Attempt < a {
		i++
	}
	if i == len(r.Attempts) || r.Attempts[i].Attempt != a {
		r.Attempts = slices.Insert(slices.Clone(r.Attempts), i, Attempt{Attempt: a})
	} else {
		r.Attempts = slices.Clone(r.Attempts) // copies of a Run share nothing
	}
	return &r.Attempts[i]
}

// Duration is Finished-Started for a finished run, zero otherwise.
func (r *Run) Duration() time.Duration {
	if r.Started.IsZero() || r.Finished.IsZero() {
		return 0
	}
	return r.Finished.Sub(r.Started)
}

// Metric is one line of a run's metrics log. Non-finite values are written
// as the JSON strings "NaN", "+Inf" and "-Inf" (JSON has no such numbers)
// and read back as the float64 values.
type Metric struct {
	Run     string    `json:"run"`
	Attempt int       `json:"attempt"`
	Step    int64     `json:"step"`
	Name    string    `json:"name"`
	Value   float64   `json:"value"`
	Time    time.Time `json:"time"` // wall time the value was logged
}

// MarshalJSON writes the metrics logger's line for m, with the run first
// when it is set (segment lines leave it out: their key names it).
func (m Metric) MarshalJSON() ([]byte, error) {
	var e metricEncoder
	line := e.append(nil, &m)
	if m.Run == "" {
		return line, nil
	}
	b := appendJSONString([]byte(`{"run":`), m.Run)
	b = append(b, ',')
	return append(b, line[1:]...), nil
}

// UnmarshalJSON reads a metric line, accepting the non-finite strings.
func (m *Metric) UnmarshalJSON(b []byte) error {
	var w struct {
		Run     string    `json:"run"`
		Attempt int       `json:"attempt"`
		Step    int64     `json:"step"`
		Name    string    `json:"name"`
		Value   jsonFloat `json:"value"`
		Time    time.Time `json:"time"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return errs.Wrap(errs.Experiment, "experiment.Metric", err, "bad metric record")
	}
	*m = Metric{Run: w.Run, Attempt: w.Attempt, Step: w.Step, Name: w.Name, Value: float64(w.Value), Time: w.Time}
	return nil
}

// jsonFloat is a float64 that also reads "NaN", "+Inf", "-Inf" and "Inf".
type jsonFloat float64

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return err
		}
		switch s {
		case "NaN":
			*f = jsonFloat(math.NaN())
		case "+Inf", "Inf":
			*f = jsonFloat(math.Inf(1))
		case "-Inf":
			*f = jsonFloat(math.Inf(-1))
		default:
			return errs.New(errs.Experiment, "experiment.Metric", "bad value %q", s)
		}
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*f = jsonFloat(v)
	return nil
}

// TelemetryEvent is one line of a run's telemetry log: a timed span such as
// one forward pass.
type TelemetryEvent struct {
	Name     string            `json:"name"`
	Start    time.Time         `json:"start"`
	Duration time.Duration     `json:"duration_ns"`
	Tags     map[string]string `json:"tags,omitempty"`
}

// MetricSummary rolls up one metric, one value per step: values a later
// attempt superseded (see [Attempt]) are left out and counted in
// Superseded. Non-finite values (NaN, ±Inf) are counted in NonFinite and
// left out of every other statistic. P50 and P95 are exact nearest-rank
// percentiles (see [Rollup]).
type MetricSummary struct {
	Count      int64   `json:"count"`
	Superseded int64   `json:"superseded,omitempty"`
	NonFinite  int64   `json:"nonfinite,omitempty"`
	Min        float64 `json:"min"`
	Max        float64 `json:"max"`
	Mean       float64 `json:"mean"`
	P50        float64 `json:"p50"`
	P95        float64 `json:"p95"`
	Last       float64 `json:"last"`      // the last finite value logged
	LastStep   int64   `json:"last_step"` // its step
}

// EventSummary rolls up the durations of one telemetry event, in seconds.
// P50 and P95 are exact nearest-rank percentiles.
type EventSummary struct {
	Count int64   `json:"count"`
	Total float64 `json:"total_s"`
	Mean  float64 `json:"mean_s"`
	P50   float64 `json:"p50_s"`
	P95   float64 `json:"p95_s"`
	Max   float64 `json:"max_s"`
}

// Summary is the content of runs/<id>/run_summary.json, the one object a
// listing of runs reads. It carries a copy of run.json so that a listing
// needs nothing else.
type Summary struct {
	Run    Run    `json:"run"`
	Status Status `json:"status"`
	// Complete is true only when the run finished (succeeded) and every
	// record logged reached the store.
	Complete bool   `json:"complete"`
	Dropped  uint64 `json:"dropped"`
	// Missing is the part of Dropped that producers reported publishing
	// (Attempt.Published) and the store lacks; the rest was lost by the
	// writer itself.
	Missing   uint64                   `json:"missing,omitempty"`
	Metrics   map[string]MetricSummary `json:"metrics"`
	Telemetry map[string]EventSummary  `json:"telemetry"`
	Layout    map[string]OpStats       `json:"layout,omitempty"`
	Updated   time.Time                `json:"updated"`
}

// OpStats are one operation's layout-validation counters (the engine's
// tensor.OpStats, copied so that records need no engine package).
type OpStats struct {
	Checks   uint64 `json:"checks"`   // inputs validated
	Failures uint64 `json:"failures"` // inputs rejected
}

// ArtifactKind says what an artifact is. It is stored as a lower-case string.
type ArtifactKind uint8

// The kinds of artifacts.
const (
	ArtifactOther ArtifactKind = iota
	ArtifactCheckpoint
	ArtifactModel
	ArtifactPlot
	ArtifactLog
	ArtifactDataset
	numArtifactKinds
)

var artifactKindNames = [numArtifactKinds]string{
	ArtifactOther: "other", ArtifactCheckpoint: "checkpoint", ArtifactModel: "model",
	ArtifactPlot: "plot", ArtifactLog: "log", ArtifactDataset: "dataset",
}

// String returns the kind's name, e.g. "checkpoint".
func (k ArtifactKind) String() string {
	if k < numArtifactKinds {
		return artifactKindNames[k]
	}
	return "artifactkind(" + strconv.Itoa(int(k)) + ")"
}

// ParseArtifactKind parses a kind's name; an unknown name is an
// errs.Experiment error.
func ParseArtifactKind(s string) (ArtifactKind, error) {
	for k, n := range artifactKindNames {
		if n == s {
			return ArtifactKind(k), nil
		}
	}
	return 0, errs.New(errs.Experiment, "experiment.ParseArtifactKind", "unknown artifact kind %q", s)
}

// MarshalText writes the kind's name; an undefined kind is an error.
func (k ArtifactKind) MarshalText() ([]byte, error) {
	if k >= numArtifactKinds {
		return nil, errs.New(errs.Experiment, "experiment.ArtifactKind", "undefined artifact kind %d", uint8(k))
	}
	return []byte(artifactKindNames[k]), nil
}

// UnmarshalText parses a kind's name.
func (k *ArtifactKind) UnmarshalText(b []byte) error {
	v, err := ParseArtifactKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// Artifact is one entry of runs/<id>/artifacts.json.
type Artifact struct {
	Name     string       `json:"name"`
	Kind     ArtifactKind `json:"kind"`
	Key      string       `json:"key"`    // store key (or external path) of the bytes
	Size     int64        `json:"size"`   // bytes
	Checksum string       `json:"sha256"` // hex SHA-256 of the bytes, if known
	Step     int64        `json:"step"`
	Time     time.Time    `json:"time"`
}

// NewRunID returns a new run ID: the UTC creation time to the microsecond
// followed by 32 random bits, e.g. "20261129T130000123456Z-9f86d081". IDs
// sort in creation order, are unique in practice, and contain no '.', so
// one ID is one NATS subject token (ev.metrics.<id>, control.run.<id>).
func NewRunID() string {
	var r [4]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	t := time.Now().UTC()
	return fmt.Sprintf("%s%06dZ-%s", t.Format("20060102T150405"), t.Nanosecond()/1000, hex.EncodeToString(r[:]))
}

// ValidRunID reports whether id is safe to use as a key segment: 1 to 128
// characters from [A-Za-z0-9._-], not starting with '.'.
func ValidRunID(id string) bool {
	if id == "" || len(id) > 128 || id[0] == '.' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkRunID(op, id string) error {
	if !ValidRunID(id) {
		return errs.New(errs.Experiment, op, "invalid run id %q", id)
	}
	return nil
}

// Keys of a run's records. Segments are numbered from 1 and zero-padded so
// that lexical order is write order.
func runPrefix(id string) string       { return "runs/" + id + "/" }
func runKey(id string) string          { return runPrefix(id) + "run.json" }
func summaryKey(id string) string      { return runPrefix(id) + "run_summary.json" }
func artifactsKey(id string) string    { return runPrefix(id) + "artifacts.json" }
func metricsPrefix(id string) string   { return runPrefix(id) + "metrics/" }
func telemetryPrefix(id string) string { return runPrefix(id) + "telemetry/" }
func segmentKey(prefix string, seq int) string {
	return prefix + padInt(seq, 8) + ".jsonl"
}

func padInt(v, width int) string {
	s := strconv.Itoa(v)
	for len(s) < width {
		s = "0" + s
	}
	return s
}
