// Command gorchbench runs gorch and PyTorch side by side on the same work and
// reports medians and ratios (gorch/torch).
//
// For every figure it warms both sides up, then runs the repetitions
// alternating: gorch, torch, gorch, torch, ... PyTorch runs in a child
// process (bench/torch_bench.py --serve) that answers one JSON request per
// line, so both sides live through the whole run and measure the same shapes
// with the same thread counts. Without -python it measures gorch alone.
//
// Figures (keys in results.json; the torch key inserts "_torch" before the
// unit):
//
//	fma_peak_t{1,2}_gflops           gorch's assembly FMA calibration loop
//	matmul_{N}_t{1,2}_gflops         C = A·B, N×N float32, N in 256..2048
//	mlp_b{64,256}_steps_per_s        784-256-10 MLP, Adam, cross-entropy
//	cnn_b64_steps_per_s              nn.LeNet, Adam, cross-entropy
//	gpt_b16_steps_per_s              nn.GPT (2 layers, d_model 64, 4 heads,
//	                                 context 64, vocab 32), Adam, batch 16
//	compile_{mlp_64,mlp_256,cnn_64,gpt_16}_{eager,inductor,gorch}_steps_per_s
//	                                 the same PyTorch steps, eager, with
//	                                 torch.compile (inductor, CPU) and with
//	                                 torch.compile(backend="gorch") (-gorch-lib),
//	                                 alternating; _gorch_vs_eager and
//	                                 _gorch_vs_native (the native gorch figure)
//	                                 are their ratios
//	compile_crossing_us_per_call     the cost of one crossing into gorch: a
//	                                 compiled one-operator graph per call with
//	                                 backend="gorch" minus with "aot_eager"
//	instructions_{mlp_b64,mlp_b256,cnn_b64}_per_step
//	                                 gorch's instructions per training step
//	                                 (perf stat where the CPU counters are
//	                                 readable, else callgrind; -instructions)
//
// Usage (from the repository root; bench/run.sh does this for make bench):
//
//	go run ./bench/cmd/gorchbench -python ~/.cache/gorch/torch-venv-2.15.0/bin/python -o bench/results.json
//	go run ./bench/cmd/gorchbench -quick          # gorch only, small sizes, 1 repetition
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gorch/gorch/internal/cputime"
	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/optim"
	"github.com/gorch/gorch/pkg/tensor"
)

type config struct {
	quick        bool
	reps         int
	minTime      time.Duration // per timed measurement
	warmTime     time.Duration // per warm-up measurement
	python       string        // interpreter with torch; "" measures gorch alone
	script       string        // path of torch_bench.py
	out          string        // results.json path; "" writes none
	trainThreads int
	sizes        []int
	threads      []int
	only         string // comma-separated key prefixes to run; "" runs all
	compile      bool   // torch.compile figures (torch only)
	gorchLib     string // libgorch.so for the backend="gorch" figures; "" leaves them out
	instructions bool   // instruction counts of the training steps
	log          io.Writer
}

