//go:build unix

package main

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
	cpuProfileSupported           = true
	cpuProfileStart     os.Signal = syscall.SIGUSR1
	cpuProfileStop      os.Signal = syscall.SIGUSR2
)

func init() {
	path := os.Getenv(envBenchCPUProfile)
	if path == "" {
		return
	}
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
				// Written under a temporary name and renamed: bench
				// waits for path to appear, complete.
				pprof.StopCPUProfile()
				if f.Close() == nil {
					os.Rename(path+".tmp", path)
				}
				f = nil
			}
		}
	}()
}
