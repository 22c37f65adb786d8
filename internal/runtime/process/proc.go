package process

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errResultTooLong is sent by the fd 3 reader when a result line exceeds
// its bound.
var errResultTooLong = errors.New("result line too long")

// line is one line read from fd 3.
type line struct {
	b   []byte
	err error
}

// proc is one running action process: stdin for activations, fd 3 for
// results and acks, stdout/stderr collected as logs.
type proc struct {
	pool      *pool
	cmd       *exec.Cmd
	pid       int
	memLimit  uint64
	stdin     *os.File
	results   chan line
	out, errs *stream
	exited    chan struct{} // closed once cmd.Wait returned
	waitErr   error
	wg        sync.WaitGroup // the reader goroutines

	killOnce sync.Once
	killed   atomic.Bool // set before we kill it ourselves
	idle     *time.Timer // reaps the process while idle; guarded by pool.mu
	closers  []io.Closer // parent's pipe ends
}

// startProc starts path in dir with env and the action protocol's pipes,
// applies the memory limit and leaves the process running. Nothing is
// read yet: the caller waits for the ack.
func startProc(path, dir string, env []string, memBytes uint64, maxResult int) (*proc, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("process: pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		return nil, fmt.Errorf("process: pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, fmt.Errorf("process: pipe: %w", err)
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW, errR, errW)
		return nil, fmt.Errorf("process: pipe: %w", err)
	}
	cmd := &exec.Cmd{
		Path:       path,
		Args:       []string{path},
		Dir:        dir,
		Env:        env,
		Stdin:      inR,
		Stdout:     outW,
		Stderr:     errW,
		ExtraFiles: []*os.File{resW}, // fd 3
		// Its own process group, so that killing -pgid takes whatever
		// the action spawned with it.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		closeAll(inR, inW, outR, outW, errR, errW, resR, resW)
		return nil, fmt.Errorf("process: start %s: %w", path, err)
	}
	// The child has its copies; the parent keeps only its own ends, so
	// that EOF arrives when the child (and its children) are gone.
	closeAll(inR, outW, errW, resW)
	p := &proc{
		cmd:      cmd,
		pid:      cmd.Process.Pid,
		memLimit: memBytes,
		stdin:    inW,
		results:  make(chan line, 1),
		out:      newStream("stdout", outR),
		errs:     newStream("stderr", errR),
		exited:   make(chan struct{}),
		closers:  []io.Closer{inW, outR, errR, resR},
	}
	if memBytes > 0 {
		// Set after start (Go cannot set rlimits between fork and exec);
		// the window is the few instructions before the action's own
		// allocations.
		lim := &unix.Rlimit{Cur: memBytes, Max: memBytes}
		if err := unix.Prlimit(p.pid, unix.RLIMIT_AS, lim, nil); err != nil {
			p.kill()
			closeAll(resR)
			return nil, fmt.Errorf("process: set memory limit on pid %d: %w", p.pid, err)
		}
	}
	p.wg.Add(3)
	go func() { defer p.wg.Done(); p.out.run() }()
	go func() { defer p.wg.Done(); p.errs.run() }()
	go func() { defer p.wg.Done(); readResults(resR, p.results, maxResult) }()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// readResults sends each fd 3 line on ch and closes ch at EOF.
func readResults(r io.Reader, ch chan<- line, max int) {
	defer close(ch)
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		var buf []byte
		for {
			frag, err := br.ReadSlice('\n')
			if len(buf)+len(frag) > max {
				ch <- line{err: fmt.Errorf("%w: more than %d bytes", errResultTooLong, max)}
				return
			}
			buf = append(buf, frag...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				if len(bytes.TrimSpace(buf)) > 0 {
					ch <- line{b: buf}
				}
				return
			}
			break
		}
		if len(bytes.TrimSpace(buf)) == 0 {
			continue // blank lines carry nothing
		}
		ch <- line{b: bytes.TrimSpace(buf)}
	}
}

// dead reports whether the process has exited.
func (p *proc) dead() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// kill kills the process group, waits for the process and its readers,
// and closes the parent's pipe ends. Safe to call more than once.
func (p *proc) kill() {
	p.killOnce.Do(func() {
		p.killed.Store(true)
		// The whole group: the action and anything it started.
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.exited
		// Let the readers take what the pipes still hold: they reach EOF
		// once the group is gone. A process that left the group could
		// keep a pipe open; closing our ends unblocks the readers then.
		readers := make(chan struct{})
		go func() { p.wg.Wait(); close(readers) }()
		t := time.NewTimer(time.Second)
		select {
		case <-readers:
		case <-t.C:
		}
		t.Stop()
		for _, c := range p.closers {
			_ = c.Close()
		}
		<-readers
	})
}

// exitInfo describes how the process ended, for error messages.
func (p *proc) exitInfo() string {
	if p.cmd.ProcessState == nil {
		return "still running"
	}
	return p.cmd.ProcessState.String()
}

// signaled reports whether the process died of SIGKILL.
func (p *proc) sigkilled() bool {
	if p.cmd.ProcessState == nil {
		return false
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// ack waits for the {"ok":true} line that an action started with
// __OW_WAIT_FOR_ACK writes on fd 3 when it is ready.
func (p *proc) ack(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-p.results:
		if !ok {
			<-p.exited
			return fmt.Errorf("exited before ack (%s)", p.exitInfo())
		}
		if l.err != nil {
			return l.err
		}
		var a struct {
			OK bool `json:"ok"`
		}
		if err := json.Unmarshal(l.b, &a); err != nil || !a.OK {
			return fmt.Errorf("expected {\"ok\":true} ack on fd 3, got %.200q", l.b)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("no ack on fd 3 within %s", timeout)
	}
}

func closeAll(fs ...io.Closer) {
	for _, f := range fs {
		_ = f.Close()
	}
}
