//go:build unix

package bench

import (
	"os"
	goruntime "runtime"
	"syscall"
	"testing"
	"time"
)

func TestBusyMeter_SeesThisProcessSpin(t *testing.T) {
	if _, ok := procCPU(os.Getpid()); !ok {
		if goruntime.GOOS == "linux" {
			t.Fatal("procCPU: no reading of /proc/self/stat on Linux")
		}
		t.Skip("no /proc here")
	}
	// Compared with the kernel's own account of this process (getrusage)
	// over the same spin, not with a share of a core: on a loaded machine
	// a spinning goroutine gets less than one.
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	m := startBusyMeter(os.Getpid())
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
	}
	b := m.busy()
	wall := time.Since(m.start)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	used := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	measured := time.Duration(b * wall.Seconds() * float64(goruntime.NumCPU()) * float64(time.Second))
	// /proc counts in 10 ms ticks at both ends; allow two and 10 %.
	if diff := (measured - used).Abs(); diff > 20*time.Millisecond+used/10 {
		t.Errorf("busy %.2f over %s on %d cores is %s of CPU; getrusage says %s", b, wall, goruntime.NumCPU(), measured, used)
	}
	if b <= 0 || b > 1.05 {
		t.Errorf("busy %.2f after spinning, want in (0, 1]", b)
	}
}
