package process_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
)

// helperEnv selects what a re-executed test binary does instead of its
// tests (the os/exec helper-process pattern): it plays a dedupfn server.
const helperEnv = "DEDUPFN_PROCESS_TEST_HELPER"

// The server secrets an action must not see.
var secrets = map[string]string{
	"DEDUPFN_API_TOKEN":      "secret-api-token-4f1c",
	"DEDUPFN_TENANT_TOKENS":  "t1=secret-tenant-token-77aa",
	"DEDUPFN_OPENWHISK_AUTH": "secret-ow-auth-9b2e",
	"DEDUPFN_SECRET_KEY":     "secret-s3-key-d3a0",
}

// startHelper re-executes the test binary as a helper running test name
// in mode, with env added to its environment.
func startHelper(t *testing.T, name, mode string, env ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, bufio.NewReader(out)
}

// orphanAction starts, on its activation, a child in its process group
// and a setsid writer that appends to $SIDE, writes the three pids to
// $SIDE.pids, and then hangs: the server is killed mid-run.
const orphanAction = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do
  /usr/bin/sleep infinity &
  child=$!
  /usr/bin/setsid /bin/bash -c 'echo $$ > "$0.setsid"; while :; do echo x >> "$0"; /usr/bin/sleep 0.02; done' "$SIDE" </dev/null >/dev/null 2>&1 &
  for i in $(/usr/bin/seq 200); do [ -s "$SIDE.setsid" ] && break; /usr/bin/sleep 0.01; done
  read -r sp < "$SIDE.setsid"
  echo "$$ $child $sp" > "$SIDE.tmp" && /usr/bin/mv "$SIDE.tmp" "$SIDE.pids"
  /usr/bin/sleep infinity
done
`

func TestOrphanActionsDieWithServer(t *testing.T) {
	if os.Getenv(helperEnv) == "orphan" {
		// The "server": run the action and wait to be killed.
		r, err := process.New(process.Options{WorkDir: os.Getenv("WORKDIR")})
		if err != nil {
			t.Fatal(err)
		}
		f := fn(t, "orphan", []byte(orphanAction))
		f.Config = map[string]string{"env.SIDE": os.Getenv("SIDE")}
		_, _, err = invoke(t, r, f, "", func(inv *runtime.Invocation) { inv.Limits.Timeout = time.Hour })
		t.Fatalf("invoke returned: %v", err)
	}
	dir := t.TempDir()
	side := filepath.Join(dir, "side")
	helper, _ := startHelper(t, "TestOrphanActionsDieWithServer", "orphan", "SIDE="+side, "WORKDIR="+filepath.Join(dir, "work"))

	var pids []int
	deadline := time.Now().Add(20 * time.Second)
	for len(pids) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the action did not report its pids")
		}
		time.Sleep(20 * time.Millisecond)
		b, err := os.ReadFile(side + ".pids")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("pids file %q", b)
			}
			pids = append(pids, pid)
		}
	}
	t.Cleanup(func() {
		// Should the test fail: whatever is left, the action's process
		// group (its own before the fix) included.
		_ = syscall.Kill(-pids[0], syscall.SIGKILL)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("pid %d of %v not running before the server is killed", pid, pids)
		}
	}

	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()

	deadline = time.Now().Add(5 * time.Second)
	for {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after kill -9 of the server, of action %d, its child %d and its setsid child %d, still alive: %v",
				pids[0], pids[1], pids[2], left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st1, err := os.Stat(side)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	st2, err := os.Stat(side)
	if err != nil {
		t.Fatal(err)
	}
	if st1.Size() != st2.Size() {
		t.Fatalf("side file still growing after the server died: %d -> %d bytes", st1.Size(), st2.Size())
	}
}

// envAction returns, base64-encoded as "dump", its uid, its environment
// and the environment of each ancestor it can read.
const envAction = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do
  dump=$({
    echo "== id"; /usr/bin/id -u
    echo "== self"; /usr/bin/env
    pid=$PPID; n=1
    while [ "$pid" -gt 1 ]; do
      echo "== ancestor $n"; /usr/bin/tr '\0' '\n' < /proc/$pid/environ
      read -r _ _ _ pid _ < /proc/$pid/stat || break
      n=$((n+1))
    done
  } 2>&1 | /usr/bin/base64 -w0)
  echo "{\"dump\":\"$dump\"}" >&3
done
`

// sections splits the dump of envAction by its "== name" headers.
func sections(dump string) map[string]string {
	m := map[string]string{}
	var cur string
	for l := range strings.Lines(dump) {
		if h, ok := strings.CutPrefix(l, "== "); ok {
			cur = strings.TrimSpace(h)
			continue
		}
		m[cur] += l
	}
	return m
}

