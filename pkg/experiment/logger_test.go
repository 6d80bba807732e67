package experiment

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorch/gorch/pkg/errs"
)

func newLocal(t testing.TB) *LocalStore {
	s, err := NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gateStore blocks every Put until release is closed, and fails Puts while
// fail is set.
type gateStore struct {
	Store
	release chan struct{}
	fail    bool
}

func (g *gateStore) Put(ctx context.Context, key string, data []byte) error {
	<-g.release
	if g.fail {
		return errs.Wrap(errs.IO, "gateStore.Put", errors.New("no space left on device"), "put %q", key)
	}
	return g.Store.Put(ctx, key, data)
}

func TestLoggerBackpressureAndDrops(t *testing.T) {
	ctx := context.Background()
	g := &gateStore{Store: newLocal(t), release: make(chan struct{})}
	rec, err := Create(ctx, g.Store, Run{}, LogOptions{QueueSize: 4, FlushRecords: 1, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Route the loggers through the gate.
	rec.metrics.Close()
	rec.metrics, _ = NewMetricsLogger(ctx, g, rec.ID(), 1, LogOptions{QueueSize: 4, FlushRecords: 1, FlushInterval: time.Hour}, rec.rollup.AddMetrics)
	// The writer takes one record and blocks in Put; 4 more fill the queue.
	done := make(chan struct{})
	go func() {
		for i := range int64(6) {
			rec.Log(i, "loss", float64(i))
		}
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Log did not block with the writer stalled and the queue full")
	case <-time.After(100 * time.Millisecond):
	}
	if rec.Metrics().TryLog(99, "loss", 99) {
		t.Fatal("TryLog succeeded on a full queue")
	}
	if d := rec.Metrics().Dropped(); d != 1 {
		t.Fatalf("Dropped = %d, want 1", d)
	}
	close(g.release)
	<-done
	if err := rec.Finish(ctx, StatusSucceeded, nil); err != nil {
		t.Fatal(err)
	}
	sum, err := NewReader(g.Store).GetSummary(ctx, rec.ID())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Complete || sum.Dropped != 1 || sum.Metrics["loss"].Count != 6 {
		t.Fatalf("summary complete=%v dropped=%d count=%d; want false, 1, 6", sum.Complete, sum.Dropped, sum.Metrics["loss"].Count)
	}
	if err := rec.Log(7, "loss", 1); !errors.Is(err, errs.Experiment) {
		t.Fatalf("Log after Finish = %v, want errs.Experiment", err)
	}
}

func TestLoggerFlushReturnsFirstIOError(t *testing.T) {
	ctx := context.Background()
	g := &gateStore{Store: newLocal(t), release: make(chan struct{}), fail: true}
	close(g.release)
	l, err := NewMetricsLogger(ctx, g, NewRunID(), 1, LogOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(0, "a", 1)
	l.Log(1, "a", 2)
	if err := l.Flush(); !errors.Is(err, errs.IO) || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("Flush = %v, want the errs.IO from Put", err)
	}
	g.fail = false // later success does not hide the first error
	l.Log(2, "a", 3)
	if err := l.Close(); !errors.Is(err, errs.IO) {
		t.Fatalf("Close = %v, want the first errs.IO", err)
	}
	if l.Dropped() != 2 || l.Written() != 1 {
		t.Fatalf("Dropped, Written = %d, %d; want 2, 1", l.Dropped(), l.Written())
	}
}

func TestTimerRecordsOnPanicAndEarlyReturn(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	rec, err := Create(ctx, s, Run{}, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	step := func(fail bool) (err error) {
		defer rec.Start("step").Stop()
		if fail {
			return errors.New("early")
		}
		panic("boom")
	}
	func() {
		defer func() { recover() }()
		step(false)
	}()
	step(true)
	tm := rec.Start("twice")
	tm.Stop()
	tm.Stop()
	if err := rec.Finish(ctx, StatusFailed, errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	sum, _ := NewReader(s).GetSummary(ctx, rec.ID())
	if sum.Telemetry["step"].Count != 2 || sum.Telemetry["twice"].Count != 1 {
		t.Fatalf("telemetry = %+v, want step×2, twice×1", sum.Telemetry)
	}
	if sum.Complete || sum.Status != StatusFailed || sum.Run.Error != "boom" {
		t.Fatalf("failed summary = %+v", sum)
	}
	rec.Start("late").Stop() // after Close: counted, no panic
}

func TestRollupAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 10, 17, 100, 1001, 50000} {
		for _, dist := range []string{"normal", "dups", "sorted", "reversed"} {
			var ms []Metric
			vals := make([]float64, n)
			for i := range vals {
				switch dist {
				case "normal":
					vals[i] = rng.NormFloat64()
				case "dups":
					vals[i] = float64(rng.IntN(3))
				case "sorted":
					vals[i] = float64(i)
				case "reversed":
					vals[i] = float64(n - i)
				}
				ms = append(ms, Metric{Name: "m", Step: int64(i), Value: vals[i]})
			}
			r := NewRollup()
			r.AddMetrics(ms[:n/2])
			r.AddMetrics(ms[n/2:])
			got := r.Metrics()["m"]
			s := slices.Clone(vals)
			slices.Sort(s)
			sum := 0.0
			for _, v := range vals {
				sum += v
			}
			want := MetricSummary{Count: int64(n), Min: s[0], Max: s[n-1], Mean: sum / float64(n),
				P50: s[int(math.Ceil(0.5*float64(n)))-1], P95: s[int(math.Ceil(0.95*float64(n)))-1],
				Last: vals[n-1], LastStep: int64(n - 1)}
			if math.Abs(got.Mean-want.Mean) < 1e-9 {
				got.Mean = want.Mean
			}
			if got != want {
				t.Errorf("rollup(n=%d, %s) = %+v, want %+v", n, dist, got, want)
			}
		}
	}
}

func TestRecordsJSONRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 29, 13, 0, 0, 123456789, time.UTC)
	cases := []any{
		&Run{ID: "r1", Name: "n", Status: StatusFailed, Created: now, Started: now, Finished: now.Add(time.Second),
			Config: json.RawMessage(`{"a":1}`), Hyperparameters: map[string]float64{"lr": 0.1}, Tags: map[string]string{"k": "v"},
			Seed: 7, Host: "h", GorchVersion: "v", Attempt: 2, Error: "diverged"},
		&Metric{Run: "r1", Attempt: 1, Step: 3, Name: `we"ird\name<é>`, Value: -1.5e-300, Time: now},
		&Metric{Run: "r1", Attempt: 1, Step: 4, Name: "inf", Value: math.Inf(-1), Time: now},
		&TelemetryEvent{Name: "fwd", Start: now, Duration: 1500 * time.Microsecond, Tags: map[string]string{"a": "b"}},
		&Summary{Run: Run{ID: "r1", Status: StatusSucceeded, Created: now}, Status: StatusSucceeded, Complete: true, Dropped: 3,
			Metrics:   map[string]MetricSummary{"loss": {Count: 2, Min: 1, Max: 2, Mean: 1.5, P50: 1, P95: 2, Last: 2, LastStep: 9}},
			Telemetry: map[string]EventSummary{"fwd": {Count: 1, Total: 1, Mean: 1, P50: 1, P95: 1, Max: 1}},
			Layout:    map[string]OpStats{"add": {Checks: 3}}, Updated: now},
		&[]Artifact{{Name: "ck", Kind: ArtifactCheckpoint, Key: "runs/r1/ckpt/1.rtch", Size: 10, Checksum: "ab", Step: 5, Time: now},
			{Name: "d", Kind: ArtifactDataset}, {Name: "o", Kind: ArtifactOther}, {Name: "l", Kind: ArtifactLog}},
	}
	for _, v := range cases {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%T): %v", v, err)
		}
		p := reflect.New(reflect.TypeOf(v).Elem())
		if err := json.Unmarshal(b, p.Interface()); err != nil {
			t.Fatalf("Unmarshal(%s): %v", b, err)
		}
		if !reflect.DeepEqual(p.Interface(), v) {
			t.Errorf("round trip of %T:\n got %+v\nwant %+v\njson %s", v, p.Elem(), reflect.ValueOf(v).Elem(), b)
		}
	}
	var nan Metric
	if err := json.Unmarshal([]byte(`{"run":"r","value":"NaN","time":"2026-11-29T13:00:00Z"}`), &nan); err != nil || !math.IsNaN(nan.Value) {
		t.Fatalf("NaN metric = %+v, %v", nan, err)
	}
	for _, bad := range []string{`{"name":"x","kind":"weights"}`, `{"name":"x","kind":7}`} {
		var a Artifact
		if err := json.Unmarshal([]byte(bad), &a); err == nil {
			t.Errorf("Unmarshal(%s) = nil error, want unknown kind", bad)
		}
	}
	if _, err := ParseArtifactKind("weights"); !errors.Is(err, errs.Experiment) {
		t.Errorf("ParseArtifactKind(weights) = %v, want errs.Experiment", err)
	}
	if _, err := json.Marshal(Artifact{Kind: 200}); err == nil {
		t.Errorf("Marshal of undefined kind succeeded")
	}
	var st Status
	if err := json.Unmarshal([]byte(`"exploded"`), &st); !errors.Is(err, errs.Experiment) {
		t.Errorf("Unmarshal(status exploded) = %v, want errs.Experiment", err)
	}
}

