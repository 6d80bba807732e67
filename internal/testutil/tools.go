package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
)

// Versions of the servers the tests run against; scripts/setup.sh builds
// these same versions (keep the two in step).
const (
	VersityGWVersion  = "v1.8.0"
	JaegerVersion     = "v1.76.0"
	NATSServerVersion = "v2.15.2"
)

// ToolCache is the folder holding one folder per built test tool,
// <name>-<version>: $GORCH_CACHE, else $XDG_CACHE_HOME/gorch, else
// ~/.cache/gorch. It lives outside the clone so that every fresh clone on a
// machine reuses the tools built once.
func ToolCache() string {
	if d := os.Getenv("GORCH_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "gorch")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "gorch")
}

// ToolPath finds a test tool's binary: $PATH first, then
// ToolCache()/<name>-<version>/<name>. It returns "" if there is none.
func ToolPath(name, version string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if c := ToolCache(); c != "" {
		if p := filepath.Join(c, name+"-"+version, name); isExec(p) {
			return p
		}
	}
	return ""
}

// ToolInstall is the command that builds the test tools into ToolCache.
const ToolInstall = "GORCH_SETUP_TEST_TOOLS=1 bash scripts/setup.sh  (builds versitygw, nats-server and Jaeger once into ~/.cache/gorch)"
