package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
)

// jaeger is a running Jaeger v2 on loopback ports.
type jaeger struct {
	grpc, http, query string // OTLP gRPC and HTTP receivers, query API (host:port)
}

// startJaeger runs jaeger (testutil.ToolPath) with testdata/jaeger-local.yaml, each
// port replaced by a free one, and waits until it is healthy.
func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := testutil.ToolPath("jaeger", testutil.JaegerVersion)
	if bin == "" {
		t.Fatalf("jaeger not found in $PATH or %s; build it with: %s", testutil.ToolCache(), testutil.ToolInstall)
	}
	cfg, err := os.ReadFile(filepath.Join("testdata", "jaeger-local.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// One pass over the config: replacing the ports one by one could rewrite
	// a freshly inserted address that starts like a later one (43173 after 4317).
	ports := map[string]string{}
	var pairs []string
	for _, p := range []string{"13133", "16686", "16685", "4317", "4318"} {
		ports[p] = testutil.FreeAddr(t)
		pairs = append(pairs, "127.0.0.1:"+p, ports[p])
	}
	cfg = []byte(strings.NewReplacer(pairs...).Replace(string(cfg)))
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "jaeger.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = hermeticEnv()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- jaeger, last lines of %s:\n%s", logPath, tail(logPath, 30))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + ports["13133"] + "/status")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b), "StatusOK") {
				break
			}
		}
		select {
		case <-done:
			t.Fatalf("jaeger exited during start-up:\n%s", tail(logPath, 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger not healthy within 30s:\n%s", tail(logPath, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &jaeger{grpc: ports["4317"], http: ports["4318"], query: ports["16686"]}
}

// Jaeger's query API JSON (/api/traces), the parts the test reads.
type jTrace struct {
	TraceID   string              `json:"traceID"`
	Spans     []jSpan             `json:"spans"`
	Processes map[string]jProcess `json:"processes"`
}

type jSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	ProcessID string `json:"processID"`
	Tags      []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

type jProcess struct {
	ServiceName string `json:"serviceName"`
}

func (s jSpan) tag(k string) string {
	for _, t := range s.Tags {
		if t.Key == k {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

func (s jSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// traces queries Jaeger for service's traces that have a span tagged
// gorch.run.id=run.
func (j *jaeger) traces(t *testing.T, service, run string) []jTrace {
	t.Helper()
	q := url.Values{"service": {service}, "limit": {"20"}, "lookback": {"1h"}, "tags": {fmt.Sprintf(`{"gorch.run.id":%q}`, run)}}
	resp, err := http.Get("http://" + j.query + "/api/traces?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data []jTrace `json:"data"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil // the service has not reported yet
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("/api/traces?%s: %v: %.300s", q.Encode(), err, b)
	}
	return out.Data
}

// TestTracing sends one run's trace from the coordinator, a worker and the
// collector (separate processes; gRPC and HTTP OTLP) to a real Jaeger and
// checks through its query API that the run's spans form one trace:
//
//	submit (gorch-coordinator, producer)
//	└── run (gorch-worker, consumer; one per attempt)
//	    ├── train.step × steps/GORCH_TRACE_STEPS
//	    ├── checkpoint × checkpoints
//	    └── collector.write (gorch-collector, consumer) × batches written
func TestTracing(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	j := startJaeger(t)
	env := func(name string) []string {
		e := []string{"OTEL_BSP_SCHEDULE_DELAY=100", "GORCH_TRACE_STEPS=10"}
		if name == "collector" {
			// The collector exports over OTLP/HTTP, the others over gRPC.
			return append(e, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+j.http, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf")
		}
		return append(e, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+j.grpc, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc")
	}
	c := startClusterEnv(t, env, "w1")
	const steps, ckptEvery = 40, 20
	id := c.submit(spec{Steps: steps, CkptEvery: ckptEvery, Seed: 7})
	st := c.waitTerminal(90*time.Second, id)[id]
	if st.Status != cluster.StateSucceeded {
		t.Fatalf("run %s ended %s (%s); want succeeded", id, st.Status, st.Error)
	}
	if st.TraceParent == "" {
		t.Errorf("run state has no trace parent")
	}

	// The EVENTS messages carry a lowercase W3C traceparent header.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events, err := c.js.Stream(ctx, cluster.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := events.GetLastMsgForSubject(ctx, cluster.EventFilter(cluster.KindRun, id)); err != nil {
		t.Errorf("last run event: %v", err)
	} else if tp := m.Header.Get("traceparent"); tp == "" || !strings.Contains(st.TraceParent, tp[3:35]) {
		t.Errorf("run event headers %v: want a lowercase traceparent in the trace of %q", m.Header, st.TraceParent)
	}

	// Poll until every service's spans have arrived.
	const wantSteps, wantCkpts = steps / 10, steps / ckptEvery
	var tr jTrace
	count := map[string]int{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ids := map[string]bool{}
		for _, svc := range []string{"gorch-coordinator", "gorch-worker", "gorch-collector"} {
			for _, x := range j.traces(t, svc, id) {
				ids[x.TraceID] = true
			}
		}
		var all []jTrace
		if len(ids) == 1 {
			all = j.traces(t, "gorch-coordinator", id)
		}
		clear(count)
		if len(all) == 1 {
			tr = all[0]
			for _, s := range tr.Spans {
				count[s.OperationName]++
			}
		}
		if len(ids) > 1 {
			t.Fatalf("run %s's spans are in %d traces %v; want one", id, len(ids), ids)
		}
		if count["submit"] == 1 && count["run"] == 1 && count["train.step"] == wantSteps && count["checkpoint"] == wantCkpts &&
			count["collector.write"] >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace of run %s after 60s: %d trace(s), spans %v; want submit 1, run 1, train.step %d, checkpoint %d, collector.write ≥ 1",
				id, len(ids), count, wantSteps, wantCkpts)
		}
		time.Sleep(250 * time.Millisecond)
	}

	byName := map[string][]jSpan{}
	for _, s := range tr.Spans {
		byName[s.OperationName] = append(byName[s.OperationName], s)
	}
	service := func(s jSpan) string { return tr.Processes[s.ProcessID].ServiceName }
	submit, run := byName["submit"][0], byName["run"][0]
	if p := submit.parent(); p != "" {
		t.Errorf("submit span has parent %s; want it to be the root", p)
	}
	if p := run.parent(); p != submit.SpanID {
		t.Errorf("run span's parent = %q; want the submit span %s", p, submit.SpanID)
	}
	checks := []struct {
		span    jSpan
		service string
		kind    string
	}{{submit, "gorch-coordinator", "producer"}, {run, "gorch-worker", "consumer"}}
	for _, c := range checks {
		if got := service(c.span); got != c.service {
			t.Errorf("%s span from service %q; want %q", c.span.OperationName, got, c.service)
		}
		if got := c.span.tag("span.kind"); got != c.kind {
			t.Errorf("%s span kind %q; want %q", c.span.OperationName, got, c.kind)
		}
		if got := c.span.tag("messaging.system"); got != "nats" {
			t.Errorf("%s span messaging.system = %q; want nats", c.span.OperationName, got)
		}
	}
	if got := submit.tag("messaging.destination.name"); got != cluster.DispatchSubject(cluster.PriorityNormal) {
		t.Errorf("submit messaging.destination.name = %q; want %q", got, cluster.DispatchSubject(cluster.PriorityNormal))
	}
	if got := run.tag("gorch.attempt"); got != "1" {
		t.Errorf("run span gorch.attempt = %q; want 1", got)
	}
	var stepNums []string
	for _, name := range []string{"train.step", "checkpoint", "collector.write"} {
		want := "gorch-worker"
		if name == "collector.write" {
			want = "gorch-collector"
		}
		for _, s := range byName[name] {
			if s.parent() != run.SpanID {
				t.Errorf("%s span %s has parent %q; want the run span %s", name, s.SpanID, s.parent(), run.SpanID)
			}
			if service(s) != want {
				t.Errorf("%s span from service %q; want %q", name, service(s), want)
			}
			if name == "train.step" {
				stepNums = append(stepNums, s.tag("gorch.step"))
			}
		}
	}
	slices.Sort(stepNums)
	if want := []string{"10", "20", "30", "40"}; !slices.Equal(stepNums, want) {
		t.Errorf("train.step spans at steps %v; want %v (GORCH_TRACE_STEPS=10)", stepNums, want)
	}
	t.Logf("run %s: one trace %s, %d spans:\n%s", id, tr.TraceID, len(tr.Spans), tr.tree())
}

// tree renders the trace as an indented span tree: name, service, and
// the gorch.step of step and checkpoint spans.
func (tr jTrace) tree() string {
	kids := map[string][]jSpan{}
	for _, s := range tr.Spans {
		kids[s.parent()] = append(kids[s.parent()], s)
	}
	var b strings.Builder
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		ks := kids[parent]
		slices.SortFunc(ks, func(a, b jSpan) int {
			return strings.Compare(a.OperationName+a.tag("gorch.step"), b.OperationName+b.tag("gorch.step"))
		})
		for _, s := range ks {
			fmt.Fprintf(&b, "%s%s [%s]", strings.Repeat("  ", depth), s.OperationName, tr.Processes[s.ProcessID].ServiceName)
			if st := s.tag("gorch.step"); st != "" {
				fmt.Fprintf(&b, " step=%s", st)
			}
			if n := s.tag("messaging.batch.message_count"); n != "" {
				fmt.Fprintf(&b, " messages=%s", n)
			}
			b.WriteByte('\n')
			walk(s.SpanID, depth+1)
		}
	}
	walk("", 0)
	return b.String()
}
