// Package integration tests a whole gorch cluster the way it runs in
// production: a real NATS server with JetStream (nats-server's own code,
// embedded in the test process on a loopback TCP port, file store in a
// temp dir), a real S3 server (versitygw, started by testutil.StartVersityGW),
// and the coordinator, the collector and two or three workers as
// separate `gorch` processes built once by TestMain (tmp/gorch at the
// repository root). Every test starts its own cluster, submits small
// synthetic runs (blobs, an MLP) and reads the records back from S3.
//
// # Fault matrix
//
// The tests cover the rows of the fault matrix in the cluster notes that
// can be injected from outside the processes:
//
//	TestSweepCompletes  no fault: `gorch sweep` of a grid of 8 runs; every run
//	                    succeeds with a complete summary and a checkpoint in S3.
//	TestCancel          cancel: a running run stops and ends cancelled; a run
//	                    cancelled while queued ends cancelled and never starts.
//	TestPoisonRun       a run that fails deterministically (NaN loss) ends failed
//	                    after ONE attempt with its error and kind; others succeed.
//	TestWorkerSIGKILL   workers die mid-run (SIGKILL, 5 seeds side by side, each
//	                    killed at a different point): after AckWait each run
//	                    is redelivered, resumed on another worker from its last
//	                    checkpoint, and succeeds. GORCH_INTEG_KILLS=N sets the
//	                    number of seeds; they share one AckWait (30 s).
//	TestTracing         no fault, traced: the processes export OTLP (gRPC and HTTP)
//	                    to a real Jaeger (v1.76.0 from ~/.cache/gorch, loopback ports);
//	                    its query API shows the run as one trace submit → run →
//	                    train.step/checkpoint/collector.write.
//	TestWorkerSIGTERM   a worker is stopped (SIGTERM): it checkpoints and hands
//	                    the run back at once; another worker resumes it, redoing
//	                    at most one checkpoint interval.
//	TestFaultWorkerSIGSTOP  F2: a worker stops itself (test hook) between its
//	                    ownership check and a checkpoint write, and stays stopped
//	                    past its lease: taken over (attempt 2); resumed, it writes
//	                    the object under its own attempt's prefix, its record is
//	                    refused and the resume point never names it; its state
//	                    writes and completion are fenced; late metrics stay under
//	                    attempt 1.
//	TestFaultCollectorSIGKILL  F3: collector killed 3 times while runs
//	                    publish: its unacked records come back after AckWait,
//	                    even behind their run's "finished" event, and are
//	                    stored; nothing lost or duplicated, summaries complete.
//	TestFaultWorkerPartition  F5: a worker in its own network namespace
//	                    (veth pair on a private /30; NATS and S3 reached through
//	                    forwarders on the host end) owns a checkpointed run when
//	                    the link goes down past its lease: the other worker takes
//	                    over (attempt 2) and finishes; after the link returns the
//	                    partitioned worker's late writes are fenced. Needs root
//	                    (`ip netns`); fails, never skips, without it.
//	TestFaultNATSRestart F4: embedded NATS shut down and restarted on the same
//	                    store and port, one worker killed just before: no run
//	                    lost, its run redelivered, RUNS drained.
//	TestFaultS3Outage   F6: versitygw killed for 20 s and restarted on the same
//	                    dir and port: checkpoint writes retry, no attempt fails,
//	                    backlog waits in EVENTS, all records land.
//	TestFaultAttemptsFailAlone  one worker process of 2 slots, and `gorch up`,
//	                    300 MiB per attempt: the spec that cannot fit is refused
//	                    at submit; an attempt out of memory, one that panics and
//	                    a NaN loss each fail their run after ONE attempt with the
//	                    reason; runs beside them succeed; no service exits.
//	TestOperatorEditsSurvive  stream and consumer edits survive `gorch setup`
//	                    and a restart of every service, and of `gorch up`.
//	TestFaultNATSClusterLeaderKill  F11: three nats-server processes, streams
//	                    and buckets at replicas 3; the node leading RUNS and EVENTS
//	                    is killed during a sweep and restarted: every run succeeds.
//	TestFaultWorkerDiesBeforeFinishedEvent  a worker dies (test hook) after the
//	                    coordinator took its attempt's outcome and before its
//	                    "finished" event: the coordinator marks the records
//	                    orphaned, the collector ends them from the run state and
//	                    they become final, complete, with nothing lost.
//	TestFaultClaimReplyLost  the coordinator applies a worker's claim but
//	                    the reply is lost, twice (test hook): the worker's
//	                    repeated claim gets the same attempt; the run succeeds
//	                    on attempt 1 with records of that one attempt.
//	TestFaultBadMessages F8: malformed, unknown-version, wrong-type and
//	                    no-state messages dead-lettered with reasons, an event of
//	                    a run nobody claimed to dlq.forged; bad sweeps rejected;
//	                    a good run still succeeds.
//
// Every cluster is set up (cluster.Setup, as `gorch setup` does) with an
// AckWait of 6s (testAckWait), so lease expiry takes seconds. Each process
// runs in its own process group, so pausing a worker pauses its attempts. `make test-faults` runs the Fault and
// Cluster tests.
//
// # The checker
//
// [Check] is a set checker in the spirit of Jepsen's: it compares what was
// attempted (the steps of each submitted spec), what was acknowledged (the
// runs bucket's history of states, recorded by a watcher for the whole
// test, and the checkpoint events in the EVENTS stream) and what was
// recorded (every metric record, summary and checkpoint object in S3). It
// reports
//
//   - lost: a step 1..N of a succeeded run without a train/loss record;
//   - duplicated: one (run, attempt, step, name) recorded twice — across
//     attempts a resumed step legitimately repeats, and dedup keeps the
//     latest attempt of each (run, step, name);
//   - unexpected: records, states or checkpoint events of runs never
//     submitted, and steps outside 1..N;
//   - bad terminal: a run that does not enter exactly one terminal state
//     (or leaves it), that took more than MaxAttempts attempts, or whose
//     summary disagrees with the runs bucket;
//   - missing checkpoints: the newest acknowledged checkpoint of a run
//     is not in S3 (older ones may be pruned by keep_last);
//   - incomplete: a succeeded run whose summary says complete=false.
//
// Any of these fails the test; the counts are logged either way. On a
// failure each process's log tail is printed (GORCH_INTEG_LOGS=1 with -v
// prints them always).
//
// The package needs only what scripts/setup.sh installs (Go, and
// versitygw, nats-server and Jaeger in ~/.cache/gorch with
// GORCH_SETUP_TEST_TOOLS=1) and runs in about three minutes on two cores.
// `go test ./...` (scripts/test.sh) runs it.
package integration
