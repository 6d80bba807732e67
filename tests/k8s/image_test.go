//go:build k8s

package k8s

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImage builds the image twice with scripts/image.sh (no Docker): both builds give the
// same digest. Then podman (with runc, its own storage in a temp folder, no network)
// loads the archive and runs `gorch --version` in it, as the image's non-root user.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	var digests []string
	for _, name := range []string{"a.tar", "b.tar"} {
		out, err := runIn(root, nil, filepath.Join(root, "scripts", "image.sh"), filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("scripts/image.sh: %v", err)
		}
		f := strings.Fields(string(out))
		if len(f) != 2 || !strings.HasPrefix(f[1], "sha256:") {
			t.Fatalf("scripts/image.sh printed %q; want the archive and its digest", out)
		}
		digests = append(digests, f[1])
	}
	t.Logf("image digests: %s, %s", digests[0], digests[1])
	if digests[0] != digests[1] {
		t.Fatalf("two builds of the same source: digests %s and %s; want the same", digests[0], digests[1])
	}
	pm := newPodman(t)
	pm.load(filepath.Join(dir, "a.tar"))
	user := pm.run("image", "inspect", "--format", "{{.Config.User}} {{.Config.Entrypoint}}", imageName)
	if user != "65532:65532 [/gorch]" {
		t.Errorf("image user and entrypoint = %q; want \"65532:65532 [/gorch]\"", user)
	}
	got := pm.run("run", "--rm", "--network", "none", "--read-only", imageName, "--version")
	t.Logf("podman run %s --version: %s", imageName, got)
	if got != "gorch version 0.1.0" {
		t.Errorf("gorch --version in the image = %q; want \"gorch version 0.1.0\"", got)
	}
}

// imageName is what scripts/image.sh names the image (the chart's appVersion).
const imageName = "gorch:0.1.0"

// buildImage builds the image archive with scripts/image.sh and returns its path.
func buildImage(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "gorch.tar")
	if _, err := runIn(root, nil, filepath.Join(root, "scripts", "image.sh"), out); err != nil {
		t.Fatalf("scripts/image.sh: %v", err)
	}
	return out
}

// podman runs podman with runc (crun fails on these machines), its own storage in a
// temp folder, cgroupfs and file events: nothing of the machine's podman set-up is used
// or changed.
type podman struct {
	t    testing.TB
	bin  string
	base []string
	env  []string
}

func newPodman(t testing.TB) *podman {
	bin, err := exec.LookPath("podman")
	if err != nil {
		t.Fatal("podman not found; install it with: GORCH_SETUP_TEST_TOOLS=1 bash scripts/setup.sh")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	writeFile(t, conf, []byte("[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=4096:4096\"]\n"+
		"[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"))
	return &podman{t: t, bin: bin, env: []string{"CONTAINERS_CONF=" + conf, "PATH=" + os.Getenv("PATH")},
		base: []string{"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "run"),
			"--storage-driver", "vfs", "--tmpdir", filepath.Join(dir, "tmp")}}
}

// command is the podman command line for args.
func (p *podman) command(args ...string) []string {
	return append(append([]string{p.bin}, p.base...), args...)
}

// run runs podman and returns its output; a failure fails the test.
func (p *podman) run(args ...string) string {
	p.t.Helper()
	argv := p.command(args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (p *podman) load(archive string) {
	p.t.Helper()
	p.t.Logf("podman load: %s", p.run("load", "-q", "-i", archive))
}
