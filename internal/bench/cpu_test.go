package bench

import (
	"os"
	goruntime "runtime"
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
	m := startBusyMeter(os.Getpid())
	// One goroutine spinning for 300 ms keeps one core busy: at least a
	// share of 1/NumCPU, less scheduling noise, and never more than all.
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
	}
	b := m.busy()
	if want := 0.5 / float64(goruntime.NumCPU()); b < want || b > 1.05 {
		t.Errorf("busy %.2f after spinning one core of %d, want between %.2f and 1", b, goruntime.NumCPU(), want)
	}
}