func main() {
	var cfg config
	var sizes, threads string
	flag.BoolVar(&cfg.quick, "quick", os.Getenv("BENCH_QUICK") != "", "quick mode: 1 repetition, matmul at 256 only, short measurements (also BENCH_QUICK=1)")
	flag.IntVar(&cfg.reps, "reps", 5, "repetitions per figure (quick mode: 1)")
	flag.DurationVar(&cfg.minTime, "min-time", 500*time.Millisecond, "minimum duration of one timed measurement")
	flag.StringVar(&cfg.python, "python", "", "Python interpreter with torch installed; empty: gorch only")
	flag.StringVar(&cfg.script, "torch-script", "bench/torch_bench.py", "path of the PyTorch driver")
	flag.StringVar(&cfg.out, "o", "bench/results.json", "where to write the JSON results; empty: nowhere")
	flag.IntVar(&cfg.trainThreads, "train-threads", 1, "threads for the MLP and CNN training figures (both sides)")
	flag.StringVar(&sizes, "sizes", "256,512,1024,2048", "matmul sizes (quick mode: 256)")
	flag.StringVar(&threads, "threads", "1,2", "matmul and FMA-peak thread counts")
	flag.StringVar(&cfg.only, "only", "", "run only figures whose key starts with one of these comma-separated prefixes")
	flag.BoolVar(&cfg.compile, "compile", true, "measure torch.compile (inductor, and gorch with -gorch-lib) training steps next to eager (torch only)")
	flag.StringVar(&cfg.gorchLib, "gorch-lib", os.Getenv("GORCH_LIB"), "libgorch.so for the torch.compile(backend=\"gorch\") figures (bench/run.sh builds it); empty: none")
	flag.BoolVar(&cfg.instructions, "instructions", true, "count instructions per training step (perf stat, else callgrind)")
	flag.BoolVar(&useArena, "arena", os.Getenv("GORCH_BENCH_ARENA") != "0", "gorch training steps and matmul products recycle their tensors' memory through a tensor.Arena, as gorch train does (GORCH_BENCH_ARENA=0: fresh memory, for an A/B)")
	steps := flag.String("run-steps", "", "internal: run model_batch:n training steps and exit (the instruction counts' child)")
	flag.Parse()
	if *steps != "" {
		if err := runSteps(*steps); err != nil {
			fatal(err)
		}
		return
	}
	var err error
	if cfg.sizes, err = parseInts(sizes); err != nil {
		fatal(fmt.Errorf("-sizes: %w", err))
	}
	if cfg.threads, err = parseInts(threads); err != nil {
		fatal(fmt.Errorf("-threads: %w", err))
	}
	if cfg.quick {
		cfg.reps = 1
		cfg.minTime = 50 * time.Millisecond
		cfg.compile = cfg.compile && flagSet("compile")
		cfg.instructions = cfg.instructions && flagSet("instructions")
		if !flagSet("sizes") {
			cfg.sizes = []int{256}
		}
	}
	cfg.log = os.Stderr
	res, err := run(cfg)
	if err != nil {
		fatal(err)
	}
	printTable(os.Stdout, cfg, res)
	if cfg.out != "" {
		fmt.Printf("\nresults written to %s\n", cfg.out)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "gorchbench:", err)
	os.Exit(1)
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// figure is one measured quantity. prepare builds the gorch side's state
// (tensors, model, optimizer) once; the returned step runs one unit of work
// worth `work` units (flops or steps). req is the same work for torch.
// A figure without prepare is torch's alone: its variants (e.g. eager and
// inductor) are measured alternating, each under base_<variant>_<unit>.
type figure struct {
	base     string // e.g. matmul_1024_t1
	unit     string // gflops or steps_per_s
	threads  int
	prepare  func() (step func() error, work float64, err error)
	req      map[string]any // nil: gorch only
	variants []string       // torch-only figures: values of req["backend"]
	scale    float64        // value = work·rate·scale
}

func (f figure) key() string      { return f.base + "_" + f.unit }
func (f figure) torchKey() string { return f.base + "_torch_" + f.unit }

// results holds the medians, every sample and the metadata.
type results struct {
	Figures map[string]float64
	Samples map[string][]float64
	Meta    map[string]any
	order   []figure
}

func (r *results) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for k, v := range r.Figures {
		m[k] = round(v)
	}
	m["meta"] = r.Meta
	s := map[string][]float64{}
	for k, v := range r.Samples {
		rv := make([]float64, len(v))
		for i := range v {
			rv[i] = round(v[i])
		}
		s[k] = rv
	}
	m["samples"] = s
	return json.Marshal(m)
}

func round(v float64) float64 { return math.Round(v*1000) / 1000 }

