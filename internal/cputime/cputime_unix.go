//go:build unix

// Package cputime reads the CPU time the process has used. On a shared,
// time-sliced machine work per CPU second tracks code's own speed better
// than wall-clock time does; benchmarks report both.
package cputime

import (
	"syscall"
	"time"
)

// Process returns the CPU time (user + system) the process has used, all
// threads together, as Python's time.process_time does; 0 where the system
// cannot say.
func Process() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
