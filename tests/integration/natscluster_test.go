package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
)

// natsNode is one nats-server process of a three-node cluster.
type natsNode struct {
	name        string
	port, route int
	dir         string
	p           *proc
}

// natsCluster is three nats-server processes (the version gorch embeds,
// built by scripts/setup.sh) on loopback, routed to each other, with
// JetStream.
type natsCluster struct {
	c     *testCluster
	nodes []*natsNode
}

// startNATSCluster starts the three servers and waits until JetStream
// answers through them.
func startNATSCluster(c *testCluster) *natsCluster {
	t := c.t
	t.Helper()
	bin := testutil.ToolPath("nats-server", testutil.NATSServerVersion)
	if !fileExists(bin) {
		t.Fatalf("nats-server %s not found at %s: run scripts/setup.sh with GORCH_SETUP_TEST_TOOLS=1", testutil.NATSServerVersion, bin)
	}
	nc := &natsCluster{c: c}
	for i := 1; i <= 3; i++ {
		nc.nodes = append(nc.nodes, &natsNode{name: fmt.Sprintf("n%d", i), port: testutil.FreePort(t), route: testutil.FreePort(t),
			dir: filepath.Join(c.dir, fmt.Sprintf("nats-n%d", i))})
	}
	for i := range nc.nodes {
		nc.start(i)
	}
	return nc
}

// urls is the cluster's client URLs, comma-separated.
func (nc *natsCluster) urls() string {
	var us []string
	for _, n := range nc.nodes {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", n.port))
	}
	return strings.Join(us, ",")
}

// start starts node i on its ports and store (again, after a kill).
func (nc *natsCluster) start(i int) {
	n := nc.nodes[i]
	var routes []string
	for _, o := range nc.nodes {
		if o != n {
			routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", o.route))
		}
	}
	argv := []string{testutil.ToolPath("nats-server", testutil.NATSServerVersion), "--server_name", n.name, "-a", "127.0.0.1",
		"-p", strconv.Itoa(n.port), "-js", "-sd", n.dir, "--cluster_name", "gorch", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", n.route),
		"--routes", strings.Join(routes, ",")}
	n.p = nc.c.startProgram("nats-"+n.name, argv)
}

// kill kills node i (SIGKILL) and waits for it to be gone.
func (nc *natsCluster) kill(i int) {
	n := nc.nodes[i]
	n.p.signal(nc.c.t, syscall.SIGKILL)
	if !n.p.wait(10 * time.Second) {
		nc.c.t.Fatalf("nats-server %s survived SIGKILL", n.name)
	}
}

// index returns the index of the node named name.
func (nc *natsCluster) index(name string) int {
	for i, n := range nc.nodes {
		if n.name == name {
			return i
		}
	}
	nc.c.t.Fatalf("no nats-server named %q", name)
	return -1
}

// leader is the server leading stream's RAFT group, once it has one
// with every replica current.
func leader(t *testing.T, js jetstream.JetStream, stream string) string {
	t.Helper()
	var name string
	testutil.Eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return fmt.Errorf("stream %s has no leader", stream)
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return fmt.Errorf("stream %s: replica %s not current", stream, r.Name)
			}
		}
		name = info.Cluster.Leader
		return nil
	})
	return name
}

