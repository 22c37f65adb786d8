package process_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
)

// newRuntime returns a Runtime working in a temp dir, closed at cleanup.
func newRuntime(tb testing.TB, opts process.Options) *process.Runtime {
	tb.Helper()
	if opts.WorkDir == "" {
		opts.WorkDir = tb.TempDir()
	}
	r, err := process.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return r
}

// invoke runs f on input and returns the result, the output bytes and
// the error.
func invoke(tb testing.TB, r runtime.Runtime, f runtime.Function, input string, mod ...func(*runtime.Invocation)) (runtime.Result, string, error) {
	tb.Helper()
	var out bytes.Buffer
	inv := &runtime.Invocation{
		Function:     f,
		Input:        strings.NewReader(input),
		Object:       runtime.ObjectRef{Bucket: "in", Key: "k.txt", Size: int64(len(input)), SHA256: "x"},
		Output:       &out,
		Limits:       runtime.Limits{Timeout: 10 * time.Second},
		ActivationID: fmt.Sprintf("act-%d", time.Now().UnixNano()),
	}
	for _, m := range mod {
		m(inv)
	}
	res, err := r.Invoke(tb.Context(), inv)
	return res, out.String(), err
}

// resultField decodes one field of a JSON result.
func resultField(tb testing.TB, res runtime.Result, key string) any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(res.Result, &m); err != nil {
		tb.Fatalf("result %s: %v", res.Result, err)
	}
	return m[key]
}

func wantClass(tb testing.TB, err error, c runtime.Class) *runtime.Error {
	tb.Helper()
	var re *runtime.Error
	if !errors.As(err, &re) {
		tb.Fatalf("error = %v, want *runtime.Error of class %s", err, c)
	}
	if re.Class != c {
		tb.Fatalf("class = %s, want %s (error: %v)", re.Class, c, err)
	}
	return re
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestActionKinds(t *testing.T) {
	goBin := buildGoAction(t)
	tests := []struct {
		name string
		code func(t *testing.T) []byte
		kind string
	}{
		{"Bash", func(*testing.T) []byte { return []byte(bashUpper) }, "bash"},
		{"Python3", func(t *testing.T) []byte { needPython(t); return []byte(pyUpper) }, "python"},
		{"StaticGoBinary", func(*testing.T) []byte { return goBin }, "go"},
		{"ZipWithExec", func(t *testing.T) []byte { return zipExec(t, []byte(bashUpper)) }, "bash"},
		{"ZipWithGoBinary", func(t *testing.T) []byte { return zipExec(t, goBin) }, "go"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRuntime(t, process.Options{})
			f := fn(t, "upper-"+tt.kind, tt.code(t))
			res, out, err := invoke(t, r, f, "hello, actionloop")
			if err != nil {
				t.Fatal(err)
			}
			if out != "HELLO, ACTIONLOOP" || !res.OutputWritten {
				t.Fatalf("output = %q (written %v), want HELLO, ACTIONLOOP", out, res.OutputWritten)
			}
			if got := resultField(t, res, "kind"); got != tt.kind {
				t.Fatalf("kind = %v, want %s", got, tt.kind)
			}
			if resultField(t, res, "body") != nil {
				t.Fatalf("result %s still carries the body", res.Result)
			}
			if !strings.Contains(res.Logs, "stdout: ") {
				t.Fatalf("logs = %q, want a stdout line", res.Logs)
			}
		})
	}
}

func TestWarmReuse(t *testing.T) {
	r := newRuntime(t, process.Options{})
	f := fn(t, "upper", []byte(bashUpper))
	res1, _, err := invoke(t, r, f, "a")
	if err != nil {
		t.Fatal(err)
	}
	res2, out, err := invoke(t, r, f, "b")
	if err != nil {
		t.Fatal(err)
	}
	if out != "B" {
		t.Fatalf("second output = %q", out)
	}
	p1, p2 := resultField(t, res1, "pid"), resultField(t, res2, "pid")
	if p1 != p2 {
		t.Fatalf("pids %v and %v: the warm process was not reused", p1, p2)
	}
}

