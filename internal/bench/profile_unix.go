//go:build unix

package bench

import (
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
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
// signals that Run sends around the e2e phase. Each profile is written
// under a temporary name and renamed: Run waits for path to appear,
// complete.
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
				}
			case s == cpuProfileStop && f != nil:
				pprof.StopCPUProfile()
				if f.Close() == nil {
					os.Rename(path+".tmp", path)
				}
				f = nil
			}
		}
	}()
	return nil
}
