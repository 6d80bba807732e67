package experiment

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkMetricsLogger measures Log throughput into metrics segments on
// the local store, including the final flush. Target: ≥ 2 million records/s.
func BenchmarkMetricsLogger(b *testing.B) {
	s := newLocal(b)
	l, err := NewMetricsLogger(context.Background(), s, NewRunID(), 1, LogOptions{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	names := [4]string{"loss", "accuracy", "lr", "grad_norm"}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if err := l.Log(int64(i), names[i&3], float64(i)*1e-3); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkSummaryRollup1M measures rolling up 1 million points of one
// metric, from records to the summary with exact p50/p95. Target: ≤ 100 ms.
func BenchmarkSummaryRollup1M(b *testing.B) {
	const n = 1_000_000
	rng := rand.New(rand.NewPCG(1, 2))
	ms := make([]Metric, n)
	for i := range ms {
		ms[i] = Metric{Run: "r", Attempt: 1, Step: int64(i), Name: "loss", Value: rng.NormFloat64()}
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		r := NewRollup()
		r.AddMetrics(ms)
		if s := r.Metrics()["loss"]; s.Count != n {
			b.Fatal(s)
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms")
}
