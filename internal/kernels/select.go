package kernels

import (
	"fmt"
	"os"
	"sync"
)

// EnvKernel names the environment variable that forces a GEMM path at
// start-up: "go", "avx2" or "avx512". Unset or empty picks the fastest path
// the CPU supports. A path the CPU lacks, or an unknown name, is reported on
// standard error and the best supported path is used instead.
const EnvKernel = "GORCH_KERNEL"

// Available lists the names of the backends this machine can run, fastest
// first; the last is always "go".
func Available() []string {
	var names []string
	if hasAVX512() {
		names = append(names, "avx512")
	}
	if hasAVX2() {
		names = append(names, "avx2")
	}
	return append(names, "go")
}

// ByName returns the backend with the given name ("go", "avx2", "avx512"),
// or an error saying why this machine cannot run it.
func ByName(name string) (Backend, error) {
	switch name {
	case "go":
		return goBackend{}, nil
	case "avx2":
		if !hasAVX2() {
			return nil, fmt.Errorf("kernels: backend %q needs AVX2 and FMA, which this CPU (or OS) does not support", name)
		}
		return avx2Backend, nil
	case "avx512":
		if !hasAVX512() {
			return nil, fmt.Errorf("kernels: backend %q needs AVX-512F, which this CPU (or OS) does not support", name)
		}
		return avx512Backend, nil
	}
	return nil, fmt.Errorf("kernels: unknown backend %q (want go, avx2 or avx512)", name)
}

// Best returns the widest backend this machine supports: AVX-512 where the
// CPU has AVX-512F, else AVX2+FMA, else pure Go.
func Best() Backend {
	b, _ := ByName(Available()[0])
	return b
}

// fromEnv picks the start-up backend from EnvKernel and the CPU features.
func fromEnv() Backend {
	name := os.Getenv(EnvKernel)
	if name == "" {
		return Best()
	}
	b, err := ByName(name)
	if err != nil {
		best := Best()
		envWarn.Do(func() { fmt.Fprintf(os.Stderr, "gorch: %s=%s: %v; using %q\n", EnvKernel, name, err, best.Name()) })
		return best
	}
	return b
}

var envWarn sync.Once // the EnvKernel complaint is printed once per process
