package integration

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/services/coordinator"
)

// gorchBin is the gorch binary TestMain builds.
var gorchBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run() // the tests that need gorch skip themselves (testutil.Long)
	}
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	gorchBin = filepath.Join(root, "tmp", "gorch")
	goCmd := "go"
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		goCmd = p
	}
	build := exec.Command(goCmd, "build", "-o", gorchBin, "./cmd/gorch")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: go build ./cmd/gorch: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for !fileExists(filepath.Join(dir, "go.mod")) {
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
	return dir, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// proc is a gorch service running as its own OS process.
type proc struct {
	name string
	argv []string // the command line it was started with
	cmd  *exec.Cmd
	log  string // its stderr and stdout
	done chan struct{}
	err  error // Wait's result, once done is closed
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", p.name, sig, err)
	}
}

// restart stops p with SIGTERM, waits for it and starts it again with the
// same arguments.
func (c *testCluster) restart(p *proc) *proc {
	c.t.Helper()
	p.signal(c.t, syscall.SIGTERM)
	if !p.wait(60 * time.Second) {
		c.t.Fatalf("%s still running 60s after SIGTERM", p.name)
	}
	if p.err != nil {
		c.t.Errorf("%s exited with %v after SIGTERM, want 0", p.name, p.err)
	}
	return c.startProgram(p.name, p.argv)
}

// pause stops the process and every process of its group (a worker's
// attempt children) with SIGSTOP; resume continues them.
func (p *proc) pause(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("%s: SIGSTOP to its process group: %v", p.name, err)
	}
}

func (p *proc) resume() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT) }

// wait waits up to timeout for the process to end.
func (p *proc) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// testCluster is one gorch cluster: an embedded NATS server with
// JetStream on a loopback port, a versitygw S3 server, and the
// coordinator, collector and workers as separate gorch processes.
type testCluster struct {
	t      *testing.T
	dir    string
	ns     *server.Server
	url    string
	s3     *testutil.S3Server
	s3Key  string // a file holding the S3 secret key (--s3-secret-key-file)
	bucket string
	nc     *nats.Conn
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	client *coordinator.Client
	store  experiment.Store
	states *StateLog
	setup  cluster.SetupOptions // what attach sets the cluster up with

	// env returns extra environment variables for the process named name
	// (nil: none).
	env func(name string) []string

	mu       sync.Mutex
	procs    []*proc
	subs     []Submitted
	injected map[string]bool // run IDs of bad messages the test published
}

// startCluster starts a cluster with the given worker IDs (one slot each)
// and waits until the coordinator answers and every worker heartbeats.
func startCluster(t *testing.T, workers ...string) *testCluster {
	t.Helper()
	return startClusterEnv(t, nil, workers...)
}

// startClusterEnv is startCluster with extra environment variables for
// each process, by process name ("coordinator", "collector",
// "worker-<id>").
func startClusterEnv(t *testing.T, env func(name string) []string, workers ...string) *testCluster {
	t.Helper()
	return startClusterSetup(t, env, cluster.SetupOptions{}, workers...)
}

