//go:build k8s

package k8s

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/testutil"
)

// controlPlane is etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
// (fake nodes whose pods "run" without running anything), as processes on loopback ports.
type controlPlane struct {
	t          *testing.T
	dir        string
	kubeconfig string
	mu         sync.Mutex
	procs      []*exec.Cmd
	logs       []string
}

// start runs one control-plane process, logging to dir/<name>.log.
func (c *controlPlane) start(name, bin string, args ...string) {
	c.t.Helper()
	log := filepath.Join(c.dir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting %s: %v", name, err)
	}
	go func() { cmd.Wait(); f.Close() }()
	c.mu.Lock()
	c.procs, c.logs = append(c.procs, cmd), append(c.logs, log)
	c.mu.Unlock()
}

func (c *controlPlane) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.procs) - 1; i >= 0; i-- {
		_ = syscall.Kill(-c.procs[i].Process.Pid, syscall.SIGKILL)
	}
}

func (c *controlPlane) tail(n int) string {
	var b strings.Builder
	for _, l := range c.logs {
		data, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(l), strings.Join(lines[max(0, len(lines)-n):], "\n"))
	}
	return b.String()
}

// kubectl runs kubectl against the control plane; stdin may be nil.
func (c *controlPlane) kubectl(stdin []byte, args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kubectl(c.t), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// must runs kubectl and fails the test if it fails.
func (c *controlPlane) must(stdin []byte, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.kubectl(stdin, args...)
	if err != nil {
		c.t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, errOut, out)
	}
	return out + errOut
}

