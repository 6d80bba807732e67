// Package worker is gorch's cluster worker: it takes runs off the RUNS
// work queue, trains them with [train.Run] and publishes what they produce
// to the EVENTS stream, with checkpoints in the object store. It never
// writes run state: it asks the coordinator for every transition, on
// wapi.<worker>.<op>, and the coordinator refuses an attempt that is not
// (or no longer) the worker's.
//
// # Slots and fetching
//
// A worker has N slots. A free slot fetches exactly one message, trying the
// dispatch consumers in priority order ([cluster.Priorities]) with
// FetchNoWait(1) and sleeping briefly when all are empty. Nothing is
// prefetched: a buffered message's ack deadline would run out while it
// waits. While a run trains, its slot extends the deadline with
// InProgress every AckWait/3 (the consumers' AckWait, as `gorch setup`
// made them).
//
// # The life of an attempt
//
//	claim       the coordinator answers train (running{attempt+1, this
//	            worker}, with the run's resume point), or what to do with
//	            the message instead: ack (finished or cancelled), term
//	            (attempts used up), nak, leave (the message was delivered
//	            to another worker since). A claim that gets no answer is
//	            retried (with backoff, for up to two minutes, the lease
//	            extended meanwhile): claims are idempotent for this process
//	            and message, so a retry whose first try was applied gets
//	            the same attempt. The claim names the newest attempt of the
//	            run this process started, so one whose attempt process died
//	            gets a new attempt, never the dead one again.
//	started     event ev.<worker>.run.<id>, then training ([Ticket]): it
//	            loads the resume point's checkpoint (checked by size and
//	            CRC-32C), reports progress every AckWait/3 (the answer says
//	            whether the run was cancelled or taken over), and publishes
//	            metrics and telemetry.
//	checkpoint  flush the records, ask whether the attempt still owns the run,
//	            write runs/<id>/checkpoints/a<attempt>/step-<N>.rtch, ask the
//	            coordinator to record it as the resume point (refused for a
//	            stale attempt), announce it on ev.<worker>.ckpt.<id>, prune
//	            the attempt's older objects.
//	finish      the outcome: succeeded; cancelled; failed with the error's
//	            kind and whether a retry can help (errs.Retryable: a spec,
//	            shape or NaN-loss error fails the run at once, an I/O or
//	            NATS error goes back to the queue until MaxAttempts); or,
//	            when the worker stops (SIGTERM), a hand-back that uses no
//	            attempt. The coordinator's answer says how to settle the
//	            message. Then the "finished" event.
//	lost        a refused progress or checkpoint request: another attempt
//	            owns the run. Training stops; nothing is written, the
//	            message is left alone.
//
// A slot holds a run from its claim to the end of its attempt. When the
// run's message is delivered again meanwhile (its lease lapsed: NATS
// restarted or was out of reach past the ack wait) to another slot of the
// same worker, that slot does not claim: the holding slot takes the newer
// delivery (to extend its lease and settle it) and keeps its attempt.
//
// A RunRequest that does not decode is dead-lettered (dlq.undecodable,
// reason in the Gorch-Reason header) and the run its Nats-Msg-Id names is
// failed by a reject request, so it does not stay queued. A cancel arrives
// as a core-NATS notice on ctl.<worker>.cancel, or as CancelRequested in
// a progress or checkpoint answer; [train.Run] then finishes the step,
// checkpoints and returns, and the attempt ends cancelled.
//
// # Events
//
// Every event goes to ev.<worker>.<kind>.<run> with a deterministic
// Nats-Msg-Id ([cluster.MsgID]), and every publish waits for the stream's
// ack, so a batch is durable before training moves on:
//
//	run        RunEvent "started" (Msg-Id run/attempt/run/0): Spec, Name,
//	           Seed, Worker, Host; LastStep is the step the attempt resumes
//	           from. RunEvent "finished" (run/attempt/run/1): succeeded,
//	           failed, cancelled, or interrupted (handed back or lost).
//	metrics    MetricBatch (run/attempt/metrics/seq), by count or time.
//	telemetry  TelemetryBatch (run/attempt/telemetry/seq).
//	ckpt       CheckpointEvent (run/attempt/ckpt/step), after the resume
//	           point is recorded.
//
// Metrics and telemetry are flushed before a checkpoint is written, so
// every metric up to a resume point's step is in the stream before a later
// attempt can resume from it.
//
// # Attempt processes
//
// With [Options].Child set (as `gorch worker` and `gorch up` do) each
// attempt runs in a process of its own, `gorch worker attempt`: the
// supervisor writes a [Ticket] (with how to connect as the worker and
// open the store) to its stdin, then control lines (cancel, stop); the
// attempt writes its [Result] as JSON to fd 3 and exits. The process is
// limited to [Options].MemoryLimit — a cgroup (v2 memory.max, else v1
// memory.limit_in_bytes) made for it under the worker's own where the
// worker may, else RLIMIT_AS and GOMEMLIMIT set by the attempt itself —
// and dies with its supervisor (Pdeathsig). An attempt that dies without
// a result fails with the reason its death gives: "out of memory (limit
// 300.0 MiB)" (the cgroup's OOM kill, or the runtime's out-of-memory
// error), the panic's first line, "crashed: <fatal error>", "crashed:
// SIGSEGV"; those kinds (memory, internal) are not retried, a SIGKILL from
// outside is. The worker, its other slots and, in `gorch up`, the NATS
// server, coordinator and collector go on. Each attempt's end is logged
// with its start-up time (exec, NATS, store, dataset and model until
// training begins) and peak resident memory.
//
// The worker announces its limit in its heartbeat and its claims; the
// coordinator turns away runs whose estimated memory
// ([train.EstimateMemory]) exceeds it.
//
// # Test hooks
//
// With GORCH_TEST_HOOKS=1 in the worker's environment, spec tags make an
// attempt panic, allocate without bound, or stop itself between its
// ownership check and a checkpoint write ([HookPanic], [HookAlloc],
// [HookPauseBeforeWrite]), kill the worker after an outcome
// ([HookDieAfterOutcome]) or drop the replies to its claims
// ([HookDropClaimReplies]): the fault tests' way in.
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
