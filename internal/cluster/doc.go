// Package cluster is the contract between gorch's services: the msgpack
// wire envelope and message types, the JetStream streams, consumers and
// KV buckets (created once by [Setup], bound by the services with
// [BindStream], [BindConsumer] and [BindKV]), subject names, and an
// embedded NATS server for `gorch up` and tests. docs/cluster-v2.md says
// which role may do what with each name.
//
// # Layout
//
//	stream RUNS    WorkQueue, subjects runs.dispatch.{high,normal,low};
//	               durable pull consumers disp-high, disp-normal, disp-low
//	               (AckWait SetupOptions.AckWait, MaxDeliver unlimited), shared
//	               by all workers. A RunRequest per run, Nats-Msg-Id = run id.
//	stream EVENTS  Limits (max bytes, DiscardNew; max age), subjects
//	               ev.<worker>.{metrics,telemetry,ckpt,run}.<run>: a worker
//	               publishes under its own id. Durable consumer "collector".
//	               Published with Nats-Msg-Id for dedup (see MsgID).
//	stream DLQ     Limits (max bytes, DiscardOld; max age), subject
//	               dlq.<reason>: messages no consumer could use, with the
//	               reason in the Gorch-Reason header.
//	KV runs        key run.<id> -> RunState; written only by the coordinator,
//	               by compare-and-set; Attempt is the fencing token, Owners
//	               who claimed each attempt, Resume the checkpoint a resume
//	               loads. Metadata gorch.finished_ttl: how long finished runs stay.
//	KV workers     key worker.<id> -> WorkerInfo; bucket TTL, refreshed by
//	               each worker's heartbeat.
//	core NATS      api.{submit,sweep,cancel,status,list,workers}: clients to
//	               the coordinator; wapi.<worker>.{claim,progress,checkpoint,
//	               finish,handback,reject}: a worker to the coordinator;
//	               capi.final: the collector to the coordinator;
//	               ctl.<worker>.cancel: the coordinator to a worker.
//
// Every role's replies come back on its own inbox prefix ([InboxPrefix]).
package cluster