// startControlPlane starts etcd and kube-apiserver and waits until the API server is
// ready; with scheduling also controller-manager, scheduler, kwok and one fake node.
func startControlPlane(t *testing.T) *controlPlane {
	c := &controlPlane{t: t, dir: t.TempDir()}
	t.Cleanup(c.stop)
	etcdPort, peerPort, apiPort := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	c.start("etcd", tool(t, "etcd", "etcd", etcdVersion), "--data-dir", filepath.Join(c.dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort), "--log-level", "warn")

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	saKey, saPub := filepath.Join(c.dir, "sa.key"), filepath.Join(c.dir, "sa.pub")
	writeFile(t, saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	writeFile(t, saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	token := "gorch-test-token"
	writeFile(t, filepath.Join(c.dir, "tokens.csv"), []byte(token+",admin,admin,system:masters\n"))
	c.kubeconfig = filepath.Join(c.dir, "kubeconfig")
	writeFile(t, c.kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:%d", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %s}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`, apiPort, token))

	c.start("kube-apiserver", tool(t, "kube-apiserver", "kube", kubeVersion),
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(apiPort), "--advertise-address", "127.0.0.1",
		"--cert-dir", filepath.Join(c.dir, "certs"), "--token-auth-file", filepath.Join(c.dir, "tokens.csv"),
		"--authorization-mode", "RBAC", "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saPub, "--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.96.0.0/16", "--endpoint-reconciler-type", "none")
	eventually(t, 90*time.Second, "kube-apiserver ready", func() error {
		_, errOut, err := c.kubectl(nil, "get", "--raw", "/readyz")
		if err != nil {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		return nil
	}, func() string { return c.tail(20) })
	return c
}

// schedule starts the controllers, the scheduler and kwok, and adds one fake node.
func (c *controlPlane) schedule() {
	t := c.t
	c.start("kube-controller-manager", tool(t, "kube-controller-manager", "kube", kubeVersion),
		"--kubeconfig", c.kubeconfig, "--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", "0",
		"--service-account-private-key-file", filepath.Join(c.dir, "sa.key"), "--use-service-account-credentials=false")
	c.start("kube-scheduler", tool(t, "kube-scheduler", "kube", kubeVersion),
		"--kubeconfig", c.kubeconfig, "--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", "0")
	c.start("kwok", tool(t, "kwok", "kwok", kwokVersion), "--kubeconfig", c.kubeconfig,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--cidr=10.0.0.1/16", "--node-ip=10.0.0.1")
	c.must([]byte(fakeNode), "apply", "-f", "-")
}

// fakeNode is a node kwok answers for: pods scheduled on it turn Running and Ready.
const fakeNode = `apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: kwok-node-0, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "110"}
  capacity: {cpu: "64", memory: 256Gi, pods: "110"}
`

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAPIServer applies every render to a real API server, each in its own namespace
// that enforces Pod Security "restricted": first as a server-side dry run, then for real,
// and prints what was applied. With the controllers, the scheduler and kwok, the
// Deployments and StatefulSets then reach their replica counts (fake pods on a fake node;
// a pod Pod Security rejects never exists, so its owner never gets there).
func TestAPIServer(t *testing.T) {
	crds := os.Getenv("GORCH_K8S_CRDS")
	if crds == "" {
		t.Fatal("GORCH_K8S_CRDS is not set; run the tests from scripts/test.sh (it sources scripts/setup.sh)")
	}
	c := startControlPlane(t)
	defer func() {
		if t.Failed() {
			t.Logf("control plane logs:\n%s", c.tail(15))
		}
	}()
	t.Logf("CRDs (KEDA, prometheus-operator):\n%s", c.must(nil, "apply", "--server-side", "-f", crds))
	for _, crd := range []string{"scaledobjects.keda.sh", "servicemonitors.monitoring.coreos.com"} {
		// kubectl wait fails on a CRD that has no status yet; ask until it is established.
		eventually(t, time.Minute, crd+" established", func() error {
			out, _, err := c.kubectl(nil, "get", "crd", crd, "-o", `jsonpath={.status.conditions[?(@.type=="Established")].status}`)
			if err != nil || out != "True" {
				return fmt.Errorf("established %q, %v", out, err)
			}
			return nil
		}, func() string { return "" })
	}
	c.schedule()
	// NATS's volume claims bind to these (no provisioner here).
	for i := range 12 {
		c.must(fmt.Appendf(nil, `apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-%d}
spec:
  capacity: {storage: 100Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /nonexistent/pv-%d}
`, i, i), "apply", "-f", "-")
	}
	for _, name := range renders {
		t.Run(name, func(t *testing.T) {
			c.t = t
			applyRender(t, c, name, parse(t, render(t, name)))
		})
	}
}

// applyRender creates the render's namespace (restricted), applies it (dry run, then for
// real) and waits for its workloads.
func applyRender(t *testing.T, c *controlPlane, ns string, objs []*object) {
	nsObj := map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns,
		"labels": map[string]any{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}}}
	var items []map[string]any
	for _, o := range objs {
		if o.Kind == "Namespace" {
			// The overlay's own namespace: applied under the test's name, with its labels.
			md := o.raw["metadata"].(map[string]any)
			md["name"] = ns
			nsObj = o.raw
			if md["labels"].(map[string]any)["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Errorf("%s: namespace %s does not enforce Pod Security restricted", ns, o.Metadata.Name)
			}
			continue
		}
		o.raw["metadata"].(map[string]any)["namespace"] = ns
		items = append(items, o.raw)
	}
	nsJSON, _ := json.Marshal(nsObj)
	c.must(nsJSON, "apply", "--server-side", "-f", "-")
	list, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if err != nil {
		t.Fatal(err)
	}
	for _, dry := range []string{"--dry-run=server", ""} {
		args := []string{"apply", "--server-side", "--field-manager=gorch-test", "-f", "-"}
		if dry != "" {
			args = append(args, dry)
		}
		out := c.must(list, args...)
		t.Logf("kubectl apply --server-side %s -n %s:\n%s", dry, ns, out)
		if strings.Contains(out, "Warning") {
			t.Errorf("kubectl apply %s warned:\n%s", dry, out)
		}
	}
	for _, o := range objs {
		if o.Kind != "Deployment" && o.Kind != "StatefulSet" {
			continue
		}
		res := strings.ToLower(o.Kind) + "/" + o.Metadata.Name
		eventually(t, 2*time.Minute, ns+" "+res+" ready", func() error {
			out, errOut, err := c.kubectl(nil, "-n", ns, "get", res, "-o", "jsonpath={.spec.replicas} {.status.readyReplicas}")
			if err != nil {
				return fmt.Errorf("%v: %s", err, errOut)
			}
			f := strings.Fields(out)
			if len(f) != 2 || f[0] != f[1] {
				return fmt.Errorf("replicas, ready = %q", out)
			}
			return nil
		}, func() string {
			out, _, _ := c.kubectl(nil, "-n", ns, "get", "events", "--sort-by=.lastTimestamp")
			return out
		})
		out, _, _ := c.kubectl(nil, "-n", ns, "get", res, "-o", "jsonpath={.status.readyReplicas}")
		t.Logf("%s/%s: %s ready", ns, res, out)
	}
}