// moveLeader asks stream's leader to step down in favour of server to
// (JetStream's leader stepdown with a preferred placement).
func (c *testCluster) moveLeader(stream, to string) error {
	req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": to}})
	m, err := c.nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, req, 10*time.Second)
	if err != nil {
		return err
	}
	var r struct {
		Error *struct{ Description string } `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return err
	}
	if r.Error != nil {
		return fmt.Errorf("stepdown of %s: %s", stream, r.Error.Description)
	}
	return nil
}

// TestFaultNATSClusterLeaderKill (F11): the cluster's NATS is three
// nats-server processes on loopback; `gorch setup --replicas 3` puts every
// stream and bucket at three replicas. During a sweep, the node that
// leads both the RUNS and the EVENTS streams (EVENTS's leader moved there
// first) is killed with SIGKILL and restarted 5 s later. The services
// fail over to the other nodes and carry on: every run ends succeeded, in
// exactly one terminal state, with nothing lost or duplicated.
func TestFaultNATSClusterLeaderKill(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	c := newTestCluster(t, nil)
	t.Cleanup(c.stopAll)
	ncl := startNATSCluster(c)
	url := ncl.urls()
	testutil.Eventually(t, 60*time.Second, func() error {
		cmd := runGorchCmd("setup", "--nats", url, "--replicas", "3")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("gorch setup --replicas 3: %v: %s", err, out)
		}
		return nil
	})
	c.attach(url, false)
	ctx := context.Background()
	for _, name := range []string{cluster.StreamRuns, cluster.StreamEvents, "KV_" + cluster.BucketRuns} {
		s, err := c.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Fatalf("stream %s has %d replicas, want 3", name, r)
		}
	}
	c.start("coordinator", "coordinator", "--nats", url)
	c.start("collector", append([]string{"collector", "--nats", url}, c.s3Flags()...)...)
	workers := []string{"w1", "w2", "w3"}
	for _, id := range workers {
		c.start("worker-"+id, c.workerArgs(id, url, c.s3.Endpoint)...)
	}
	c.waitServing(ctx, workers)

	var ids []string
	for i := range 8 {
		ids = append(ids, c.submit(shortSpec(1500+100*i, i+1)))
	}
	// Once runs train past a checkpoint, kill the leader of RUNS (and of
	// EVENTS, moved there first).
	testutil.Eventually(t, 60*time.Second, func() error {
		n := 0
		for _, id := range ids {
			if st := c.state(id); st.Status == cluster.StateRunning && st.Resume != nil {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("%d runs past a checkpoint", n)
		}
		return nil
	})
	victim := leader(t, c.js, cluster.StreamRuns)
	if l := leader(t, c.js, cluster.StreamEvents); l != victim {
		if err := c.moveLeader(cluster.StreamEvents, victim); err != nil {
			t.Fatalf("moving the EVENTS leader to %s: %v", victim, err)
		}
		testutil.Eventually(t, 30*time.Second, func() error {
			if l := leader(t, c.js, cluster.StreamEvents); l != victim {
				return fmt.Errorf("EVENTS led by %s, want %s", l, victim)
			}
			return nil
		})
	}
	i := ncl.index(victim)
	ncl.kill(i)
	killedAt := time.Now()
	t.Logf("killed %s, the leader of RUNS and EVENTS", victim)
	time.Sleep(5 * time.Second)
	ncl.start(i)
	newRuns, newEvents := leader(t, c.js, cluster.StreamRuns), leader(t, c.js, cluster.StreamEvents)
	t.Logf("%s restarted %s after the kill; RUNS now led by %s, EVENTS by %s, every replica current",
		victim, time.Since(killedAt).Round(time.Millisecond), newRuns, newEvents)

	final := c.waitTerminal(4*time.Minute, ids...)
	for _, id := range ids {
		if st := final[id]; st.Status != cluster.StateSucceeded {
			t.Errorf("run %s = %s after %d attempts (%s); want succeeded", id, st.Status, st.Attempt, st.Error)
		}
	}
	// The test's own watch of the runs bucket may have missed revisions
	// while its server was down: take them from each key's history.
	if err := c.states.Backfill(ctx, c.kv, ids); err != nil {
		t.Fatal(err)
	}
	c.waitCollectorDrained(2*testAckWait + 60*time.Second)
	c.mu.Lock()
	for _, p := range c.procs {
		if !strings.HasPrefix(p.name, "nats-") && p.exited() {
			t.Errorf("service %s exited: %v", p.name, p.err)
		}
	}
	c.mu.Unlock()
	if r := c.check(); r.Succeeded != len(ids) {
		t.Errorf("checker: %d succeeded, want %d", r.Succeeded, len(ids))
	}
}
