package collector

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/cluster"
)

// sameBatch compares two decoded batches, times as instants and values bit
// for bit.
func sameBatch(a, b *metricBatch) bool {
	if a.runID != b.runID || a.attempt != b.attempt || a.seq != b.seq || a.resume != b.resume || len(a.points) != len(b.points) {
		return false
	}
	for i := range a.points {
		p, q := a.points[i], b.points[i]
		if p.Step != q.Step || p.Name != q.Name || math.Float64bits(p.Value) != math.Float64bits(q.Value) || !p.Time.Equal(q.Time) {
			return false
		}
	}
	return true
}

// TestFastDecoderAgrees: on batches as the worker encodes them — every
// integer width, special floats, the three timestamp sizes, no points —
// the fast decoder takes its own path and agrees with cluster.Decode.
func TestFastDecoderAgrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	times := []time.Time{time.Unix(5, 0), time.Unix(1700000000, 123456789), time.Unix(1<<35, 7), time.Unix(-5, 3), {}}
	vals := []float64{0, -1.5, math.NaN(), math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64, 1e300}
	steps := []int64{0, 1, 127, 128, 255, 65535, 1 << 31, 1 << 40, -1, -129, math.MaxInt64}
	var d batchDecoder
	for trial := range 300 {
		b := cluster.MetricBatch{RunID: "20261201T100000000000Z-abcd1234", Attempt: 1 + rng.IntN(300), Seq: steps[rng.IntN(len(steps))],
			Resume: steps[rng.IntN(len(steps))]}
		for range rng.IntN(20) {
			b.Points = append(b.Points, cluster.MetricPoint{Step: steps[rng.IntN(len(steps))], Name: []string{"loss", "eval/acc", "é"}[rng.IntN(3)],
				Value: vals[rng.IntN(len(vals))], Time: times[rng.IntN(len(times))]})
		}
		enc, err := cluster.Encode(cluster.TypeMetricBatch, &b)
		if err != nil {
			t.Fatal(err)
		}
		fast, err := d.fast(enc)
		if err != nil {
			t.Fatalf("trial %d: the fast path refused a batch the wire package wrote: %v", trial, err)
		}
		slow, err := slowDecode(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !sameBatch(fast, slow) {
			t.Fatalf("trial %d: fast decode %+v, cluster.Decode %+v", trial, fast, slow)
		}
	}
}

// TestFastDecoderFallsBack: encodings the fast path does not take (extra
// fields, a point that is nil, another type or version, garbage) give what
// cluster.Decode gives: the same batch or an error.
func TestFastDecoderFallsBack(t *testing.T) {
	body := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	env := func(v uint8, typ string, b []byte) []byte {
		e, err := msgpack.Marshal(&cluster.Envelope{V: v, Type: typ, Body: b})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	point := map[string]any{"s": 3, "n": "loss", "v": 2, "t": time.Unix(9, 0), "extra": []any{1, map[string]any{"x": nil}}}
	cases := map[string][]byte{
		"extra fields":   env(1, cluster.TypeMetricBatch, body(map[string]any{"run": "r", "attempt": 1, "seq": 2, "points": []any{point}, "more": "x"})),
		"nil point":      env(1, cluster.TypeMetricBatch, body(map[string]any{"run": "r", "attempt": 1, "points": []any{nil}})),
		"string attempt": env(1, cluster.TypeMetricBatch, body(map[string]any{"run": "r", "attempt": "1"})),
		"other type":     env(1, cluster.TypeRunEvent, body(map[string]any{"run": "r"})),
		"other version":  env(2, cluster.TypeMetricBatch, body(map[string]any{"run": "r"})),
		"truncated":      env(1, cluster.TypeMetricBatch, body(map[string]any{"run": "r"}))[:10],
		"garbage":        []byte("not msgpack at all"),
		"empty":          nil,
		"deeply nested":  env(1, cluster.TypeMetricBatch, body(map[string]any{"run": "r", "x": nested(100)})),
	}
	var d batchDecoder
	for name, b := range cases {
		got, err := d.decodeMetricBatch(b)
		want, werr := slowDecode(b)
		switch {
		case (err == nil) != (werr == nil):
			t.Errorf("%s: decode error %v, cluster.Decode error %v", name, err, werr)
		case err == nil && !sameBatch(got, want):
			t.Errorf("%s: decoded %+v, cluster.Decode %+v", name, got, want)
		}
	}
}

func nested(n int) any {
	var v any = 1
	for range n {
		v = []any{v}
	}
	return v
}

// FuzzFastDecoder: whatever the bytes, the fast path either refuses them
// or agrees with cluster.Decode.
func FuzzFastDecoder(f *testing.F) {
	b, _ := cluster.Encode(cluster.TypeMetricBatch, &cluster.MetricBatch{RunID: "r", Attempt: 2, Seq: 3,
		Points: []cluster.MetricPoint{{Step: 1, Name: "loss", Value: 0.5, Time: time.Unix(1700000000, 5)}}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var d batchDecoder
		fast, err := d.fast(b)
		if err != nil {
			return
		}
		slow, err := slowDecode(b)
		if err != nil || !sameBatch(fast, slow) {
			t.Fatalf("fast path took %x: %+v; cluster.Decode: %+v, %v", b, fast, slow, err)
		}
	})
}

func TestInternBounded(t *testing.T) {
	var d batchDecoder
	for i := range maxInterned + 10 {
		d.intern([]byte{byte(i), byte(i >> 8)})
	}
	if len(d.names) > maxInterned {
		t.Errorf("%d interned names, want at most %d", len(d.names), maxInterned)
	}
	if s := d.intern([]byte("loss")); s != "loss" || !reflect.DeepEqual(d.names["loss"], "loss") {
		t.Errorf("intern(loss) = %q", s)
	}
}