func figures(cfg config) []figure {
	var fs []figure
	for _, t := range cfg.threads {
		fs = append(fs, figure{
			base: fmt.Sprintf("fma_peak_t%d", t), unit: "gflops", threads: t, scale: 1,
			prepare: func() (func() error, float64, error) { return nil, 0, nil }, // special-cased in measureGorch
		})
	}
	for _, n := range cfg.sizes {
		for _, t := range cfg.threads {
			fs = append(fs, figure{
				base: fmt.Sprintf("matmul_%d_t%d", n, t), unit: "gflops", threads: t, scale: 1e-9,
				prepare: matmulPrep(n),
				req:     map[string]any{"fig": "matmul", "n": n, "threads": t},
			})
		}
	}
	tt := cfg.trainThreads
	for _, b := range []int{64, 256} {
		fs = append(fs, figure{
			base: fmt.Sprintf("mlp_b%d", b), unit: "steps_per_s", threads: tt, scale: 1,
			prepare: trainPrep("mlp", b),
			req:     map[string]any{"fig": "mlp", "batch": b, "threads": tt},
		})
	}
	fs = append(fs, figure{
		base: "cnn_b64", unit: "steps_per_s", threads: tt, scale: 1,
		prepare: trainPrep("cnn", 64),
		req:     map[string]any{"fig": "cnn", "batch": 64, "threads": tt},
	}, figure{
		base: "gpt_b16", unit: "steps_per_s", threads: tt, scale: 1,
		prepare: trainPrep("gpt", 16),
		req:     map[string]any{"fig": "gpt", "batch": 16, "threads": tt},
	})
	if cfg.compile {
		variants := []string{"eager", "inductor"}
		if cfg.gorchLib != "" {
			variants = append(variants, "gorch")
		}
		for _, mb := range compileFigures {
			fs = append(fs, figure{
				base: fmt.Sprintf("compile_%s_%d", mb.model, mb.batch), unit: "steps_per_s", threads: tt,
				req:      map[string]any{"fig": mb.model, "batch": mb.batch, "threads": tt},
				variants: variants,
			})
		}
		if cfg.gorchLib != "" {
			fs = append(fs, figure{
				base: "compile_crossing", unit: "us_per_call", threads: tt,
				req:      map[string]any{"fig": "crossing", "threads": tt},
				variants: []string{"aot_eager", "gorch"},
			})
		}
	}
	if cfg.only != "" {
		var keep []figure
		for _, f := range fs {
			for _, p := range strings.Split(cfg.only, ",") {
				if p != "" && strings.HasPrefix(f.base, p) {
					keep = append(keep, f)
					break
				}
			}
		}
		fs = keep
	}
	return fs
}

// compileFigures are the torch.compile figures' models and batch sizes;
// each has a native gorch figure <model>_b<batch>.
var compileFigures = []struct {
	model string
	batch int
}{{"mlp", 64}, {"mlp", 256}, {"cnn", 64}, {"gpt", 16}}

func matmulPrep(n int) func() (func() error, float64, error) {
	return func() (func() error, float64, error) {
		rng := tensor.NewRNG(1)
		a, err := tensor.Randn(rng, n, n)
		if err != nil {
			return nil, 0, err
		}
		b, err := tensor.Randn(rng, n, n)
		if err != nil {
			return nil, 0, err
		}
		// With useArena the product's storage is recycled from one call to
		// the next, as a training step's are (and as PyTorch's caching
		// allocator recycles torch.mm's): no fresh memory to clear each call.
		var arena *tensor.Arena
		if useArena {
			scope := tensor.NewScope()
			scope.Adopt(a, b)
			arena = tensor.NewArena()
			scope.SetArena(arena)
		}
		step := func() error {
			arena.Reset()
			_, err := tensor.Matmul(a, b)
			return err
		}
		return step, 2 * float64(n) * float64(n) * float64(n), nil
	}
}

// useArena makes the training steps take their tensors' storages from a
// tensor.Arena reset at the start of each step (pkg/train does the same).
var useArena = true

// trainPrep builds the model, Adam and a fixed synthetic batch; one step is
// forward, cross-entropy, zero_grad, backward, Adam step.
func trainPrep(model string, batch int) func() (func() error, float64, error) {
	return func() (func() error, float64, error) {
		rng := tensor.NewRNG(1)
		var m nn.Module
		var x, y *tensor.Tensor
		var err error
		switch model {
		case "mlp":
			if m, err = nn.MLP([]int{784, 256, 10}, rng); err == nil {
				x, err = tensor.Randn(rng, batch, 784)
			}
		case "cnn":
			if m, err = nn.LeNet(rng); err == nil {
				x, err = tensor.Randn(rng, batch, 1, 28, 28)
			}
		case "gpt":
			m, x, y, err = gptPrep(batch, rng)
		default:
			err = fmt.Errorf("unknown model %q", model)
		}
		if err != nil {
			return nil, 0, err
		}
		opt, err := optim.NewAdam(m.Parameters(), optim.DefaultAdamConfig(1e-3))
		if err != nil {
			return nil, 0, err
		}
		if y == nil {
			if y, err = tensor.Zeros(batch); err != nil {
				return nil, 0, err
			}
			for i, yd := 0, y.Data(); i < batch; i++ {
				yd[i] = float32(i % 10)
			}
		}
		// The run's scope, as in pkg/train: parameters and batch adopted,
		// intermediate tensors from the arena.
		scope := tensor.NewScope()
		nn.SetScope(m, scope)
		scope.Adopt(x, y)
		var arena *tensor.Arena
		if useArena {
			arena = tensor.NewArena()
			scope.SetArena(arena)
		}
		xv := autograd.Const(x)
		step := func() error {
			arena.Reset()
			out, err := m.Forward(xv)
			if err != nil {
				return err
			}
			if out.Data.Dim() == 3 { // [B, T, V] logits: every token is a sample
				if out, err = autograd.Reshape(out, -1, out.Data.Shape()[2]); err != nil {
					return err
				}
			}
			loss, err := autograd.CrossEntropy(out, y)
			if err != nil {
				return err
			}
			opt.ZeroGrad()
			if err := loss.Backward(); err != nil {
				return err
			}
			return opt.Step()
		}
		return step, 1, nil
	}
}

