package experiment

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/errs"
)

// backends returns a constructor per Store backend; the S3 one runs against
// a real versitygw started for this test.
func backends(t *testing.T) map[string]func(t *testing.T) Store {
	t.Helper()
	gw := testutil.StartVersityGW(t)
	var n atomic.Int64
	return map[string]func(t *testing.T) Store{
		"local": func(t *testing.T) Store {
			s, err := NewLocalStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"local-prefixed": func(t *testing.T) Store {
			s, err := NewLocalStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			p, err := WithPrefix(s, "team/a")
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		"s3": func(t *testing.T) Store {
			bucket := "gorch-test-" + string(rune('a'+n.Add(1)%26)) + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
			if len(bucket) > 63 {
				bucket = bucket[:63]
			}
			bucket = strings.Trim(strings.Map(func(r rune) rune {
				if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
					return r
				}
				return '-'
			}, bucket), "-")
			s, err := NewS3Store(context.Background(), S3Config{
				Endpoint: gw.Endpoint, Bucket: bucket, AccessKey: gw.AccessKey, SecretKey: gw.SecretKey,
				Insecure: true, CreateBucket: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

// TestStores runs one suite against every backend.
func TestStores(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			for _, tc := range storeSuite {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, mk(t)) })
			}
		})
	}
}

var storeSuite = []struct {
	name string
	fn   func(t *testing.T, s Store)
}{
	{"PutGetDelete", testPutGetDelete},
	{"List", testList},
	{"PutFromFailingReader", testPutFromFailing},
	{"RecordsRoundTrip", testRecordsRoundTrip},
	{"SegmentsInOrder", testSegmentsInOrder},
	{"ListRunsReadsSummariesOnly", testListRunsSummariesOnly},
	{"Resume", testResume},
}

func testPutGetDelete(t *testing.T, s Store) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "a/missing"); !IsNotFound(err) || !errors.Is(err, errs.Experiment) {
		t.Fatalf("Get(missing) = %v, want not-found errs.Experiment", err)
	}
	if err := s.Put(ctx, "a/b.json", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b.json", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "a/b.json"); err != nil || string(got) != "two" {
		t.Fatalf("Get = %q, %v; want \"two\"", got, err)
	}
	if err := s.Put(ctx, "a/empty", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "a/empty"); err != nil || len(got) != 0 {
		t.Fatalf("Get(empty) = %q, %v", got, err)
	}
	if err := s.Delete(ctx, "a/b.json"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a/b.json"); err != nil {
		t.Fatalf("second Delete = %v, want nil", err)
	}
	if _, err := s.Get(ctx, "a/b.json"); !IsNotFound(err) {
		t.Fatalf("Get after Delete = %v, want not found", err)
	}
	for _, bad := range []string{"", "/abs", "a//b", "a/../b", "a/./b", `a\b`, "a/.tmp-x"} {
		if err := s.Put(ctx, bad, nil); !errors.Is(err, errs.Argument) {
			t.Errorf("Put(%q) = %v, want errs.Argument", bad, err)
		}
	}
}

func testList(t *testing.T, s Store) {
	ctx := context.Background()
	keys := []string{"runs/r1/run.json", "runs/r1/metrics/00000002.jsonl", "runs/r1/metrics/00000001.jsonl", "runs/r2/run.json", "runs-x/y", "top"}
	for _, k := range keys {
		if err := s.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List(ctx, "runs/")
	want := []string{"runs/r1/metrics/00000001.jsonl", "runs/r1/metrics/00000002.jsonl", "runs/r1/run.json", "runs/r2/run.json"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("List(runs/) = %q, %v; want %q", got, err, want)
	}
	got, _ = s.List(ctx, "runs")
	if len(got) != 5 {
		t.Fatalf("List(runs) = %q, want 5 keys", got)
	}
	got, err = s.ListDir(ctx, "runs/")
	if want := []string{"runs/r1/", "runs/r2/"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("ListDir(runs/) = %q, %v; want %q", got, err, want)
	}
	got, err = s.ListDir(ctx, "")
	if want := []string{"runs-x/", "runs/", "top"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("ListDir(\"\") = %q, %v; want %q", got, err, want)
	}
	if got, err := s.List(ctx, "nothing/"); err != nil || len(got) != 0 {
		t.Fatalf("List(nothing/) = %q, %v", got, err)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), f.n)
	clear(p[:n])
	f.n -= n
	return n, nil
}

