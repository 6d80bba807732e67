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
//	TestPoisonRun       a run that always fails (NaN loss) ends failed after
//	                    cluster.MaxAttempts attempts with its error; others succeed.
//	TestWorkerSIGKILL   workers die mid-run (SIGKILL, 5 seeds side by side, each
//	                    killed at a different point): after AckWait each run
//	                    is redelivered, resumed on another worker from its last
//	                    checkpoint, and succeeds. GORCH_INTEG_KILLS=N sets the
//	                    number of seeds; they share one AckWait (30 s).
//	TestTracing         no fault, traced: the processes export OTLP (gRPC and HTTP)
//	                    to a real Jaeger (v1.76.0 from .cache/bin, loopback ports);
//	                    its query API shows the run as one trace submit → run →
//	                    train.step/checkpoint/collector.write.
//	TestWorkerSIGTERM   a worker is stopped (SIGTERM): it checkpoints and hands
//	                    the run back at once; another worker resumes it, redoing
//	                    at most one checkpoint interval.
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
// The package needs only what scripts/setup.sh installs (Go and
// versitygw in .cache/bin) and runs in about a minute on two cores, most
// of it the one AckWait TestWorkerSIGKILL waits for its five kills
// together. `go test ./...` (scripts/test.sh) runs it.
package integration
