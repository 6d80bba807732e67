package collector

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/cputime"
	"github.com/gorch/gorch/pkg/experiment"
)

// BenchmarkWritePath measures a writer's CPU per metric point without
// NATS: decoding MetricBatch envelopes of 256 points, applying them to an
// Ingest and storing them as one segment per 64 batches in a local store
// (fsync included). cpu-ns/point is the process's CPU time (user and
// system) per point, steadier than wall time on a shared machine.
func BenchmarkWritePath(b *testing.B) {
	st, err := experiment.NewLocalStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	in := experiment.NewIngest(st, slog.New(slog.DiscardHandler))
	const run, perFlush, points = "20261201T100000000000Z-abcd1234", 64, 256
	names := []string{"loss", "acc", "lr", "grad_norm"}
	now := time.Now()
	encode := func(seq int64) []byte {
		mb := cluster.MetricBatch{RunID: run, Attempt: 1, Seq: seq, Points: make([]cluster.MetricPoint, points)}
		for i := range mb.Points {
			k := int(seq)*points + i
			mb.Points[i] = cluster.MetricPoint{Step: int64(k / 4), Name: names[k%4], Value: float64(k) * 1e-3, Time: now}
		}
		msg, err := cluster.Encode(cluster.TypeMetricBatch, &mb)
		if err != nil {
			b.Fatal(err)
		}
		return msg
	}
	// The envelopes are encoded once: each round applies them under new
	// seqs (the Ingest deduplicates by the seq it is given).
	msgs := make([][]byte, perFlush)
	for i := range msgs {
		msgs[i] = encode(int64(i + 1))
	}
	var d batchDecoder
	ctx := context.Background()
	b.ReportAllocs()
	var seq int64
	var cpu time.Duration
	for b.Loop() {
		seq += perFlush
		cpu0 := cputime.Process()
		for i, m := range msgs {
			mb, err := d.decodeMetricBatch(m)
			if err != nil {
				b.Fatal(err)
			}
			if err := in.Metrics(ctx, run, 1, seq-perFlush+int64(i)+1, 0, mb.points); err != nil {
				b.Fatal(err)
			}
		}
		if err := in.Flush(ctx, run); err != nil {
			b.Fatal(err)
		}
		cpu += cputime.Process() - cpu0
	}
	b.ReportMetric(float64(b.N*perFlush*points)/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(cpu)/float64(b.N*perFlush*points), "cpu-ns/point")
}
