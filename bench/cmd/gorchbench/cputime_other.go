//go:build !unix

package main

import "time"

// processCPU is unknown here: per-CPU figures are left out.
func processCPU() time.Duration { return 0 }