func testPutFromFailing(t *testing.T, s Store) {
	ctx := context.Background()
	if err := s.Put(ctx, "obj/keep", []byte("old")); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"obj/new", "obj/keep"} {
		err := s.PutFrom(ctx, key, &failingReader{n: 100 << 10})
		if err == nil || errs.KindOf(err) == errs.Other {
			t.Fatalf("PutFrom(%s, failing reader) = %v, want a typed error", key, err)
		}
	}
	if _, err := s.Get(ctx, "obj/new"); !IsNotFound(err) {
		t.Fatalf("after failed PutFrom, Get(obj/new) = %v, want not found", err)
	}
	if got, err := s.Get(ctx, "obj/keep"); err != nil || string(got) != "old" {
		t.Fatalf("after failed PutFrom, Get(obj/keep) = %q, %v; want \"old\"", got, err)
	}
	if keys, _ := s.List(ctx, ""); !slices.Equal(keys, []string{"obj/keep"}) {
		t.Fatalf("keys after failed writes = %q, want only obj/keep", keys)
	}
	if ls, ok := s.(*LocalStore); ok {
		ents, _ := os.ReadDir(filepath.Join(ls.Root(), "obj"))
		if len(ents) != 1 {
			t.Fatalf("files in obj/ = %v, want only keep (no temp files)", ents)
		}
	}
}

