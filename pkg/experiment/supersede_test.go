package experiment

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"
)

type stepName struct {
	step int64
	name string
}

// inForce reads a run's metrics through ReadMetrics, failing on a second
// value for a (step, name): the uniqueness a pandas pivot needs.
func inForce(t *testing.T, st Store, id string) map[stepName]Metric {
	t.Helper()
	out := map[stepName]Metric{}
	for m, err := range NewReader(st).ReadMetrics(context.Background(), id) {
		if err != nil {
			t.Fatal(err)
		}
		k := stepName{m.Step, m.Name}
		if prev, dup := out[k]; dup {
			t.Fatalf("ReadMetrics: two values at step %d of %s (attempts %d and %d)", m.Step, m.Name, prev.Attempt, m.Attempt)
		}
		out[k] = m
	}
	return out
}

// logSteps logs loss at steps [from, to] and eval at the given steps.
func logSteps(t *testing.T, rec *Recorder, from, to int64, evals ...int64) {
	t.Helper()
	for s := from; s <= to; s++ {
		if err := rec.Log(s, "loss", float64(rec.Run().Attempt*1000)+float64(s)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range evals {
		if err := rec.Log(s, "eval", float64(rec.Run().Attempt*1000)+float64(s)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecordsAcrossAttempts: attempt 1 trains steps 1–20 (checkpoint at
// 10) and dies; attempt 2 resumes from 10, repeats the evaluation at 10
// (as an end-of-epoch evaluation after the checkpoint does), trains to 15
// and dies; attempt 3 resumes from 10 again and finishes at 30. Readers
// return one value per (step, name), the latest attempt's; the summary
// counts each step once and the rest as superseded; every value stays
// stored.
func TestRecordsAcrossAttempts(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	rec, err := Create(ctx, st, Run{Name: "resumed"}, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := rec.ID()
	logSteps(t, rec, 1, 20, 10, 20)
	if err := rec.Flush(); err != nil { // then the process dies
		t.Fatal(err)
	}
	for _, a := range []struct {
		attempt  int
		to       int64
		evals    []int64
		finished bool
	}{{2, 15, []int64{10}, false}, {3, 30, []int64{10, 20, 30}, true}} {
		rec, err = Resume(ctx, st, id, LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := rec.SetResume(ctx, 10); err != nil {
			t.Fatal(err)
		}
		logSteps(t, rec, 11, a.to, a.evals...)
		if err := rec.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Finish(ctx, StatusSucceeded, nil); err != nil {
		t.Fatal(err)
	}

	got := inForce(t, st, id)
	if len(got) != 30+3 {
		t.Errorf("ReadMetrics: %d values, want 33 (loss at 1–30, eval at 10, 20, 30)", len(got))
	}
	for k, m := range got {
		want := 3
		if k.name == "loss" && k.step <= 10 {
			want = 1
		}
		if m.Attempt != want || m.Value != float64(want*1000)+float64(k.step) {
			t.Errorf("%s at step %d: attempt %d value %v, want attempt %d's", k.name, k.step, m.Attempt, m.Value, want)
		}
	}
	stored := 0
	for _, err := range NewReader(st).ReadStoredMetrics(ctx, id) {
		if err != nil {
			t.Fatal(err)
		}
		stored++
	}
	if want := (20 + 2) + (5 + 1) + (20 + 3); stored != want {
		t.Errorf("ReadStoredMetrics: %d values, want %d (superseded ones stay stored)", stored, want)
	}
	sum, err := NewReader(st).GetSummary(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][2]int64{"loss": {30, 10 + 5}, "eval": {3, 2 + 1}} {
		if m := sum.Metrics[name]; m.Count != want[0] || m.Superseded != want[1] || m.LastStep != 30 {
			t.Errorf("summary %s: count %d superseded %d last step %d, want %d %d 30", name, m.Count, m.Superseded, m.LastStep, want[0], want[1])
		}
	}
	if l := sum.Metrics["loss"]; l.Min != 1001 || l.Max != 3030 || l.Last != 3030 {
		t.Errorf("summary loss min %v max %v last %v, want 1001 3030 3030", l.Min, l.Max, l.Last)
	}
	var resumes []int64
	for _, a := range sum.Run.Attempts {
		resumes = append(resumes, a.ResumeStep)
	}
	if !slices.Equal(resumes, []int64{0, 10, 10}) || sum.Run.Attempts[2].Status != StatusSucceeded || sum.Run.Attempts[2].Duration() <= 0 {
		t.Errorf("run attempts = %+v, want resume steps 0 10 10, the last succeeded with a duration", sum.Run.Attempts)
	}
}

// TestRollupSupersessionAgainstNaive compares the rollup with the
// definition, on random attempts: a value of attempt a at step s is
// superseded if a later attempt resumed before s; of the rest, the latest
// attempt's value at each step wins.
func TestRollupSupersessionAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		var attempts []Attempt
		var ms []Metric
		end := int64(0)
		for a := 1; a <= 1+rng.IntN(4); a++ {
			resume := int64(0)
			if a > 1 && end > 0 {
				resume = rng.Int64N(end + 1)
			}
			attempts = append(attempts, Attempt{Attempt: a, ResumeStep: resume})
			end = resume + 1 + rng.Int64N(30)
			for s := resume; s <= end; s++ {
				if s == resume && (s == 0 || rng.IntN(2) == 0) {
					continue // a resumed attempt logs at its resume step only sometimes
				}
				ms = append(ms, Metric{Attempt: a, Step: s, Name: "m", Value: rng.NormFloat64()})
			}
		}
		rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] }) // arrival order does not matter
		r := NewRollup()
		r.SetAttempts(attempts)
		r.AddMetrics(ms)
		got := r.Metrics()["m"]

		win := map[int64]Metric{}
		for _, m := range ms {
			sup := false
			for _, b := range attempts {
				sup = sup || b.Attempt > m.Attempt && b.ResumeStep < m.Step
			}
			if w, ok := win[m.Step]; !sup && (!ok || m.Attempt > w.Attempt) {
				win[m.Step] = m
			}
		}
		var vals []float64
		want := MetricSummary{Count: int64(len(win)), Superseded: int64(len(ms) - len(win)), Min: math.Inf(1), Max: math.Inf(-1)}
		for s, m := range win {
			vals = append(vals, m.Value)
			want.Min, want.Max = min(want.Min, m.Value), max(want.Max, m.Value)
			want.Mean += m.Value / float64(len(win))
			if s >= want.LastStep {
				want.Last, want.LastStep = m.Value, s
			}
		}
		slices.Sort(vals)
		n := len(vals)
		want.P50, want.P95 = vals[int(math.Ceil(0.5*float64(n)))-1], vals[int(math.Ceil(0.95*float64(n)))-1]
		if math.Abs(got.Mean-want.Mean) < 1e-9 {
			got.Mean = want.Mean
		}
		if got != want {
			t.Fatalf("trial %d (attempts %+v): rollup = %+v, want %+v", trial, attempts, got, want)
		}
	}
}

// TestIngestRecordsArriveOutOfOrder drives an Ingest as the collector
// does: an attempt's records before its start, a duplicate batch, an end
// that reports values not yet stored, and those values arriving after the
// end, with a new Ingest (a restarted collector) in between.
func TestIngestRecordsArriveOutOfOrder(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	batch := func(from, to int64) []Metric {
		var ms []Metric
		for s := from; s <= to; s++ {
			ms = append(ms, Metric{Step: s, Name: "loss", Value: float64(s), Time: t0})
		}
		return ms
	}
	in := NewIngest(st, slog.New(slog.DiscardHandler))
	const id = "run-ingest"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(in.Metrics(ctx, id, 1, 1, 0, batch(1, 10))) // before the start
	must(in.Start(ctx, id, AttemptStart{Attempt: 1, Started: t0, Name: "n", Worker: "w1", Version: "v1"}))
	must(in.Metrics(ctx, id, 1, 1, 0, batch(1, 10))) // a redelivery
	must(in.Flush(ctx, id))
	must(in.End(ctx, id, AttemptEnd{Attempt: 1, Status: StatusSucceeded, Started: t0, Finished: t0.Add(time.Minute), Published: 30}))
	rd := NewReader(st)
	s, err := rd.GetSummary(ctx, id)
	if err != nil || s.Complete || s.Missing != 20 || s.Dropped != 20 || s.Metrics["loss"].Count != 10 {
		t.Fatalf("summary after the end = %+v, %v; want incomplete, 20 missing of 30", s, err)
	}
	if r := s.Run; r.Name != "n" || r.Tags["worker"] != "w1" || r.GorchVersion != "v1" || r.Duration() != time.Minute {
		t.Errorf("run = %+v; want the start's name, worker and version and the producer's one-minute duration", r)
	}

	in = NewIngest(st, slog.New(slog.DiscardHandler)) // the collector restarted
	must(in.Metrics(ctx, id, 1, 2, 0, batch(11, 20)))
	must(in.Metrics(ctx, id, 1, 1, 0, batch(1, 10))) // stored before the restart
	must(in.Flush(ctx, id))
	if s, _ = rd.GetSummary(ctx, id); s.Missing != 10 || s.Complete || s.Status != StatusSucceeded {
		t.Errorf("summary with 10 values still missing = missing %d complete %v status %s", s.Missing, s.Complete, s.Status)
	}
	must(in.Metrics(ctx, id, 1, 3, 0, batch(21, 30)))
	must(in.Flush(ctx, id))
	s, _ = rd.GetSummary(ctx, id)
	if !s.Complete || s.Dropped != 0 || s.Metrics["loss"].Count != 30 || s.Run.Finished != t0.Add(time.Minute) {
		t.Errorf("final summary = complete %v dropped %d count %d finished %v; want complete, 0, 30, the producer's end",
			s.Complete, s.Dropped, s.Metrics["loss"].Count, s.Run.Finished)
	}
	if got := inForce(t, st, id); len(got) != 30 {
		t.Errorf("ReadMetrics: %d values, want 30", len(got))
	}
	must(in.Metrics(ctx, id, 1, 3, 0, batch(21, 30))) // after completion: nothing happens
	if got := inForce(t, st, id); len(got) != 30 {
		t.Errorf("ReadMetrics after a late duplicate: %d values, want 30", len(got))
	}
}

// TestIngestNewerAttempt: attempt 2 starts while attempt 1 is open (its
// worker died); attempt 1's late records keep their number and are
// superseded past attempt 2's resume step; a stale end is ignored.
func TestIngestNewerAttempt(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	in := NewIngest(st, slog.New(slog.DiscardHandler))
	const id = "run-newer"
	ms := func(a int, from, to int64) []Metric {
		var out []Metric
		for s := from; s <= to; s++ {
			out = append(out, Metric{Step: s, Name: "loss", Value: float64(100*a) + float64(s)})
		}
		return out
	}
	for _, err := range []error{
		in.Start(ctx, id, AttemptStart{Attempt: 1}),
		in.Metrics(ctx, id, 1, 1, 0, ms(1, 1, 8)),
		in.Start(ctx, id, AttemptStart{Attempt: 2, Resume: 5}),
		in.Metrics(ctx, id, 2, 1, 5, ms(2, 6, 12)),
		in.Metrics(ctx, id, 1, 2, 0, ms(1, 9, 9)), // late, from the dead worker
		in.End(ctx, id, AttemptEnd{Attempt: 1, Status: StatusFailed}),
		in.End(ctx, id, AttemptEnd{Attempt: 2, Status: StatusSucceeded, Published: 7}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := inForce(t, st, id)
	for s := int64(1); s <= 12; s++ {
		want := 1
		if s > 5 {
			want = 2
		}
		if m := got[stepName{s, "loss"}]; m.Attempt != want {
			t.Errorf("step %d: attempt %d, want %d", s, m.Attempt, want)
		}
	}
	s, err := NewReader(st).GetSummary(ctx, id)
	if err != nil || s.Status != StatusSucceeded || !s.Complete || s.Run.Attempt != 2 || s.Metrics["loss"].Superseded != 4 {
		t.Errorf("summary = %+v, %v; want attempt 2 succeeded, complete, 4 superseded", s, err)
	}
}

func ExampleReader_ReadMetrics() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "gorch-example-")
	defer os.RemoveAll(dir)
	st, _ := NewLocalStore(dir)
	rec, _ := Create(ctx, st, Run{ID: "example"}, LogOptions{})
	for s := int64(1); s <= 4; s++ {
		rec.Log(s, "loss", float64(s))
	}
	rec.Flush() // the process dies after step 4; the checkpoint was at step 2
	rec, _ = Resume(ctx, st, "example", LogOptions{})
	rec.SetResume(ctx, 2)
	for s := int64(3); s <= 5; s++ {
		rec.Log(s, "loss", float64(s)+0.5)
	}
	rec.Finish(ctx, StatusSucceeded, nil)
	for m, err := range NewReader(st).ReadMetrics(ctx, "example") {
		if err == nil {
			fmt.Println(m.Step, m.Value, "attempt", m.Attempt)
		}
	}
	// Output:
	// 1 1 attempt 1
	// 2 2 attempt 1
	// 3 3.5 attempt 2
	// 4 4.5 attempt 2
	// 5 5.5 attempt 2
}
