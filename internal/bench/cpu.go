package bench

import (
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc/PID/stat's CPU times: USER_HZ, 100 on
// every Linux platform Go supports.
const userHZ = 100

// procCPU is the CPU time (user + system) that process pid has used, from
// /proc/PID/stat; ok is false where there is no /proc (not Linux).
func procCPU(pid int) (_ time.Duration, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing one, from field 3 (state).
	_, rest, found := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !found || len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / userHZ, true
}

// busyMeter measures how busy the machine's cores were with serve and
// bench over an interval: 1 means every core ran one of the two all along.
type busyMeter struct {
	pids  []int
	start time.Time
	cpu   time.Duration
	ok    bool
}

func startBusyMeter(pids ...int) *busyMeter {
	m := &busyMeter{pids: pids, start: time.Now()}
	m.cpu, m.ok = m.total()
	return m
}

func (m *busyMeter) total() (time.Duration, bool) {
	var sum time.Duration
	for _, pid := range m.pids {
		d, ok := procCPU(pid)
		if !ok {
			return 0, false
		}
		sum += d
	}
	return sum, true
}

// busy returns the fraction of the cores' time used since the start, or
// 0 where it cannot be measured.
func (m *busyMeter) busy() float64 {
	now, ok := m.total()
	wall := time.Since(m.start)
	if !m.ok || !ok || wall <= 0 {
		return 0
	}
	return (now - m.cpu).Seconds() / (wall.Seconds() * float64(goruntime.NumCPU()))
}
