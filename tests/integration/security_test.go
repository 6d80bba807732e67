package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorch/gorch/internal/auth"
	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/services/collector"
	"github.com/gorch/gorch/services/coordinator"
)

// secureNATS is a real nats-server (the binary, not the embedded one)
// serving a deployment that `gorch auth init` wrote, over TLS.
type secureNATS struct {
	t      *testing.T
	bin    string // nats-server
	dir    string // the deployment
	url    string
	caFile string
	log    string // the server's log file, across restarts
	cmd    *exec.Cmd
	obs    *nats.Conn // an observer with every permission, minted by the test
	obsJS  jetstream.JetStream
	outs   []string // output of every gorch command the test ran, for the secrets grep
}

// startSecureNATS runs `gorch auth init` for workers w1 and w2 with a TLS
// certificate for 127.0.0.1, starts nats-server with the configuration it
// wrote, and creates the streams with `gorch setup` as admin.
func startSecureNATS(t *testing.T) *secureNATS {
	t.Helper()
	s := &secureNATS{t: t, bin: testutil.ToolPath("nats-server", testutil.NATSServerVersion)}
	if s.bin == "" {
		t.Fatalf("nats-server %s not found: %s", testutil.NATSServerVersion, testutil.ToolInstall)
	}
	base := t.TempDir()
	s.dir, s.log = filepath.Join(base, "deploy"), filepath.Join(base, "nats-server.log")
	s.caFile = filepath.Join(s.dir, auth.TLSDir, "ca.pem")
	addr := testutil.FreeAddr(t)
	s.run("auth", "init", "--dir", s.dir, "--workers", "w1,w2", "--listen", addr,
		"--tls-host", "127.0.0.1", "--jetstream-dir", filepath.Join(base, "jetstream"))
	s.url = "tls://" + addr
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("--- nats-server log:\n%s", tail(s.log, 60))
		}
	})
	obsCreds := s.mintObserver()
	testutil.Eventually(t, 30*time.Second, func() error {
		var err error
		s.obs, err = nats.Connect(s.url, nats.Name("test-observer"), nats.UserCredentials(obsCreds), nats.RootCAs(s.caFile),
			nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		return err
	})
	t.Cleanup(s.obs.Close)
	s.obsJS, _ = jetstream.New(s.obs)
	s.run(append([]string{"setup"}, s.flags(cluster.RoleAdmin, "")...)...)
	return s
}

// start starts nats-server (again) with the deployment's configuration,
// appending to its log.
func (s *secureNATS) start() {
	s.t.Helper()
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	s.cmd = exec.Command(s.bin, "-c", filepath.Join(s.dir, auth.ServerConfigFile))
	s.cmd.Stdout, s.cmd.Stderr = f, f
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
}

// stop stops nats-server (SIGTERM: it shuts down cleanly, keeping its
// JetStream store for the next start).
func (s *secureNATS) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// flags are the connection flags of a gorch command run as role (id: a
// worker's id): the URL, its credentials file and the CA. No secret is on
// the command line.
func (s *secureNATS) flags(role, id string) []string {
	return []string{"--nats", s.url, "--creds", auth.CredsFile(s.dir, role, id), "--tls-ca", s.caFile}
}

