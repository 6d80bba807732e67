// Package coordinator is gorch's run coordinator: it accepts runs and
// sweeps, cancels them, and answers status and list requests, over NATS
// request/reply on the subjects api.{submit,sweep,cancel,status,list}
// (see [cluster.APISubject]).
//
// # What the coordinator owns
//
// The coordinator creates runs and cancels them; workers drive every other
// transition. Submitting a run writes its first state, queued with attempt
// 0, to the runs KV bucket with Create (so a run id is accepted once), and
// then publishes a [cluster.RunRequest] to the RUNS stream on the subject
// of its priority, with the run id as Nats-Msg-Id so a retried publish is
// dropped by the server. If that publish fails the coordinator marks the
// run failed itself, so every accepted run still reaches exactly one
// terminal state.
//
// # Cancel
//
// Cancel changes the run state by compare-and-set, retried when a worker
// wrote in between:
//
//   - queued → cancelled, a terminal state. The RunRequest stays in the
//     RUNS stream; the worker that later receives it finds the run
//     terminal and must ack and drop it without starting it.
//   - running (any non-terminal state but queued) → CancelRequested set,
//     then a core-NATS notice on [cluster.ControlSubject] so the worker
//     training it stops at once. The notice is only a wake-up: its body is
//     a [cluster.RunEvent] of kind "cancel", and a worker that missed it
//     still sees CancelRequested in the KV state at its next
//     compare-and-set. The worker ends the run cancelled.
//   - terminal → an error "run X already <status>".
//
// # Scaling out
//
// Every coordinator subscribes in the queue group "coordinator", so
// several coordinators share the requests. They keep no state of their own:
// the KV bucket and the RUNS stream are the truth.
//
// # Tracing
//
// Submitting a run starts its trace: a producer span "submit" (a child of
// the trace context in the request's headers, if the client sent one)
// whose context goes into the RunRequest's NATS headers (lowercase W3C
// traceparent, see package tracing) and into [cluster.RunState].TraceParent.
//
// [Client] is the Go client of this API, used by `gorch submit`, `gorch
// sweep`, `gorch status` and `gorch cancel`.
package coordinator
