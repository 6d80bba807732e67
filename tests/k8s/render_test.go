//go:build k8s

package k8s

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/gorch/gorch/internal/testutil"
)

// Versions of the tools scripts/setup.sh builds (keep the two in step).
const (
	kubeVersion        = "v1.32.13"
	etcdVersion        = "v3.5.21"
	helmVersion        = "v4.3.2"
	kwokVersion        = "v0.7.0"
	kubeconformVersion = "v0.7.0"
)

var update = flag.Bool("update", false, "rewrite deploy/k8s/kustomize/base from the chart")

// namespace is where every render is rendered for (the overlays set it too).
const namespace = "gorch"

// root is the repository root.
var root = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}()

var (
	chartDir     = filepath.Join(root, "deploy", "k8s", "chart", "gorch")
	kustomizeDir = filepath.Join(root, "deploy", "k8s", "kustomize")
)

// tool finds a test tool: $PATH, then ToolCache()/<dir>-<version>/<name>; a missing
// one fails the test with the command that installs it.
func tool(t testing.TB, name, dir, version string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join(testutil.ToolCache(), dir+"-"+version, name)
	if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
		return p
	}
	t.Fatalf("%s %s not found in $PATH or %s; install it with: GORCH_SETUP_TEST_TOOLS=1 bash scripts/setup.sh", name, version, filepath.Dir(p))
	return ""
}

func helm(t testing.TB) string    { return tool(t, "helm", "helm", helmVersion) }
func kubectl(t testing.TB) string { return tool(t, "kubectl", "kube", kubeVersion) }

// run runs a command and returns its stdout; a failure fails the test with stderr.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.Bytes()
}

// renders are the manifests a user applies: the chart with its default and prod values,
// the prod values with per-role NATS credentials (auth.enabled: workers as a
// StatefulSet), and the two Kustomize overlays.
var renders = []string{"helm-default", "helm-prod", "helm-auth", "kustomize-dev", "kustomize-prod"}

// render returns one of renders as YAML; extra are more helm flags.
func render(t testing.TB, name string, extra ...string) []byte {
	t.Helper()
	switch name {
	case "helm-default", "helm-prod", "helm-auth":
		args := []string{"template", "gorch", chartDir, "--namespace", namespace}
		if name != "helm-default" {
			args = append(args, "-f", filepath.Join(chartDir, "values-prod.yaml"))
		}
		if name == "helm-auth" {
			args = append(args, "--set", "auth.enabled=true")
		}
		return run(t, helm(t), append(args, extra...)...)
	case "kustomize-dev", "kustomize-prod":
		return run(t, kubectl(t), "kustomize", filepath.Join(kustomizeDir, "overlays", strings.TrimPrefix(name, "kustomize-")))
	}
	t.Fatalf("no render %q", name)
	return nil
}

// object is a Kubernetes object, as far as these tests look into it.
type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Data       map[string]string `json:"data,omitempty"`
	StringData map[string]string `json:"stringData,omitempty"`
	Spec       json.RawMessage   `json:"spec,omitempty"`
	raw        map[string]any    // the whole object
}

func (o *object) String() string { return o.Kind + "/" + o.Metadata.Name }

// parse splits a multi-document YAML stream into its objects.
func parse(t testing.TB, b []byte) []*object {
	t.Helper()
	var out []*object
	for _, doc := range splitYAML(b) {
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("parsing rendered YAML: %v\n%s", err, doc)
		}
		if string(j) == "null" {
			continue
		}
		o := &object{}
		if err := json.Unmarshal(j, o); err != nil {
			t.Fatalf("parsing rendered object: %v\n%s", err, doc)
		}
		if err := json.Unmarshal(j, &o.raw); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

// splitYAML splits a stream at its "---" lines.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if strings.TrimRight(line, " \n") == "---" {
			docs = append(docs, bytes.Clone(cur.Bytes()))
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return append(docs, cur.Bytes())
}

// spec decodes o.Spec into v.
func (o *object) spec(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(o.Spec, v); err != nil {
		t.Fatalf("%s: spec: %v", o, err)
	}
}

func TestHelmLint(t *testing.T) {
	for _, values := range []string{"values.yaml", "values-prod.yaml"} {
		out := run(t, helm(t), "lint", "--strict", chartDir, "-f", filepath.Join(chartDir, values))
		t.Logf("helm lint --strict -f %s:\n%s", values, out)
	}
}

// TestKubeconform checks every render against the API schemas, strictly (no unknown
// field), CRDs included.
func TestKubeconform(t *testing.T) {
	schemas := os.Getenv("GORCH_KUBECONFORM_SCHEMAS")
	if schemas == "" {
		t.Fatal("GORCH_KUBECONFORM_SCHEMAS is not set; run the tests from scripts/test.sh (it sources scripts/setup.sh)")
	}
	kc := tool(t, "kubeconform", "kubeconform", kubeconformVersion)
	for _, name := range renders {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), name+".yaml")
			if err := os.WriteFile(f, render(t, name), 0o644); err != nil {
				t.Fatal(err)
			}
			out := run(t, kc, "-strict", "-summary", "-kubernetes-version", strings.TrimPrefix(kubeVersion, "v"),
				"-schema-location", filepath.Join(schemas, "{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"),
				"-schema-location", filepath.Join(schemas, "crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"),
				f)
			t.Logf("kubeconform %s: %s", name, strings.TrimSpace(string(out)))
			if !strings.Contains(string(out), "Invalid: 0, Errors: 0, Skipped: 0") {
				t.Errorf("kubeconform %s: want 0 invalid, 0 errors, 0 skipped", name)
			}
		})
	}
}

