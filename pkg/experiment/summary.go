package experiment

import (
	"math"
	"sync"
	"time"
)

// Rollup computes run summaries as records stream past: per metric count,
// min, max, mean, last, and per telemetry event count, total, mean, max,
// in O(1) per record.
//
// # Percentiles
//
// P50 and P95 are exact nearest-rank percentiles, not sketch estimates:
// the p-th percentile of n values is the ⌈p·n⌉-th smallest. The rollup keeps
// every finite value (8 bytes per point) and finds the two ranks with
// quickselect, O(n) expected time, so 1 million points roll up in a few
// milliseconds (BenchmarkSummaryRollup1M; target ≤ 100 ms). The price is
// memory: a metric logged 10 million times holds 80 MB until the summary is
// written.
//
// A Rollup is safe for concurrent use.
type Rollup struct {
	mu      sync.Mutex
	metrics map[string]*metricAcc
	events  map[string]*eventAcc
}

type metricAcc struct {
	count, nonfinite int64
	min, max, sum    float64
	last             float64
	lastStep         int64
	vals             []float64
}

type eventAcc struct {
	count      int64
	total, max float64
	vals       []float64
}

// NewRollup returns an empty rollup.
func NewRollup() *Rollup {
	return &Rollup{metrics: map[string]*metricAcc{}, events: map[string]*eventAcc{}}
}

// AddMetrics adds values in log order.
func (r *Rollup) AddMetrics(ms []Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var name string
	var a *metricAcc
	for i := range ms {
		m := &ms[i]
		if a == nil || m.Name != name {
			name = m.Name
			a = r.metrics[name]
			if a == nil {
				a = &metricAcc{min: math.Inf(1), max: math.Inf(-1)}
				r.metrics[name] = a
			}
		}
		a.count++
		v := m.Value
		if math.IsNaN(v) || math.IsInf(v, 0) {
			a.nonfinite++
			continue
		}
		a.min = min(a.min, v)
		a.max = max(a.max, v)
		a.sum += v
		a.last, a.lastStep = v, m.Step
		a.vals = append(a.vals, v)
	}
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
	out := make(map[string]MetricSummary, len(r.metrics))
	for name, a := range r.metrics {
		s := MetricSummary{Count: a.count, NonFinite: a.nonfinite, Last: a.last, LastStep: a.lastStep}
		if n := len(a.vals); n > 0 {
			s.Min, s.Max, s.Mean = a.min, a.max, a.sum/float64(n)
			s.P50, s.P95 = percentiles(a.vals)
		}
		out[name] = s
	}
	return out
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
