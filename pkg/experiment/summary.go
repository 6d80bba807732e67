package experiment

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Rollup computes run summaries as records stream past: per metric count,
// min, max, mean, last, and per telemetry event count, total, mean, max.
// Metric values are kept as they arrive (step, attempt and value: 20 bytes
// each) and summarised when asked, one value per step: values that a later
// attempt superseded are counted apart (see [Attempt] and
// [Rollup.SetAttempts]).
//
// # Percentiles
//
// P50 and P95 are exact nearest-rank percentiles, not sketch estimates:
// the p-th percentile of n values is the ⌈p·n⌉-th smallest, found with
// quickselect, O(n) expected time, so 1 million points roll up in a few
// milliseconds (BenchmarkSummaryRollup1M; target ≤ 100 ms). The price is
// memory: a metric logged 10 million times holds 200 MB until the summary
// is written.
//
// A Rollup is safe for concurrent use.
type Rollup struct {
	mu       sync.Mutex
	metrics  map[string]*metricAcc
	events   map[string]*eventAcc
	attempts []Attempt
	stored   map[int]int64 // metric values stored per attempt
	scratch  []float64
}

// metricAcc holds one metric's values in arrival order.
type metricAcc struct {
	steps    []int64
	attempts []int32
	vals     []float64
}

// grow makes room for at least n more values, doubling the capacity:
// append grows large slices by a quarter, which copied each value about
// four times over a long run (and allocated five times its size).
func (a *metricAcc) grow(n int) {
	n = max(n, len(a.vals), 64)
	a.steps = slices.Grow(a.steps, n)
	a.attempts = slices.Grow(a.attempts, n)
	a.vals = slices.Grow(a.vals, n)
}

type eventAcc struct {
	count      int64
	total, max float64
	vals       []float64
}

// NewRollup returns an empty rollup.
func NewRollup() *Rollup {
	return &Rollup{metrics: map[string]*metricAcc{}, events: map[string]*eventAcc{}, stored: map[int]int64{}}
}

// SetAttempts tells the rollup the run's attempts, whose resume steps
// decide which values are superseded.
func (r *Rollup) SetAttempts(attempts []Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts[:0], attempts...)
}

// AddMetrics adds values in log order.
func (r *Rollup) AddMetrics(ms []Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A run logs a few names in turn: remember the last few accumulators.
	var recent [4]struct {
		name string
		acc  *metricAcc
	}
	lastAttempt, n := 0, int64(0)
	for i := range ms {
		m := &ms[i]
		var a *metricAcc
		for j := range recent {
			if recent[j].acc != nil && recent[j].name == m.Name {
				a = recent[j].acc
				break
			}
		}
		if a == nil {
			if a = r.metrics[m.Name]; a == nil {
				a = &metricAcc{}
				r.metrics[m.Name] = a
			}
			copy(recent[1:], recent[:len(recent)-1])
			recent[0].name, recent[0].acc = m.Name, a
		}
		if len(a.vals) == cap(a.vals) {
			a.grow(len(ms) - i)
		}
		a.steps = append(a.steps, m.Step)
		a.attempts = append(a.attempts, int32(min(m.Attempt, math.MaxInt32)))
		a.vals = append(a.vals, m.Value)
		if m.Attempt != lastAttempt {
			r.stored[lastAttempt] += n
			lastAttempt, n = m.Attempt, 0
		}
		n++
	}
	r.stored[lastAttempt] += n
	delete(r.stored, 0)
}

// eachPoint calls f with every metric value's name, attempt and step.
func (r *Rollup) eachPoint(f func(name string, attempt int, step int64)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, a := range r.metrics {
		for i, s := range a.steps {
			f(name, int(a.attempts[i]), s)
		}
	}
}

// Stored returns the number of metric values stored for attempt,
// superseded ones included.
func (r *Rollup) Stored(attempt int) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stored[attempt]
}

// AddEvents adds telemetry events.
func (r *Rollup) AddEvents(es []TelemetryEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range es {
		a := r.events[es[i].Name]
		if a == nil {
			a = &eventAcc{}
			r.events[es[i].Name] = a
		}
		d := es[i].Duration.Seconds()
		a.count++
		a.total += d
		a.max = max(a.max, d)
		a.vals = append(a.vals, d)
	}
}

// Metrics returns the summary of every metric.
func (r *Rollup) Metrics() map[string]MetricSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	sp := newSupersession(r.attempts)
	out := make(map[string]MetricSummary, len(r.metrics))
	for name, a := range r.metrics {
		out[name] = r.summarizeMetric(a, sp)
	}
	return out
}

