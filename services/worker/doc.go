// Package worker is gorch's cluster worker: it takes runs off the RUNS
// work queue, trains them with [train.Run] and publishes what they produce
// to the EVENTS stream, with checkpoints in the object store.
//
// # Slots and fetching
//
// A worker has N slots. A free slot fetches exactly one message, trying the
// dispatch consumers in priority order ([cluster.Priorities]) with
// FetchNoWait(1) and sleeping briefly when all are empty. Nothing is
// prefetched: a buffered message's ack deadline would run out while it
// waits. While a run trains, its slot extends the deadline with
// InProgress every AckWait/3 ([cluster.EffectiveAckWait]).
//
// # Run state
//
// The run's key in the runs bucket is changed only by compare-and-set,
// and RunState.Attempt is the fencing token: a worker owns a run while the
// state says running, with its attempt and its worker ID.
//
//	queued{attempt a}     --claim-->         running{a+1, me}
//	running{a', other}    --claim-->         running{a'+1, me}   (the other worker died)
//	UsedAttempts >= MaxAttempts on claim --> failed (last error kept), Term
//	terminal on claim                -->     Ack and drop
//	CancelRequested on claim         -->     cancelled, Ack
//	running{a, me} --success-->              succeeded, DoubleAck
//	running{a, me} --error, a < Max-->       queued{a, Error}, NakWithDelay(1s)
//	running{a, me} --error, a = Max-->       failed{Error}, Term
//	running{a, me} --cancel notice-->        cancelled, Ack
//	running{a, me} --worker stopping-->      queued{a, HandBacks+1} (checkpointed), Nak
//	running{a, me} --state shows another attempt, worker or status-->
//	                                          stop training; no ack, no write
//
// A claim that loses a compare-and-set re-reads the state once: if another
// worker owns the run the message is dropped without an ack (the owner's
// InProgress keeps it from redelivery). A cancel arrives as a core-NATS
// notice on control.run.<id> or as CancelRequested in the state (the
// worker watches the runs bucket); both cancel the run's context, and
// [train.Run] finishes the step, checkpoints and returns interrupted.
//
// # Events
//
// [ClusterSink] publishes each attempt's records with deterministic
// Nats-Msg-Ids ([cluster.MsgID]) and waits for every publish ack, so a
// batch is durable before training moves on:
//
//	ev.run.<id>        RunEvent "started" (Msg-Id run/attempt/run/0): Spec, Name,
//	                   Seed, Worker, Host; LastStep is the step the attempt resumes from.
//	ev.metrics.<id>    MetricBatch (run/attempt/metrics/seq), by count or time.
//	ev.telemetry.<id>  TelemetryBatch (run/attempt/telemetry/seq).
//	ev.ckpt.<id>       CheckpointEvent (run/attempt/ckpt/step), after the object
//	                   and its LATEST pointer are written.
//	ev.run.<id>        RunEvent "finished" (run/attempt/run/1) with the attempt's
//	                   outcome: succeeded, failed, cancelled, or interrupted when the
//	                   run was handed back or ownership was lost.
//
// Metrics and telemetry are flushed before a checkpoint is announced, so
// every metric up to a checkpoint's step is in the stream before a later
// attempt can resume from it.
//
// # Tracing
//
// Each attempt is a consumer span "run", a child of the submit span whose
// context the RunRequest's headers carry (or, failing that,
// [cluster.RunState].TraceParent). [train.Run] gets the span in its
// context and adds "train.step" spans (one per [Options].TraceSteps steps)
// and "checkpoint" spans; every event the attempt publishes carries the run
// span's context in its headers, for the collector's spans. [Worker.Stats]
// counts checkpoints and their bytes for /metrics.
package worker
