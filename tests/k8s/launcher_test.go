//go:build k8s

package k8s

import (
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/testutil"
)

// The launcher runs rendered manifests as processes on this machine, doing what a kubelet,
// kube-proxy and cluster DNS would do, and no more:
//
//   - one pod per replica of each Deployment and StatefulSet (<name>-<i>; a Deployment a
//     KEDA ScaledObject scales gets its minReplicaCount), one per Job;
//   - each container's command and args run as a process with exactly the environment the
//     manifest gives it: env (value, fieldRef, resourceFieldRef, secretKeyRef,
//     configMapKeyRef), envFrom, and $(VAR) expanded in command and args;
//   - volumes: emptyDir and PVC templates are fresh folders, configMap, secret and projected
//     volumes folders holding their keys as files; a mount path in args, env and mounted
//     files is rewritten to its folder (processes share one filesystem here);
//   - network: every pod's container ports get their own 127.0.0.1 ports; "0.0.0.0:P"
//     (what a pod listens on) becomes its own 127.0.0.1 port for P, and "NAME:P" for a
//     Service (short or full name) or a headless Service's pod name becomes the
//     127.0.0.1 port of a pod it selects;
//   - restarts: a container that exits is started again (Deployment, StatefulSet; a Job
//     until it succeeds), after 1, 2, 4 ... 8 s;
//   - probes: readiness is the readinessProbe's httpGet answering 200.
//
// Images are mapped to binaries: the gorch image's /gorch to a gorch built from this
// repository, nats-server to the nats-server scripts/setup.sh built. Containers that
// inImage names run in the image itself instead, under podman: host network (their ports
// rewritten as above), the pod's volumes bind-mounted at their mount paths, a read-only
// root filesystem, the image's non-root user, no capabilities, the env passed by name.
type launcher struct {
	t       *testing.T
	dir     string
	bins    map[string]string // command (as the manifest names it) → binary here
	podman  *podman           // nil: no container runs in the image
	inImage map[string]bool   // names of the containers that run in the image
	config  map[string]map[string]string
	secrets map[string]map[string]string
	pods    []*pod
	hosts   map[string]string // "name:port" → "127.0.0.1:port"

	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

type pod struct {
	name, owner, kind string // kind of the owner: Deployment, StatefulSet, Job
	labels            map[string]string
	spec              podSpec
	dir               string
	ports             map[int]int    // container port → 127.0.0.1 port
	named             map[string]int // port name → container port
	mounts            map[string]string
	inImage           bool // its containers run in the image (podman): mounts are real
	procs             []*process
}

type process struct {
	pod       *pod
	container container
	log       string
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{} // closed when cmd has exited
	starts    int
	succeeded bool
}

type podSpec struct {
	Containers                    []container `json:"containers"`
	Volumes                       []volume    `json:"volumes"`
	RestartPolicy                 string      `json:"restartPolicy"`
	TerminationGracePeriodSeconds *int        `json:"terminationGracePeriodSeconds"`
}

type container struct {
	Name           string          `json:"name"`
	Image          string          `json:"image"`
	Command        []string        `json:"command"`
	Args           []string        `json:"args"`
	Env            []envVar        `json:"env"`
	EnvFrom        []envFrom       `json:"envFrom"`
	Ports          []containerPort `json:"ports"`
	ReadinessProbe *struct {
		HTTPGet *struct {
			Path string `json:"path"`
			Port any    `json:"port"`
		} `json:"httpGet"`
	} `json:"readinessProbe"`
	VolumeMounts []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
	} `json:"volumeMounts"`
	Resources struct {
		Limits map[string]string `json:"limits"`
	} `json:"resources"`
}

type containerPort struct {
	Name          string `json:"name"`
	ContainerPort int    `json:"containerPort"`
}

type envVar struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	ValueFrom *struct {
		FieldRef         *struct{ FieldPath string } `json:"fieldRef"`
		ResourceFieldRef *struct{ Resource string }  `json:"resourceFieldRef"`
		SecretKeyRef     *keyRef                     `json:"secretKeyRef"`
		ConfigMapKeyRef  *keyRef                     `json:"configMapKeyRef"`
	} `json:"valueFrom"`
}

type keyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type envFrom struct {
	ConfigMapRef *struct{ Name string } `json:"configMapRef"`
	SecretRef    *struct{ Name string } `json:"secretRef"`
	Prefix       string                 `json:"prefix"`
}

type volume struct {
	Name      string     `json:"name"`
	EmptyDir  any        `json:"emptyDir"`
	ConfigMap *keySource `json:"configMap"`
	Secret    *keySource `json:"secret"`
	Projected *struct {
		Sources []struct {
			ConfigMap *keySource `json:"configMap"`
			Secret    *keySource `json:"secret"`
		}
	} `json:"projected"`
}

// keySource is a configMap or secret volume (or projected source); Name is
// configMap.name, SecretName secret.secretName (or a projected secret's name).
type keySource struct {
	Name       string `json:"name"`
	SecretName string `json:"secretName"`
	Items      []struct {
		Key, Path string
	} `json:"items"`
}

// workload is the part of a Deployment, StatefulSet or Job spec the launcher reads.
type workload struct {
	Replicas    *int   `json:"replicas"`
	ServiceName string `json:"serviceName"`
	Template    struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec podSpec `json:"spec"`
	} `json:"template"`
	VolumeClaimTemplates []struct {
		Metadata struct{ Name string } `json:"metadata"`
	} `json:"volumeClaimTemplates"`
}

type serviceSpec struct {
	ClusterIP string            `json:"clusterIP"`
	Selector  map[string]string `json:"selector"`
	Ports     []struct {
		Port       int `json:"port"`
		TargetPort any `json:"targetPort"`
	} `json:"ports"`
}

// newLauncher reads the objects and lays out their pods; start runs them.
func newLauncher(t *testing.T, objs []*object, bins map[string]string) *launcher {
	l := &launcher{t: t, dir: t.TempDir(), bins: bins, config: map[string]map[string]string{},
		secrets: map[string]map[string]string{}, hosts: map[string]string{}}
	minReplicas := map[string]int{}
	for _, o := range objs {
		switch o.Kind {
		case "ConfigMap":
			l.config[o.Metadata.Name] = o.Data
		case "Secret":
			data := maps.Clone(o.StringData)
			if data == nil {
				data = map[string]string{}
			}
			for k, v := range o.Data {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					t.Fatalf("%s: key %s is not base64: %v", o, k, err)
				}
				data[k] = string(b)
			}
			l.secrets[o.Metadata.Name] = data
		case "ScaledObject":
			var s struct {
				ScaleTargetRef  struct{ Name string } `json:"scaleTargetRef"`
				MinReplicaCount int                   `json:"minReplicaCount"`
			}
			o.spec(t, &s)
			minReplicas[s.ScaleTargetRef.Name] = s.MinReplicaCount
		}
	}
	for _, o := range objs {
		if o.Kind != "Deployment" && o.Kind != "StatefulSet" && o.Kind != "Job" {
			continue
		}
		var w workload
		o.spec(t, &w)
		n := 1
		if w.Replicas != nil {
			n = *w.Replicas
		} else if m, ok := minReplicas[o.Metadata.Name]; ok {
			n = m
		}
		if o.Kind == "Job" {
			n = 1
		}
		for i := range n {
			name := o.Metadata.Name
			if o.Kind != "Job" {
				name = fmt.Sprintf("%s-%d", name, i)
			}
			p := &pod{name: name, owner: o.Metadata.Name, kind: o.Kind, labels: w.Template.Metadata.Labels, spec: w.Template.Spec,
				dir: filepath.Join(l.dir, name), ports: map[int]int{}, named: map[string]int{}, mounts: map[string]string{}}
			for _, c := range p.spec.Containers {
				for _, cp := range c.Ports {
					p.ports[cp.ContainerPort] = testutil.FreePort(t)
					p.named[cp.Name] = cp.ContainerPort
				}
			}
			for _, vc := range w.VolumeClaimTemplates {
				p.spec.Volumes = append(p.spec.Volumes, volume{Name: vc.Metadata.Name, EmptyDir: map[string]any{}})
			}
			if o.Kind == "StatefulSet" && w.ServiceName != "" {
				l.addHost(name+"."+w.ServiceName, p)
			}
			l.pods = append(l.pods, p)
		}
	}
	for _, o := range objs {
		if o.Kind == "Service" {
			l.addService(o)
		}
	}
	return l
}

