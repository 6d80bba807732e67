// Package cluster is the contract between gorch's services: the msgpack
// wire envelope and message types, the JetStream streams, consumers and
// KV buckets (created idempotently by [Setup]), subject names, and an
// embedded NATS server for `gorch up` and tests.
//
// # Layout
//
//	stream RUNS    WorkQueue, subjects runs.dispatch.{high,normal,low};
//	               durable pull consumers disp-high, disp-normal, disp-low
//	               (AckWait 30 s, or GORCH_ACK_WAIT: see EffectiveAckWait;
//	               MaxDeliver MaxAttempts+1), shared by all workers.
//	               A RunRequest per attempt chain, Nats-Msg-Id = run id.
//	stream EVENTS  Limits, subjects ev.metrics.<run>, ev.telemetry.<run>,
//	               ev.ckpt.<run>, ev.run.<run>; durable consumer "collector".
//	               Published with Nats-Msg-Id for dedup (see MsgID helpers).
//	stream DLQ     Limits, subject dlq.<reason>: messages no consumer could
//	               decode, with the reason in the Gorch-Reason header.
//	KV runs        key run.<id> -> RunState; changed only by compare-and-set
//	               (Create, Update(rev)); Attempt is the fencing token.
//	KV workers     key worker.<id> -> WorkerInfo; bucket TTL, refreshed by heartbeats.
//	core NATS      api.{submit,sweep,cancel,status,list} request/reply to the
//	               coordinator; control.run.<id> cancel notices to workers.
package cluster
