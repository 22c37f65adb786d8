// Package peers starts real peer servers for tests: a MinIO server (the
// binary installed by scripts/peers/minio.sh) that publishes bucket
// notifications to Kafka, and a Kafka-protocol broker (franz-go's kfake,
// run as the test/peers/kafkabroker binary so that other processes such as
// MinIO can reach it over TCP). Each helper registers its own cleanup.
package peers

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/testutil"
)

// stopGrace is how long a peer gets to exit after SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// proc is one running peer process with its output captured to a file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// start runs cmd with its output appended to logPath.
func start(tb testing.TB, name string, cmd *exec.Cmd, logPath string) *proc {
	tb.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatalf("%s: open log: %v", name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("%s: start %s: %v", name, cmd.Path, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p
}

// stop ends the process: SIGTERM (or SIGKILL when kill is set), waiting
// for it to exit.
func (p *proc) stop(kill bool) {
	if p == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// logTail returns the last n bytes of the process's output, for failures.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
)

// goBuild builds the main package at pkg (relative to the module root)
// once per test process and returns the binary path.
func goBuild(tb testing.TB, root, pkg string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[pkg]; ok {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	// The binary outlives any one test (several tests share it), so it
	// goes in the git-ignored tools folder; building under a temporary
	// name and renaming keeps test binaries of other packages, which may
	// build it at the same time, from seeing half a file.
	dir := filepath.Join(testutil.ToolsDir(tb), "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, "./"+pkg)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, stderr.String())
	}
	if err := os.Rename(tmp, out); err != nil {
		tb.Fatal(err)
	}
	buildCache[pkg] = out
	return out
}
