package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
)

// F5: network partition of a worker. The worker runs in its own network
// namespace, joined to the host by a veth pair on a private /30; it
// reaches NATS and S3 through TCP forwarders this test process runs on the
// host end of the pair (the servers themselves stay on loopback). Taking
// the host end down cuts the worker off without touching its process.

// ipCmd is the iproute2 binary.
func ipCmd() string {
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"} {
		if fileExists(p) {
			return p
		}
	}
	return "ip"
}

// partitionNet is a network namespace joined to the host by a veth pair:
// HostIP on HostDev, NSIP inside NS.
type partitionNet struct {
	t              *testing.T
	NS             string
	HostDev, NSDev string
	HostIP, NSIP   string
	ipBin          string
}

func (n *partitionNet) ip(args ...string) error {
	out, err := exec.Command(n.ipBin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newPartitionNet creates a namespace and a veth pair with a free
// 10.213.K.0/30, removed again in t.Cleanup (also when the test fails).
// It fails the test (never skips) when namespaces cannot be created.
func newPartitionNet(t *testing.T) *partitionNet {
	t.Helper()
	id := fmt.Sprintf("%d%03d", os.Getpid()%100000, time.Now().UnixNano()/1e6%1000)
	n := &partitionNet{t: t, NS: "gorch-part-" + id, HostDev: "gp" + id + "h", NSDev: "gp" + id + "n", ipBin: ipCmd()}
	if err := n.ip("netns", "add", n.NS); err != nil {
		t.Fatalf("network partition test needs network namespaces (run as root with iproute2; `ip netns add` must work): %v", err)
	}
	t.Cleanup(func() {
		// Deleting one end of a veth pair deletes both; then the namespace.
		_ = n.ip("link", "del", n.HostDev)
		if err := n.ip("netns", "del", n.NS); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := n.ip("link", "add", n.HostDev, "type", "veth", "peer", "name", n.NSDev); err != nil {
		t.Fatalf("creating the veth pair: %v", err)
	}
	// A /30 no interface uses yet.
	out, err := exec.Command(n.ipBin, "-o", "-4", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr show: %v: %s", err, out)
	}
	for k := os.Getpid() % 200; ; k++ {
		if k >= os.Getpid()%200+200 {
			t.Fatalf("no free 10.213.K.0/30 subnet")
		}
		prefix := fmt.Sprintf("10.213.%d.", 20+k%200)
		if !strings.Contains(string(out), " "+prefix) {
			n.HostIP, n.NSIP = prefix+"1", prefix+"2"
			break
		}
	}
	for _, args := range [][]string{
		{"link", "set", n.NSDev, "netns", n.NS},
		{"addr", "add", n.HostIP + "/30", "dev", n.HostDev},
		{"link", "set", n.HostDev, "up"},
		{"netns", "exec", n.NS, n.ipBin, "addr", "add", n.NSIP + "/30", "dev", n.NSDev},
		{"netns", "exec", n.NS, n.ipBin, "link", "set", n.NSDev, "up"},
		{"netns", "exec", n.NS, n.ipBin, "link", "set", "lo", "up"},
	} {
		if err := n.ip(args...); err != nil {
			t.Fatalf("setting up the namespace: %v", err)
		}
	}
	return n
}

// setLink takes the host end of the pair up or down.
func (n *partitionNet) setLink(up bool) {
	n.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	if err := n.ip("link", "set", n.HostDev, state); err != nil {
		n.t.Fatal(err)
	}
}

// exec is the command prefix that runs a program inside the namespace.
func (n *partitionNet) exec() []string { return []string{n.ipBin, "netns", "exec", n.NS} }

// forwarder accepts TCP connections on a host address and pipes each one
// to target. It records when bytes last came in from a client.
type forwarder struct {
	ln       net.Listener
	target   string
	lastRecv atomic.Int64 // unix nanos of the last bytes read from a client
	mu       sync.Mutex
	conns    []net.Conn
	closed   bool
}

func startForwarder(t *testing.T, listen, target string) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("forwarder on %s: %v", listen, err)
	}
	f := &forwarder{ln: ln, target: target}
	t.Cleanup(f.close)
	go f.serve()
	return f
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns = append(f.conns, c)
	return true
}

func (f *forwarder) serve() {
	for {
		in, err := f.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", f.target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		if !f.track(in) || !f.track(out) {
			in.Close()
			out.Close()
			return
		}
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := in.Read(buf)
				if n > 0 {
					f.lastRecv.Store(time.Now().UnixNano())
					if _, werr := out.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			in.Close()
			out.Close()
		}()
		go func() {
			_, _ = io.Copy(in, out)
			in.Close()
			out.Close()
		}()
	}
}

func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	f.ln.Close()
	for _, c := range conns {
		c.Close()
	}
}

