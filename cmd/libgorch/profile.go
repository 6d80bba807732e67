package main

import (
	"os"
	"runtime/pprof"
	"strconv"
	"time"
)

// A developer's switch for profiling the library inside its host (Python
// under torch.compile, say): with GORCH_CPUPROFILE=path the library writes a
// Go CPU profile of its first GORCH_CPUPROFILE_SECONDS seconds (default 10)
// after loading to path. Errors are ignored: it is a measuring aid.
func init() {
	path := os.Getenv("GORCH_CPUPROFILE")
	if path == "" {
		return
	}
	secs, err := strconv.ParseFloat(os.Getenv("GORCH_CPUPROFILE_SECONDS"), 64)
	if err != nil || secs <= 0 {
		secs = 10
	}
	f, err := os.Create(path)
	if err != nil {
		return
	}
	if pprof.StartCPUProfile(f) != nil {
		f.Close()
		return
	}
	time.AfterFunc(time.Duration(secs*float64(time.Second)), func() {
		pprof.StopCPUProfile()
		f.Close()
	})
}
