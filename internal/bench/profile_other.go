//go:build !unix

package bench

import (
	"errors"
	"os"
)

// CPU profiles of a bench's serve need SIGUSR1/SIGUSR2 (profile_unix.go).
var (
	cpuProfileStart os.Signal = os.Interrupt
	cpuProfileStop  os.Signal = os.Interrupt
)

// CPUProfileSupported reports whether a bench's serve can write a CPU
// profile (Options.CPUProfile): it needs SIGUSR1 and SIGUSR2.
const CPUProfileSupported = false

// ProfileOnSignals fails: this system has no SIGUSR1 and SIGUSR2.
func ProfileOnSignals(path string) error {
	return errors.New("CPU profiles on signals are not supported on this system")
}
