// Package collector is gorch's record writer for the cluster: it consumes
// the EVENTS stream (metric and telemetry batches, checkpoint and run
// events published by workers) through the durable pull consumer
// "collector" and writes each run's records through [experiment] — the
// same run.json, metric and telemetry segments, artifacts.json and
// run_summary.json that `gorch train` writes.
//
// # Delivery
//
// Messages are fetched in batches (up to 256, or what arrived within
// [Options].FlushEvery). Every message is decoded first; one that does not
// decode, or names an invalid run or attempt, is copied to
// dlq.collector with its reason in the Gorch-Reason header and terminated,
// and the rest of the batch goes on. The decoded messages are grouped by
// run and applied in stream order; a run's group is acknowledged only
// after the segments it produced are in the store (the loggers' Flush
// returned nil). When a write fails, the group is Nak'ed (redelivered at
// once, ahead of newer messages) and the run's in-memory state is dropped,
// so the redelivery reopens the run from what the store really holds. A
// message is therefore acked only after what it carries is durable, and a
// failure never stops the collector.
//
// # Attempts and duplicates
//
// A run's first "started" event creates the run with the worker's run ID;
// a later attempt reopens it at that attempt number ([experiment.Reopen]).
// Records of a run whose start this process has not seen — after a
// collector restart or a failed write — reopen the run's current attempt
// from the store, without bumping it. Redeliveries are dropped by the
// batch (run, attempt, seq) and by content: metrics by (run, attempt,
// step, name), telemetry spans by (run, name, start, duration); when a run
// is reopened these sets are rebuilt from its stored segments, so a
// restart neither loses nor duplicates records. Metric values keep the
// attempt that produced them: after a resume, steps past the checkpoint
// appear once per attempt. Records of an older attempt that arrive while a
// newer one is open are kept with their own attempt number.
//
// # Late records of a finished attempt
//
// Stream order puts an attempt's records before its "finished" event, but
// redelivery does not keep it: records a killed collector had fetched and
// not acked come back only after AckWait, behind a "finished" event the
// next collector got at once. The collector does not hold "finished"
// back waiting for them (that would keep the event unacked for an
// AckWait it would have to guess, and delay every final summary); it
// applies it, and records that arrive later are stored anyway:
//
//   - On "finished", the values the worker reported publishing
//     (RunEvent.Metrics) but the store lacks are counted as dropped, and
//     the gap — attempt, published, counted — is kept in the run tag
//     gorch.collector.missing, so it is written in run_summary.json in one
//     piece with the dropped count it is part of.
//   - A record for a finished attempt whose summary shows a gap reopens
//     that attempt from the store ([experiment.Reopen] with the same
//     attempt: status, error and finish time kept), is deduplicated
//     against the stored segments and appended; once the group is durable
//     the gap is recomputed as max(0, published - stored), the dropped
//     count goes down by what arrived (never counted twice), and run.json
//     and the final summary are written again ([experiment.Recorder.Refinish])
//     with the same status and layout. The summary becomes complete=true
//     when every published value is stored (and nothing else was dropped),
//     and the tag is removed. The messages are acked only after that.
//   - Because the gap lives in the store, a collector restarted between
//     "finished" and the late records settles it the same way. A finished
//     attempt without a gap is remembered (up to 10000 runs, then looked
//     up in the store), and its redeliveries are acked and ignored: every
//     value it published is already stored.
//
// So a summary may say complete=false for up to an AckWait after a
// collector crash before the redelivered records complete it.
//
// # Summaries
//
// run_summary.json is rewritten every [Options].SummaryEvery for runs with
// new records and finally on the "finished" event, which carries the
// status, error and layout counters. If the worker reports more metric
// values than reached the store for that attempt, the difference is
// counted as dropped and the summary says complete=false until they
// arrive (see above).
//
// # Tracing and stats
//
// Each run's share of a written batch is a consumer span "collector.write",
// a child of the trace context its first message carries (the worker's run
// span), linked to the others' when they differ. [Collector.Stats] counts
// records and acked messages and keeps the publish time and publish-to-ack
// lag of the last acked one, for /metrics.
package collector
