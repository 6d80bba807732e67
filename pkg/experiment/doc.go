// Package experiment owns every run-record file format of gorch and the
// stores they live in. Both `gorch train` ([Recorder]) and the cluster
// collector ([Ingest]) write through it, and every reader (the CLI, the
// Python package) reads through [Reader], so there is one code path for
// every file a user reads. It links no engine package: RTCH checkpoints
// have their own tensor and state types (pkg/train converts).
//
// # Layout
//
// A [Store] is a key-value object store: a local directory ([LocalStore],
// the default, `--data-dir`) or an S3-compatible bucket ([S3Store], through
// minio-go/v7). Each run lives under its own prefix:
//
//	runs/<run-id>/run.json                    Run: what ran, status, times, config, error
//	runs/<run-id>/run_summary.json            Summary: rollups, layout counters, complete flag
//	runs/<run-id>/artifacts.json              []Artifact
//	runs/<run-id>/artifacts/<name>            artifact bytes stored by PutArtifact
//	runs/<run-id>/metrics/00000001.jsonl      Metric lines, segment 1
//	runs/<run-id>/metrics/00000002.jsonl      ... segment 2, and so on
//	runs/<run-id>/telemetry/00000001.jsonl    TelemetryEvent lines, likewise
//
// Run IDs ([NewRunID]) start with the UTC creation time, so listing order
// is creation order.
//
// # Writes
//
// Every object is written whole and atomically: locally as a temp file,
// fsync, rename, fsync of the directory; on S3 as one PUT. A growing log is
// never rewritten: each flush of the metrics logger or telemetry recorder
// adds the next numbered segment (S3 has no append), and readers
// concatenate the segments in key order ([Reader.ReadMetrics]). Listing
// runs ([Reader.ListRuns]) reads one small object per run,
// run_summary.json (or run.json before the first summary), and never a
// metric segment — the lesson of trackers that store one file or row per
// value.
//
// # Logging
//
// [MetricsLogger] and [TelemetryRecorder] put records on a bounded channel
// read by one writer goroutine that batches them into segments (every
// [LogOptions].FlushRecords records or FlushInterval, and on Flush/Close).
// Log blocks while the channel is full (backpressure); TryLog never blocks
// and counts what it drops. Records in a segment that failed to store are
// counted as dropped too; Flush and Close return the first I/O error.
// Metric lines are encoded by hand into a reused buffer, not with
// encoding/json per record; a value is written as strconv.AppendFloat's
// shortest 'g' form (byte for byte, through a faster path for values of
// up to 15 significant digits), so it reads back as the same float64.
//
// # Attempts
//
// A run resumed from a checkpoint has several attempts, listed in run.json
// with the step each resumed from ([Attempt]). Values an earlier attempt
// logged past a later attempt's resume step are superseded: they stay
// stored ([Reader.ReadStoredMetrics]), but [Reader.ReadMetrics] returns
// one value per (step, name), the latest attempt's, and the summary's
// rollups count each step once and the rest as superseded.
//
// # Summaries
//
// A [Recorder] owns one attempt of a run, feeds every stored record into a
// [Rollup] as it goes, and writes run_summary.json on Finish (and on
// WriteSummary). p50/p95 are exact nearest-rank percentiles computed by
// quickselect over the retained values, not a sketch; see [Rollup]. The
// summary's complete flag is false whenever a record was dropped, a write
// failed, or the run did not succeed.
//
// Every error is a *errs.TorchError: errs.IO for storage failures,
// errs.Experiment for missing or inconsistent records (missing objects also
// match fs.ErrNotExist, see [IsNotFound]), errs.Argument for bad keys.
package experiment