// addService maps the Service's names and ports to the first pod it selects.
func (l *launcher) addService(o *object) {
	var s serviceSpec
	o.spec(l.t, &s)
	for _, p := range l.pods {
		if !selects(s.Selector, p.labels) {
			continue
		}
		for _, sp := range s.Ports {
			target := p.containerPort(sp.TargetPort)
			if target == 0 {
				target = sp.Port
			}
			for _, h := range dnsNames(o.Metadata.Name) {
				l.hosts[fmt.Sprintf("%s:%d", h, sp.Port)] = fmt.Sprintf("127.0.0.1:%d", p.ports[target])
			}
		}
		return
	}
	l.t.Fatalf("%s selects no pod", o)
}

// addHost maps a StatefulSet pod's own DNS name (<pod>.<headless service>) to its ports.
func (l *launcher) addHost(name string, p *pod) {
	for _, c := range p.spec.Containers {
		for _, cp := range c.Ports {
			for _, h := range dnsNames(name) {
				l.hosts[fmt.Sprintf("%s:%d", h, cp.ContainerPort)] = fmt.Sprintf("127.0.0.1:%d", p.ports[cp.ContainerPort])
			}
		}
	}
}

// dnsNames are the names cluster DNS answers for a service (or pod) name in namespace.
func dnsNames(name string) []string {
	return []string{name, name + "." + namespace, name + "." + namespace + ".svc", name + "." + namespace + ".svc.cluster.local"}
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// containerPort resolves a port given by number or by name.
func (p *pod) containerPort(port any) int {
	switch v := port.(type) {
	case float64:
		return int(v)
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		return p.named[v]
	}
	return 0
}

var (
	hostPortRE = regexp.MustCompile(`[a-z0-9]([a-z0-9.-]*[a-z0-9])?:[0-9]+`)
	anyAddrRE  = regexp.MustCompile(`0\.0\.0\.0:([0-9]+)`)
)

// rewrite maps what a string says about the pod's network and filesystem to this
// machine: Service and pod names, its listening addresses, its mount paths.
func (l *launcher) rewrite(p *pod, s string) string {
	s = hostPortRE.ReplaceAllStringFunc(s, func(hp string) string {
		if to, ok := l.hosts[hp]; ok {
			return to
		}
		return hp
	})
	s = anyAddrRE.ReplaceAllStringFunc(s, func(m string) string {
		port, _ := strconv.Atoi(strings.TrimPrefix(m, "0.0.0.0:"))
		h, ok := p.ports[port]
		if !ok {
			l.t.Fatalf("pod %s listens on %s, a port none of its containers declares", p.name, m)
		}
		return fmt.Sprintf("127.0.0.1:%d", h)
	})
	if p.inImage {
		return s
	}
	mounts := slices.Collect(maps.Keys(p.mounts))
	if len(mounts) == 0 {
		return s
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	for i, m := range mounts {
		mounts[i] = regexp.QuoteMeta(m)
	}
	// A mount path as a whole path or path prefix, not inside a longer name; all in one
	// pass, so that a folder a path was mapped to is not mapped again (/tmp/... by /tmp).
	re := regexp.MustCompile(`(^|[^\w./-])(` + strings.Join(mounts, "|") + `)(/|[^\w.-]|$)`)
	s = re.ReplaceAllStringFunc(s, func(m string) string {
		g := re.FindStringSubmatch(m)
		return g[1] + p.mounts[g[2]] + g[3]
	})
	return s
}

// prepare makes the pod's volumes and resolves each container's process.
func (l *launcher) prepare(p *pod) {
	for _, c := range p.spec.Containers {
		p.inImage = p.inImage || l.inImage[c.Name]
	}
	vols := map[string]string{}
	for _, v := range p.spec.Volumes {
		d := filepath.Join(p.dir, "volumes", v.Name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			l.t.Fatal(err)
		}
		if err := os.Chmod(d, 0o777); err != nil { // any user in the image may write
			l.t.Fatal(err)
		}
		vols[v.Name] = d
	}
	for _, c := range p.spec.Containers {
		for _, m := range c.VolumeMounts {
			d, ok := vols[m.Name]
			if !ok {
				l.t.Fatalf("pod %s container %s mounts %s, which is no volume of the pod", p.name, c.Name, m.Name)
			}
			p.mounts[m.MountPath] = d
		}
	}
	// Files last: their contents may name other mounts.
	for _, v := range p.spec.Volumes {
		d := vols[v.Name]
		switch {
		case v.ConfigMap != nil:
			l.writeKeys(p, d, l.config, v.ConfigMap.Name, v.ConfigMap)
		case v.Secret != nil:
			l.writeKeys(p, d, l.secrets, v.Secret.SecretName, v.Secret)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					l.writeKeys(p, d, l.config, src.ConfigMap.Name, src.ConfigMap)
				}
				if src.Secret != nil {
					l.writeKeys(p, d, l.secrets, src.Secret.Name, src.Secret)
				}
			}
		}
	}
	for _, c := range p.spec.Containers {
		p.procs = append(p.procs, &process{pod: p, container: c, log: filepath.Join(p.dir, c.Name+".log")})
	}
}