func testRecordsRoundTrip(t *testing.T, s Store) {
	ctx := context.Background()
	run := Run{
		Name: "mlp-fmnist", Config: []byte(`{"model":"mlp","epochs":2}`),
		Hyperparameters: map[string]float64{"lr": 1e-3}, Tags: map[string]string{"team": "core"},
		Seed: 42, GorchVersion: "test",
	}
	rec, err := Create(ctx, s, run, LogOptions{FlushRecords: 7, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id := rec.ID()
	var logged []Metric
	for step := range int64(20) {
		v := 1 / float64(step+1)
		if err := rec.Log(step, "loss", v); err != nil {
			t.Fatal(err)
		}
		logged = append(logged, Metric{Run: id, Attempt: 1, Step: step, Name: "loss", Value: v})
	}
	rec.Log(20, "loss", math.NaN())
	func() { defer rec.Start("forward", "phase", "train").Stop() }()
	rec.SetLayout(map[string]OpStats{"matmul": {Checks: 10, Failures: 1}})
	blob := bytes.Repeat([]byte("w"), 1000)
	art, err := rec.PutArtifact(ctx, "model/final.rtch", ArtifactModel, 20, bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddArtifact(ctx, Artifact{Name: "plot", Kind: ArtifactPlot, Key: "/tmp/loss.png", Step: 20}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Finish(ctx, StatusSucceeded, nil); err != nil {
		t.Fatal(err)
	}

	rd := NewReader(s)
	gotRun, err := rd.GetRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if gotRun.Name != run.Name || gotRun.Status != StatusSucceeded || gotRun.Attempt != 1 || gotRun.Seed != 42 ||
		string(gotRun.Config) != string(run.Config) || gotRun.Hyperparameters["lr"] != 1e-3 || gotRun.Finished.IsZero() {
		t.Fatalf("GetRun = %+v", gotRun)
	}
	var got []Metric
	for m, err := range rd.ReadMetrics(ctx, id) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if len(got) != 21 || !math.IsNaN(got[20].Value) {
		t.Fatalf("ReadMetrics: %d records (last %v), want 21 ending in NaN", len(got), got[len(got)-1])
	}
	for i, m := range logged {
		g := got[i]
		if g.Run != m.Run || g.Attempt != m.Attempt || g.Step != m.Step || g.Name != m.Name || g.Value != m.Value || g.Time.IsZero() {
			t.Fatalf("metric %d = %+v, want %+v", i, g, m)
		}
	}
	var evs []TelemetryEvent
	for e, err := range rd.ReadTelemetry(ctx, id) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	if len(evs) != 1 || evs[0].Name != "forward" || evs[0].Tags["phase"] != "train" {
		t.Fatalf("ReadTelemetry = %+v", evs)
	}
	sum, err := rd.GetSummary(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	ms := sum.Metrics["loss"]
	if !sum.Complete || sum.Dropped != 0 || sum.Status != StatusSucceeded || ms.Count != 21 || ms.NonFinite != 1 ||
		ms.Max != 1 || ms.Min != 1.0/20 || ms.Last != 1.0/20 || ms.LastStep != 19 || ms.P50 != 1.0/11 {
		t.Fatalf("summary = %+v, loss %+v", sum, ms)
	}
	if sum.Telemetry["forward"].Count != 1 || sum.Layout["matmul"] != (OpStats{Checks: 10, Failures: 1}) {
		t.Fatalf("summary telemetry/layout = %+v / %+v", sum.Telemetry, sum.Layout)
	}
	arts, err := rd.Artifacts(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) != 2 || arts[0] != art || arts[1].Kind != ArtifactPlot {
		t.Fatalf("Artifacts = %+v, want [%+v plot]", arts, art)
	}
	if sum := sha256.Sum256(blob); art.Size != 1000 || art.Checksum != hex.EncodeToString(sum[:]) || art.Kind != ArtifactModel {
		t.Fatalf("artifact = %+v", art)
	}
	if b, err := s.Get(ctx, art.Key); err != nil || !bytes.Equal(b, blob) {
		t.Fatalf("artifact bytes: %v", err)
	}
}

func testSegmentsInOrder(t *testing.T, s Store) {
	ctx := context.Background()
	id := NewRunID()
	l, err := NewMetricsLogger(ctx, s, id, 1, LogOptions{FlushRecords: 3, FlushInterval: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(25) { // 9 segments, more than 1 digit
		l.Log(i, "x", float64(i))
		if i == 10 {
			l.Flush()
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	keys, _ := s.List(ctx, metricsPrefix(id))
	if len(keys) < 9 {
		t.Fatalf("segments = %q, want >= 9", keys)
	}
	var steps []int64
	for m, err := range NewReader(s).ReadMetrics(ctx, id) {
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, m.Step)
	}
	if len(steps) != 25 || !slices.IsSorted(steps) {
		t.Fatalf("steps read back = %v, want 0..24 in order", steps)
	}
	// A second logger (a resumed attempt) continues the numbering.
	l2, _ := NewMetricsLogger(ctx, s, id, 2, LogOptions{}, nil)
	l2.Log(25, "x", 25)
	l2.Close()
	n := 0
	for m := range NewReader(s).ReadMetrics(ctx, id) {
		if n == 25 && (m.Step != 25 || m.Attempt != 2) {
			t.Fatalf("record 25 = %+v, want step 25 of attempt 2", m)
		}
		n++
	}
	if n != 26 {
		t.Fatalf("read %d records, want 26", n)
	}
}

// countingStore counts the Gets per key suffix.
type countingStore struct {
	Store
	gets map[string]int
}

func (c *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	c.gets[key[strings.LastIndexByte(key, '/')+1:]]++
	if strings.Contains(key, "/metrics/") || strings.Contains(key, "/telemetry/") {
		c.gets["segment"]++
	}
	return c.Store.Get(ctx, key)
}

func testListRunsSummariesOnly(t *testing.T, s Store) {
	ctx := context.Background()
	var ids []string
	for i := range 3 {
		rec, err := Create(ctx, s, Run{Name: "r"}, LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rec.Log(0, "loss", 1)
		ids = append(ids, rec.ID())
		if i < 2 { // the third is still running: no summary yet
			if err := rec.Finish(ctx, StatusSucceeded, nil); err != nil {
				t.Fatal(err)
			}
		} else {
			defer rec.Finish(ctx, StatusCancelled, nil)
			rec.Metrics().Flush()
		}
	}
	cs := &countingStore{Store: s, gets: map[string]int{}}
	runs, err := NewReader(cs).ListRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("ListRuns = %d runs, want 3", len(runs))
	}
	for i, r := range runs {
		if r.Run.ID != ids[i] {
			t.Fatalf("run %d = %s, want %s (creation order)", i, r.Run.ID, ids[i])
		}
	}
	if runs[2].Status != StatusRunning || runs[2].Complete || !runs[0].Complete {
		t.Fatalf("statuses = %v/%v, %v/%v", runs[0].Status, runs[0].Complete, runs[2].Status, runs[2].Complete)
	}
	want := map[string]int{"run_summary.json": 3, "run.json": 1}
	if cs.gets["segment"] != 0 || cs.gets["run_summary.json"] != want["run_summary.json"] || cs.gets["run.json"] != want["run.json"] {
		t.Fatalf("ListRuns Gets = %v, want %v and no segments", cs.gets, want)
	}
}

func testResume(t *testing.T, s Store) {
	ctx := context.Background()
	rec, err := Create(ctx, s, Run{Name: "resume"}, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec.Log(0, "loss", 4)
	rec.Finish(ctx, StatusInterrupted, errors.New("SIGINT"))
	if sum, _ := NewReader(s).GetSummary(ctx, rec.ID()); sum.Complete || sum.Run.Error != "SIGINT" {
		t.Fatalf("interrupted summary = %+v, want complete=false and the error", sum)
	}
	rec2, err := Resume(ctx, s, rec.ID(), LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec2.Log(1, "loss", 2)
	if err := rec2.Finish(ctx, StatusSucceeded, nil); err != nil {
		t.Fatal(err)
	}
	sum, err := NewReader(s).GetSummary(ctx, rec.ID())
	if err != nil {
		t.Fatal(err)
	}
	if l := sum.Metrics["loss"]; l.Count != 2 || l.Mean != 3 || sum.Run.Attempt != 2 || !sum.Complete || sum.Run.Error != "" {
		t.Fatalf("resumed summary = %+v", sum)
	}
}

func TestS3WrongSecret(t *testing.T) {
	testutil.Long(t, "waits for S3 retries")
	gw := testutil.StartVersityGW(t)
	ctx := context.Background()
	_, err := NewS3Store(ctx, S3Config{Endpoint: gw.Endpoint, Bucket: "gorch-auth", AccessKey: gw.AccessKey,
		SecretKey: "not-the-secret", Insecure: true, CreateBucket: true})
	if err == nil || !errors.Is(err, errs.IO) {
		t.Fatalf("NewS3Store(wrong secret) = %v, want errs.IO", err)
	}
	var te *errs.TorchError
	if !errors.As(err, &te) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q: want a one-line *errs.TorchError", err)
	}
	if !strings.Contains(err.Error(), "Signature") && !strings.Contains(err.Error(), "Access") {
		t.Fatalf("error %q does not say why", err)
	}
	t.Logf("wrong secret: %v", err)
	// An unreachable endpoint fails the same way.
	_, err = NewS3Store(ctx, S3Config{Endpoint: "127.0.0.1:1", Bucket: "gorch-auth", Insecure: true})
	if !errors.Is(err, errs.IO) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("NewS3Store(no server) = %v, want one-line errs.IO", err)
	}
}

var _ io.Reader = (*failingReader)(nil)
