package cluster

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/pkg/errs"
)

// wireTypes maps every envelope type to a new value of its body type.
// TestWireTypesFuzzed keeps it complete: a message type added to wire.go
// without a row here fails the build's tests.
var wireTypes = map[string]func() any{
	TypeRunRequest:     func() any { return new(RunRequest) },
	TypeMetricBatch:    func() any { return new(MetricBatch) },
	TypeTelemetryBatch: func() any { return new(TelemetryBatch) },
	TypeCheckpoint:     func() any { return new(CheckpointEvent) },
	TypeRunEvent:       func() any { return new(RunEvent) },
	TypeAPIRequest:     func() any { return new(APIRequest) },
	TypeAPIReply:       func() any { return new(APIReply) },
	TypeWorkerRequest:  func() any { return new(WorkerRequest) },
	TypeWorkerReply:    func() any { return new(WorkerReply) },
	TypeControl:        func() any { return new(Control) },
	TypeFinalNotice:    func() any { return new(FinalNotice) },
}

// sampleMessages are real messages of every type, as the services send
// them: the fuzzers' seeds and the regression corpus.
func sampleMessages() map[string]any {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	spec := []byte(`{"name":"fmnist-mlp","model":{"name":"mlp","hidden":[256]},"dataset":{"name":"fashion-mnist"},"steps":100}`)
	st := RunState{RunID: "20261206T100000.000000Z-1a2b3c4d", Name: "lr-0", SweepID: "sw-1", Priority: PriorityNormal,
		Status: StateRunning, Attempt: 2, HandBacks: 1, Worker: "gpu-1", Owners: []string{"gpu-2", "gpu-1"}, Step: 40, TotalSteps: 100,
		Resume: &ResumePoint{Attempt: 2, Step: 40, Key: "runs/r/checkpoints/a2/step-000000000040.rtch", Size: 813000, CRC32C: 0xdeadbeef},
		Error:  "io error", ErrorKind: "io", Retryable: true, MemoryEstimate: 1 << 30,
		Submitted: at, Updated: at.Add(time.Minute), TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	return map[string]any{
		TypeRunRequest: &RunRequest{RunID: st.RunID, Name: "lr-0", Spec: spec, Priority: PriorityHigh, SweepID: "sw-1", Submitted: at},
		TypeMetricBatch: &MetricBatch{RunID: st.RunID, Attempt: 2, Seq: 7, Points: []MetricPoint{
			{Step: 40, Name: "train/loss", Value: 0.4182, Time: at}, {Step: 40, Name: "train/lr", Value: 1e-3, Time: at}}},
		TypeTelemetryBatch: &TelemetryBatch{RunID: st.RunID, Attempt: 2, Seq: 3, Events: []TelemetryPoint{
			{Name: "step", Start: at, Duration: 12 * time.Millisecond, Tags: map[string]string{"phase": "train"}}}},
		TypeCheckpoint: &CheckpointEvent{RunID: st.RunID, Attempt: 2, Step: 40, Key: st.Resume.Key, Size: 813000,
			SHA256: strings.Repeat("ab", 32), Time: at},
		TypeRunEvent: &RunEvent{RunID: st.RunID, Attempt: 2, Kind: "finished", Status: StateSucceeded, Name: "lr-0", Spec: spec,
			Worker: "gpu-1", Host: "box", Seed: 7, Layout: []byte(`{"matmul":{"calls":3}}`), Time: at, Metrics: 200, LastStep: 100},
		TypeAPIRequest: &APIRequest{Spec: spec, Priority: PriorityLow, RunID: st.RunID},
		TypeAPIReply: &APIReply{RunIDs: []string{st.RunID}, States: []RunState{st}, Error: "", Kind: "",
			Workers: []WorkerInfo{{ID: "gpu-1", Host: "box", Slots: 2, Busy: 1, MemoryLimit: 4 << 30, Runs: []string{st.RunID}, Seen: at, Alive: true}}},
		TypeWorkerRequest: &WorkerRequest{RunID: st.RunID, Attempt: 2, Step: 40, Total: 100, Resume: st.Resume,
			Outcome: &Outcome{Status: StateFailed, Error: "loss is NaN at step 41", Kind: "training", Step: 41}, MemoryLimit: 4 << 30},
		TypeWorkerReply: &WorkerReply{Action: ActionTrain, State: st},
		TypeControl:     &Control{RunID: st.RunID, Attempt: 2},
		TypeFinalNotice: &FinalNotice{RunID: st.RunID, Attempt: 2, Status: StateSucceeded},
	}
}

// FuzzWireDecode feeds every decoder the same bytes. None may panic; a
// refusal is an errs.Cluster error; what one accepts must encode again
// and decode to the same bytes (no value that reads but cannot be sent).
func FuzzWireDecode(f *testing.F) {
	for typ, v := range sampleMessages() {
		b, err := Encode(typ, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for typ, newV := range wireTypes {
			v := newV()
			if err := Decode(b, typ, v); err != nil {
				if !errors.Is(err, errs.Cluster) {
					t.Fatalf("Decode(%s) = %v; want an errs.Cluster error", typ, err)
				}
				continue
			}
			roundTrip(t, typ, v, newV)
		}
	})
}

// roundTrip checks that an accepted value v of type typ re-encodes, and
// that decoding and encoding that again gives the same bytes.
func roundTrip(t *testing.T, typ string, v any, newV func() any) {
	t.Helper()
	b1, err := Encode(typ, v)
	if err != nil {
		t.Fatalf("re-encoding an accepted %s: %v", typ, err)
	}
	v2 := newV()
	if err := Decode(b1, typ, v2); err != nil {
		t.Fatalf("decoding a re-encoded %s: %v", typ, err)
	}
	b2, err := Encode(typ, v2)
	if err != nil {
		t.Fatalf("re-encoding %s twice: %v", typ, err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("%s does not round-trip:\n%x\n%x", typ, b1, b2)
	}
}

// FuzzKVValues fuzzes the plain msgpack values of the KV buckets (run
// state, worker heartbeats), which are not wrapped in an envelope.
func FuzzKVValues(f *testing.F) {
	reply := sampleMessages()[TypeAPIReply].(*APIReply)
	for _, v := range []any{&reply.States[0], &WorkerInfo{ID: "gpu-1", Host: "box", Slots: 2, Busy: 1, MemoryLimit: 4 << 30,
		Runs: []string{reply.States[0].RunID}, Version: "dev", Seen: reply.States[0].Updated}} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var st RunState
		if Unmarshal(b, &st) == nil {
			if _, err := msgpack.Marshal(&st); err != nil {
				t.Fatalf("re-encoding an accepted run state: %v", err)
			}
		}
		var wi WorkerInfo
		if Unmarshal(b, &wi) == nil {
			if _, err := msgpack.Marshal(&wi); err != nil {
				t.Fatalf("re-encoding an accepted worker info: %v", err)
			}
		}
	})
}

