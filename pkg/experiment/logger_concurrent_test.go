package experiment

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoggerConcurrentAccounting logs from several goroutines with Log,
// TryLog and Flush racing the ticker and Close, and checks that every
// value is either stored exactly once or counted as dropped.
func TestLoggerConcurrentAccounting(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	run := NewRunID()
	var observed atomic.Uint64
	l, err := NewMetricsLogger(ctx, s, run, 1, LogOptions{QueueSize: 64, FlushRecords: 100, FlushInterval: time.Millisecond},
		func(ms []Metric) { observed.Add(uint64(len(ms))) })
	if err != nil {
		t.Fatal(err)
	}
	const workers, per = 4, 3000
	var accepted, tried atomic.Uint64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				switch {
				case i%3 == 0:
					tried.Add(1)
					if l.TryLog(int64(i), "try", float64(w)) {
						accepted.Add(1)
					}
				case i%500 == 1:
					if err := l.Flush(); err != nil {
						t.Error(err)
					}
				default:
					tried.Add(1)
					if err := l.Log(int64(i), "log", float64(w)); err != nil {
						t.Error(err)
					}
					accepted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.Written() != accepted.Load() || l.Written()+l.Dropped() != tried.Load() || observed.Load() != l.Written() {
		t.Fatalf("written %d, dropped %d, accepted %d, observed %d, tried %d", l.Written(), l.Dropped(), accepted.Load(), observed.Load(), tried.Load())
	}
	keys, err := s.List(ctx, metricsPrefix(run))
	if err != nil {
		t.Fatal(err)
	}
	var lines int
	for _, k := range keys {
		b, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		lines += bytes.Count(b, []byte{'\n'})
	}
	if uint64(lines) != l.Written() {
		t.Fatalf("%d lines in %d segments, %d written", lines, len(keys), l.Written())
	}
}
