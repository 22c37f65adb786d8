package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime/wasm/wasmtest"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// Issue 17 item 11: a deploy's compile delayed SIGTERM (by ~30 s): the
// server must stop promptly, the compile cancelled with its request.
func TestWasmCompile_SigtermNotDelayedByCompile(t *testing.T) {
	s := harness.StartServer(t, t.TempDir(), "--create-bucket", "inbox", "--create-bucket", "outbox")
	mod := filepath.Join(t.TempDir(), "slow.wasm")
	// Within the limits, but a long compile in all (400 functions).
	if err := os.WriteFile(mod, wasmtest.ManyBlocks(400, 3000), 0o644); err != nil {
		t.Fatal(err)
	}
	deploy := exec.Command(harness.Dedupfn, "fn", "deploy", "slow", "--wasm", mod, "--bucket", "inbox", "--output-bucket", "outbox")
	deploy.Env = append(os.Environ(), "DEDUPFN_API=http://"+s.API)
	if err := deploy.Start(); err != nil {
		t.Fatal(err)
	}
	defer deploy.Wait()
	time.Sleep(time.Second) // the deploy is compiling
	start := time.Now()
	s.Cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- s.Cmd.Wait() }()
	select {
	case <-exited:
		if took := time.Since(start); took > 4*time.Second {
			t.Fatalf("serve took %v to stop after SIGTERM during a deploy's compile, want < 4s", took)
		}
	case <-time.After(60 * time.Second):
		s.Cmd.Process.Kill()
		t.Fatal("serve still running 60s after SIGTERM during a deploy's compile")
	}
}