// TestWireTypesFuzzed fails when wire.go declares a message type (a Type*
// constant) that wireTypes and sampleMessages do not cover.
func TestWireTypesFuzzed(t *testing.T) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "wire.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	samples := sampleMessages()
	n := 0
	for _, d := range file.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			for _, name := range spec.(*ast.ValueSpec).Names {
				if !strings.HasPrefix(name.Name, "Type") {
					continue
				}
				n++
				lit, ok := spec.(*ast.ValueSpec).Values[0].(*ast.BasicLit)
				if !ok {
					continue
				}
				typ := strings.Trim(lit.Value, `"`)
				if wireTypes[typ] == nil || samples[typ] == nil {
					t.Errorf("message type %s (%q) has no row in wireTypes and sampleMessages: the fuzzers miss it", name.Name, typ)
				}
			}
		}
	}
	if n < len(wireTypes) {
		t.Errorf("found %d Type constants in wire.go, fewer than the %d fuzzed types: the source walk is broken", n, len(wireTypes))
	}
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed files of testdata/fuzz from sampleMessages")

// TestWriteCorpus rewrites testdata/fuzz/FuzzWireDecode/seed-<type> with
// -update-corpus (after a wire change), so `go test` replays real
// messages even without the fuzzer; crashers the fuzzer finds land in the
// same folder and stay as regression cases.
func TestWriteCorpus(t *testing.T) {
	if !*updateCorpus {
		return
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzWireDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for typ, v := range sampleMessages() {
		b, err := Encode(typ, v)
		if err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, "seed-"+typ), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