// TestFaultWorkerPartition (F5): a worker in a network namespace owns a
// run and has checkpointed it when its veth link goes down for longer than
// the lease. The other worker takes the run over (attempt 2) and finishes
// it; the link comes back, and the partitioned worker's late writes are
// fenced: no state revision by it after the takeover, no checkpoint of
// its attempt announced after the new owner's, the resume point monotonic
// and never the stale attempt's, and the
// checker finds nothing lost or duplicated and one terminal state.
func TestFaultWorkerPartition(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	pn := newPartitionNet(t) // before the cluster: its cleanup runs after the processes are stopped
	c := startCluster(t)
	natsFwd := startForwarder(t, net.JoinHostPort(pn.HostIP, "0"), strings.TrimPrefix(c.url, "nats://"))
	s3Fwd := startForwarder(t, net.JoinHostPort(pn.HostIP, "0"), c.s3.Endpoint)
	const victimID, otherID = "wpart", "w2"
	victim := c.startVia("worker-"+victimID, pn.exec(), c.workerArgs(victimID, "nats://"+natsFwd.addr(), s3Fwd.addr())...)
	c.waitWorkers(victimID)

	s := pauseSpec
	id := c.submit(s)
	// Partition right after the namespaced worker recorded a checkpoint.
	var owned cluster.RunState
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := c.state(id)
		if st.Status == cluster.StateRunning && st.Attempt == 1 && st.Resume != nil {
			owned = st
			break
		}
		if cluster.Terminal(st.Status) || time.Now().After(deadline) || victim.exited() {
			t.Fatalf("run never reached its first checkpoint on the namespaced worker: %+v (worker exited: %v)", st, victim.exited())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if owned.Worker != victimID {
		t.Fatalf("run owned by %q, want the namespaced worker %s", owned.Worker, victimID)
	}
	c.startWorker(otherID)
	c.waitWorkers(otherID)
	pn.setLink(false)
	downAt := time.Now()
	linkUp := false
	t.Cleanup(func() {
		if !linkUp {
			_ = pn.ip("link", "set", pn.HostDev, "up")
		}
	})
	// The other worker takes the run over once the lease expires.
	takeover := c.waitState(id, testAckWait+30*time.Second, "taken over", func(st cluster.RunState) bool {
		return st.Attempt >= 2 || cluster.Terminal(st.Status)
	})
	tookOver := time.Since(downAt)
	if takeover.Attempt != 2 || takeover.Worker != otherID || cluster.Terminal(takeover.Status) {
		t.Fatalf("after the partition the run is %s, attempt %d on %q; want running, attempt 2 on %s (trail %s)",
			takeover.Status, takeover.Attempt, takeover.Worker, otherID, statusTrail(c.states.History(id)))
	}
	// Keep the link down well past the lease (AckWait plus a margin).
	if d := testAckWait + 4*time.Second - time.Since(downAt); d > 0 {
		time.Sleep(d)
	}
	pn.setLink(true)
	linkUp = true
	upAt := time.Now()
	down := upAt.Sub(downAt)

	// The partitioned worker's connections come back to life (TCP
	// retransmits or a reconnect): its late writes reach the servers.
	healed := time.Duration(0)
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if last := natsFwd.lastRecv.Load(); last > upAt.UnixNano() {
			healed = time.Unix(0, last).Sub(upAt)
			break
		}
	}
	if healed == 0 {
		t.Errorf("no traffic from the partitioned worker within 45s of the link coming back (exited: %v)", victim.exited())
	}
	final := c.waitTerminal(90*time.Second, id)[id]
	// Give its late writes (retried publishes, CAS attempts, checkpoint
	// writes) time to land before looking.
	time.Sleep(3 * time.Second)

	if final.Status != cluster.StateSucceeded || final.Attempt != 2 || final.Worker != otherID || final.Step != int64(s.Steps) {
		t.Errorf("final state %s, attempt %d on %q, step %d; want succeeded, attempt 2 on %s, step %d",
			final.Status, final.Attempt, final.Worker, final.Step, otherID, s.Steps)
	}
	// Fencing of the state: once attempt 2 claimed the run, no revision
	// names attempt 1 or the partitioned worker.
	fr := c.checkTakeoverFenced(id, victimID, s.Steps)
	if st := c.state(id); st.Status != final.Status || st.Attempt != final.Attempt || st.Worker != final.Worker || !st.Updated.Equal(final.Updated) {
		t.Errorf("state changed after the run finished: %+v, was %+v", st, final)
	}
	// Evidence that its late writes hit the fence (logged, not asserted:
	// which write meets it first depends on timing).
	vlog, _ := os.ReadFile(victim.log)
	fenced := strings.Count(string(vlog), "not the run's owner")
	t.Logf("partitioned worker's log: %d writes refused as not the run's owner", fenced)
	t.Logf("netns %s, veth %s %s/30 <-> %s; partitioned %s at state step %d; taken over by %s after %s (ack wait %s), "+
		"resumed from checkpoint %d; link down %s; partitioned worker's traffic resumed %s after link up (exited: %v); "+
		"stale attempt recorded %d train/loss steps past the resume point (kept under attempt 1); resume point monotonic; "+
		"%d checkpoint events (attempt 1 before attempt 2)",
		pn.NS, pn.HostDev, pn.HostIP, pn.NSIP, victimID, owned.Step, otherID, tookOver.Round(time.Millisecond), testAckWait,
		fr.Resumed, down.Round(time.Millisecond), healed.Round(time.Millisecond), victim.exited(), fr.Late, fr.Events)
	if r := c.check(); r.Succeeded != 1 {
		t.Errorf("checker: %d succeeded, want 1", r.Succeeded)
	}
}

// waitWorkers waits until every worker in ids heartbeats.
func (c *testCluster) waitWorkers(ids ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		missing := c.missingWorkers(ctx, ids)
		if len(missing) == 0 {
			return
		}
		if ctx.Err() != nil {
			c.t.Fatalf("workers without heartbeat after 30s: %v", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
