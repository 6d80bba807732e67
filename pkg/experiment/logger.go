package experiment

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
)

// MetricsLogger writes one run's metrics as JSONL segments under
// runs/<id>/metrics/. Log and TryLog are safe for concurrent use; one
// writer goroutine encodes and stores the records.
type MetricsLogger struct {
	w       *segWriter[Metric]
	run     string
	attempt int
}

// NewMetricsLogger starts a logger for attempt of run runID. observe, if
// not nil, is called from the writer goroutine with each batch of metrics
// that reached the store (a [Recorder] rolls them up into its summary).
func NewMetricsLogger(ctx context.Context, store Store, runID string, attempt int, opts LogOptions, observe func([]Metric)) (*MetricsLogger, error) {
	const op = "experiment.MetricsLogger"
	if err := checkRunID(op, runID); err != nil {
		return nil, err
	}
	var enc metricEncoder
	w, err := startSegWriter(ctx, op, store, metricsPrefix(runID), opts, enc.appendValue, observe)
	if err != nil {
		return nil, err
	}
	return &MetricsLogger{w: w, run: runID, attempt: attempt}, nil
}

// Log queues a metric value at step, stamped with the current time. It
// blocks while the queue is full (backpressure) and fails only after Close.
func (l *MetricsLogger) Log(step int64, name string, value float64) error {
	return l.w.log(Metric{Run: l.run, Attempt: l.attempt, Step: step, Name: name, Value: value, Time: time.Now()})
}

// TryLog queues a metric value if the queue has room and otherwise drops
// it, counting the drop (see Dropped). It never blocks.
func (l *MetricsLogger) TryLog(step int64, name string, value float64) bool {
	return l.w.tryLog(Metric{Run: l.run, Attempt: l.attempt, Step: step, Name: name, Value: value, Time: time.Now()})
}

// Flush writes every value logged before it and returns the first I/O
// error the logger has met.
func (l *MetricsLogger) Flush() error { return l.w.flush() }

// Close flushes, stops the writer goroutine and returns the first I/O
// error. Log fails after Close; TryLog counts a drop.
func (l *MetricsLogger) Close() error { return l.w.close() }

// Dropped returns how many values were lost: dropped by TryLog or in a
// segment that failed to write.
func (l *MetricsLogger) Dropped() uint64 { return l.w.dropped.Load() }

// Written returns how many values reached the store.
func (l *MetricsLogger) Written() uint64 { return l.w.written.Load() }

// metricEncoder writes metric lines without reflection: the attempt
// prefix, the last few names and the second-resolution part of the time
// are cached between records. A segment's lines leave out the run, which
// the segment's key names (the reader fills it in): the bytes written are
// most of what storing a metric costs.
type metricEncoder struct {
	attempt int
	prefix  []byte // {"attempt":<n>,"step":
	names   [4]struct {
		name string
		enc  []byte // ,"name":"<name>","value":
	}
	sec     int64
	secText []byte // 2006-01-02T15:04:05
	ok      bool
}

// appendValue is append for a segWriter: m passed by value does not escape.
func (e *metricEncoder) appendValue(b []byte, m Metric) []byte { return e.append(b, &m) }

func (e *metricEncoder) append(b []byte, m *Metric) []byte {
	if !e.ok || m.Attempt != e.attempt {
		e.attempt, e.ok = m.Attempt, true
		p := append(e.prefix[:0], `{"attempt":`...)
		p = strconv.AppendInt(p, int64(m.Attempt), 10)
		e.prefix = append(p, `,"step":`...)
	}
	b = append(b, e.prefix...)
	b = appendInt(b, m.Step)
	b = append(b, e.name(m.Name)...)
	b = appendJSONFloat(b, m.Value)
	b = append(b, `,"time":"`...)
	b = e.appendTime(b, m.Time)
	return append(b, `"}`...)
}

// name returns `,"name":<name>,"value":` for name, from the cache of the
// last few names (a run logs a few names in turn).
func (e *metricEncoder) name(name string) []byte {
	for i := range e.names {
		if c := &e.names[i]; c.enc != nil && c.name == name {
			return c.enc
		}
	}
	last := &e.names[len(e.names)-1]
	enc := append(last.enc[:0], `,"name":`...)
	enc = appendJSONString(enc, name)
	enc = append(enc, `,"value":`...)
	copy(e.names[1:], e.names[:len(e.names)-1])
	e.names[0].name, e.names[0].enc = name, enc
	return enc
}

// appendTime writes t in UTC as RFC 3339 with nanoseconds. The text up to
// the second is cached; the fraction is written with a digit-pair table.
func (e *metricEncoder) appendTime(b []byte, t time.Time) []byte {
	if sec := t.Unix(); e.secText == nil || sec != e.sec {
		e.sec = sec
		e.secText = t.UTC().AppendFormat(e.secText[:0], "2006-01-02T15:04:05")
	}
	b = append(b, e.secText...)
	ns := uint32(t.Nanosecond()) // < 1e9
	var d [11]byte
	d[0] = '.'
	d[10] = 'Z'
	hi, lo := ns/100_000, ns%100_000 // 4 digits, 5 digits
	d[9] = byte('0' + lo%10)
	lo /= 10
	copy(d[7:9], digitPairs[2*(lo%100):])
	copy(d[5:7], digitPairs[2*(lo/100):])
	copy(d[3:5], digitPairs[2*(hi%100):])
	copy(d[1:3], digitPairs[2*(hi/100):])
	return append(b, d[:]...)
}

// appendInt is strconv.AppendInt(b, v, 10), two digits at a time.
func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		return strconv.AppendInt(b, v, 10)
	}
	var d [20]byte
	return append(b, d[putDigits(&d, uint64(v)):]...)
}

// putDigits writes u's decimal digits right-aligned into d, two at a time,
// and returns the index of the first.
func putDigits(d *[20]byte, u uint64) int {
	i := len(d)
	for u >= 100 {
		q := u / 100
		r := u - q*100
		i -= 2
		d[i], d[i+1] = digitPairs[2*r], digitPairs[2*r+1]
		u = q
	}
	if u >= 10 {
		i -= 2
		d[i], d[i+1] = digitPairs[2*u], digitPairs[2*u+1]
	} else {
		i--
		d[i] = byte('0' + u)
	}
	return i
}

const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// appendJSONString quotes s, taking a fast path for plain ASCII.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // cannot fail for a string
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