// summarizeMetric rolls up the values of a in force; r.mu is held.
func (r *Rollup) summarizeMetric(a *metricAcc, sp *supersession) MetricSummary {
	var s MetricSummary
	vals := r.scratch[:0]
	lastStep := int64(math.MinInt64)
	s.Min, s.Max = math.Inf(1), math.Inf(-1)
	var sum float64
	add := func(step int64, v float64) {
		s.Count++
		if math.IsNaN(v) || math.IsInf(v, 0) {
			s.NonFinite++
			return
		}
		s.Min, s.Max = min(s.Min, v), max(s.Max, v)
		sum += v
		if step >= lastStep {
			s.Last, lastStep = v, step
		}
		vals = append(vals, v)
	}
	// At a later attempt's resume step the latest attempt's value wins.
	type best struct {
		attempt int32
		v       float64
	}
	var atBound map[int64]best
	for i, step := range a.steps {
		at := a.attempts[i]
		switch {
		case !sp.active():
		case sp.superseded(int(at), step):
			s.Superseded++
			continue
		case sp.bound(step):
			if atBound == nil {
				atBound = map[int64]best{}
			}
			if b, ok := atBound[step]; ok {
				s.Superseded++
				if at < b.attempt {
					continue
				}
			}
			atBound[step] = best{at, a.vals[i]}
			continue
		}
		add(step, a.vals[i])
	}
	for step, b := range atBound {
		add(step, b.v)
	}
	if n := len(vals); n > 0 {
		s.Mean = sum / float64(n)
		s.P50, s.P95 = percentiles(vals)
		s.LastStep = lastStep
	} else {
		s.Min, s.Max = 0, 0
	}
	r.scratch = vals[:0]
	return s
}

// Events returns the summary of every telemetry event.
func (r *Rollup) Events() map[string]EventSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]EventSummary, len(r.events))
	for name, a := range r.events {
		s := EventSummary{Count: a.count, Total: a.total, Max: a.max}
		if a.count > 0 {
			s.Mean = a.total / float64(a.count)
			s.P50, s.P95 = percentiles(a.vals)
		}
		out[name] = s
	}
	return out
}

// rank returns the 0-based index of the nearest-rank p-quantile of n values.
func rank(p float64, n int) int {
	k := int(math.Ceil(p*float64(n))) - 1
	return max(0, min(k, n-1))
}

// percentiles returns the exact nearest-rank p50 and p95 of v, reordering v.
func percentiles(v []float64) (p50, p95 float64) {
	k95 := rank(0.95, len(v))
	k50 := rank(0.50, len(v))
	p95 = quickselect(v, k95)
	// Everything before k95 is now ≤ v[k95], and k50 ≤ k95.
	p50 = quickselect(v[:k95+1], k50)
	return p50, p95
}

// quickselect reorders v so that v[k] is the k-th smallest value, with
// smaller-or-equal values before it, and returns v[k]. v holds no NaNs.
func quickselect(v []float64, k int) float64 {
	lo, hi := 0, len(v)-1
	seed := uint64(len(v))*0x9e3779b97f4a7c15 + 1
	for hi > lo {
		if hi-lo < 16 {
			insertionSort(v[lo : hi+1])
			break
		}
		// Median of three random-ish samples guards against sorted input.
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		n := uint64(hi - lo + 1)
		a, b, c := lo+int(seed%n), lo+int((seed>>21)%n), lo+int((seed>>42)%n)
		pivot := median3(v[a], v[b], v[c])
		// Hoare partition: handles runs of equal values in linear time.
		i, j := lo, hi
		for i <= j {
			for v[i] < pivot {
				i++
			}
			for v[j] > pivot {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k] // j < k < i: v[k] == pivot
		}
	}
	return v[k]
}

func median3(a, b, c float64) float64 {
	if a > b {
		a, b = b, a
	}
	if b > c {
		b = c
	}
	return max(a, b)
}

func insertionSort(v []float64) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// summarize builds a Summary from a run and its rollup.
func summarize(run Run, r *Rollup, dropped uint64, complete bool) Summary {
	return Summary{
		Run: run, Status: run.Status, Dropped: dropped,
		Complete: complete && dropped == 0 && run.Status == StatusSucceeded,
		Metrics:  r.Metrics(), Telemetry: r.Events(), Updated: time.Now().UTC(),
	}
}