func TestConcurrentActivationsUseSeparateProcesses(t *testing.T) {
	// A slow action: two activations at once need two processes.
	const slow = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do /usr/bin/sleep 0.3; echo "{\"pid\":$$}" >&3; done
`
	r := newRuntime(t, process.Options{MaxWarm: 2})
	f := fn(t, "slow", []byte(slow))
	pids := make(chan any, 2)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			res, _, err := invoke(t, r, f, "")
			if err != nil {
				errs <- err
				return
			}
			var m map[string]any
			_ = json.Unmarshal(res.Result, &m)
			pids <- m["pid"]
		}()
	}
	var got []any
	for range 2 {
		select {
		case p := <-pids:
			got = append(got, p)
		case err := <-errs:
			t.Fatal(err)
		}
	}
	if got[0] == got[1] {
		t.Fatalf("both concurrent activations ran in pid %v", got[0])
	}
}

func TestLogsPerActivation(t *testing.T) {
	t.Run("WithSentinel", func(t *testing.T) {
		// Prints a late line after its result, then the sentinels: the
		// late line still belongs to its own activation.
		const act = `#!/bin/bash
echo '{"ok":true}' >&3
n=0
while IFS= read -r line; do
  n=$((n+1))
  echo "early $n"
  echo "err $n" >&2
  echo '{"n":'$n'}' >&3
  /usr/bin/sleep 0.05
  echo "late $n"
  echo XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX
  echo XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX >&2
done
`
		r := newRuntime(t, process.Options{})
		f := fn(t, "logs", []byte(act))
		for i := 1; i <= 3; i++ {
			res, _, err := invoke(t, r, f, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{fmt.Sprintf("stdout: early %d\n", i), fmt.Sprintf("stdout: late %d\n", i), fmt.Sprintf("stderr: err %d\n", i)} {
				if !strings.Contains(res.Logs, want) {
					t.Fatalf("activation %d logs = %q, want %q", i, res.Logs, want)
				}
			}
			if strings.Contains(res.Logs, "XXX_THE_END") || strings.Count(res.Logs, "\n") != 3 {
				t.Fatalf("activation %d logs = %q, want exactly its 3 lines", i, res.Logs)
			}
		}
	})
	t.Run("WithoutSentinel", func(t *testing.T) {
		const act = `#!/bin/bash
echo '{"ok":true}' >&3
n=0
while IFS= read -r line; do
  n=$((n+1))
  for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $n.$i"; echo "eline $n.$i" >&2; done
  echo '{"n":'$n'}' >&3
done
`
		r := newRuntime(t, process.Options{})
		f := fn(t, "logs2", []byte(act))
		for i := 1; i <= 5; i++ {
			res, _, err := invoke(t, r, f, "")
			if err != nil {
				t.Fatal(err)
			}
			if c := strings.Count(res.Logs, fmt.Sprintf(" %d.", i)); c != 20 {
				t.Fatalf("activation %d: %d of its 20 lines in logs %q", i, c, res.Logs)
			}
			if strings.Count(res.Logs, "\n") != 20 {
				t.Fatalf("activation %d: logs hold other activations' lines: %q", i, res.Logs)
			}
		}
	})
	t.Run("Bounded", func(t *testing.T) {
		const act = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do
  for i in $(/usr/bin/seq 1 2000); do echo "a fairly long log line number $i"; done
  echo '{}' >&3
done
`
		r := newRuntime(t, process.Options{})
		f := fn(t, "chatty", []byte(act))
		res, _, err := invoke(t, r, f, "", func(inv *runtime.Invocation) { inv.Limits.MaxLogBytes = 4096 })
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Logs) > 4096+200 || !strings.Contains(res.Logs, "log lines dropped") {
			t.Fatalf("logs of %d bytes, want <= ~4096 with a dropped note: ...%s", len(res.Logs), res.Logs[max(0, len(res.Logs)-200):])
		}
	})
}

func TestNoAckIsInitError(t *testing.T) {
	const silent = `#!/bin/bash
echo starting >&2
/usr/bin/sleep infinity
`
	r := newRuntime(t, process.Options{AckTimeout: 300 * time.Millisecond})
	_, _, err := invoke(t, r, fn(t, "silent", []byte(silent)), "")
	re := wantClass(t, err, runtime.ClassInit)
	if !strings.Contains(re.Error(), "no ack") {
		t.Fatalf("error = %v, want no ack", err)
	}

	const exits = `#!/bin/bash
echo "cannot start" >&2
exit 3
`
	_, _, err = invoke(t, r, fn(t, "exits", []byte(exits)), "")
	re = wantClass(t, err, runtime.ClassInit)
	if !strings.Contains(re.Stderr, "cannot start") {
		t.Fatalf("stderr = %q, want the action's message", re.Stderr)
	}
}

func TestBadCodeIsInitError(t *testing.T) {
	r := newRuntime(t, process.Options{})
	noExec := zipExec(t, []byte(bashUpper))
	noExec = bytes.ReplaceAll(noExec, []byte("exec"), []byte("exeX")) // same length: still a valid zip
	tests := []struct {
		name string
		code []byte
	}{
		{"NotExecutable", []byte("just some text\n")},
		{"ZipWithoutExec", noExec},
		{"NotAZip", []byte("PK\x03\x04garbage")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := invoke(t, r, fn(t, tt.name, tt.code), "")
			wantClass(t, err, runtime.ClassInit)
		})
	}
}

