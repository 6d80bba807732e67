// Package collector is gorch's record writer for the cluster: it consumes
// the EVENTS stream (metric and telemetry batches, checkpoint and run
// events published by workers) through the durable pull consumer
// "collector" and writes each run's records through
// [experiment.Ingest] — the same run.json, metric and telemetry segments,
// artifacts.json and run_summary.json that `gorch train` writes. What the
// records mean (attempts, resume steps, deduplication, values that arrive
// late) is the Ingest's business; this package moves messages.
//
// # Delivery
//
// One goroutine pulls messages continuously (up to 1024 buffered; the
// next pull request goes out before the last one's messages are used up,
// so the server always has one to fill) and hands each to
// the writer of its run ([Options].Writers of them; a run always goes to
// the same one, so its messages stay in stream order). A writer takes
// every message waiting for it (up to 4096), decodes them — one that does
// not decode, or names an invalid run or attempt, is copied to
// dlq.collector with its reason in the Gorch-Reason header and
// terminated — and applies them run by run; a run's messages are
// acknowledged only after the segments they produced are in the store
// ([experiment.Ingest.Flush] returned nil). When a write fails, the run's
// messages are Nak'ed (redelivered at once) and the Ingest forgets the
// run, so the redelivery reopens it from what the store really holds. A
// message is therefore acked only after what it carries is durable, and a
// failure never stops the collector. Writers work side by side, so one
// run's slow write does not hold up the others', and under load each
// write carries many messages: the fewer, larger segment writes are what
// keeps up with JetStream.
//
// Metric batches, most of the traffic, are decoded by a msgpack reader
// written for their layout (no reflection); anything it does not
// recognise goes through cluster.Decode, which has the last word.
//
// # Attempts and duplicates
//
// Batches are identified by (run, attempt, kind, seq) and applied once;
// after a restart, values already stored are also matched one by one. A
// "started" event creates the run or starts a new attempt with the
// worker's resume step, clock and version; a "finished" event ends it
// with the worker's status and times, and values the worker reported
// publishing that are not stored count as dropped until they arrive
// (redelivered records of a killed collector may come after the event):
// the finished attempt is then reopened, they are stored and its final
// summary is rewritten. Values of earlier attempts past a later attempt's
// resume step are kept and counted as superseded: see [experiment.Attempt].
//
// # Orphaned records
//
// A worker that dies after reporting an attempt's outcome to the
// coordinator and before publishing its "finished" event would leave the
// attempt's records open, and the run's RecordsFinal unset, for good. The
// coordinator marks such a run RecordsOrphaned (it found the worker
// dead); the collector watches the runs bucket for the mark, waits until
// it has acked every event published before it (the attempt's records,
// and a "finished" event that did get out, which then wins), ends the
// attempt from the run state (its status, error and end time) through the
// run's writer and sends capi.final.
//
// # Summaries
//
// Each writer rewrites run_summary.json of its runs with new records every
// [Options].SummaryEvery, and finally on the "finished" event.
//
// # Tracing and stats
//
// Each run's share of a write is a consumer span "collector.write", a
// child of the trace context its first message carries (the worker's run
// span), linked to the others' when they differ. [Collector.Stats] counts
// records and acked messages and keeps the publish time and publish-to-ack
// lag of the last acked one, for /metrics.
package collector