func TestRunIDs(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for range 1000 {
		id := NewRunID()
		if !ValidRunID(id) || seen[id] || id < prev[:min(len(prev), 22)] || strings.Contains(id, ".") {
			t.Fatalf("NewRunID = %q (prev %q): invalid, duplicate, out of order or not one NATS token", id, prev)
		}
		seen[id], prev = true, id
	}
	for _, bad := range []string{"", ".x", "a/b", "a b", strings.Repeat("x", 129)} {
		if ValidRunID(bad) {
			t.Errorf("ValidRunID(%q) = true", bad)
		}
	}
}

func TestLocalStoreReadOnlyDirLeavesNothing(t *testing.T) {
	s := newLocal(t)
	ctx := context.Background()
	// A key whose parent is a file cannot be created: the Put fails with
	// errs.IO and leaves nothing behind.
	if err := s.Put(ctx, "a", []byte("file")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b", []byte("x")); !errors.Is(err, errs.IO) {
		t.Fatalf("Put(a/b) under a file = %v, want errs.IO", err)
	}
	keys, _ := s.List(ctx, "")
	if !slices.Equal(keys, []string{"a"}) {
		t.Fatalf("keys = %q, want [a]", keys)
	}
}

// TestSegmentLineFormat: a metrics segment's lines leave out the run (the
// segment's key names it) and the reader fills it in; Metric's own JSON
// keeps it.
func TestSegmentLineFormat(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	const id = "run-lines"
	l, err := NewMetricsLogger(ctx, s, id, 2, LogOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 10, 0, 0, 5, time.UTC)
	for _, name := range []string{"loss", "acc", "loss", `we"ird`, "e", "f", "loss"} {
		if err := l.Log(7, name, 0.5); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := s.Get(ctx, segmentKey(metricsPrefix(id), 1))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], `{"attempt":2,"step":7,"name":"loss","value":0.5,"time":"`) ||
		!strings.Contains(lines[3], `"name":"we\"ird"`) || strings.Contains(string(b), `"run"`) {
		t.Errorf("segment lines = %q", lines)
	}
	var names []string
	for m, err := range NewReader(s).ReadMetrics(ctx, id) {
		if err != nil || m.Run != id || m.Attempt != 2 {
			t.Fatalf("read %+v, %v; want run %s attempt 2", m, err, id)
		}
		names = append(names, m.Name)
	}
	if want := []string{"loss", "acc", "loss", `we"ird`, "e", "f", "loss"}; !slices.Equal(names, want) {
		t.Errorf("names read back = %q, want %q", names, want)
	}
	j, _ := json.Marshal(Metric{Run: id, Attempt: 1, Step: 3, Name: "x", Value: 1, Time: at})
	if want := `{"run":"run-lines","attempt":1,"step":3,"name":"x","value":1,"time":"2026-12-01T10:00:00.000000005Z"}`; string(j) != want {
		t.Errorf("json.Marshal(Metric) = %s, want %s", j, want)
	}
}
