//go:build unix

package bench

import (
	"errors"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
)

// Sampling of the contention profiles written beside the CPU profile:
// one blocking event per blockRate ns spent blocked, one mutex
// contention event in mutexFraction. Only on between the signals.
const (
	blockRate     = 10_000
	mutexFraction = 10
)

// The serve that `dedupfn bench --cpuprofile` starts profiles itself
// between these two signals from bench: the profile covers exactly the
// end-to-end phase. serve has no /debug/pprof endpoint.
var (
	cpuProfileStart os.Signal = syscall.SIGUSR1
	cpuProfileStop  os.Signal = syscall.SIGUSR2
)

// CPUProfileSupported reports whether a bench's serve can write a CPU
// profile (Options.CPUProfile): it needs SIGUSR1 and SIGUSR2.
const CPUProfileSupported = true

// ProfileOnSignals makes this process (a serve started by Run, given
// --ProfileSignalsFlag=path) write a CPU profile to path between the
// signals that Run sends around the e2e phase, and the block and mutex
// contention profiles of the same interval to path.block and
// path.mutex. The CPU profile is written last,
// under a temporary name and renamed: Run waits for path to appear, the
// others complete.
func ProfileOnSignals(path string) error {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, cpuProfileStart, cpuProfileStop)
	go func() {
		var f *os.File
		for s := range sig {
			switch {
			case s == cpuProfileStart && f == nil:
				var err error
				if f, err = os.Create(path + ".tmp"); err != nil {
					continue
				}
				if pprof.StartCPUProfile(f) != nil {
					f.Close()
					f = nil
					continue
				}
				runtime.SetBlockProfileRate(blockRate)
				runtime.SetMutexProfileFraction(mutexFraction)
			case s == cpuProfileStop && f != nil:
				pprof.StopCPUProfile()
				runtime.SetBlockProfileRate(0)
				runtime.SetMutexProfileFraction(0)
				perr := errors.Join(writeProfile("block", path+".block"), writeProfile("mutex", path+".mutex"))
				if f.Close() == nil && perr == nil {
					os.Rename(path+".tmp", path)
				}
				f = nil
			}
		}
	}()
	return nil
}

// writeProfile writes the runtime profile name to path.
func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup(name).WriteTo(f, 0), f.Close())
}
