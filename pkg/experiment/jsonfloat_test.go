package experiment

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jsonFloatCases returns values for appendJSONFloat: edges, decimals with
// few digits (the fast path) at every scale, the benchmark's k·0.001,
// float32-valued numbers and random bit patterns (mostly strconv).
func jsonFloatCases() []float64 {
	vs := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 0.2, 0.3, 1e-4, 9.999e-5, 1e-5, 1e5, 999999, 1e6, 1e15, 1e16,
		1e21, 1e22, 1e23, 5e-324, math.SmallestNonzeroFloat64, math.MaxFloat64, -math.MaxFloat64, 1 << 50, 1<<50 - 1,
		1<<50 + 1, 1 << 53, 1<<53 + 2, 0.1 + 0.2, 1.0 / 3, 2.0 / 3, math.Pi, math.E, 123456789, 1234567.5, 0.9375,
		3e-5, 1e-20, 1.5e-22, 7e-23, 4.35, 4.345, 2.675, 1.005, 9007199254740993, 0.000123, 100, 120, 1200000}
	for i := range pow10 {
		vs = append(vs, pow10[i], -pow10[i], 1/pow10[i], math.Nextafter(pow10[i], 0), math.Nextafter(pow10[i], math.Inf(1)))
	}
	for k := range 200000 {
		vs = append(vs, float64(k)*0.001)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 300000 {
		digits := r.IntN(17) + 1
		m := r.Uint64N(uint64(math.Pow10(digits)))
		v := float64(m) / math.Pow10(r.IntN(30))
		if r.IntN(2) == 0 {
			v = -v
		}
		vs = append(vs, v, math.Nextafter(v, math.Inf(1)), math.Nextafter(v, math.Inf(-1)))
		vs = append(vs, float64(float32(r.Float64()*math.Pow10(r.IntN(12)-6))))
		vs = append(vs, math.Float64frombits(r.Uint64()))
		// Near the fast path's 2^50 bound, at several scales.
		vs = append(vs, float64(uint64(1)<<50-r.Uint64N(1<<20))/math.Pow10(r.IntN(16)))
	}
	return vs
}

func TestAppendJSONFloat(t *testing.T) {
	fast := 0
	for _, v := range jsonFloatCases() {
		got := string(appendJSONFloat(nil, v))
		switch {
		case math.IsNaN(v):
			if got != `"NaN"` {
				t.Fatalf("appendJSONFloat(NaN) = %s, want \"NaN\"", got)
			}
			continue
		case math.IsInf(v, 0):
			if want := map[bool]string{true: `"+Inf"`, false: `"-Inf"`}[v > 0]; got != want {
				t.Fatalf("appendJSONFloat(%v) = %s, want %s", v, got, want)
			}
			continue
		}
		if want := strconv.FormatFloat(v, 'g', -1, 64); got != want {
			t.Fatalf("appendJSONFloat(%b) = %s, want %s", v, got, want)
		}
		var back float64
		if err := json.Unmarshal([]byte(got), &back); err != nil || math.Float64bits(back) != math.Float64bits(v) {
			t.Fatalf("appendJSONFloat(%b) = %s reads back as %b (%v)", v, got, back, err)
		}
		if _, _, ok := shortDecimal(math.Abs(v)); ok {
			fast++
		}
	}
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		var back jsonFloat
		if err := json.Unmarshal(appendJSONFloat(nil, v), &back); err != nil || (float64(back) != v && !math.IsNaN(v)) {
			t.Fatalf("appendJSONFloat(%v) reads back as %v (%v)", v, back, err)
		}
	}
	if fast < 200000 {
		t.Fatalf("the fast path took %d values, want ≥ 200000 (it should take most short decimals)", fast)
	}
}

func FuzzAppendJSONFloat(f *testing.F) {
	for _, v := range []float64{0, 0.001, 1234.567, 1e-7, 123456789, 0.1 + 0.2} {
		f.Add(math.Float64bits(v))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		v := math.Float64frombits(bits)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		if got, want := string(appendJSONFloat(nil, v)), strconv.FormatFloat(v, 'g', -1, 64); got != want {
			t.Fatalf("appendJSONFloat(%b) = %s, want %s", v, got, want)
		}
	})
}

