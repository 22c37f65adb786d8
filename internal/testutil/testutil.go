// Package testutil holds helpers shared by tests: finding real peers
// (MinIO, pouchdb-server, node packages) installed by `make test` into the
// git-ignored tools folder, and failing instead of skipping under CI.
package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// RepoRoot returns the module root (the directory holding go.mod).
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	root, ok := repoRoot()
	if !ok {
		tb.Fatal("testutil: cannot find source file")
	}
	return root
}

func repoRoot() (string, bool) {
	_, file, _, ok := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..")), ok
}

// Binary is a program a test package builds before its tests run.
type Binary struct {
	Out  string // output path
	Pkg  string // main package, relative to the module root ("./cmd/dedupfn")
	Wasm bool   // GOOS=wasip1 GOARCH=wasm, as functions are built
	Tags string // build tags, comma-separated
}

// BuildAll builds each binary from the module root with -trimpath, as the
// Makefile does (a function's version is its bytes), for a TestMain,
// which has no testing.TB: it returns the first failure, with go's output.
func BuildAll(bins ...Binary) error {
	root, ok := repoRoot()
	if !ok {
		return errors.New("testutil: cannot find source file")
	}
	for _, b := range bins {
		cmd := exec.Command("go", "build", "-trimpath", "-tags", b.Tags, "-o", b.Out, b.Pkg)
		cmd.Dir = root
		if b.Wasm {
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", b.Pkg, err, out)
		}
	}
	return nil
}

// ToolsDir is where `make test` installs peers: $DEDUPFN_TOOLS or <repo>/.tools.
func ToolsDir(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("DEDUPFN_TOOLS"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(tb), ".tools")
}

// Missing skips the test with reason, or fails it when CI=true: under CI a
// missing peer is a broken set-up, never a pass.
func Missing(tb testing.TB, reason string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("required peer missing under CI: %s", reason)
	}
	tb.Skipf("peer missing (run `make test` to install): %s", reason)
}

// Tool returns the path of an installed peer binary: env var envName if
// set, else rel under the tools folder, else a binary named base(rel) on
// PATH. Missing if none exists.
func Tool(tb testing.TB, envName, rel string) string {
	tb.Helper()
	if p := os.Getenv(envName); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		Missing(tb, envName+"="+p+" does not exist")
	}
	p := filepath.Join(ToolsDir(tb), rel)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath(filepath.Base(rel)); err == nil {
		return p
	}
	Missing(tb, rel+" not in "+ToolsDir(tb)+" or PATH")
	return ""
}

// FreeAddr returns a free 127.0.0.1:port.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitTCP polls addr until it accepts a connection or timeout passes.
func WaitTCP(tb testing.TB, addr string, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready after %s: %v", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Eventually polls cond every 20ms until it is true or timeout passes.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	EventuallyEvery(tb, timeout, 20*time.Millisecond, what, cond)
}

// EventuallyEvery is Eventually polling every interval: for a cond that
// costs a process (a CLI command) each time, which tests running in
// parallel on a few cores should not spend in a tight loop.
func EventuallyEvery(tb testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}
