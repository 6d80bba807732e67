//go:build !unix

// Package cputime reads the CPU time the process has used. On a shared,
// time-sliced machine work per CPU second tracks code's own speed better
// than wall-clock time does; benchmarks report both.
package cputime

import "time"

// Process returns 0: this system has no getrusage.
func Process() time.Duration { return 0 }
