package process

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Why a shim?
//
// An action must die with the server, and so must everything it started,
// including children that left its process group with setsid. The kernel
// only helps with the direct child: Pdeathsig is not inherited across
// fork, and a setsid grandchild is orphaned to init when the server is
// killed with SIGKILL, with no signal at all. Without cgroups or a PID
// namespace (which would make the action pid 1 and change what $$ means),
// something must outlive the server long enough to kill the tree. That is
// the shim: the server's own binary, re-executed through /proc/self/exe
// (the init below takes over when shimEnv is set), which
//
//   - makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so every
//     descendant of the action, setsid or double-forked, stays below it;
//   - starts the action with Pdeathsig=SIGKILL (in case the shim itself is
//     killed), with the action's pipes, and optionally as another user;
//   - waits for the action to exit or for the server to go: the server
//     holds the only write end of the "lifeline" pipe on fd 4, so EOF
//     there means the server exited or was killed, however it died;
//   - then kills every descendant, reaps them, and exits the way the
//     action did (SIGKILL is re-raised; other signals become 128+n).
//
// The server does not set Pdeathsig on the shim: Pdeathsig fires when the
// *thread* that forked exits, and a Go thread exits whenever a goroutine
// locked to it (by any library) ends, which would kill a healthy action.
// The lifeline does not depend on threads. The shim itself forks from its
// main goroutine, locked to the main thread for its whole life, so its
// Pdeathsig on the action fires only when the shim process is gone.
//
// The shim's environment is the action's (plus shimEnv): an action that
// reads /proc/$PPID/environ finds nothing of the server's.

const (
	// shimEnv marks a re-executed binary as a shim; it is removed from the
	// action's environment.
	shimEnv   = "DEDUPFN_PROCESS_SHIM"
	shimMagic = "v1"
	// shimArg0 names shims in ps.
	shimArg0 = "dedupfn-action-shim"
	// shimExe is the running binary, even if its file was replaced.
	shimExe = "/proc/self/exe"
	// killTreeTimeout bounds the shim's kill-and-reap loop.
	killTreeTimeout = 10 * time.Second
)

func init() {
	if os.Getenv(shimEnv) == shimMagic {
		os.Exit(shimMain(os.Args[1:]))
	}
}

// shimArgs returns the shim's arguments for running argv (its path
// first) with an address-space limit (RLIMIT_AS, 0 = none) and, when
// uid >= 0, as uid/gid.
func shimArgs(argv []string, memBytes uint64, uid, gid int) []string {
	return append([]string{shimArg0, argv[0], strconv.FormatUint(memBytes, 10), strconv.Itoa(uid), strconv.Itoa(gid)}, argv[1:]...)
}

// shimMain runs the action described by args (see shimArgs) and returns
// the shim's exit code. fds: 0-2 and 3 are the action's, 4 the lifeline.
func shimMain(args []string) int {
	// Already true during init; said again because Pdeathsig below
	// depends on it (see "Why a shim?").
	goruntime.LockOSThread()
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "dedupfn: "+format+"\n", a...)
		return 127
	}
	if len(args) < 4 {
		return fail("shim: want at least 4 arguments, got %d", len(args))
	}
	path := args[0]
	mem, err1 := strconv.ParseUint(args[1], 10, 64)
	uid, err2 := strconv.Atoi(args[2])
	gid, err3 := strconv.Atoi(args[3])
	if err := errors.Join(err1, err2, err3); err != nil {
		return fail("shim: bad arguments: %v", err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail("shim: set child subreaper: %v", err)
	}
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	results := os.NewFile(3, "results")
	lifeline := os.NewFile(4, "lifeline")

	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, shimEnv+"=") {
			env = append(env, kv)
		}
	}
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if uid >= 0 {
		// Go applies Pdeathsig after the credentials (a uid change
		// clears it).
		attr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	cmd := &exec.Cmd{
		Path: path, Args: append([]string{path}, args[4:]...), Env: env,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		ExtraFiles:  []*os.File{results},
		SysProcAttr: attr,
	}
	if err := cmd.Start(); err != nil {
		return fail("start action: %v", err)
	}
	if mem > 0 {
		// Set after start (Go cannot set rlimits between fork and exec);
		// the window is the few instructions before the action's own
		// allocations.
		lim := &unix.Rlimit{Cur: mem, Max: mem}
		if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_AS, lim, nil); err != nil {
			killTree()
			return fail("set memory limit on pid %d: %v", cmd.Process.Pid, err)
		}
	}
	// Drop our copies of the action's pipes: the server must see EOF when
	// the action closes them, not when the shim exits.
	if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		for fd := range 3 {
			_ = unix.Dup2(int(null.Fd()), fd)
		}
		null.Close()
	}
	results.Close()

	lost := make(chan struct{})
	go func() {
		_, _ = lifeline.Read(make([]byte, 1)) // EOF: the server is gone
		close(lost)
	}()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-lost:
		killTree()
		raise(syscall.SIGKILL)
	case <-done:
	}
	killTree()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		raise(syscall.SIGKILL)
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// raise kills the shim with sig and does not return.
func raise(sig syscall.Signal) {
	_ = syscall.Kill(os.Getpid(), sig)
	select {}
}

// killTree kills every descendant of the calling process and reaps them.
// The caller is a child subreaper, so descendants whose parents die are
// handed to it: once it has no children left, nothing is left below it.
func killTree() {
	self := os.Getpid()
	deadline := time.Now().Add(killTreeTimeout)
	for time.Now().Before(deadline) {
		for _, pid := range descendants(self) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if errors.Is(err, unix.ECHILD) {
				return
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// descendants returns the pids below root, read from /proc.
func descendants(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(pid); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// parentOf reads pid's parent from /proc/PID/stat: "pid (comm) state ppid ...".
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}