// gptConfig is the GPT of the gpt figures (pkg/train's BenchmarkGPTStep).
var gptConfig = nn.GPTConfig{Vocab: 32, Context: 64, Layers: 2, Dim: 64, Heads: 4}

// gptPrep builds the GPT and a fixed batch of token windows (token i is
// i mod 32, its target the next one), as torch_bench.py does.
func gptPrep(batch int, rng *tensor.RNG) (nn.Module, *tensor.Tensor, *tensor.Tensor, error) {
	m, err := nn.NewGPT(gptConfig, rng, rng)
	if err != nil {
		return nil, nil, nil, err
	}
	x, err := tensor.Zeros(batch, gptConfig.Context)
	if err != nil {
		return nil, nil, nil, err
	}
	y, err := tensor.Zeros(batch * gptConfig.Context)
	if err != nil {
		return nil, nil, nil, err
	}
	for i, xd, yd := 0, x.Data(), y.Data(); i < len(xd); i++ {
		xd[i], yd[i] = float32(i%gptConfig.Vocab), float32((i+1)%gptConfig.Vocab)
	}
	return m, x, y, nil
}

// rate is one measurement: work per wall-clock second, and per CPU second
// of the process (0 where unknown). On a shared, time-sliced machine the
// second tracks each side's own speed better; both sides report both.
type rate struct{ wall, cpu float64 }

func (r rate) scaled(s float64) rate { return rate{r.wall * s, r.cpu * s} }

// timeIt runs step until at least d has passed and at least minIters steps
// ran, and returns steps per second.
func timeIt(step func() error, d time.Duration, minIters int) (rate, error) {
	start, c0 := time.Now(), cputime.Process()
	n := 0
	for {
		if err := step(); err != nil {
			return rate{}, err
		}
		n++
		if el := time.Since(start); n >= minIters && el >= d {
			r := rate{wall: float64(n) / el.Seconds()}
			if c := cputime.Process() - c0; c > 0 && c0 > 0 {
				r.cpu = float64(n) / c.Seconds()
			}
			return r, nil
		}
	}
}

// withThreads runs fn with GOMAXPROCS and the default kernel capped to t.
func withThreads(t int, fn func() error) error {
	prevProcs := runtime.GOMAXPROCS(t)
	prev := kernels.Default()
	kernels.SetDefault(kernels.WithThreads(prev, t))
	defer func() {
		kernels.SetDefault(prev)
		runtime.GOMAXPROCS(prevProcs)
	}()
	return fn()
}

// torchProc is the PyTorch driver running in --serve mode.
type torchProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startTorch(python, script, gorchLib string, maxThreads int) (*torchProc, error) {
	cmd := exec.Command(python, script, "--serve")
	t := strconv.Itoa(maxThreads)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS="+t, "MKL_NUM_THREADS="+t, "OPENBLAS_NUM_THREADS="+t)
	if gorchLib != "" {
		lib, err := filepath.Abs(gorchLib)
		if err != nil {
			return nil, err
		}
		cmd.Env = append(cmd.Env, "GORCH_LIB="+lib)
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s %s: %w", python, script, err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &torchProc{cmd: cmd, in: in, out: sc}, nil
}

func (p *torchProc) call(req map[string]any) (map[string]any, error) {
	b, _ := json.Marshal(req)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("torch driver: %w", err)
	}
	if !p.out.Scan() {
		return nil, fmt.Errorf("torch driver exited (request %s): %v", b, p.out.Err())
	}
	var resp map[string]any
	if err := json.Unmarshal(p.out.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("torch driver: bad reply %q: %w", p.out.Text(), err)
	}
	if e, ok := resp["error"]; ok {
		return nil, fmt.Errorf("torch driver: %v (request %s)", e, b)
	}
	return resp, nil
}

