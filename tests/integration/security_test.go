package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/gorch/gorch/internal/auth"
	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
)

// secureNATS is a real nats-server (the binary, not the embedded one)
// serving a deployment that `gorch auth init` wrote, over TLS.
type secureNATS struct {
	t      *testing.T
	dir    string // the deployment
	url    string
	caFile string
	log    string // the server's log file
	cmd    *exec.Cmd
	obs    *nats.Conn // an observer with every permission, minted by the test
	obsJS  jetstream.JetStream
	outs   []string // output of every gorch command the test ran, for the secrets grep
}

// startSecureNATS runs `gorch auth init` for workers w1 and w2 and a TLS
// certificate for 127.0.0.1, starts nats-server with the configuration it
// wrote, and creates the streams as admin.
func startSecureNATS(t *testing.T) *secureNATS {
	t.Helper()
	bin := testutil.ToolPath("nats-server", testutil.NATSServerVersion)
	if bin == "" {
		t.Fatalf("nats-server %s not found: %s", testutil.NATSServerVersion, testutil.ToolInstall)
	}
	base := t.TempDir()
	s := &secureNATS{t: t, dir: filepath.Join(base, "deploy"), log: filepath.Join(base, "nats-server.log")}
	s.caFile = filepath.Join(s.dir, auth.TLSDir, "ca.pem")
	addr := freeAddr(t)
	s.run("auth", "init", "--dir", s.dir, "--workers", "w1,w2", "--listen", addr,
		"--tls-host", "127.0.0.1", "--jetstream-dir", filepath.Join(base, "jetstream"))
	s.url = "tls://" + addr
	f, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, "-c", filepath.Join(s.dir, auth.ServerConfigFile))
	s.cmd.Stdout, s.cmd.Stderr = f, f
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		f.Close()
		if t.Failed() {
			t.Logf("--- nats-server log:\n%s", tail(s.log, 60))
		}
	})
	obsCreds := s.mintObserver()
	testutil.Eventually(t, 30*time.Second, func() error {
		s.obs, err = nats.Connect(s.url, nats.UserCredentials(obsCreds), nats.RootCAs(s.caFile))
		return err
	})
	t.Cleanup(s.obs.Close)
	s.obsJS, _ = jetstream.New(s.obs)

	admin := s.connect(auth.RoleAdmin, "", nil)
	js, _ := jetstream.New(admin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cluster.Setup(ctx, js, cluster.SetupOptions{}); err != nil {
		t.Fatalf("setup as admin: %v", err)
	}
	admin.Close()
	return s
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

// connect opens a connection as role (id: the worker id) with the
// credentials gorch auth init wrote, its role's inbox prefix, and async
// errors to rec.
func (s *secureNATS) connect(role, id string, rec *testutil.NATSErrors) *nats.Conn {
	s.t.Helper()
	opts := []nats.Option{nats.UserCredentials(auth.CredsFile(s.dir, role, id)), nats.RootCAs(s.caFile),
		nats.CustomInboxPrefix(auth.InboxPrefix(role, id))}
	if rec != nil {
		opts = append(opts, nats.ErrorHandler(rec.Handler))
	}
	nc, err := nats.Connect(s.url, opts...)
	if err != nil {
		s.t.Fatalf("connect as %s %s: %v", role, id, err)
	}
	return nc
}

// matrixRoles are the matrix's columns: each role's identity (the worker
// column is worker w1).
var matrixRoles = []struct{ role, id string }{
	{auth.RoleAdmin, ""}, {auth.RoleCoordinator, ""}, {auth.RoleWorker, "w1"}, {auth.RoleCollector, ""}, {auth.RoleClient, ""},
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
		{"change a stream's settings (EVENTS)", []string{auth.RoleAdmin}, func(p *prober) verdict {
			return p.request("$JS.API.STREAM.UPDATE."+cluster.StreamEvents, p.streamConfig(cluster.StreamEvents), nil)
		}},
		{"change the collector's consumer", []string{auth.RoleAdmin}, func(p *prober) verdict {
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
		{"write run state (KV runs)", []string{auth.RoleCoordinator}, func(p *prober) verdict {
			return p.request("$KV."+cluster.BucketRuns+".probe.matrix", []byte("probe"), nil)
		}},
		{"dispatch a run", []string{auth.RoleCoordinator}, func(p *prober) verdict {
			return p.request(cluster.DispatchSubject(cluster.PriorityLow), []byte("probe"), nil)
		}},
		{"take a run off the queue", []string{auth.RoleWorker}, func(p *prober) verdict {
			return p.request("$JS.API.CONSUMER.MSG.NEXT."+cluster.StreamRuns+"."+cluster.DispatchConsumer(cluster.PriorityLow), noWait, p.ackAll)
		}},
		{"consume EVENTS through the collector's consumer", []string{auth.RoleCollector}, func(p *prober) verdict {
			return p.request("$JS.API.CONSUMER.MSG.NEXT."+cluster.StreamEvents+"."+cluster.ConsumerCollect, noWait, nil)
		}},
		{"publish events (records) as worker w2", nil, func(p *prober) verdict {
			return p.request("ev.w2.metrics.matrix-probe", []byte("probe"), nil)
		}},
		{"heartbeat as worker w2", nil, func(p *prober) verdict {
			return p.request("$KV."+cluster.BucketWorkers+"."+cluster.WorkerKey("w2"), []byte("probe"), nil)
		}},
		{"ask the coordinator as worker w2 (wapi.w2)", nil, func(p *prober) verdict {
			return p.publish("wapi.w2.finish")
		}},
		{"cancel worker w2's runs (ctl.w2)", []string{auth.RoleCoordinator}, func(p *prober) verdict {
			return p.publish("ctl.w2.cancel")
		}},
		{"serve the client API (subscribe api.>)", []string{auth.RoleCoordinator}, func(p *prober) verdict {
			return p.subscribe(cluster.APISubject(">"))
		}},
		{"serve the worker API (subscribe wapi.*.>)", []string{auth.RoleCoordinator}, func(p *prober) verdict {
			return p.subscribe("wapi.*.>")
		}},
		{"read worker w2's cancel notices", nil, func(p *prober) verdict {
			return p.subscribe("ctl.w2.>")
		}},
		{"read the coordinator's replies", []string{auth.RoleCoordinator}, func(p *prober) verdict {
			return p.subscribe(auth.InboxPrefix(auth.RoleCoordinator, "") + ".>")
		}},
		{"read worker w2's replies", nil, func(p *prober) verdict {
			return p.subscribe(auth.InboxPrefix(auth.RoleWorker, "w2") + ".>")
		}},
		{"read the client's replies", []string{auth.RoleClient}, func(p *prober) verdict {
			return p.subscribe(auth.InboxPrefix(auth.RoleClient, "") + ".>")
		}},
		{"read replies on the default inbox (_INBOX.>)", nil, func(p *prober) verdict {
			return p.subscribe("_INBOX.>")
		}},
	}
}

// runMatrix carries out every forbidden action as every role, fails the
// test where a cell differs from the expectation, and returns the
// printed matrix.
func runMatrix(t *testing.T, s *secureNATS) string {
	t.Helper()
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "action")
	for _, r := range matrixRoles {
		name := r.role
		if r.id != "" {
			name += " " + r.id
		}
		fmt.Fprintf(tw, "\t%s", name)
	}
	fmt.Fprintln(tw)
	probers := make([]*prober, len(matrixRoles))
	for i, r := range matrixRoles {
		rec := &testutil.NATSErrors{}
		nc := s.connect(r.role, r.id, rec)
		defer nc.Close()
		probers[i] = &prober{t: t, s: s, nc: nc, rec: rec}
	}
	for _, a := range forbiddenActions() {
		fmt.Fprint(tw, a.action)
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
			fmt.Fprintf(tw, "\t%s", cell)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	return b.String()
}

// TestSecureCluster runs against a real nats-server serving a deployment
// from `gorch auth init` (TLS, operator mode, one identity per role) and
// checks the forbidden-actions matrix: each action a role must not take
// is refused to it by the server, and the few that are some role's job
// work for that role.
func TestSecureCluster(t *testing.T) {
	s := startSecureNATS(t)
	matrix := runMatrix(t, s)
	t.Logf("forbidden-actions matrix (action × role):\n%s", matrix)
	s.checkNoSecrets()
}

// checkNoSecrets greps every log and output of the test for the seeds and
// private keys of the deployment.
func (s *secureNATS) checkNoSecrets() {
	s.t.Helper()
	secrets := deploymentSecrets(s.t, s.dir)
	if len(secrets) < 10 {
		s.t.Fatalf("found only %d secrets in %s: the secrets grep is broken", len(secrets), s.dir)
	}
	logs := slices.Clone(s.outs)
	if b, err := os.ReadFile(s.log); err == nil {
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