func TestKilledProcessIsReplaced(t *testing.T) {
	r := newRuntime(t, process.Options{})
	f := fn(t, "upper", []byte(bashUpper))
	res, _, err := invoke(t, r, f, "a")
	if err != nil {
		t.Fatal(err)
	}
	pid := int(resultField(t, res, "pid").(float64))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for alive(pid) {
		time.Sleep(10 * time.Millisecond)
	}
	res, out, err := invoke(t, r, f, "b")
	if err != nil {
		t.Fatalf("after the warm process was killed: %v", err)
	}
	if out != "B" || int(resultField(t, res, "pid").(float64)) == pid {
		t.Fatalf("output %q from pid %v, want B from a new process", out, resultField(t, res, "pid"))
	}
}

func TestDeathDuringActivation(t *testing.T) {
	const dies = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do echo "dying" >&2; exit 7; done
`
	r := newRuntime(t, process.Options{})
	res, _, err := invoke(t, r, fn(t, "dies", []byte(dies)), "")
	re := wantClass(t, err, runtime.ClassPlatform)
	if re.Stderr != "dying" || !strings.Contains(res.Logs, "stderr: dying") {
		t.Fatalf("stderr %q, logs %q: want the action's last words", re.Stderr, res.Logs)
	}
}

func TestResultErrors(t *testing.T) {
	tests := []struct {
		name  string
		reply string
		class runtime.Class
	}{
		{"NotJSON", `echo 'hello there' >&3`, runtime.ClassFunction},
		{"Scalar", `echo '42' >&3`, runtime.ClassFunction},
		{"ErrorField", `echo '{"error":{"code":1}}' >&3`, runtime.ClassFunction},
	}
	r := newRuntime(t, process.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := "#!/bin/bash\necho '{\"ok\":true}' >&3\nwhile IFS= read -r line; do " + tt.reply + "; done\n"
			_, _, err := invoke(t, r, fn(t, tt.name, []byte(code)), "")
			wantClass(t, err, tt.class)
		})
	}
	t.Run("ArrayIsAResult", func(t *testing.T) {
		code := "#!/bin/bash\necho '{\"ok\":true}' >&3\nwhile IFS= read -r line; do echo '[1,2]' >&3; done\n"
		res, _, err := invoke(t, r, fn(t, "array", []byte(code)), "")
		if err != nil || string(res.Result) != "[1,2]" || res.OutputWritten {
			t.Fatalf("result %s written %v err %v, want [1,2]", res.Result, res.OutputWritten, err)
		}
	})
	t.Run("NonBase64BodyIsResult", func(t *testing.T) {
		code := "#!/bin/bash\necho '{\"ok\":true}' >&3\nwhile IFS= read -r line; do echo '{\"body\":\"<html>!\"}' >&3; done\n"
		res, out, err := invoke(t, r, fn(t, "html", []byte(code)), "")
		if err != nil || res.OutputWritten || out != "" || !strings.Contains(string(res.Result), "<html>") {
			t.Fatalf("result %s written %v out %q err %v", res.Result, res.OutputWritten, out, err)
		}
	})
}

func TestTimeoutKillsAndReplaces(t *testing.T) {
	r := newRuntime(t, process.Options{})
	f := fn(t, "hang", []byte(bashHang))
	start := time.Now()
	_, _, err := invoke(t, r, f, "", func(inv *runtime.Invocation) { inv.Limits.Timeout = 300 * time.Millisecond })
	wantClass(t, err, runtime.ClassTimeout)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %s", d)
	}
}

func TestEnvironment(t *testing.T) {
	const act = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do
  echo "{\"path\":\"${PATH-unset}\",\"greeting\":\"$GREETING\",\"name\":\"$__OW_ACTION_NAME\",\"ns\":\"$__OW_NAMESPACE\",\"api\":\"$__OW_API_HOST\",\"home\":\"${HOME-unset}\"}" >&3
done
`
	r := newRuntime(t, process.Options{APIHost: "http://ow.example"})
	f := fn(t, "env", []byte(act))
	f.Config = map[string]string{"env.GREETING": "hi", "openwhisk.other": "ignored"}
	res, _, err := invoke(t, r, f, "")
	if err != nil {
		t.Fatal(err)
	}
	// bash sets a default PATH of its own when none is inherited; what
	// matters is that ours (the test's) is not passed.
	if p := resultField(t, res, "path").(string); p == os.Getenv("PATH") {
		t.Fatalf("PATH %q was inherited", p)
	}
	want := map[string]string{"greeting": "hi", "name": "/t1/env", "ns": "t1", "api": "http://ow.example", "home": "unset"}
	for k, v := range want {
		if got := resultField(t, res, k); got != v {
			t.Errorf("%s = %v, want %s", k, got, v)
		}
	}
}

