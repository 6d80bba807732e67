package kernels

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// widest derives, from the CPU's feature flags alone, the widest GEMM
// backend and vector path this machine should use.
func widest() (gemm, vec string) {
	gemm, vec = "go", "go"
	if runtime.GOARCH != "amd64" {
		return
	}
	if cpu.X86.HasAVX && cpu.X86.HasAVX2 {
		vec = "avx2"
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		gemm = "avx2"
	}
	if cpu.X86.HasAVX512F {
		gemm, vec = "avx512", "avx512"
	}
	return gemm, vec
}

// TestDefaultIsWidest checks, by CPU feature detection (no timing), that
// the GEMM backend and the vector path in use are the widest this CPU
// supports, or the one GORCH_KERNEL names when it is set.
func TestDefaultIsWidest(t *testing.T) {
	gemm, vec := widest()
	if env := os.Getenv(EnvKernel); env != "" {
		if _, err := ByName(env); err == nil {
			gemm, vec = env, env
		}
	}
	if got := Default().Name(); got != gemm {
		t.Errorf("GEMM backend %q; want %q (AVX-512F %v, AVX2 %v, FMA %v)", got, gemm, cpu.X86.HasAVX512F, cpu.X86.HasAVX2, cpu.X86.HasFMA)
	}
	if got := VecPath(); got != vec {
		t.Errorf("vector path %q; want %q (AVX-512F %v, AVX2 %v)", got, vec, cpu.X86.HasAVX512F, cpu.X86.HasAVX2)
	}
	if got := Available()[0]; got != gemm && os.Getenv(EnvKernel) == "" {
		t.Errorf("Available()[0] = %q; want %q", got, gemm)
	}
	if got := VecPaths()[0]; got != vec && os.Getenv(EnvKernel) == "" {
		t.Errorf("VecPaths()[0] = %q; want %q", got, vec)
	}
}

// TestMaskedAVX512ChoosesAVX2 runs this test binary again with
// GODEBUG=cpu.avx512f=off, which makes feature detection report a CPU
// without AVX-512 (how scripts/test.sh runs the engine's tests as on an
// AVX2-only machine), and checks that the child picks the AVX2 paths.
func TestMaskedAVX512ChoosesAVX2(t *testing.T) {
	if os.Getenv("GORCH_KERNELS_CHILD") == "1" {
		fmt.Printf("paths: %s %s\n", Default().Name(), VecPath())
		return
	}
	if runtime.GOARCH != "amd64" || !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		t.Skip("no AVX2 and FMA: nothing to mask down to")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMaskedAVX512ChoosesAVX2$", "-test.v")
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "GODEBUG=") || strings.HasPrefix(kv, EnvKernel+"=")
	}), "GODEBUG=cpu.avx512f=off", "GORCH_KERNELS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "paths: avx2 avx2\n") {
		t.Fatalf("with GODEBUG=cpu.avx512f=off the child chose %q; want the AVX2 GEMM and vector paths", out)
	}
}