// TestKustomizeBase: deploy/k8s/kustomize/base/gorch.yaml is the chart rendered with its
// defaults, without Helm's own labels. go test -tags k8s -run TestKustomizeBase -update
// rewrites it.
func TestKustomizeBase(t *testing.T) {
	got := baseHeader + string(render(t, "helm-default", "--set", "kustomizeBase=true"))
	path := filepath.Join(kustomizeDir, "base", "gorch.yaml")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s is not the chart's default render; rewrite it with: go test -tags k8s ./tests/k8s -run TestKustomizeBase -update\n%s",
			path, firstDiff(string(want), got))
	}
}

const baseHeader = "# Generated from deploy/k8s/chart/gorch with its default values (helm template gorch\n" +
	"# --namespace gorch --set kustomizeBase=true); do not edit: change the chart, then\n" +
	"# go test -tags k8s ./tests/k8s -run TestKustomizeBase -update\n"

// firstDiff shows the first line where a and b differ.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  file:   %q\n  render: %q", i+1, x, y)
		}
	}
	return ""
}

// TestBadValues: values that cannot work stop helm with one error line naming the value
// (helm adds its own hint about --debug below it).
func TestBadValues(t *testing.T) {
	for _, c := range []struct{ set, want string }{
		{"nats.replicas=2", "nats.replicas 2: want 1, or an odd number from 3"},
		{"streams.replicas=3", "streams.replicas 3 needs nats.replicas >= 3"},
		{"secrets.create=true", "secrets.s3.accessKey is required with secrets.create"},
		{"worker.resources.limits=null", "worker.resources.limits.memory is required: each attempt's memory limit (--max-memory) comes from it"},
		{"worker.resources.limits.memory=2GB", `worker.resources.limits.memory "2GB": want a memory quantity such as 2Gi or 512Mi`},
		{"worker.slots=40", "worker.resources.limits.memory 2Gi less worker.supervisorMemory 256Mi leaves 44Mi for each of 40 slots: want at least 64Mi"},
	} {
		cmd := exec.Command(helm(t), "template", "gorch", chartDir, "--set", c.set)
		out, err := cmd.CombinedOutput()
		first, _, _ := strings.Cut(string(out), "\n")
		if err == nil || !strings.HasPrefix(first, "Error: ") || !strings.Contains(first, c.want) || strings.Count(string(out), "Error") != 1 {
			t.Errorf("helm template --set %s = %v, %q; want one error line with %q", c.set, err, out, c.want)
		}
	}
}

// TestWorkerMaxMemory: in every render, each worker attempt's memory limit (`gorch worker
// --max-memory`) is the worker container's memory limit less worker.supervisorMemory (the
// worker process itself), split between the slots: attempts that fill their limits leave
// the worker room, and the coordinator's admission uses what the container can give. The
// overlays change the container's limit, and the limit with it.
func TestWorkerMaxMemory(t *testing.T) {
	var values struct {
		Worker struct{ SupervisorMemory string } `json:"worker"`
	}
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	supervisor := quantity(t, values.Worker.SupervisorMemory)
	for _, name := range append(renders, "helm-slots-3") {
		args := []string{}
		if name == "helm-slots-3" {
			name, args = "helm-default", []string{"--set", "worker.slots=3"}
		}
		t.Run(strings.Join(append([]string{name}, args...), " "), func(t *testing.T) {
			var found bool
			for _, o := range parse(t, render(t, name, args...)) {
				for _, c := range containers(t, o) {
					if c.Name != "worker" {
						continue
					}
					found = true
					slots, maxMem := int64(0), ""
					for _, a := range c.Args {
						if v, ok := strings.CutPrefix(a, "--slots="); ok {
							slots, _ = strconv.ParseInt(v, 10, 64)
						}
						if v, ok := strings.CutPrefix(a, "--max-memory="); ok {
							maxMem = v
						}
					}
					limit := quantity(t, c.Resources.Limits["memory"])
					want := fmt.Sprintf("%dMiB", (limit-supervisor)/slots>>20)
					if maxMem != want {
						t.Errorf("%s: --max-memory=%s with a %s limit and %d slots; want %s (less %s for the worker process)",
							o, maxMem, c.Resources.Limits["memory"], slots, want, values.Worker.SupervisorMemory)
					} else {
						t.Logf("%s: limit %s, %d slots: --max-memory=%s", o, c.Resources.Limits["memory"], slots, maxMem)
					}
				}
			}
			if !found {
				t.Fatal("no worker container")
			}
		})
	}
}
