package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// logLine is one line an action printed, stamped when it arrived.
type logLine struct {
	at       time.Time
	stream   string
	text     string
	sentinel bool
}

// stream collects one of an action process's output streams (stdout or
// stderr) for the whole life of the process. Lines are cut into
// activations by cut: at the sentinel line when the action prints one, else
// at "whatever had arrived when the result did". A single goroutine (run)
// reads the pipe; drain asks it to read everything the kernel still holds.
type stream struct {
	name string
	f    *os.File

	mu       sync.Mutex
	lines    []logLine
	partial  []byte
	bytes    int // lineCost of the lines held
	limit    int // bytes kept per activation before dropping
	dropped  int // lines dropped since the last cut
	sawEnd   bool
	cuts     int           // activations cut so far
	pending  chan struct{} // a drain waiting for the reader
	sentinel chan struct{} // signalled (non-blocking) on each sentinel line
	eof      chan struct{} // closed when the pipe is at EOF or closed
}

func newStream(name string, f *os.File) *stream {
	return &stream{
		name:     name,
		f:        f,
		limit:    DefaultMaxLogBytes,
		sentinel: make(chan struct{}, 1),
		eof:      make(chan struct{}),
	}
}

// run reads the pipe until EOF. It is the only reader of s.f.
func (s *stream) run() {
	defer close(s.eof)
	buf := make([]byte, 32<<10)
	for {
		n, err := s.f.Read(buf)
		if n > 0 {
			s.add(buf[:n])
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.drainKernel(buf)
			continue
		}
		// EOF or closed: keep a trailing partial line, release any drain.
		s.mu.Lock()
		s.flushPartial()
		if s.pending != nil {
			close(s.pending)
			s.pending = nil
		}
		s.mu.Unlock()
		return
	}
}

// drainKernel reads every byte the kernel pipe buffer holds right now
// (FIONREAD), then releases the waiting drain. Anything the action wrote
// before its result line is therefore in s.lines when drain returns.
func (s *stream) drainKernel(buf []byte) {
	_ = s.f.SetReadDeadline(time.Time{})
	for {
		avail := 0
		rc, err := s.f.SyscallConn()
		if err == nil {
			_ = rc.Control(func(fd uintptr) {
				avail, err = unix.IoctlGetInt(int(fd), unix.TIOCINQ)
			})
		}
		if err != nil || avail <= 0 {
			break
		}
		n, rerr := s.f.Read(buf[:min(avail, len(buf))])
		if n > 0 {
			s.add(buf[:n])
		}
		if rerr != nil {
			break
		}
	}
	s.mu.Lock()
	if s.pending != nil {
		close(s.pending)
		s.pending = nil
	}
	s.mu.Unlock()
}

// drain returns once everything written to the pipe so far has been read.
func (s *stream) drain() {
	done := make(chan struct{})
	s.mu.Lock()
	s.pending = done
	s.mu.Unlock()
	select {
	case <-s.eof:
		return
	default:
	}
	// A deadline in the past wakes the reader's blocked Read.
	_ = s.f.SetReadDeadline(time.Unix(1, 0))
	select {
	case <-done:
	case <-s.eof:
	}
}

// add splits p into lines. Caller must not hold s.mu.
func (s *stream) add(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.partial = append(s.partial, p...)
			if len(s.partial) > s.limit {
				// A line longer than the limit is kept as its own line.
				s.appendLine(now, string(s.partial))
				s.partial = s.partial[:0]
			}
			return
		}
		s.partial = append(s.partial, p[:i]...)
		s.appendLine(now, string(s.partial))
		s.partial = s.partial[:0]
		p = p[i+1:]
	}
}

func (s *stream) flushPartial() {
	if len(s.partial) > 0 {
		s.appendLine(time.Now(), string(s.partial))
		s.partial = s.partial[:0]
	}
}

