//go:build !unix

package main

import "os"

// CPU profiles of a bench's serve need SIGUSR1/SIGUSR2 (bench_unix.go).
var (
	cpuProfileSupported           = false
	cpuProfileStart     os.Signal = os.Interrupt
	cpuProfileStop      os.Signal = os.Interrupt
)
