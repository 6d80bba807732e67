package kernels

import (
	"sync"
	"sync/atomic"
	"time"
)

// FMAPeakWidth names the register width FMAPeak measures on this machine
// for the backend in use: "zmm" when the default backend is the AVX-512
// one, "ymm" when the CPU has AVX2+FMA, "" when there is no assembly
// calibration loop (FMAPeak then returns 0).
func FMAPeakWidth() string {
	switch {
	case hasAVX512() && Default().Name() == "avx512":
		return "zmm"
	case hasAVX2():
		return "ymm"
	}
	return ""
}

// FMAPeak measures the machine's single-precision FMA throughput in
// GFLOP/s: threads goroutines (threads <= 0: 1) each run the assembly
// calibration loop (independent register-to-register FMAs of the width
// FMAPeakWidth names, the width of the GEMM kernel in use) for about d of
// wall-clock time, and the result is all flops over the elapsed time. The
// caller sets GOMAXPROCS to at least threads for the goroutines to run in
// parallel. It returns 0 where there is no calibration loop.
func FMAPeak(d time.Duration, threads int) float64 {
	var run func(int)
	var flopsPerIter float64
	switch FMAPeakWidth() {
	case "zmm":
		run, flopsPerIter = fmaPeakAVX512, 24*32
	case "ymm":
		run, flopsPerIter = fmaPeakAVX2, 12*16
	default:
		return 0
	}
	threads = max(threads, 1)
	// One chunk is ~0.1 ms at ~100 GFLOP/s per thread: short enough to
	// stop near the deadline, long enough to hide the clock reads.
	const chunk = 1 << 12
	var total atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(0)
			for {
				run(chunk)
				n += chunk
				if time.Now().After(deadline) {
					break
				}
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	return float64(total.Load()) * flopsPerIter / el / 1e9
}
