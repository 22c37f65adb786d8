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
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// shimExitWait bounds the wait for a shim to kill its action's tree after
// its lifeline is closed.
const shimExitWait = 5 * time.Second

// errResultTooLong is sent by the fd 3 reader when a result line exceeds
// its bound.
var errResultTooLong = errors.New("result exceeds --max-result")

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
	lifeline  *os.File // closing it makes the shim kill the action's tree
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

// startProc starts c in dir with env and the action protocol's pipes,
// through a shim (see shim.go) that applies c's address-space limit and,
// when uid >= 0, the user, and that takes the action's whole process tree
// down with it. memBytes is the function's memory limit, which failures
// are classified against. Nothing is read yet: the caller waits for the ack.
func startProc(c command, dir string, env []string, memBytes uint64, uid, gid, maxResult int) (*proc, error) {
	// stdin, stdout, stderr, fd 3 (results), fd 4 (lifeline)
	var pipes [5][2]*os.File
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			for _, pp := range pipes[:i] {
				closeFiles(pp[0], pp[1])
			}
			return nil, fmt.Errorf("process: pipe: %w", err)
		}
		pipes[i] = [2]*os.File{r, w}
	}
	inR, inW := pipes[0][0], pipes[0][1]
	outR, outW := pipes[1][0], pipes[1][1]
	errR, errW := pipes[2][0], pipes[2][1]
	resR, resW := pipes[3][0], pipes[3][1]
	lifeR, lifeW := pipes[4][0], pipes[4][1]
	cmd := &exec.Cmd{
		Path:       shimExe,
		Args:       shimArgs(c.argv, c.addressSpace, uid, gid),
		Dir:        dir,
		Env:        append(slices.Clip(env), shimEnv+"="+shimMagic),
		Stdin:      inR,
		Stdout:     outW,
		Stderr:     errW,
		ExtraFiles: []*os.File{resW, lifeR}, // fd 3, fd 4
		// Its own process group, so that killing -pgid takes the shim,
		// the action and whatever stayed in its group, should the shim
		// not answer the lifeline.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		for _, pp := range pipes {
			closeFiles(pp[0], pp[1])
		}
		return nil, fmt.Errorf("process: start %s: %w", c.argv[0], err)
	}
	// The child has its copies; the parent keeps only its own ends, so
	// that EOF arrives when the child (and its children) are gone. lifeW
	// is held by the server only (close-on-exec): its EOF tells the shim
	// that the server is gone.
	closeFiles(inR, outW, errW, resW, lifeR)
	p := &proc{
		cmd:      cmd,
		pid:      cmd.Process.Pid,
		memLimit: memBytes,
		stdin:    inW,
		lifeline: lifeW,
		results:  make(chan line, 1),
		out:      newStream("stdout", outR),
		errs:     newStream("stderr", errR),
		exited:   make(chan struct{}),
		closers:  []io.Closer{inW, outR, errR, resR},
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

// readResults sends each fd 3 line on ch and closes ch at EOF. A line
// longer than max bytes is an errResultTooLong, and reading stops there:
// what is held is at most max bytes in 64 KiB pieces plus one exact copy.
func readResults(r io.Reader, ch chan<- line, max int) {
	defer close(ch)
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		var parts [][]byte
		n := 0
		var err error
		for {
			var frag []byte
			frag, err = br.ReadSlice('\n')
			size := n + len(frag)
			if err == nil {
				size-- // the newline
			}
			if size > max {
				ch <- line{err: fmt.Errorf("%w of %d bytes", errResultTooLong, max)}
				return
			}
			if len(frag) > 0 {
				parts = append(parts, bytes.Clone(frag))
				n += len(frag)
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		var buf []byte
		if len(parts) == 1 {
			buf = parts[0]
		} else {
			buf = bytes.Join(parts, nil)
		}
		buf = bytes.TrimSpace(buf)
		if len(buf) > 0 { // blank lines carry nothing
			ch <- line{b: buf}
		}
		if err != nil {
			return
		}
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

// kill stops the action and everything it started, waits for the shim
// and the readers, and closes the parent's pipe ends. Safe to call more
// than once.
func (p *proc) kill() {
	p.killOnce.Do(func() {
		p.killed.Store(true)
		// The shim kills the action's whole tree (setsid children too)
		// when its lifeline closes, then exits.
		_ = p.lifeline.Close()
		t := time.NewTimer(shimExitWait)
		select {
		case <-p.exited:
		case <-t.C:
			// A shim that does not answer: kill its process group.
			_ = syscall.Kill(-p.pid, syscall.SIGKILL)
			<-p.exited
		}
		t.Stop()
		// Let the readers take what the pipes still hold: they reach EOF
		// once the group is gone. A process that left the group could
		// keep a pipe open; closing our ends unblocks the readers then.
		readers := make(chan struct{})
		go func() { p.wg.Wait(); close(readers) }()
		t = time.NewTimer(time.Second)
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

func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}