func (p *torchProc) measure(req map[string]any, d time.Duration, minIters int) (rate, error) {
	r := map[string]any{"min_time": d.Seconds(), "min_iters": minIters}
	for k, v := range req {
		r[k] = v
	}
	resp, err := p.call(r)
	if err != nil {
		return rate{}, err
	}
	v, ok := resp["value"].(float64)
	if !ok {
		return rate{}, fmt.Errorf("torch driver: reply without value: %v", resp)
	}
	c, _ := resp["cpu_value"].(float64)
	return rate{v, c}, nil
}

func (p *torchProc) close() {
	p.in.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func run(cfg config) (*results, error) {
	if cfg.log == nil {
		cfg.log = io.Discard
	}
	cfg.reps = max(cfg.reps, 1)
	cfg.trainThreads = max(cfg.trainThreads, 1)
	if cfg.warmTime == 0 {
		cfg.warmTime = cfg.minTime / 2
	}
	started := time.Now()
	res := &results{Figures: map[string]float64{}, Samples: map[string][]float64{}, Meta: meta(cfg, started)}
	var torch *torchProc
	if cfg.python != "" {
		var err error
		if torch, err = startTorch(cfg.python, cfg.script, cfg.gorchLib, slices.Max(append(slices.Clone(cfg.threads), cfg.trainThreads))); err != nil {
			return nil, err
		}
		defer torch.close()
		info, err := torch.call(map[string]any{"fig": "meta"})
		if err != nil {
			return nil, err
		}
		for k, v := range info {
			res.Meta["torch_"+k] = v
		}
	} else {
		res.Meta["torch_version"] = nil
	}
	for _, f := range figures(cfg) {
		if f.prepare == nil && torch == nil {
			continue // torch's alone, and no torch
		}
		if err := measure(cfg, res, torch, f); err != nil {
			return nil, err
		}
		res.order = append(res.order, f)
	}
	peakShares(res)
	compileRatios(res)
	if cfg.instructions {
		if err := countInstructions(cfg, res); err != nil {
			return nil, err
		}
	}
	res.Meta["loadavg_end"] = loadAvg()
	res.Meta["duration_s"] = math.Round(time.Since(started).Seconds())
	if cfg.out != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(cfg.out, append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// meta describes the run: machine, kernel paths, settings.
func meta(cfg config, started time.Time) map[string]any {
	return map[string]any{
		"date":              started.UTC().Format(time.RFC3339),
		"cpu_model":         cpuModel(),
		"cpu_features":      cpuFeatures(),
		"num_cpu":           runtime.NumCPU(),
		"go_version":        runtime.Version(),
		"goarch":            runtime.GOARCH,
		"kernel_path":       kernels.Default().Name(),
		"kernels_available": kernels.Available(),
		"vec_path":          kernels.VecPath(),
		"fma_peak_width":    kernels.FMAPeakWidth(),
		"threads":           cfg.threads,
		"train_threads":     cfg.trainThreads,
		"reps":              cfg.reps,
		"min_time_s":        cfg.minTime.Seconds(),
		"quick":             cfg.quick,
		"statistic":         "median",
		"loadavg_start":     loadAvg(),
		"env":               benchEnv(),
	}
}

// benchEnv returns the environment variables that choose either side's
// kernels (make bench-avx2 sets them to run both sides as on an AVX2-only
// CPU), those that are set.
func benchEnv() map[string]string {
	env := map[string]string{}
	for _, k := range []string{kernels.EnvKernel, "GODEBUG", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	return env
}

// minIters: each measurement runs for at least minTime; one iteration
// suffices for the slow figures (a 2048 matmul is ~0.1–1 s).
const minIters = 1

// measure runs one figure: warm-up on each side, then cfg.reps rounds of
// gorch, torch (or torch's variants in turn), and records the medians.
func measure(cfg config, res *results, torch *torchProc, f figure) error {
	var step func() error
	var work float64
	gorchOnce := func(d time.Duration) (rate, error) {
		var v rate
		err := withThreads(f.threads, func() error {
			if strings.HasPrefix(f.base, "fma_peak") {
				start, c0 := time.Now(), cputime.Process()
				v = rate{wall: kernels.FMAPeak(d, f.threads)}
				if c := cputime.Process() - c0; c > 0 && c0 > 0 {
					v.cpu = v.wall * time.Since(start).Seconds() / c.Seconds()
				}
				return nil
			}
			r, err := timeIt(step, d, minIters)
			v = r.scaled(work * f.scale)
			return err
		})
		return v, err
	}
	// One side after the other: gorch (if any), then torch's requests.
	type side struct {
		key  string
		name string
		once func(time.Duration) (rate, error)
	}
	var sides []side
	if f.prepare != nil {
		if err := withThreads(f.threads, func() error {
			var err error
			step, work, err = f.prepare()
			return err
		}); err != nil {
			return fmt.Errorf("%s: %w", f.key(), err)
		}
		sides = append(sides, side{f.key(), "gorch", gorchOnce})
	}
	if torch != nil && f.req != nil {
		torchSide := func(key, name string, req map[string]any) side {
			return side{key, name, func(d time.Duration) (rate, error) { return torch.measure(req, d, minIters) }}
		}
		if len(f.variants) == 0 {
			sides = append(sides, torchSide(f.torchKey(), "torch", f.req))
		}
		for _, v := range f.variants {
			req := maps.Clone(f.req)
			req["backend"] = v
			sides = append(sides, torchSide(f.base+"_"+v+"_"+f.unit, v, req))
		}
	}
	for _, sd := range sides { // warm-up (and compilation), untimed
		if _, err := sd.once(cfg.warmTime); err != nil {
			return fmt.Errorf("%s: %w", sd.key, err)
		}
	}
	for rep := 1; rep <= cfg.reps; rep++ {
		line := fmt.Sprintf("%-18s rep %d/%d:", f.base, rep, cfg.reps)
		for _, sd := range sides {
			v, err := sd.once(cfg.minTime)
			if err != nil {
				return fmt.Errorf("%s: %w", sd.key, err)
			}
			res.Samples[sd.key] = append(res.Samples[sd.key], v.wall)
			if v.cpu > 0 && f.threads == 1 {
				res.Samples[perCPU(sd.key, f.unit)] = append(res.Samples[perCPU(sd.key, f.unit)], v.cpu)
			}
			line += fmt.Sprintf("  %s %9.2f (%.2f per CPU-s)", sd.name, v.wall, v.cpu)
		}
		fmt.Fprintf(cfg.log, "%s %s\n", line, f.unit)
	}
	for _, sd := range sides {
		res.Figures[sd.key] = median(res.Samples[sd.key])
		if s, ok := res.Samples[perCPU(sd.key, f.unit)]; ok {
			res.Figures[perCPU(sd.key, f.unit)] = median(s)
		}
	}
	if t := res.Figures[f.torchKey()]; t > 0 && f.prepare != nil {
		res.Figures[f.base+"_ratio"] = res.Figures[f.key()] / t
	}
	if t := res.Figures[perCPU(f.torchKey(), f.unit)]; t > 0 && f.prepare != nil {
		res.Figures[f.base+"_percpu_ratio"] = res.Figures[perCPU(f.key(), f.unit)] / t
	}
	return nil
}

// perCPU is the key of the per-CPU-second figure of key (unit its suffix):
// mlp_b64_steps_per_s -> mlp_b64_percpu_steps_per_s.
func perCPU(key, unit string) string { return strings.TrimSuffix(key, "_"+unit) + "_percpu_" + unit }

// peakShares adds each matmul figure as a share of the FMA peak at the same
// thread count, and the per-CPU-second figures as a share of the per-CPU
// peak (the FMA loop's flops per CPU second of the process).
func peakShares(res *results) {
	for _, f := range res.order {
		if !strings.HasPrefix(f.base, "matmul_") {
			continue
		}
		fma := fmt.Sprintf("fma_peak_t%d_gflops", f.threads)
		for _, k := range []struct{ peak, gorch, torch, out string }{
			{fma, f.key(), f.torchKey(), f.base + "_"},
			{perCPU(fma, f.unit), perCPU(f.key(), f.unit), perCPU(f.torchKey(), f.unit), f.base + "_percpu_"},
		} {
			peak := res.Figures[k.peak]
			if peak <= 0 {
				continue
			}
			if g, ok := res.Figures[k.gorch]; ok {
				res.Figures[k.out+"pct_fma_peak"] = 100 * g / peak
			}
			if t, ok := res.Figures[k.torch]; ok {
				res.Figures[k.out+"torch_pct_fma_peak"] = 100 * t / peak
			}
		}
	}
}

// compileRatios adds, per torch.compile figure, gorch and inductor against
// eager PyTorch and gorch against native gorch (same step, gorch's own
// Adam) from the same run, and the crossing cost.
func compileRatios(res *results) {
	f := res.Figures
	for _, mb := range compileFigures {
		base := fmt.Sprintf("compile_%s_%d", mb.model, mb.batch)
		eager := f[base+"_eager_steps_per_s"]
		for _, v := range []string{"gorch", "inductor"} {
			if x, ok := f[base+"_"+v+"_steps_per_s"]; ok && eager > 0 {
				f[base+"_"+v+"_vs_eager"] = x / eager
			}
		}
		native := f[fmt.Sprintf("%s_b%d_steps_per_s", mb.model, mb.batch)]
		if x, ok := f[base+"_gorch_steps_per_s"]; ok && native > 0 {
			f[base+"_gorch_vs_native"] = x / native
		}
	}
	g, ok1 := f["compile_crossing_gorch_us_per_call"]
	a, ok2 := f["compile_crossing_aot_eager_us_per_call"]
	if ok1 && ok2 {
		f["compile_crossing_us_per_call"] = g - a
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func printTable(w io.Writer, cfg config, r *results) {
	m := r.Meta
	fmt.Fprintf(w, "gorch vs PyTorch — medians of %d repetition(s), alternating; %s\n", cfg.reps, m["date"])
	fmt.Fprintf(w, "cpu %v (%v logical), gorch kernel %v, FMA loop %v, torch %v, train threads %d, load %v -> %v\n\n",
		m["cpu_model"], m["num_cpu"], m["kernel_path"], m["fma_peak_width"], orDash(m["torch_version"]), cfg.trainThreads, m["loadavg_start"], m["loadavg_end"])
	fmt.Fprintf(w, "%-18s %-12s %10s %10s %12s %12s %12s\n", "figure", "unit", "gorch", "torch", "gorch/torch", "gorch %peak", "torch %peak")
	for _, f := range r.order {
		if f.prepare == nil {
			continue // the torch.compile table below
		}
		g := r.Figures[f.key()]
		ts, ratio, gp, tp := "-", "-", "-", "-"
		if t, ok := r.Figures[f.torchKey()]; ok {
			ts = fmt.Sprintf("%.1f", t)
			if t > 0 {
				ratio = fmt.Sprintf("%.2fx", g/t)
			}
		}
		if v, ok := r.Figures[f.base+"_pct_fma_peak"]; ok {
			gp = fmt.Sprintf("%.0f %%", v)
		}
		if v, ok := r.Figures[f.base+"_torch_pct_fma_peak"]; ok {
			tp = fmt.Sprintf("%.0f %%", v)
		}
		fmt.Fprintf(w, "%-18s %-12s %10.1f %10s %12s %12s %12s\n", f.base, f.unit, g, ts, ratio, gp, tp)
	}
	printCompile(w, cfg, r)
	fmt.Fprintf(w, "\nper CPU second of each process (1-thread figures; steadier than wall clock on a shared machine):\n")
	fmt.Fprintf(w, "%-18s %-12s %10s %10s %12s %12s %12s\n", "figure", "unit", "gorch", "torch", "gorch/torch", "gorch %peak", "torch %peak")
	for _, f := range r.order {
		if f.threads != 1 || f.prepare == nil {
			continue
		}
		g, ok := r.Figures[perCPU(f.key(), f.unit)]
		if !ok {
			continue
		}
		ts, ratio, gp, tp := "-", "-", "-", "-"
		if t, ok := r.Figures[perCPU(f.torchKey(), f.unit)]; ok && t > 0 {
			ts, ratio = fmt.Sprintf("%.1f", t), fmt.Sprintf("%.2fx", g/t)
		}
		if v, ok := r.Figures[f.base+"_percpu_pct_fma_peak"]; ok {
			gp = fmt.Sprintf("%.0f %%", v)
		}
		if v, ok := r.Figures[f.base+"_percpu_torch_pct_fma_peak"]; ok {
			tp = fmt.Sprintf("%.0f %%", v)
		}
		fmt.Fprintf(w, "%-18s %-12s %10.1f %10s %12s %12s %12s\n", f.base, f.unit, g, ts, ratio, gp, tp)
	}
	for _, f := range r.order {
		for _, v := range f.variants {
			if t, ok := r.Figures[perCPU(f.base+"_"+v+"_"+f.unit, f.unit)]; ok {
				fmt.Fprintf(w, "%-18s %-12s %10s %10.1f\n", f.base+"_"+v, f.unit, "-", t)
			}
		}
	}
	for _, wl := range instrWorkloads {
		model, batch, _ := strings.Cut(wl, "_")
		if v, ok := r.Figures[fmt.Sprintf("instructions_%s_b%s_per_step", model, batch)]; ok {
			fmt.Fprintf(w, "%s b%s: %.4g instructions per step (%v, %v path)\n", model, batch, v, m["instructions_tool"], m["instructions_kernel"])
		}
	}
	for _, n := range cfg.sizes {
		t1, ok1 := r.Figures[fmt.Sprintf("matmul_%d_t1_gflops", n)]
		t2, ok2 := r.Figures[fmt.Sprintf("matmul_%d_t2_gflops", n)]
		if ok1 && ok2 && t1 > 0 {
			fmt.Fprintf(w, "matmul %d: gorch 2-thread/1-thread = %.2fx", n, t2/t1)
			a, oka := r.Figures[fmt.Sprintf("matmul_%d_t1_torch_gflops", n)]
			b, okb := r.Figures[fmt.Sprintf("matmul_%d_t2_torch_gflops", n)]
			if oka && okb && a > 0 {
				fmt.Fprintf(w, ", torch %.2fx", b/a)
			}
			fmt.Fprintln(w)
		}
	}
}

// printCompile prints the torch.compile figures side by side: PyTorch's
// step (its Adam) eager, under inductor and on gorch, and native gorch.
func printCompile(w io.Writer, cfg config, r *results) {
	f := r.Figures
	if _, ok := f["compile_mlp_64_eager_steps_per_s"]; !ok {
		return
	}
	fmt.Fprintf(w, "\ntorch.compile, training steps/s (PyTorch's step and Adam; %d thread(s)); native = gorch train's step\n", cfg.trainThreads)
	fmt.Fprintf(w, "%-8s %6s %9s %9s %9s %9s %12s %13s\n", "model", "batch", "eager", "inductor", "gorch", "native", "gorch/eager", "gorch/native")
	num := func(k string, format string) string {
		if v, ok := f[k]; ok {
			return fmt.Sprintf(format, v)
		}
		return "-"
	}
	for _, mb := range compileFigures {
		base := fmt.Sprintf("compile_%s_%d", mb.model, mb.batch)
		fmt.Fprintf(w, "%-8s %6d %9s %9s %9s %9s %12s %13s\n", mb.model, mb.batch,
			num(base+"_eager_steps_per_s", "%.1f"), num(base+"_inductor_steps_per_s", "%.1f"), num(base+"_gorch_steps_per_s", "%.1f"),
			num(fmt.Sprintf("%s_b%d_steps_per_s", mb.model, mb.batch), "%.1f"), num(base+"_gorch_vs_eager", "%.2fx"), num(base+"_gorch_vs_native", "%.2fx"))
	}
	if v, ok := f["compile_crossing_us_per_call"]; ok {
		fmt.Fprintf(w, "crossing into gorch: %.1f µs per call (one-operator graph: gorch %.1f µs, aot_eager %.1f µs)\n",
			v, f["compile_crossing_gorch_us_per_call"], f["compile_crossing_aot_eager_us_per_call"])
	}
}

func orDash(v any) any {
	if v == nil {
		return "-"
	}
	return v
}