// run runs a gorch command to completion and keeps its output.
func (s *secureNATS) run(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(gorchBin, args...)
	cmd.Env = hermeticEnv()
	out, err := cmd.CombinedOutput()
	s.outs = append(s.outs, string(out))
	if err != nil {
		s.t.Fatalf("gorch %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mintObserver signs, with the account's own key, a user with no
// permission limits: the test's window on what really reached the server.
func (s *secureNATS) mintObserver() string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, auth.KeysDir, "account.nk"))
	if err != nil {
		s.t.Fatal(err)
	}
	akp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		s.t.Fatal(err)
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = "test-observer"
	tok, err := uc.Encode(akp)
	if err != nil {
		s.t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	creds, _ := jwt.FormatUserConfig(tok, seed)
	path := filepath.Join(s.t.TempDir(), "observer.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// connect opens a connection named name as role (id: the worker id) with
// the credentials gorch auth init wrote, its role's inbox prefix, and
// async errors to rec.
func (s *secureNATS) connect(name, role, id string, rec *testutil.NATSErrors) *nats.Conn {
	s.t.Helper()
	opts := []nats.Option{nats.Name(name), nats.UserCredentials(auth.CredsFile(s.dir, role, id)), nats.RootCAs(s.caFile),
		nats.CustomInboxPrefix(cluster.InboxPrefix(role, id))}
	if rec != nil {
		opts = append(opts, nats.ErrorHandler(rec.Handler))
	}
	nc, err := nats.Connect(s.url, opts...)
	if err != nil {
		s.t.Fatalf("connect as %s %s: %v", role, id, err)
	}
	return nc
}

// probeName names the matrix's connections in the server's log, where
// their refusals are expected.
const probeName = "matrix-probe"

// matrixRoles are the matrix's columns: each role's identity (the worker
// column is worker w1).
var matrixRoles = []struct{ role, id string }{
	{cluster.RoleAdmin, ""}, {cluster.RoleCoordinator, ""}, {cluster.RoleWorker, "w1"}, {cluster.RoleCollector, ""}, {cluster.RoleClient, ""},
}

// verdict is one cell of the matrix.
type verdict string

const (
	refused verdict = "refused"
	allowed verdict = "allowed"
)

// forbidden is one row of the matrix: an action and the roles whose job
// it is (allowed for them, refused for every other role).
type forbidden struct {
	action string
	jobOf  []string
	try    func(p *prober) verdict
}

// prober carries out actions as one role and tells a refusal (the
// server's permissions violation) from an action that took effect (seen
// by the observer, or answered).
type prober struct {
	t   *testing.T
	s   *secureNATS
	nc  *nats.Conn
	rec *testutil.NATSErrors
}

// decide waits until the server refused subj or done reports the action
// took effect.
func (p *prober) decide(subj string, done func() bool) verdict {
	p.t.Helper()
	var v verdict
	testutil.Eventually(p.t, 10*time.Second, func() error {
		_ = p.nc.Flush()
		switch {
		case p.rec.Refused(subj):
			v = refused
		case done():
			v = allowed
		default:
			return fmt.Errorf("%s: neither refused by the server nor done", subj)
		}
		return nil
	})
	return v
}

// publish publishes on subj (core NATS); allowed if the observer got it.
func (p *prober) publish(subj string) verdict {
	sub, err := p.s.obs.SubscribeSync(subj)
	if err != nil {
		p.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = p.s.obs.Flush()
	if err := p.nc.Publish(subj, []byte("matrix probe")); err != nil {
		p.t.Fatal(err)
	}
	return p.decide(subj, func() bool { _, err := sub.NextMsg(time.Millisecond); return err == nil })
}

// request sends a request on subj (a JetStream API call or a stream
// publish, which the server answers); allowed if an answer came. onReply,
// if set, sees the answer.
func (p *prober) request(subj string, body []byte, onReply func(*nats.Msg)) verdict {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan *nats.Msg, 1)
	go func() {
		if m, err := p.nc.RequestWithContext(ctx, subj, body); err == nil {
			got <- m
		}
	}()
	var reply *nats.Msg
	v := p.decide(subj, func() bool {
		select {
		case reply = <-got:
			return true
		default:
			return false
		}
	})
	if v == allowed && onReply != nil {
		onReply(reply)
	}
	return v
}

// subscribe subscribes to subj; allowed if a message the observer
// publishes on it arrives.
func (p *prober) subscribe(subj string) verdict {
	sub, err := p.nc.SubscribeSync(subj)
	if err != nil {
		p.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	target := strings.NewReplacer(">", "probe", "*", "probe").Replace(subj)
	return p.decide(subj, func() bool {
		_ = p.s.obs.Publish(target, []byte("matrix probe"))
		_, err := sub.NextMsg(5 * time.Millisecond)
		return err == nil
	})
}

// streamConfig is a stream's current configuration as the JetStream API
// takes it back.
func (p *prober) streamConfig(name string) []byte {
	st, err := p.s.obsJS.Stream(context.Background(), name)
	if err != nil {
		p.t.Fatal(err)
	}
	b, _ := json.Marshal(st.CachedInfo().Config)
	return b
}

// consumerConfig is the create request of a consumer's current
// configuration.
func (p *prober) consumerConfig(stream, name string) []byte {
	c, err := p.s.obsJS.Consumer(context.Background(), stream, name)
	if err != nil {
		p.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"stream_name": stream, "config": c.CachedInfo().Config})
	return b
}

// purgeRun returns an onReply that removes run id's state again (as the
// observer), so that the run checker does not meet it.
func (p *prober) purgeRun(id string) func(*nats.Msg) {
	return func(*nats.Msg) {
		ctx := context.Background()
		kv, err := p.s.obsJS.KeyValue(ctx, cluster.BucketRuns)
		if err == nil {
			err = kv.Purge(ctx, cluster.RunKey(id))
		}
		if err != nil {
			p.t.Fatalf("removing the probe's run state: %v", err)
		}
	}
}

// ackAll terms a fetched message (the dispatch probe's) so it leaves the
// queue.
func (p *prober) ackAll(m *nats.Msg) {
	if m.Reply != "" && len(m.Data) > 0 {
		_ = p.nc.Publish(m.Reply, []byte("+TERM"))
	}
}

// forbiddenActions is the matrix: every action a role must not take, with
// the roles whose job it is. Stream edits and deletions use the real
// streams: a permission set that allowed them would break the cluster,
// and the test with it.
func forbiddenActions() []forbidden {
	noWait := []byte(`{"batch":1,"no_wait":true}`)
	return []forbidden{
		{"change a stream's settings (EVENTS)", []string{cluster.RoleAdmin}, func(p *prober) verdict {
			return p.request("$JS.API.STREAM.UPDATE."+cluster.StreamEvents, p.streamConfig(cluster.StreamEvents), nil)
		}},
		{"change the collector's consumer", []string{cluster.RoleAdmin}, func(p *prober) verdict {
			return p.request("$JS.API.CONSUMER.CREATE."+cluster.StreamEvents+"."+cluster.ConsumerCollect,
				p.consumerConfig(cluster.StreamEvents, cluster.ConsumerCollect), nil)
		}},
		{"delete a stream (EVENTS)", nil, func(p *prober) verdict {
			return p.request("$JS.API.STREAM.DELETE."+cluster.StreamEvents, nil, nil)
		}},
		{"purge a stream (RUNS)", nil, func(p *prober) verdict {
			return p.request("$JS.API.STREAM.PURGE."+cluster.StreamRuns, []byte(`{}`), nil)
		}},
		{"purge the run states (KV runs)", nil, func(p *prober) verdict {
			return p.request("$JS.API.STREAM.PURGE.KV_"+cluster.BucketRuns, []byte(`{}`), nil)
		}},
		{"write run state (KV runs)", []string{cluster.RoleCoordinator}, func(p *prober) verdict {
			// A finished run of no consequence, should the write be allowed.
			st, _ := msgpack.Marshal(&cluster.RunState{RunID: "matrix-probe", Status: cluster.StateCancelled, Submitted: time.Now()})
			return p.request("$KV."+cluster.BucketRuns+"."+cluster.RunKey("matrix-probe"), st, p.purgeRun("matrix-probe"))
		}},
		{"read run state (KV runs)", []string{cluster.RoleCoordinator, cluster.RoleCollector, cluster.RoleClient}, func(p *prober) verdict {
			// Workers learn a run's state from the coordinator's answers only.
			return p.request("$JS.API.STREAM.MSG.GET.KV_"+cluster.BucketRuns,
				[]byte(`{"last_by_subj":"$KV.`+cluster.BucketRuns+"."+cluster.RunKey("matrix-probe")+`"}`), nil)
		}},
		{"dispatch a run", []string{cluster.RoleCoordinator}, func(p *prober) verdict {
			return p.request(cluster.DispatchSubject(cluster.PriorityLow), []byte("probe"), nil)
		}},
		{"take a run off the queue", []string{cluster.RoleWorker}, func(p *prober) verdict {
			return p.request("$JS.API.CONSUMER.MSG.NEXT."+cluster.StreamRuns+"."+cluster.DispatchConsumer(cluster.PriorityLow), noWait, p.ackAll)
		}},
		{"consume EVENTS through the collector's consumer", []string{cluster.RoleCollector}, func(p *prober) verdict {
			return p.request("$JS.API.CONSUMER.MSG.NEXT."+cluster.StreamEvents+"."+cluster.ConsumerCollect, noWait, nil)
		}},
		{"publish events (records) as worker w2", nil, func(p *prober) verdict {
			return p.request(cluster.EventSubject("w2", cluster.KindMetrics, "matrix-probe"), []byte("probe"), nil)
		}},
		{"heartbeat as worker w2", nil, func(p *prober) verdict {
			return p.request("$KV."+cluster.BucketWorkers+"."+cluster.WorkerKey("w2"), []byte("probe"), nil)
		}},
		{"ask the coordinator as worker w2 (wapi.w2)", nil, func(p *prober) verdict {
			return p.publish(cluster.WorkerAPISubject("w2", cluster.WOpFinish))
		}},
		{"cancel worker w2's runs (ctl.w2)", []string{cluster.RoleCoordinator}, func(p *prober) verdict {
			return p.publish(cluster.ControlSubject("w2"))
		}},
		{"serve the client API (subscribe api.>)", []string{cluster.RoleCoordinator}, func(p *prober) verdict {
			return p.subscribe(cluster.APISubject(">"))
		}},
		{"serve the worker API (subscribe wapi.*.*)", []string{cluster.RoleCoordinator}, func(p *prober) verdict {
			return p.subscribe(cluster.WorkerAPISubject("*", "*"))
		}},
		{"read worker w2's cancel notices", nil, func(p *prober) verdict {
			return p.subscribe(cluster.ControlSubject("w2"))
		}},
		{"read the coordinator's replies", []string{cluster.RoleCoordinator}, func(p *prober) verdict {
			return p.subscribe(cluster.InboxPrefix(cluster.RoleCoordinator, "") + ".>")
		}},
		{"read worker w2's replies", nil, func(p *prober) verdict {
			return p.subscribe(cluster.InboxPrefix(cluster.RoleWorker, "w2") + ".>")
		}},
		{"read the client's replies", []string{cluster.RoleClient}, func(p *prober) verdict {
			return p.subscribe(cluster.InboxPrefix(cluster.RoleClient, "") + ".>")
		}},
		{"read replies on the default inbox (_INBOX.>)", nil, func(p *prober) verdict {
			return p.subscribe("_INBOX.>")
		}},
	}
}

// matrix is the printed matrix: one row per action, one column per role.
type matrix struct{ rows [][]string }

func (m *matrix) add(action string, cells ...string) {
	m.rows = append(m.rows, append([]string{action}, cells...))
}

func (m *matrix) String() string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	head := []string{"action"}
	for _, r := range matrixRoles {
		head = append(head, strings.TrimSpace(r.role+" "+r.id))
	}
	for _, row := range append([][]string{head}, m.rows...) {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
	return b.String()
}

// runMatrix carries out every forbidden action as every role through
// connections of their own, and fails the test where a cell differs from
// the expectation.
func runMatrix(t *testing.T, s *secureNATS, m *matrix) {
	t.Helper()
	probers := make([]*prober, len(matrixRoles))
	for i, r := range matrixRoles {
		rec := &testutil.NATSErrors{}
		nc := s.connect(probeName, r.role, r.id, rec)
		defer nc.Close()
		probers[i] = &prober{t: t, s: s, nc: nc, rec: rec}
	}
	for _, a := range forbiddenActions() {
		var cells []string
		for i, r := range matrixRoles {
			got := a.try(probers[i])
			want := refused
			if slices.Contains(a.jobOf, r.role) {
				want = allowed
			}
			cell := string(got)
			if want == allowed {
				cell += " (its job)"
			}
			if got != want {
				t.Errorf("%s as %s: %s; want %s", a.action, r.role, got, want)
				cell += " WRONG"
			}
			cells = append(cells, cell)
		}
		m.add(a.action, cells...)
	}
}

// TestSecureCluster is the least-privilege cluster end to end, against a
// real nats-server serving a deployment from `gorch auth init` (TLS,
// operator mode, one identity per role):
//
//   - the forbidden-actions matrix: each action a role must not take is
//     refused to it by the server, and the few that are some role's job
//     work for that role;
//   - coordinator, collector and workers w1 and w2 run as processes of
//     their own, each with only its own credentials, started while the
//     server is down: they wait, connect once it is up, and a sweep
//     submitted with the client's credentials succeeds with every record;
//   - a worker acting on another worker's running attempt through its own
//     subjects is refused by the coordinator (not the run's owner) and by
//     the collector (dlq.forged, counted);
//   - no service hit a permission it lacks, and no seed, private key or S3
//     secret appears in any log or output.
func TestSecureCluster(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	s := startSecureNATS(t)
	var m matrix
	runMatrix(t, s, &m)

	s.stop()
	c := startSecureServices(t, s)
	s.start()
	c.waitReady([]string{"w1", "w2"})

	sweepOnSecureCluster(t, s, c)
	workerVsWorker(t, s, c, &m)
	t.Logf("forbidden-actions matrix (action × role):\n%s", m.String())

	s.checkServerLog()
	s.checkNoSecrets(c)
}

// startSecureServices starts the coordinator, the collector and workers
// w1 and w2 with their own credentials (S3 keys in the environment, not
// argv) and waits until each has logged that NATS is not reachable yet.
func startSecureServices(t *testing.T, s *secureNATS) *testCluster {
	t.Helper()
	c := &testCluster{t: t, dir: t.TempDir(), bucket: "gorch-secure", url: s.url, nc: s.obs, js: s.obsJS}
	c.s3 = testutil.StartVersityGW(t)
	c.env = func(string) []string {
		return []string{"AWS_ACCESS_KEY_ID=" + c.s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + c.s3.SecretKey}
	}
	ctx := context.Background()
	var err error
	c.store, err = experiment.NewS3Store(ctx, experiment.S3Config{Endpoint: c.s3.Endpoint, Bucket: c.bucket,
		AccessKey: c.s3.AccessKey, SecretKey: c.s3.SecretKey, Insecure: true, CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	c.client = coordinator.NewClient(s.obs)
	t.Cleanup(c.stopAll)
	store := []string{"--s3-endpoint", c.s3.Endpoint, "--s3-bucket", c.bucket, "--s3-insecure", "--data-dir", filepath.Join(c.dir, "unused")}
	procs := []*proc{
		c.start("coordinator", append([]string{"coordinator"}, s.flags(cluster.RoleCoordinator, "")...)...),
		c.start("collector", slices.Concat([]string{"collector", "--http", "127.0.0.1:0"}, s.flags(cluster.RoleCollector, ""), store)...),
	}
	for _, id := range []string{"w1", "w2"} {
		procs = append(procs, c.start("worker-"+id, slices.Concat([]string{"worker", "--slots", "1", "--publish-every", "200ms"},
			s.flags(cluster.RoleWorker, id), store)...))
	}
	for _, p := range procs {
		waitProcLog(t, p, "NATS not reachable; retrying")
	}
	return c
}

// waitProcLog waits until p's log holds want, failing if p exits first.
func waitProcLog(t *testing.T, p *proc, want string) string {
	t.Helper()
	var log string
	testutil.Eventually(t, 60*time.Second, func() error {
		b, _ := os.ReadFile(p.log)
		if log = string(b); strings.Contains(log, want) {
			return nil
		}
		if p.exited() {
			t.Fatalf("%s exited (%v) before logging %q:\n%s", p.name, p.err, want, tail(p.log, 30))
		}
		return fmt.Errorf("%s has not logged %q yet", p.name, want)
	})
	return log
}

// waitReady waits until the coordinator answers and every worker
// heartbeats, and starts the run-state log the checker reads.
func (c *testCluster) waitReady(workers []string) {
	c.t.Helper()
	ctx := context.Background()
	testutil.Eventually(c.t, 60*time.Second, func() error {
		if _, err := c.client.List(ctx); err != nil {
			return err
		}
		if missing := c.missingWorkers(ctx, workers); len(missing) > 0 {
			return fmt.Errorf("workers without heartbeat: %v", missing)
		}
		return nil
	})
	var err error
	if c.kv, err = c.js.KeyValue(ctx, cluster.BucketRuns); err != nil {
		c.t.Fatal(err)
	}
	if c.states, err = WatchStates(ctx, c.kv); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(c.states.Stop)
}

// secureSweep is small: two models, two learning rates.
const secureSweep = `name: secure
base:
  model: {name: mlp, hidden: [16]}
  dataset: {name: blobs, size: 256}
  optimizer: {name: adam, lr: 0.01}
  steps: 60
  batch_size: 32
  checkpoint_every: 20
  eval_every: 100000
grid:
  optimizer.lr: [0.01, 0.03]
  seed: [1, 2]
`

// sweepOnSecureCluster submits the sweep with the client's credentials
// and checks that every run succeeds with all its records, and that the
// client can read status and logs.
func sweepOnSecureCluster(t *testing.T, s *secureNATS, c *testCluster) {
	t.Helper()
	path := filepath.Join(c.dir, "sweep.yaml")
	if err := os.WriteFile(path, []byte(secureSweep), 0o644); err != nil {
		t.Fatal(err)
	}
	_, runs, err := coordinator.ParseSweep("sweep.yaml", []byte(secureSweep))
	if err != nil {
		t.Fatal(err)
	}
	client := s.flags(cluster.RoleClient, "")
	ids := strings.Fields(s.run(append([]string{"sweep", path}, client...)...))
	if len(ids) != len(runs) {
		t.Fatalf("gorch sweep printed %d run ids, want %d", len(ids), len(runs))
	}
	for i, id := range ids {
		c.remember(id, spec{Steps: runs[i].Spec.Steps, CkptEvery: runs[i].Spec.CkptEvery})
	}
	for id, st := range c.waitTerminal(3*time.Minute, ids...) {
		if st.Status != cluster.StateSucceeded {
			t.Errorf("run %s = %s (%s); want succeeded", id, st.Status, st.Error)
		}
	}
	c.check()
	if out := s.run(append([]string{"status", ids[0]}, client...)...); !strings.Contains(out, cluster.StateSucceeded) {
		t.Errorf("gorch status %s as client = %q; want succeeded", ids[0], out)
	}
	if out := s.run(append([]string{"logs", ids[0]}, client...)...); !strings.Contains(out, "train/loss") {
		t.Errorf("gorch logs %s as client = %q; want train/loss lines", ids[0], out)
	}
}

// longRun trains long enough to stay running while the test acts on it.
var longRun = spec{Steps: 200000, CkptEvery: 100000}

// workerVsWorker starts two long runs (one per worker, each worker has one
// slot), then has worker w1 act on w2's attempt through w1's own subjects:
// finishing it through the coordinator, and publishing its metrics to the
// collector. Both are refused; the run stays w2's and running. The two
// rows join the matrix (other roles cannot publish on these subjects at
// all).
func workerVsWorker(t *testing.T, s *secureNATS, c *testCluster, m *matrix) {
	t.Helper()
	ids := []string{c.submit(longRun), c.submit(longRun)}
	var run cluster.RunState
	testutil.Eventually(t, 60*time.Second, func() error {
		for _, id := range ids {
			if st := c.state(id); st.Status == cluster.StateRunning && st.Worker == "w2" {
				run = st
				return nil
			}
		}
		return fmt.Errorf("no run is running on w2 yet")
	})
	forger := s.connect("forger", cluster.RoleWorker, "w1", nil)
	defer forger.Close()

	req, _ := cluster.Encode(cluster.TypeWorkerRequest, &cluster.WorkerRequest{RunID: run.RunID, Attempt: run.Attempt,
		Outcome: &cluster.Outcome{Status: cluster.StateCancelled}})
	msg, err := forger.Request(cluster.WorkerAPISubject("w1", cluster.WOpFinish), req, 10*time.Second)
	if err != nil {
		t.Fatalf("w1's finish request: %v", err)
	}
	var reply cluster.WorkerReply
	if err := cluster.Decode(msg.Data, cluster.TypeWorkerReply, &reply); err != nil || !reply.NotOwner {
		t.Errorf("w1 finishing w2's run: reply %+v (%v); want not the run's owner", reply, err)
	}
	finish := "refused by the coordinator: not the run's owner"
	if !reply.NotOwner {
		finish = "ALLOWED WRONG"
	}

	before := forgedCount(t, c)
	batch, _ := cluster.Encode(cluster.TypeMetricBatch, &cluster.MetricBatch{RunID: run.RunID, Attempt: run.Attempt, Seq: 1,
		Points: []cluster.MetricPoint{{Step: 1, Name: "train/loss", Value: 1e9, Time: time.Now()}}})
	fjs, _ := jetstream.New(forger)
	if _, err := fjs.Publish(context.Background(), cluster.EventSubject("w1", cluster.KindMetrics, run.RunID), batch); err != nil {
		t.Fatalf("w1 publishing under its own id: %v", err)
	}
	testutil.Eventually(t, 60*time.Second, func() error {
		if n := forgedCount(t, c); n <= before {
			return fmt.Errorf("collector's forged count %v, not above %v", n, before)
		}
		return nil
	})
	dlq, err := s.obsJS.Stream(context.Background(), cluster.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	if dl, err := dlq.GetLastMsgForSubject(context.Background(), cluster.DLQSubject(collector.DLQForged)); err != nil || !bytes.Equal(dl.Data, batch) {
		t.Errorf("DLQ %s: %v; want w1's batch", cluster.DLQSubject(collector.DLQForged), err)
	}
	if st := c.state(run.RunID); st.Status != cluster.StateRunning || st.Worker != "w2" || st.Attempt != run.Attempt {
		t.Errorf("after w1's attempts, run %s is %s on %s attempt %d; want still running on w2, attempt %d", run.RunID, st.Status, st.Worker, st.Attempt, run.Attempt)
	}
	for _, id := range ids {
		s.run(append([]string{"cancel", id}, s.flags(cluster.RoleClient, "")...)...)
	}
	c.waitTerminal(2*time.Minute, ids...)

	others := []string{"refused", "refused"} // admin, coordinator: no wapi.*, no ev.*
	m.add("finish another worker's running attempt (own wapi, its run and attempt)",
		append(slices.Clone(others), finish, "refused", "refused")...)
	m.add("publish metrics for another worker's attempt (own ev subject)",
		append(slices.Clone(others), "rejected by the collector: dlq.forged, counted", "refused", "refused")...)
}

// forgedCount reads gorch_collector_forged_total from the collector's
// /metrics.
func forgedCount(t *testing.T, c *testCluster) float64 {
	t.Helper()
	log := waitProcLog(t, c.procByName("collector"), `msg="http serving"`)
	m := regexp.MustCompile(`msg="http serving" addr=(\S+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no address in the collector's log")
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "gorch_collector_forged_total "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no gorch_collector_forged_total in the collector's /metrics")
	return 0
}

// checkServerLog fails the test if the server refused anything to a
// connection other than the matrix's probes: the permission table must
// give every service all it needs.
func (s *secureNATS) checkServerLog() {
	s.t.Helper()
	b, err := os.ReadFile(s.log)
	if err != nil {
		s.t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, "Violation") && !strings.Contains(line, probeName) {
			s.t.Errorf("the server refused a service: %s", strings.TrimSpace(line))
		}
	}
}

// checkNoSecrets greps every log and output of the test (the server's,
// every service's, every gorch command's) and every service's command
// line for the seeds and private keys of the deployment and the S3 secret
// key.
func (s *secureNATS) checkNoSecrets(c *testCluster) {
	s.t.Helper()
	secrets := append(deploymentSecrets(s.t, s.dir), c.s3.SecretKey)
	if len(secrets) < 10 {
		s.t.Fatalf("found only %d secrets in %s: the secrets grep is broken", len(secrets), s.dir)
	}
	logs := slices.Clone(s.outs)
	files := []string{s.log}
	for _, p := range c.procs {
		files = append(files, p.log)
		logs = append(logs, strings.Join(p.argv, " "))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			s.t.Fatal(err)
		}
		logs = append(logs, string(b))
	}
	for _, l := range logs {
		for _, sec := range secrets {
			if strings.Contains(l, sec) {
				s.t.Errorf("a secret (%.6s...) appears in a log or output", sec)
			}
		}
	}
}

// deploymentSecrets lists every nkey seed and private key under dir.
func deploymentSecrets(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(b)) {
			line = strings.TrimSpace(line)
			if len(line) == 58 && line[0] == 'S' || strings.HasPrefix(path, filepath.Join(dir, auth.TLSDir)) &&
				strings.HasSuffix(path, "-key.pem") && len(line) > 40 && !strings.HasPrefix(line, "-----") {
				out = append(out, line)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