func TestActionsSeeNoServerSecrets(t *testing.T) {
	if os.Getenv(helperEnv) == "secrets" {
		r, err := process.New(process.Options{WorkDir: os.Getenv("WORKDIR"), ExecUser: os.Getenv("EXEC_USER")})
		if err != nil {
			t.Fatal(err)
		}
		res, _, err := invoke(t, r, fn(t, "env", []byte(envAction)), "")
		if err != nil {
			t.Fatal(err)
		}
		b, err := base64.StdEncoding.DecodeString(resultField(t, res, "dump").(string))
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.Write(b)
		r.Close(context.Background())
		return
	}
	run := func(t *testing.T, execUser string) map[string]string {
		// The work dir must be reachable by the exec user.
		work, err := os.MkdirTemp("", "dedupfn-process-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(work) })
		if err := os.Chmod(work, 0o755); err != nil {
			t.Fatal(err)
		}
		env := []string{"WORKDIR=" + work, "EXEC_USER=" + execUser}
		for k, v := range secrets {
			env = append(env, k+"="+v)
		}
		helper, out := startHelper(t, "TestActionsSeeNoServerSecrets", "secrets", env...)
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(out)
		if err := helper.Wait(); err != nil {
			t.Fatalf("helper: %v\n%s", err, buf.String())
		}
		s := sections(buf.String())
		if s["self"] == "" || s["ancestor 1"] == "" {
			t.Fatalf("dump without the action's or its parent's environment:\n%s", buf.String())
		}
		return s
	}
	noSecret := func(t *testing.T, what, text string) {
		t.Helper()
		for k, v := range secrets {
			if strings.Contains(text, v) {
				t.Errorf("%s holds %s:\n%s", what, k, text)
			}
		}
	}
	t.Run("SameUser", func(t *testing.T) {
		s := run(t, "")
		noSecret(t, "the action's environment", s["self"])
		// Its parent is the per-action supervisor, started with the
		// action's environment only. (The server itself, further up, is
		// readable by a same-uid action: that is what --exec-user is for.)
		noSecret(t, "its parent's /proc/PID/environ", s["ancestor 1"])
	})
	t.Run("ExecUser", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("--exec-user needs root")
		}
		s := run(t, "nobody")
		if got := strings.TrimSpace(s["id"]); got != "65534" {
			t.Fatalf("action ran as uid %s, want nobody (65534)", got)
		}
		for name, text := range s {
			noSecret(t, name, text)
		}
	})
}

func TestEmptyLogLinesCountAgainstCap(t *testing.T) {
	// 4 MiB of empty lines: 4 Mi lines, each once free of the cap.
	const act = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do
  /usr/bin/head -c 4194304 /dev/zero | /usr/bin/tr '\0' '\n'
  echo '{}' >&3
done
`
	const maxLog = 64 << 10
	r := newRuntime(t, process.Options{})
	f := fn(t, "newlines", []byte(act))
	var before, after goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	res, _, err := invoke(t, r, f, "", func(inv *runtime.Invocation) { inv.Limits.MaxLogBytes = maxLog })
	goruntime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logs) > maxLog+200 || !strings.Contains(res.Logs, "log lines dropped") {
		t.Fatalf("logs of %d bytes, want <= %d with a dropped note", len(res.Logs), maxLog)
	}
	// Kept lines are bounded by the cap, so allocation is too (the bug:
	// one 64-byte record per empty line, 4 Mi of them).
	t.Logf("allocated %d KiB", (after.TotalAlloc-before.TotalAlloc)>>10)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 48<<20 {
		t.Fatalf("collecting 4 MiB of empty lines allocated %d MiB", alloc>>20)
	}
}

func TestResultOverMaxResultIsFunctionError(t *testing.T) {
	// A 16 MB result line (valid base64 body) against a 1 MiB cap.
	const act = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do
  if [[ $line == *'"small"'* ]]; then echo '{"ok":1}' >&3; continue; fi
  { printf '{"body":"'; /usr/bin/head -c 16000000 /dev/zero | /usr/bin/tr '\0' A; printf '"}\n'; } >&3
done
`
	r := newRuntime(t, process.Options{MaxResultBytes: 1 << 20})
	f := fn(t, "big", []byte(act))
	var before, after goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	_, out, err := invoke(t, r, f, "")
	goruntime.ReadMemStats(&after)
	re := wantClass(t, err, runtime.ClassFunction)
	if want := "result exceeds --max-result of 1048576 bytes"; !strings.Contains(re.Error(), want) {
		t.Fatalf("error = %v, want %q", err, want)
	}
	if out != "" {
		t.Fatalf("%d bytes of output written from an oversized result", len(out))
	}
	t.Logf("allocated %d KiB", (after.TotalAlloc-before.TotalAlloc)>>10)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("refusing a result over a 1 MiB cap allocated %d MiB", alloc>>20)
	}
	// The process is replaced; a small result works.
	res, _, err := invoke(t, r, f, "", func(inv *runtime.Invocation) { inv.Params = map[string]string{"small": "1"} })
	if err != nil || string(res.Result) != `{"ok":1}` {
		t.Fatalf("after an oversized result: result %s, err %v", res.Result, err)
	}
}
