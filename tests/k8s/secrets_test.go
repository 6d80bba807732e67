//go:build k8s

package k8s

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// sentinel is a random value that appears nowhere unless the test put it there.
func sentinel(t testing.TB) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "s3cr3t" + hex.EncodeToString(b)
}

// prodWithSecrets renders the prod overlay with the Secrets a user would add to it (a
// secretGenerator in an overlay of their own) holding the given values.
func prodWithSecrets(t *testing.T, access, secret string) []byte {
	dir := t.TempDir()
	run(t, "cp", "-r", kustomizeDir, dir)
	mine := filepath.Join(dir, "kustomize", "overlays", "mine")
	if err := os.Mkdir(mine, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mine, "kustomization.yaml"), fmt.Appendf(nil, `resources: [../prod]
secretGenerator:
  - name: gorch-s3
    namespace: gorch
    literals: [AWS_ACCESS_KEY_ID=%s, AWS_SECRET_ACCESS_KEY=%s]
generatorOptions: {disableNameSuffixHash: true}
`, access, secret))
	return run(t, kubectl(t), "kustomize", mine)
}

// secretish names an env var, ConfigMap key or flag that must never hold a literal.
var (
	secretish  = regexp.MustCompile(`(?i)(secret|password|passwd|token|creds|credential|access_key|private|nkey|seed)`)
	secretArgs = regexp.MustCompile(`(?i)^--(s3-secret-key|s3-access-key|password|user|token|nkey-seed)(=|$)|://[^/@\s]+:[^/@\s]+@`)
)

// TestNoPlainSecrets renders the prod overlay and the chart's prod values with Secrets
// holding random values (S3 keys; NATS credentials for every role and the server's auth
// config with auth.enabled): those values appear in Secrets and nowhere else, every
// secret-looking env var comes from a secretKeyRef, no ConfigMap key looks secret, and no
// argument carries a key, password or credentials in a URL.
func TestNoPlainSecrets(t *testing.T) {
	access, secret := sentinel(t), sentinel(t)
	values := []string{access, secret}
	helmArgs := []string{"--set", "secrets.create=true", "--set", "auth.enabled=true",
		"--set", "secrets.s3.accessKey=" + access, "--set", "secrets.s3.secretKey=" + secret}
	for _, key := range []string{"creds.admin", "creds.coordinator", "creds.collector", "workerCreds.gorch-worker-0", "workerCreds.gorch-worker-1"} {
		v := sentinel(t)
		values = append(values, v)
		helmArgs = append(helmArgs, "--set", "secrets.nats."+key+"="+v)
	}
	auth := sentinel(t)
	values = append(values, auth)
	helmArgs = append(helmArgs, "--set", "secrets.nats.serverConfig="+auth)

	for name, objs := range map[string][]*object{
		"kustomize-prod": parse(t, prodWithSecrets(t, access, secret)),
		"helm-prod":      parse(t, render(t, "helm-prod", helmArgs...)),
	} {
		t.Run(name, func(t *testing.T) {
			var inSecrets int
			for _, o := range objs {
				b, err := json.Marshal(o.raw)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range values {
					has := strings.Contains(string(b), v) || strings.Contains(string(b), base64.StdEncoding.EncodeToString([]byte(v)))
					switch {
					case has && o.Kind == "Secret":
						inSecrets++
					case has:
						t.Errorf("%s holds a secret value in plain text", o)
					}
				}
				checkNoLiterals(t, o)
			}
			want := len(values)
			if name == "kustomize-prod" {
				want = 2 // the S3 keys: NATS credentials are off in the overlay
			}
			if inSecrets != want {
				t.Errorf("%d of the secret values found in Secrets; want %d", inSecrets, want)
			}
			t.Logf("%d objects; %d secret values, each only in a Secret", len(objs), inSecrets)
		})
	}
}

// checkNoLiterals fails on a secret-looking env var with a literal value, a ConfigMap key
// that looks secret, or an argument that carries a secret.
func checkNoLiterals(t *testing.T, o *object) {
	if o.Kind == "ConfigMap" {
		for k := range o.Data {
			if secretish.MatchString(k) && !strings.HasSuffix(k, ".conf") {
				t.Errorf("%s: key %s looks secret; keep it in a Secret", o, k)
			}
		}
	}
	for _, c := range containers(t, o) {
		for _, e := range c.Env {
			if secretish.MatchString(e.Name) && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
				t.Errorf("%s container %s: env %s is not from a secretKeyRef", o, c.Name, e.Name)
			}
		}
		for _, a := range slices.Concat(c.Command, c.Args) {
			if secretArgs.MatchString(a) {
				t.Errorf("%s container %s: argument %q carries a secret; use a Secret (env or file)", o, c.Name, a)
			}
		}
	}
}

// containers returns the containers of a workload object (none for other kinds).
func containers(t *testing.T, o *object) []container {
	switch o.Kind {
	case "Deployment", "StatefulSet", "Job", "DaemonSet":
		var w workload
		o.spec(t, &w)
		return w.Template.Spec.Containers
	}
	return nil
}

// TestProdOverlay: the prod overlay and the chart with values-prod.yaml are the same
// production set, object for object (the overlay adds only its Namespace).
func TestProdOverlay(t *testing.T) {
	index := func(objs []*object) map[string]map[string]any {
		m := map[string]map[string]any{}
		for _, o := range objs {
			if o.Kind != "Namespace" {
				m[o.String()] = o.raw
			}
		}
		return m
	}
	helmProd := index(parse(t, render(t, "helm-prod", "--set", "kustomizeBase=true")))
	overlay := index(parse(t, render(t, "kustomize-prod")))
	for _, k := range unionKeys(helmProd, overlay) {
		h, o := helmProd[k], overlay[k]
		switch {
		case h == nil:
			t.Errorf("%s: in the prod overlay, not in the chart's prod render", k)
		case o == nil:
			t.Errorf("%s: in the chart's prod render, not in the prod overlay", k)
		case !reflect.DeepEqual(h, o):
			t.Errorf("%s differs: %s", k, jsonDiff("", h, o))
		}
	}
}

// unionKeys lists the keys of every map, sorted.
func unionKeys[V any](ms ...map[string]V) []string {
	seen := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			seen[k] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// jsonDiff names the first path where two decoded JSON values differ.
func jsonDiff(path string, a, b any) string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		for _, k := range unionKeys(am, bm) {
			if !reflect.DeepEqual(am[k], bm[k]) {
				return jsonDiff(path+"."+k, am[k], bm[k])
			}
		}
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		for i := range al {
			if !reflect.DeepEqual(al[i], bl[i]) {
				return jsonDiff(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i])
			}
		}
	}
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	return fmt.Sprintf("%s: chart %s, overlay %s", path, aj, bj)
}