// BenchmarkAppendJSONFloat compares the encoder's float formatting with
// strconv on the cluster benchmark's values (k·0.001) and on float32-valued
// ones (a loss from a float32 tensor: 17 digits, strconv's path).
func BenchmarkAppendJSONFloat(b *testing.B) {
	bench := make([]float64, 4096)
	f32 := make([]float64, 4096)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range bench {
		bench[i] = float64(i*977) * 0.001
		f32[i] = float64(float32(r.Float64() * 3))
	}
	buf := make([]byte, 0, 64)
	for _, c := range []struct {
		name string
		vs   []float64
	}{{"bench", bench}, {"float32", f32}} {
		b.Run("gorch/"+c.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				buf = appendJSONFloat(buf[:0], c.vs[i%len(c.vs)])
			}
		})
		b.Run("strconv/"+c.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				buf = strconv.AppendFloat(buf[:0], c.vs[i%len(c.vs)], 'g', -1, 64)
			}
		})
	}
}

func TestAppendInt(t *testing.T) {
	vs := []int64{0, 1, 9, 10, 99, 100, 101, 999, 1000, 12345, 1e8, 1e18, math.MaxInt64, math.MinInt64, -1, -100}
	r := rand.New(rand.NewPCG(7, 8))
	for range 100000 {
		vs = append(vs, r.Int64N(1<<uint(r.IntN(62)+1)), -r.Int64N(1e6))
	}
	for _, v := range vs {
		if got, want := string(appendInt([]byte("x"), v)), "x"+strconv.FormatInt(v, 10); got != want {
			t.Fatalf("appendInt(x, %d) = %s, want %s", v, got, want)
		}
	}
}

// TestMetricLines: the line encoder against lines built with strconv and
// time.Format, over names long and short, escaped or not, more names than
// its cache, attempts, steps, values and times of every size; each line
// also reads back as the metric.
func TestMetricLines(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	names := []string{"loss", "acc", "", "x", `we"ird\name<é>`, strings.Repeat("n", 50), strings.Repeat("long/", 30), "lr", "grad_norm", "eval/acc"}
	times := []time.Time{{}, time.Unix(0, 0), time.Unix(1700000000, 999999999), time.Date(9999, 12, 31, 23, 59, 50, 1, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Now()}
	vals := jsonFloatCases()
	var e metricEncoder
	var buf []byte
	for i := range 200000 {
		m := Metric{Attempt: []int{1, 2, 1, 1 << 40, math.MaxInt64}[r.IntN(5)], Step: []int64{0, 7, -3, 123456, math.MaxInt64, math.MinInt64}[r.IntN(6)] + r.Int64N(1000),
			Name: names[r.IntN(len(names))], Value: vals[r.IntN(len(vals))], Time: times[r.IntN(len(times))].Add(time.Duration(r.Int64N(3e9)))}
		if r.IntN(3) == 0 {
			buf = buf[:0:0] // no spare capacity
		}
		start := len(buf)
		buf = e.append(buf, &m)
		got := string(buf[start:])
		name, _ := json.Marshal(m.Name)
		val := strconv.FormatFloat(m.Value, 'g', -1, 64)
		switch {
		case math.IsNaN(m.Value):
			val = `"NaN"`
		case math.IsInf(m.Value, 1):
			val = `"+Inf"`
		case math.IsInf(m.Value, -1):
			val = `"-Inf"`
		}
		want := `{"attempt":` + strconv.Itoa(m.Attempt) + `,"step":` + strconv.FormatInt(m.Step, 10) + `,"name":` + string(name) +
			`,"value":` + val + `,"time":"` + m.Time.UTC().Format("2006-01-02T15:04:05.000000000Z") + `"}`
		if got != want {
			t.Fatalf("line %d = %s\nwant %s", i, got, want)
		}
		var back Metric
		if err := json.Unmarshal(buf[start:], &back); err != nil || back.Step != m.Step || back.Name != m.Name || !back.Time.Equal(m.Time) ||
			(math.Float64bits(back.Value) != math.Float64bits(m.Value) && !math.IsNaN(m.Value)) {
			t.Fatalf("line %s reads back as %+v, %v", got, back, err)
		}
	}
}