// writeKeys writes a ConfigMap's or Secret's keys (or the items named) as files in d.
func (l *launcher) writeKeys(p *pod, d string, from map[string]map[string]string, name string, ks *keySource) {
	data, ok := from[name]
	if !ok {
		l.t.Fatalf("pod %s mounts %q, which the manifests do not define", p.name, name)
	}
	files := map[string]string{}
	for k := range data {
		files[k] = k
	}
	if len(ks.Items) > 0 {
		files = map[string]string{}
		for _, it := range ks.Items {
			files[it.Key] = it.Path
		}
	}
	for k, rel := range files {
		v, ok := data[k]
		if !ok {
			l.t.Fatalf("pod %s: %s has no key %s", p.name, name, k)
		}
		f := filepath.Join(d, rel)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			l.t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(l.rewrite(p, v)), 0o644); err != nil {
			l.t.Fatal(err)
		}
	}
}

// env resolves a container's environment as the kubelet does: envFrom, then env in order,
// each value's $(VAR) expanded from the ones before.
func (l *launcher) env(p *pod, c container) map[string]string {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		var data map[string]string
		var ok bool
		switch {
		case ef.ConfigMapRef != nil:
			data, ok = l.config[ef.ConfigMapRef.Name]
		case ef.SecretRef != nil:
			data, ok = l.secrets[ef.SecretRef.Name]
		}
		if !ok {
			l.t.Fatalf("pod %s container %s: envFrom names nothing the manifests define", p.name, c.Name)
		}
		for k, v := range data {
			env[ef.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		v := expand(e.Value, env)
		if vf := e.ValueFrom; vf != nil {
			v = l.valueFrom(p, c, e.Name, vf.FieldRef, vf.ResourceFieldRef, vf.SecretKeyRef, vf.ConfigMapKeyRef)
		}
		env[e.Name] = v
	}
	for k, v := range env {
		env[k] = l.rewrite(p, v)
	}
	return env
}

func (l *launcher) valueFrom(p *pod, c container, name string, field *struct{ FieldPath string }, res *struct{ Resource string }, sec, cm *keyRef) string {
	switch {
	case field != nil:
		switch field.FieldPath {
		case "metadata.name":
			return p.name
		case "metadata.namespace":
			return namespace
		case "status.podIP", "status.hostIP":
			return "127.0.0.1"
		}
		l.t.Fatalf("pod %s env %s: fieldRef %s not supported here", p.name, name, field.FieldPath)
	case res != nil:
		q, ok := c.Resources.Limits[strings.TrimPrefix(res.Resource, "limits.")]
		if !ok {
			l.t.Fatalf("pod %s env %s: %s has no limit", p.name, name, res.Resource)
		}
		return strconv.FormatInt(quantity(l.t, q), 10)
	case sec != nil:
		if v, ok := l.secrets[sec.Name][sec.Key]; ok {
			return v
		}
		l.t.Fatalf("pod %s env %s: no Secret %s key %s in the manifests", p.name, name, sec.Name, sec.Key)
	case cm != nil:
		if v, ok := l.config[cm.Name][cm.Key]; ok {
			return v
		}
		l.t.Fatalf("pod %s env %s: no ConfigMap %s key %s in the manifests", p.name, name, cm.Name, cm.Key)
	}
	return ""
}

// quantity parses a memory quantity (Ki, Mi, Gi, k, M, G or plain bytes).
func quantity(t testing.TB, q string) int64 {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}} {
		if n, ok := strings.CutSuffix(q, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("quantity %q: %v", q, err)
			}
			return v * u.mult
		}
	}
	v, err := strconv.ParseInt(q, 10, 64)
	if err != nil {
		t.Fatalf("quantity %q: %v", q, err)
	}
	return v
}

