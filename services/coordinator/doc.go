// Package coordinator is gorch's run coordinator and the only writer of
// run state. It serves clients on api.{submit,sweep,cancel,status,list,
// workers}, workers on wapi.<worker>.{claim,progress,checkpoint,finish,
// handback,reject} and the collector on capi.final, all request/reply in
// the queue group "coordinator", and keeps the runs bucket honest about
// workers that died.
//
// # Submitting
//
// Submitting a run writes its first state, queued with attempt 0, to the
// runs KV bucket with Create (so a run id is accepted once), and then
// publishes a [cluster.RunRequest] to the RUNS stream on the subject of
// its priority, with the run id as Nats-Msg-Id so a retried publish is
// dropped by the server. If that publish fails the coordinator marks the
// run failed itself, so every accepted run still reaches exactly one
// terminal state.
//
// # Worker requests
//
// A worker's id is the subject's (wapi.<worker>.<op>), never the body's:
// NATS permissions on wapi.<worker>.> make the subject the worker's
// identity. Every request changes the run's state by compare-and-set and
// answers with the state after it and, for the RUNS message, an action
// (train, ack, term, nak):
//
//	claim       terminal → ack; CancelRequested → cancelled, ack; the
//	            claim that started the current attempt, repeated → that
//	            attempt, train; a claim for an older delivery of the
//	            message than that one → leave; attempts used up → failed,
//	            term; else running{attempt+1, worker}, Owners[attempt-1] =
//	            worker, train. A running or orphaned run is taken over: its
//	            message was delivered again, so the previous holder's lease
//	            ran out.
//	progress    step and total; the answer carries CancelRequested.
//	checkpoint  the resume point {attempt, step, key, size, crc32c}: the key
//	            must lie under runs/<id>/checkpoints/a<attempt>/, and an
//	            older step never replaces a newer one.
//	finish      succeeded → ack; cancelled → ack; failed: a kind that a retry
//	            cannot help (errs.Retryable) → failed, term; else queued and
//	            nak until MaxAttempts, then failed.
//	handback    queued, HandBacks+1 (no attempt used), nak.
//	reject      a request the worker dead-lettered: failed with the reason.
//
// A claim is idempotent. It names the worker process (a random instance
// id), the RUNS message's stream sequence and delivery count, and the
// newest attempt of the run that process started ([cluster.ClaimInfo]).
// When its reply is lost (NATS restarted, the request timed out) the
// worker claims again, for the same delivery or a redelivery: the same
// process, the same message and an attempt it never started get the
// attempt the first claim started, so a lost reply uses up no attempt.
// Another worker, a restarted process (a new instance) or a process whose
// attempt started and died (it names that attempt) gets a new attempt; a
// claim holding an older delivery than the current attempt's claim is
// stale — the message went to someone else since — and is told to leave
// the message.
//
// Every request but claim and reject names an attempt; unless that attempt
// of that worker owns the run (running, or orphaned: the worker was only
// silent), it is refused with NotOwner and changes nothing. That is the
// fence: a paused or partitioned worker's late requests cannot touch a run
// another attempt took over.
//
// # Cancel
//
//   - queued or orphaned → cancelled, a terminal state. The RunRequest
//     stays in the RUNS stream; the worker that later claims it is told to
//     ack and drop it.
//   - running → CancelRequested set, then a core-NATS notice on
//     ctl.<worker>.cancel ([cluster.Control]) so the worker stops at once;
//     a worker that missed it learns of the flag from its next progress or
//     checkpoint answer. The worker ends the run cancelled.
//   - terminal → an error "run X already <status>".
//
// # Liveness and retention
//
// Every third of the workers bucket's TTL the coordinator lists the live
// workers; when one it saw alive has no key any more (its heartbeat
// expired), every run still running on a worker that is not alive becomes
// orphaned. The RUNS message's ack wait then hands it to another worker.
// The same check runs once, a TTL after start, for workers that died
// while no coordinator was watching. Every 10 minutes it removes the
// states of runs that finished longer ago than the runs bucket's
// gorch.finished_ttl metadata. A value in the runs bucket that does not
// decode is replaced by a failed state that says so (quarantined), so one
// bad key never makes status, cancel or a worker's requests fail.
//
// # Records
//
// When the collector has written the final records of a run's terminal
// attempt it sends capi.final; the coordinator sets RecordsFinal. A run
// that ends without an attempt left to report (cancelled while queued or
// orphaned, attempts used up at a claim, a rejected request) is final at
// once. The collector ends an attempt's records on the worker's
// "finished" event, which the worker publishes after the coordinator took
// the outcome; when the liveness check finds the worker of a finished
// run's last attempt dead while its records are not final, the worker
// died in between, and the coordinator sets RecordsOrphaned: the collector
// then ends the records from the run state and sends capi.final itself.
// Every state records when the run became terminal (Finished).
//
// # Scaling out
//
// Every coordinator subscribes in the queue group "coordinator", so
// several coordinators share the requests. They keep no state of their own:
// the KV buckets and the RUNS stream are the truth.
//
// # Tracing
//
// Submitting a run starts its trace: a producer span "submit" (a child of
// the trace context in the request's headers, if the client sent one)
// whose context goes into the RunRequest's NATS headers (lowercase W3C
// traceparent, see package tracing) and into [cluster.RunState].TraceParent.
//
// [Client] is the Go client of the client API, used by `gorch submit`,
// `gorch sweep`, `gorch status`, `gorch cancel` and `gorch workers`.
package coordinator
