package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/gorch/gorch/internal/kernels"
	"golang.org/x/sys/cpu"
)

// Instruction counts: the training steps' instructions, repeatable through
// the noise of a shared machine. The harness runs itself (-run-steps) for
// two step counts under `perf stat -e instructions:u` where the CPU
// counters are readable, else under `valgrind --tool=callgrind`, and
// reports the difference per step (start-up and set-up cancel out).
// Valgrind's virtual CPU has no AVX-512, so under callgrind the AVX2 path
// is counted; meta.instructions_kernel names the path counted.

// instrWorkloads are the figures counted, as model_batch.
var instrWorkloads = []string{"mlp_64", "mlp_256", "cnn_64"}

// instrSteps are the two step counts per workload (fewer for the CNN,
// whose steps take ~50x longer under callgrind).
func instrSteps(w string) (n1, n2 int) {
	if strings.HasPrefix(w, "cnn") {
		return 1, 3
	}
	return 3, 13
}

func countInstructions(cfg config, res *results) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tool, count := pickCounter(self)
	res.Meta["instructions_tool"] = tool
	if count == nil {
		return nil
	}
	for _, w := range instrWorkloads {
		n1, n2 := instrSteps(w)
		i1, kern, err := count(w, n1)
		if err != nil {
			return fmt.Errorf("instructions %s: %w", w, err)
		}
		i2, _, err := count(w, n2)
		if err != nil {
			return fmt.Errorf("instructions %s: %w", w, err)
		}
		model, batch, _ := strings.Cut(w, "_")
		key := fmt.Sprintf("instructions_%s_b%s_per_step", model, batch)
		res.Figures[key] = float64(i2-i1) / float64(n2-n1)
		res.Meta["instructions_kernel"] = kern
		fmt.Fprintf(cfg.log, "%-18s %.4g instructions/step (%s, %s path)\n", key, res.Figures[key], tool, kern)
	}
	return nil
}

// counter runs workload w for n steps and returns the instructions counted
// and the kernel path the child used.
type counter func(w string, n int) (int64, string, error)

// pickCounter returns the first counting tool that works here: perf with
// readable counters, else callgrind, else none (nil).
func pickCounter(self string) (string, counter) {
	perf := func(w string, n int) (int64, string, error) {
		return runCounted(exec.Command("perf", "stat", "-x,", "-e", "instructions:u", "--", self, "-run-steps", fmt.Sprintf("%s:%d", w, n)),
			func(stderr string) (int64, error) {
				for _, l := range strings.Split(stderr, "\n") {
					if f := strings.Split(l, ","); len(f) > 2 && strings.HasPrefix(f[2], "instructions") {
						return strconv.ParseInt(f[0], 10, 64)
					}
				}
				return 0, errors.New("no instructions count in perf output")
			})
	}
	if _, err := exec.LookPath("perf"); err == nil {
		if _, _, err := perf("mlp_64", 1); err == nil {
			return "perf stat -e instructions:u", perf
		}
	}
	collected := regexp.MustCompile(`Collected : (\d+)`)
	callgrind := func(w string, n int) (int64, string, error) {
		return runCounted(exec.Command("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", self, "-run-steps", fmt.Sprintf("%s:%d", w, n)),
			func(stderr string) (int64, error) {
				m := collected.FindStringSubmatch(stderr)
				if m == nil {
					return 0, errors.New("no 'Collected' line in callgrind output")
				}
				return strconv.ParseInt(m[1], 10, 64)
			})
	}
	if _, err := exec.LookPath("valgrind"); err == nil {
		return "valgrind --tool=callgrind", callgrind
	}
	return "none (neither readable perf counters nor valgrind)", nil
}

// runCounted runs cmd, whose stdout is the child's kernel path and whose
// stderr parse reads for the count. The child runs without asynchronous
// preemption: callgrind cannot follow the runtime's preemption signals
// (it fails an assertion in its signal handling).
func runCounted(cmd *exec.Cmd, parse func(stderr string) (int64, error)) (int64, string, error) {
	cmd.Env = append(os.Environ(), "GODEBUG=asyncpreemptoff=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return 0, "", fmt.Errorf("%s: %w: %s", cmd.Args[0], err, lastLine(errb.String()))
	}
	n, err := parse(errb.String())
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w: %s", cmd.Args[0], err, lastLine(errb.String()))
	}
	return n, strings.TrimSpace(out.String()), nil
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

// runSteps is the child's side (-run-steps model_batch:n): n training steps
// of the figure on one thread, then the kernel path on stdout.
func runSteps(spec string) error {
	w, ns, ok := strings.Cut(spec, ":")
	model, bs, ok2 := strings.Cut(w, "_")
	n, err1 := strconv.Atoi(ns)
	batch, err2 := strconv.Atoi(bs)
	if !ok || !ok2 || err1 != nil || err2 != nil || n < 0 {
		return fmt.Errorf("-run-steps %q: want model_batch:steps, e.g. mlp_64:10", spec)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	step, _, err := trainPrep(model, batch)()
	if err != nil {
		return err
	}
	for range n {
		if err := step(); err != nil {
			return err
		}
	}
	fmt.Println(kernels.Default().Name())
	return nil
}

// cpuFeatures lists the x86 vector features that choose gorch's paths.
func cpuFeatures() []string {
	var f []string
	for _, c := range []struct {
		name string
		on   bool
	}{{"avx2", cpu.X86.HasAVX2}, {"fma", cpu.X86.HasFMA}, {"avx512f", cpu.X86.HasAVX512F}, {"avx512bw", cpu.X86.HasAVX512BW},
		{"avx512dq", cpu.X86.HasAVX512DQ}, {"avx512vl", cpu.X86.HasAVX512VL}, {"avx512vnni", cpu.X86.HasAVX512VNNI}, {"avx512bf16", cpu.X86.HasAVX512BF16}} {
		if c.on {
			f = append(f, c.name)
		}
	}
	return f
}