// startClusterSetup is startClusterEnv with the streams and buckets set
// up with o.
func startClusterSetup(t *testing.T, env func(name string) []string, o cluster.SetupOptions, workers ...string) *testCluster {
	t.Helper()
	c := newTestCluster(t, env)
	c.setup = o
	ns, err := cluster.StartEmbedded(cluster.EmbeddedOptions{StoreDir: filepath.Join(c.dir, "nats"), Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	c.ns = ns
	// Cleanups run last-registered first: processes stop before NATS and
	// (registered earlier by StartVersityGW) S3.
	t.Cleanup(func() {
		c.mu.Lock()
		ns := c.ns
		c.mu.Unlock()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	c.attach(ns.ClientURL(), true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Cleanup(c.stopAll)

	c.start("coordinator", "coordinator", "--nats", c.url)
	c.start("collector", append([]string{"collector", "--nats", c.url}, c.s3Flags()...)...)
	for _, id := range workers {
		c.startWorker(id)
	}
	c.waitServing(ctx, workers)
	return c
}

// newTestCluster starts the S3 server and opens the store of a cluster
// whose processes get env's variables.
func newTestCluster(t *testing.T, env func(name string) []string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, dir: t.TempDir(), bucket: "gorch-integ", env: env}
	// The test sets the cluster up, with the suite's short AckWait.
	t.Setenv(cluster.AckWaitEnv, testAckWait.String())
	c.s3 = testutil.StartVersityGW(t)
	c.s3Key = filepath.Join(c.dir, "s3-secret-key")
	if err := os.WriteFile(c.s3Key, []byte(c.s3.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	c.store, err = experiment.NewS3Store(ctx, experiment.S3Config{Endpoint: c.s3.Endpoint, Bucket: c.bucket,
		AccessKey: c.s3.AccessKey, SecretKey: c.s3.SecretKey, Insecure: true, CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// attach connects the test to the NATS server at url (setting the
// cluster up first when setup is true), watches the runs bucket and makes
// the coordinator client.
func (c *testCluster) attach(url string, setup bool) {
	t := c.t
	t.Helper()
	c.url = url
	var err error
	if c.nc, err = cluster.Connect(c.url, cluster.ConnectOptions{Name: "integration-test"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c.js, err = jetstream.New(c.nc); err != nil {
		t.Fatal(err)
	}
	if setup {
		if _, err := cluster.Setup(ctx, c.js, c.setup); err != nil {
			t.Fatal(err)
		}
	}
	if c.kv, err = c.js.KeyValue(ctx, cluster.BucketRuns); err != nil {
		t.Fatal(err)
	}
	if c.states, err = WatchStates(context.Background(), c.kv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.states.Stop)
	c.client = coordinator.NewClient(c.nc)
}

// waitServing waits until the coordinator answers and every worker of
// workers heartbeats.
func (c *testCluster) waitServing(ctx context.Context, workers []string) {
	c.t.Helper()
	testutil.Eventually(c.t, 30*time.Second, func() error {
		_, lerr := c.client.List(ctx)
		if missing := c.missingWorkers(ctx, workers); lerr != nil || len(missing) > 0 {
			return fmt.Errorf("cluster not ready: coordinator: %v; workers without heartbeat: %v", lerr, missing)
		}
		return nil
	})
}

// upReady is the ready line of `gorch up`, with its NATS URL.
var upReady = regexp.MustCompile(`msg=ready nats=(nats://127\.0\.0\.1:\d+)`)

// startUpCluster runs the whole cluster as one `gorch up` process (S3 for
// the store, the suite's AckWait, args added), attaches to its NATS server
// and waits until its workers up-1..up-<workers> heartbeat.
func startUpCluster(t *testing.T, env func(name string) []string, workers int, args ...string) *testCluster {
	t.Helper()
	c := newTestCluster(t, env)
	t.Cleanup(c.stopAll)
	up := c.startUp(args...)
	var url string
	testutil.Eventually(t, 60*time.Second, func() error {
		if m := upReady.FindStringSubmatch(readFile(up.log)); m != nil {
			url = m[1]
			return nil
		}
		if up.exited() {
			t.Fatalf("gorch up exited: %v\n%s", up.err, tail(up.log, 20))
		}
		return errors.New("gorch up not ready")
	})
	c.attach(url, false)
	var ids []string
	for i := 1; i <= workers; i++ {
		ids = append(ids, fmt.Sprintf("up-%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.waitServing(ctx, ids)
	return c
}

// startUp starts `gorch up` on a free port, with its JetStream store under
// the cluster's directory (so a restart finds it) and its records in S3.
func (c *testCluster) startUp(args ...string) *proc {
	return c.start("up", append(append([]string{"up", "--nats-port", "0", "--ack-wait", testAckWait.String()}, c.s3Flags()...), args...)...)
}

func (c *testCluster) missingWorkers(ctx context.Context, ids []string) []string {
	wkv, err := c.js.KeyValue(ctx, cluster.BucketWorkers)
	if err != nil {
		return ids
	}
	var missing []string
	for _, id := range ids {
		if _, err := wkv.Get(ctx, cluster.WorkerKey(id)); err != nil {
			missing = append(missing, id)
		}
	}
	return missing
}

func (c *testCluster) s3Flags() []string { return c.s3FlagsAt(c.s3.Endpoint) }

// s3FlagsAt is s3Flags with the S3 server reached at endpoint (a forwarder
// in front of it, say).
func (c *testCluster) s3FlagsAt(endpoint string) []string {
	return []string{"--s3-endpoint", endpoint, "--s3-bucket", c.bucket, "--s3-access-key", c.s3.AccessKey,
		"--s3-secret-key-file", c.s3Key, "--s3-insecure", "--data-dir", filepath.Join(c.dir, "unused-data-dir")}
}

// startWorker starts `gorch worker --slots 1 --id id` and returns it.
func (c *testCluster) startWorker(id string) *proc {
	return c.start("worker-"+id, c.workerArgs(id, c.url, c.s3.Endpoint)...)
}

// workerArgs are the arguments of `gorch worker` with id, reaching NATS at
// natsURL and S3 at s3Endpoint.
func (c *testCluster) workerArgs(id, natsURL, s3Endpoint string) []string {
	return append([]string{"worker", "--nats", natsURL, "--slots", "1", "--id", id, "--publish-every", "200ms"}, c.s3FlagsAt(s3Endpoint)...)
}

// start runs the gorch binary with args as a process named name, its
// output in a file of the test's temp directory.
func (c *testCluster) start(name string, args ...string) *proc {
	c.t.Helper()
	return c.startVia(name, nil, args...)
}

// startVia is start with the gorch command line prefixed by prefix (e.g.
// `ip netns exec NAME`, which execs gorch in place: the process is gorch).
func (c *testCluster) startVia(name string, prefix []string, args ...string) *proc {
	c.t.Helper()
	return c.startProgram(name, append(append(slices.Clone(prefix), gorchBin), args...))
}

// startProgram runs argv as a process named name in its own process
// group, its output in a file of the test's temp directory. An argv that
// holds the S3 secret key fails the test: ps would show it.
func (c *testCluster) startProgram(name string, argv []string) *proc {
	c.t.Helper()
	if c.s3 != nil && strings.Contains(strings.Join(argv, " "), c.s3.SecretKey) {
		c.t.Fatalf("start %s: the S3 secret key is in its command line", name)
	}
	logPath := filepath.Join(c.dir, name+".log")
	for i := 2; fileExists(logPath); i++ { // a restarted service keeps its predecessor's log
		logPath = filepath.Join(c.dir, fmt.Sprintf("%s.%d.log", name, i))
	}
	f, err := os.Create(logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group: pause and resume reach its children
	cmd.Env = hermeticEnv()
	if c.env != nil {
		cmd.Env = append(cmd.Env, c.env(name)...)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		c.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, argv: argv, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

// testAckWait is the ack deadline of every cluster in this package
// (GORCH_ACK_WAIT for every process, and for the test's own Setup): short,
// so that tests waiting for a lost lease (SIGKILL, SIGSTOP) run in seconds.
const testAckWait = 6 * time.Second

// hermeticEnv is the environment without the variables gorch reads its
// NATS, store and tracing settings from, plus the suite's GORCH_ACK_WAIT.
func hermeticEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GORCH_") || strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, cluster.AckWaitEnv+"="+testAckWait.String())
}

// stopAll kills every process still running and, if the test failed,
// prints the tail of each one's log.
func (c *testCluster) stopAll() {
	c.mu.Lock()
	procs := slices.Clone(c.procs)
	c.mu.Unlock()
	for _, p := range procs {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
		}
	}
	for _, p := range procs {
		<-p.done
	}
	if c.t.Failed() || testing.Verbose() && os.Getenv("GORCH_INTEG_LOGS") != "" {
		for _, p := range procs {
			c.t.Logf("--- %s (%v), last lines of %s:\n%s", p.name, p.err, p.log, tail(p.log, 40))
		}
	}
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// runGorchCmd is a gorch command with the suite's environment, to run.
func runGorchCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(gorchBin, args...)
	cmd.Env = hermeticEnv()
	return cmd
}

// gorch runs a gorch client command to completion and returns its stdout.
func (c *testCluster) gorch(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(gorchBin, args...)
	cmd.Env = hermeticEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("gorch %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// spec is a synthetic run spec: blobs, an MLP, checkpoints every
// ckptEvery steps.
type spec struct {
	Steps, CkptEvery, Batch int
	Hidden                  string // YAML list, e.g. "[32]"
	Optimizer               string // YAML mapping
	Seed                    int
	Tags                    map[string]string
}

func (s spec) yaml() []byte {
	if s.Hidden == "" {
		s.Hidden = "[32]"
	}
	if s.Optimizer == "" {
		s.Optimizer = "{name: adam, lr: 0.01}"
	}
	if s.Batch == 0 {
		s.Batch = 32
	}
	b := fmt.Appendf(nil, `model: {name: mlp, hidden: %s}
dataset: {name: blobs, size: 512}
optimizer: %s
steps: %d
batch_size: %d
checkpoint_every: %d
eval_every: 100000
seed: %d
`, s.Hidden, s.Optimizer, s.Steps, s.Batch, s.CkptEvery, s.Seed)
	if len(s.Tags) > 0 {
		b = append(b, "tags:\n"...)
		for _, k := range slices.Sorted(maps.Keys(s.Tags)) {
			b = fmt.Appendf(b, "  %s: %q\n", k, s.Tags[k])
		}
	}
	return b
}

// submit submits s through the coordinator client and remembers the run
// for the checker.
func (c *testCluster) submit(s spec) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids, err := c.client.Submit(ctx, s.yaml(), cluster.PriorityNormal)
	if err != nil || len(ids) != 1 {
		c.t.Fatalf("submit: %v, %v", ids, err)
	}
	c.remember(ids[0], s)
	return ids[0]
}

func (c *testCluster) remember(id string, s spec) {
	c.mu.Lock()
	c.subs = append(c.subs, Submitted{ID: id, Steps: int64(s.Steps), CkptEvery: int64(s.CkptEvery)})
	c.mu.Unlock()
}

// state reads a run's state from the runs bucket.
func (c *testCluster) state(id string) cluster.RunState {
	c.t.Helper()
	st, _, err := cluster.GetState(context.Background(), c.kv, id)
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

// waitState polls a run's state until ok accepts it or timeout passes.
func (c *testCluster) waitState(id string, timeout time.Duration, what string, ok func(cluster.RunState) bool) cluster.RunState {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := c.state(id)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("run %s: not %s within %s; state %+v", id, what, timeout, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitTerminal waits until every run is terminal in the runs bucket and
// the collector has written a summary for its last attempt, and returns
// the final states.
func (c *testCluster) waitTerminal(timeout time.Duration, ids ...string) map[string]cluster.RunState {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	out := map[string]cluster.RunState{}
	for _, id := range ids {
		out[id] = c.waitState(id, time.Until(deadline), "terminal", func(st cluster.RunState) bool { return cluster.Terminal(st.Status) })
	}
	rd := experiment.NewReader(c.store)
	for _, id := range ids {
		st := out[id]
		if st.Attempt == 0 {
			continue // never started: nothing to record
		}
		for {
			sum, err := rd.GetSummary(context.Background(), id)
			if err == nil && string(sum.Status) == st.Status && sum.Run.Attempt == st.Attempt {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("run %s is %s (attempt %d) but its summary in S3 is %+v (err %v) after %s", id, st.Status, st.Attempt, sum.Status, err, timeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return out
}

// waitRecordsFinal waits until the run state of every run in ids says
// its records are final (the collector told the coordinator).
func (c *testCluster) waitRecordsFinal(timeout time.Duration, ids ...string) {
	c.t.Helper()
	testutil.Eventually(c.t, timeout, func() error {
		for _, id := range ids {
			if st := c.state(id); !st.RecordsFinal {
				return fmt.Errorf("run %s is %s, its records not final", id, st.Status)
			}
		}
		return nil
	})
}

// check runs the checker over every run submitted and fails the test on
// a lost record or a bad terminal state.
func (c *testCluster) check() *Report {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	obs, err := Gather(ctx, c.js, c.store, c.states)
	if err != nil {
		c.t.Fatalf("gathering records: %v", err)
	}
	c.mu.Lock()
	subs := slices.Clone(c.subs)
	injected := c.injected
	c.mu.Unlock()
	if len(injected) > 0 {
		// Bad messages a test published itself stay in EVENTS (a limits
		// stream) after the collector dead-lettered them.
		n := len(obs.CkptEvents)
		obs.CkptEvents = slices.DeleteFunc(obs.CkptEvents, func(ev cluster.CheckpointEvent) bool { return injected[ev.RunID] })
		c.t.Logf("checker: ignoring %d checkpoint events the test injected as bad messages", n-len(obs.CkptEvents))
	}
	r := Check(subs, obs)
	c.t.Logf("checker:\n%s", r)
	if !r.OK() {
		c.t.Errorf("checker found violations")
	}
	return r
}

// attemptSteps returns the train/loss steps each attempt of run id
// stored, superseded ones included, in step order.
func (c *testCluster) attemptSteps(id string) map[int][]int64 {
	c.t.Helper()
	out := map[int][]int64{}
	for m, err := range experiment.NewReader(c.store).ReadStoredMetrics(context.Background(), id) {
		if err != nil {
			c.t.Fatal(err)
		}
		if m.Name == "train/loss" {
			out[m.Attempt] = append(out[m.Attempt], m.Step)
		}
	}
	for _, s := range out {
		slices.Sort(s)
	}
	return out
}

// checkExactRecords checks the records of a run that succeeded after its
// final attempt resumed from step resumed: through ReadMetrics one value
// per (step, name) — a pandas-style pivot of them works — with every step
// of train/loss and train/lr; the summary counts each step once and what
// earlier attempts logged past the resume step as superseded; run.json
// says where the attempt resumed, carries the gorch version, and its
// duration (the worker's clock) is within 10 % of the training time the
// worker's own metric timestamps span.
func (c *testCluster) checkExactRecords(id string, steps, resumed int64) {
	c.t.Helper()
	ctx := context.Background()
	rd := experiment.NewReader(c.store)
	var ms []experiment.Metric
	for m, err := range rd.ReadMetrics(ctx, id) {
		if err != nil {
			c.t.Fatal(err)
		}
		ms = append(ms, m)
	}
	table, err := Pivot(ms)
	if err != nil {
		c.t.Errorf("run %s: pivot of ReadMetrics: %v", id, err)
	}
	for s := int64(1); s <= steps; s++ {
		if _, ok := table[s]["train/loss"]; !ok {
			c.t.Errorf("run %s: no train/loss at step %d", id, s)
			break
		}
	}
	sum, err := rd.GetSummary(ctx, id)
	if err != nil {
		c.t.Fatal(err)
	}
	run := sum.Run
	superseded := map[string]int64{} // what earlier attempts stored past the resume step
	for m, err := range rd.ReadStoredMetrics(ctx, id) {
		if err == nil && m.Attempt < run.Attempt && m.Step > resumed {
			superseded[m.Name]++
		}
	}
	for _, name := range []string{"train/loss", "train/lr"} {
		if m := sum.Metrics[name]; m.Count != steps || m.Superseded != superseded[name] || m.LastStep != steps {
			c.t.Errorf("run %s: summary %s count %d, superseded %d, last step %d; want %d, %d, %d",
				id, name, m.Count, m.Superseded, m.LastStep, steps, superseded[name], steps)
		}
	}
	last := run.Attempts[len(run.Attempts)-1]
	if last.Attempt != run.Attempt || last.ResumeStep != resumed || run.GorchVersion == "" {
		c.t.Errorf("run %s: last attempt entry %+v of %d, version %q; want attempt %d resumed from %d, a version",
			id, last, len(run.Attempts), run.GorchVersion, run.Attempt, resumed)
	}
	var first, end time.Time
	for _, m := range ms {
		if m.Attempt != run.Attempt {
			continue
		}
		if first.IsZero() || m.Time.Before(first) {
			first = m.Time
		}
		if m.Time.After(end) {
			end = m.Time
		}
	}
	trained, dur := end.Sub(first), run.Duration()
	if d := dur - trained; d < -trained/10 || d > trained/10 {
		c.t.Errorf("run %s: run.json duration %v, the attempt's metrics span %v: not within 10 %%", id, dur, trained)
	}
	c.t.Logf("run %s: %d values in force, %d train/loss superseded; duration %v, metrics span %v", id, len(ms), superseded["train/loss"], dur, trained)
}