// appendLine records one line; s.mu must be held.
func (s *stream) appendLine(at time.Time, text string) {
	if strings.TrimSpace(text) == LogSentinel {
		s.lines = append(s.lines, logLine{at: at, stream: s.name, sentinel: true})
		s.sawEnd = true
		select {
		case s.sentinel <- struct{}{}:
		default:
		}
		return
	}
	if s.bytes+lineCost(text) > s.limit {
		s.dropped++
		return
	}
	s.bytes += lineCost(text)
	s.lines = append(s.lines, logLine{at: at, stream: s.name, text: text})
}

// lineOverhead is what formatLogs adds to each line: timestamp, stream
// name and newline.
const lineOverhead = len("2006-01-02T15:04:05.000000000Z stdout: \n")

// lineCost is what a line counts against the log cap: its formatted size.
// Every byte counts, so empty lines are not free: 20 MiB of newlines
// would otherwise be 20 Mi kept records of some 64 bytes each.
func lineCost(text string) int { return len(text) + lineOverhead }

// setLimit sets the per-stream byte budget of the activation about to
// start.
func (s *stream) setLimit(limit int) {
	s.mu.Lock()
	s.limit = limit
	s.mu.Unlock()
}

// cut returns this activation's lines: up to the first sentinel if there is
// one, else everything that has arrived. It waits up to wait for a
// sentinel from a process that has printed one before, and up to
// FirstSentinelWait on a process's first activation (when it is not yet
// known whether it prints them). limit is the next activation's
// per-stream byte budget.
func (s *stream) cut(wait time.Duration, limit int) (lines []logLine, dropped int) {
	s.mu.Lock()
	if !s.sawEnd && s.cuts == 0 && wait > 0 {
		wait = min(wait, FirstSentinelWait)
	}
	s.cuts++
	s.mu.Unlock()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		idx := -1
		for i, l := range s.lines {
			if l.sentinel {
				idx = i
				break
			}
		}
		expect := s.sawEnd || s.cuts == 1
		if idx < 0 && expect && wait > 0 {
			s.mu.Unlock()
			select {
			case <-s.sentinel:
				continue
			case <-s.eof:
			case <-deadline.C:
			}
			s.mu.Lock()
			for i, l := range s.lines {
				if l.sentinel {
					idx = i
					break
				}
			}
		}
		if idx < 0 {
			s.flushPartial()
			lines = s.lines
			s.lines = nil
		} else {
			lines = s.lines[:idx:idx]
			s.lines = append([]logLine(nil), s.lines[idx+1:]...)
		}
		dropped = s.dropped
		s.dropped = 0
		s.bytes = 0
		for _, l := range s.lines {
			s.bytes += lineCost(l.text)
		}
		if limit > 0 {
			s.limit = limit
		}
		s.mu.Unlock()
		return lines, dropped
	}
}

// formatLogs merges both streams by arrival time in OpenWhisk's log line
// format ("2006-01-02T15:04:05.000000000Z stdout: text") and bounds the
// result to maxBytes.
func formatLogs(out, errs []logLine, dropped, maxBytes int) string {
	all := append(append([]logLine(nil), out...), errs...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	var b strings.Builder
	for _, l := range all {
		line := l.at.UTC().Format("2006-01-02T15:04:05.000000000Z") + " " + l.stream + ": " + l.text + "\n"
		if maxBytes > 0 && b.Len()+len(line) > maxBytes {
			dropped++
			continue
		}
		b.WriteString(line)
	}
	if dropped > 0 {
		fmt.Fprintf(&b, "[dedupfn: %d log lines dropped: log limit reached]\n", dropped)
	}
	return b.String()
}

// stderrText is the raw text of the stderr lines, for runtime.Error.Stderr.
func stderrText(lines []logLine, maxBytes int) string {
	var b strings.Builder
	for _, l := range lines {
		if maxBytes > 0 && b.Len()+len(l.text)+1 > maxBytes {
			break
		}
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return strings.TrimRight(b.String(), "\n")
}