var varRE = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand replaces $(VAR) with VAR's value where VAR is defined ($$ is a literal $),
// as Kubernetes does in command, args and env values.
func expand(s string, env map[string]string) string {
	return varRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// argv is the process a container runs: its command (or the image's entrypoint) and
// args, $(VAR) expanded, rewritten for this machine, the binary mapped.
func (l *launcher) argv(p *pod, c container, env map[string]string) []string {
	cmd := c.Command
	if len(cmd) == 0 {
		cmd = []string{imageEntrypoint(c.Image)}
	}
	var argv []string
	for _, a := range append(slices.Clone(cmd), c.Args...) {
		argv = append(argv, l.rewrite(p, expand(a, env)))
	}
	if p.inImage {
		return l.podmanArgv(p, c, env, argv)
	}
	bin, ok := l.bins[cmd[0]]
	if !ok {
		l.t.Fatalf("pod %s container %s runs %q: no binary for it here", p.name, c.Name, cmd[0])
	}
	argv[0] = bin
	return argv
}

// podmanArgv runs argv in the container's image: `podman run` with the pod's mounts and
// the restricted security context; env values stay out of argv (-e NAME takes each from
// podman's own environment).
func (l *launcher) podmanArgv(p *pod, c container, env map[string]string, argv []string) []string {
	args := []string{"run", "--rm", "--name", p.name + "-" + c.Name, "--network", "host", "--read-only",
		"--user", "65532:65532", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"}
	for _, m := range c.VolumeMounts {
		args = append(args, "-v", p.mounts[m.MountPath]+":"+m.MountPath)
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		args = append(args, "-e", k)
	}
	image := c.Image
	if repo, _, _ := strings.Cut(path.Base(image), ":"); repo == "gorch" {
		image = imageName // what scripts/image.sh built and the test loaded
	}
	args = append(args, "--entrypoint", argv[0], image)
	return l.podman.command(append(args, argv[1:]...)...)
}

// imageEntrypoint is the ENTRYPOINT of the images the manifests use without a command.
func imageEntrypoint(image string) string {
	repo, _, _ := strings.Cut(path.Base(image), ":")
	if repo == "gorch" {
		return "/gorch"
	}
	return repo
}

// start runs every pod's containers (each restarted when it exits, as its owner would).
func (l *launcher) start() {
	for _, p := range l.pods {
		l.prepare(p)
	}
	for _, p := range l.pods {
		for _, pr := range p.procs {
			env := l.env(p, pr.container)
			argv := l.argv(p, pr.container, env)
			l.t.Logf("pod %-26s %s %s", p.name, filepath.Base(argv[0]), strings.Join(argv[1:], " "))
			l.wg.Add(1)
			go l.supervise(pr, argv, env)
		}
	}
}

// supervise runs one container until the launcher stops: again after it exits (backoff
// 1 s doubling to 8 s), except a Job's that succeeded.
func (l *launcher) supervise(pr *process, argv []string, env map[string]string) {
	defer l.wg.Done()
	var envList []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		envList = append(envList, k+"="+env[k])
	}
	if pr.pod.inImage {
		envList = append(envList, l.podman.env...)
	}
	backoff := time.Second
	for {
		logf, err := os.OpenFile(pr.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			l.t.Error(err)
			return
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = envList, pr.pod.dir, logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		l.mu.Lock()
		if l.stopped {
			l.mu.Unlock()
			logf.Close()
			return
		}
		err = cmd.Start()
		exited := make(chan struct{})
		pr.mu.Lock()
		pr.cmd, pr.exited, pr.starts = cmd, exited, pr.starts+1
		pr.mu.Unlock()
		l.mu.Unlock()
		if err == nil {
			err = cmd.Wait()
		}
		close(exited)
		fmt.Fprintf(logf, "launcher: exited: %v\n", err)
		logf.Close()
		if err == nil && pr.pod.kind == "Job" {
			pr.mu.Lock()
			pr.succeeded = true
			pr.mu.Unlock()
			return
		}
		l.mu.Lock()
		stopped := l.stopped
		l.mu.Unlock()
		if stopped {
			return
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 8*time.Second)
	}
}

// restarted lists the containers of Deployments and StatefulSets that were started
// more than once (a Job's retries are its way of waiting), each with the last lines it
// logged before it first exited.
func (l *launcher) restarted() []string {
	var out []string
	for _, p := range l.pods {
		for _, pr := range p.procs {
			pr.mu.Lock()
			n := pr.starts
			pr.mu.Unlock()
			if n <= 1 || p.kind == "Job" {
				continue
			}
			data, _ := os.ReadFile(pr.log)
			first, _, _ := strings.Cut(string(data), "launcher: exited")
			lines := strings.Split(strings.TrimRight(first, "\n"), "\n")
			out = append(out, fmt.Sprintf("%s/%s (%d times), first exit after:\n    %s", p.name, pr.container.Name, n,
				strings.Join(lines[max(0, len(lines)-3):], "\n    ")))
		}
	}
	return out
}

// ready reports which pods are not ready yet: a readiness probe not answering 200, or a
// Job not succeeded.
func (l *launcher) notReady() []string {
	var out []string
	for _, p := range l.pods {
		for _, pr := range p.procs {
			pr.mu.Lock()
			done := pr.succeeded
			pr.mu.Unlock()
			switch {
			case p.kind == "Job":
				if !done {
					out = append(out, p.name+" (job running)")
				}
			case pr.container.ReadinessProbe != nil && pr.container.ReadinessProbe.HTTPGet != nil:
				g := pr.container.ReadinessProbe.HTTPGet
				url := fmt.Sprintf("http://127.0.0.1:%d%s", p.ports[p.containerPort(g.Port)], g.Path)
				if code := httpStatus(url); code != http.StatusOK {
					out = append(out, fmt.Sprintf("%s (GET %s: %d)", p.name, g.Path, code))
				}
			}
		}
	}
	return out
}

func httpStatus(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// stop sends SIGTERM to every process, as a pod deletion does, and waits up to the
// pod's terminationGracePeriodSeconds before SIGKILL. It returns the processes that
// needed the SIGKILL or exited non-zero on SIGTERM.
func (l *launcher) stop() []string {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	var bad []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range l.pods {
		grace := 30 * time.Second
		if g := p.spec.TerminationGracePeriodSeconds; g != nil {
			grace = time.Duration(*g) * time.Second
		}
		for _, pr := range p.procs {
			pr.mu.Lock()
			cmd, exited := pr.cmd, pr.exited
			pr.mu.Unlock()
			if cmd == nil || cmd.Process == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
				select {
				case <-exited:
					if !cmd.ProcessState.Success() && p.kind != "Job" {
						mu.Lock()
						bad = append(bad, fmt.Sprintf("%s: %v on SIGTERM", p.name, cmd.ProcessState))
						mu.Unlock()
					}
				case <-time.After(grace):
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: still running %s after SIGTERM (terminationGracePeriodSeconds)", p.name, grace))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	l.wg.Wait()
	return bad
}

// logs returns the tail of every container's log.
func (l *launcher) logs(n int) string {
	var b strings.Builder
	for _, p := range l.pods {
		for _, pr := range p.procs {
			data, _ := os.ReadFile(pr.log)
			lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
			fmt.Fprintf(&b, "--- %s/%s (started %d times)\n%s\n", p.name, pr.container.Name, pr.starts, strings.Join(lines[max(0, len(lines)-n):], "\n"))
		}
	}
	return b.String()
}