func TestActivationMessage(t *testing.T) {
	needPython(t)
	const echo = `#!/usr/bin/python3
import json, os, sys
out = os.fdopen(3, "w")
out.write('{"ok":true}\n'); out.flush()
for line in sys.stdin:
    out.write(json.dumps({"msg": json.loads(line)}) + "\n"); out.flush()
`
	r := newRuntime(t, process.Options{InlineLimit: 4})
	f := fn(t, "echo", []byte(echo))
	deadline := time.Now().Add(10 * time.Second)
	res, _, err := invoke(t, r, f, "abc", func(inv *runtime.Invocation) {
		inv.Params = map[string]string{"greeting": "hello", "bucket": "overridden"}
		inv.Object.GetURL = "http://s3/get"
		inv.Object.PutURL = "http://s3/put"
		inv.Object.ContentType = "text/plain"
		inv.ActivationID = "act-1"
	})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Msg struct {
			Value        map[string]any `json:"value"`
			Namespace    string         `json:"namespace"`
			ActionName   string         `json:"action_name"`
			ActivationID string         `json:"activation_id"`
			Deadline     string         `json:"deadline"`
		} `json:"msg"`
	}
	if err := json.Unmarshal(res.Result, &got); err != nil {
		t.Fatal(err)
	}
	m := got.Msg
	if m.Namespace != "t1" || m.ActionName != "/t1/echo" || m.ActivationID != "act-1" {
		t.Fatalf("message header = %+v", m)
	}
	var ms int64
	fmt.Sscan(m.Deadline, &ms)
	if d := time.UnixMilli(ms).Sub(deadline); d < -time.Second || d > time.Second {
		t.Fatalf("deadline %s, want about %s", m.Deadline, deadline)
	}
	want := map[string]any{"greeting": "hello", "bucket": "in", "key": "k.txt", "size": 3.0, "sha256": "x",
		"get_url": "http://s3/get", "put_url": "http://s3/put", "content_type": "text/plain", "body": "YWJj"}
	for k, v := range want {
		if m.Value[k] != v {
			t.Errorf("value[%s] = %v, want %v", k, m.Value[k], v)
		}
	}
	// Over the inline limit: no body.
	res, _, err = invoke(t, r, f, "abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(res.Result), `"body"`) {
		t.Fatalf("a 6-byte input was inlined over a 4-byte limit: %s", res.Result)
	}
}

func TestMemoryLimitIsOOM(t *testing.T) {
	r := newRuntime(t, process.Options{})
	_, _, err := invoke(t, r, fn(t, "hog", []byte(bashHog)), "", func(inv *runtime.Invocation) {
		inv.Limits.MemoryBytes = 64 << 20
	})
	wantClass(t, err, runtime.ClassOOM)
}

func TestCloseLeavesNoOrphans(t *testing.T) {
	// The action starts a background child in its process group, which
	// must die with it.
	const spawner = `#!/bin/bash
echo '{"ok":true}' >&3
/usr/bin/sleep infinity &
child=$!
while IFS= read -r line; do echo "{\"pid\":$$,\"child\":$child}" >&3; done
`
	r, err := process.New(process.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	f := fn(t, "spawner", []byte(spawner))
	res, _, err := invoke(t, r, f, "")
	if err != nil {
		t.Fatal(err)
	}
	pid := int(resultField(t, res, "pid").(float64))
	child := int(resultField(t, res, "child").(float64))
	// And one hanging in an activation when Close comes.
	hang := fn(t, "hang", []byte(bashHang))
	done := make(chan error, 1)
	go func() {
		_, _, err := invoke(t, r, hang, "")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if !alive(pid) || !alive(child) {
		t.Fatal("action processes not running before Close")
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-done:
		wantClass(t, err, runtime.ClassPlatform)
	case <-time.After(5 * time.Second):
		t.Fatal("invocation in flight did not end at Close")
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) || alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("after Close: action pid %d alive %v, its child %d alive %v", pid, alive(pid), child, alive(child))
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, _, err = invoke(t, r, f, "")
	wantClass(t, err, runtime.ClassPlatform)
}

func TestIdleProcessesAreReaped(t *testing.T) {
	r := newRuntime(t, process.Options{IdleTimeout: 100 * time.Millisecond})
	f := fn(t, "upper", []byte(bashUpper))
	res, _, err := invoke(t, r, f, "a")
	if err != nil {
		t.Fatal(err)
	}
	pid := int(resultField(t, res, "pid").(float64))
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("idle pid %d still alive after its idle timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
