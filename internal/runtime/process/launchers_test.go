package process_test

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// needNode skips (or fails under CI) without /usr/bin/node.
func needNode(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat("/usr/bin/node"); err != nil {
		testutil.Missing(tb, "/usr/bin/node")
	}
}

// zipOf returns a zip of files (name → content).
func zipOf(tb testing.TB, files map[string]string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range files {
		w, err := zw.Create(name)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write([]byte(data)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// launcherRuntime is a process runtime with the machine's interpreters.
func launcherRuntime(tb testing.TB) *process.Runtime {
	tb.Helper()
	return newRuntime(tb, process.Options{Node: "/usr/bin/node", Python: "/usr/bin/python3"})
}

// action turns an exec into a function, failing tb on error.
func action(tb testing.TB, name, kind string, code []byte, binary bool, main string) runtime.Function {
	tb.Helper()
	exe, cfg, err := process.ActionCode(kind, code, binary, main)
	if err != nil {
		tb.Fatalf("ActionCode(%s): %v", kind, err)
	}
	if cfg[process.ConfigKind] != kind {
		tb.Fatalf("config %v, want the kind", cfg)
	}
	f := fn(tb, name, exe)
	f.Config = cfg
	return f
}

// resultOf invokes f directly on params and returns its result decoded.
func resultOf(tb testing.TB, r *process.Runtime, f runtime.Function, params string) map[string]any {
	tb.Helper()
	res, err := invokeDirect(tb, r, f, params)
	if err != nil {
		tb.Fatalf("%s: %v (logs %q)", f.Name, err, res.Logs)
	}
	var m map[string]any
	if err := json.Unmarshal(res.Result, &m); err != nil {
		tb.Fatalf("%s: result %s: %v", f.Name, res.Result, err)
	}
	return m
}

func TestLauncher_Nodejs(t *testing.T) {
	needNode(t)
	r := launcherRuntime(t)
	for _, tc := range []struct {
		name, code, main string
	}{
		{"SyncGlobal", `function main(args) { console.log("hello from js"); return {greeting: "hello " + args.name, id: process.env.__OW_ACTIVATION_ID}; }`, ""},
		{"AsyncExported", `exports.main = async (args) => { await new Promise(r => setTimeout(r, 10)); return {greeting: "hello " + args.name, id: process.env.__OW_ACTIVATION_ID}; };`, ""},
		{"PromiseOtherMain", `function greet(args) { return Promise.resolve({greeting: "hello " + args.name, id: process.env.__OW_ACTIVATION_ID}); }`, "greet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := action(t, "js-"+tc.name, "nodejs:20", []byte(tc.code), false, tc.main)
			for range 2 { // a warm process serves the second
				if got := resultOf(t, r, f, `{"name":"ada"}`); got["greeting"] != "hello ada" || got["id"] != "a1" {
					t.Fatalf("result %v", got)
				}
			}
		})
	}
}

func TestLauncher_NodejsLogs(t *testing.T) {
	needNode(t)
	r := launcherRuntime(t)
	f := action(t, "js-logs", "nodejs:default", []byte(`function main(a) { console.log("out " + a.n); console.error("err " + a.n); return {}; }`), false, "")
	res, err := invokeDirect(t, r, f, `{"n":7}`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Logs, "out 7") || !strings.Contains(res.Logs, "err 7") || strings.Contains(res.Logs, process.LogSentinel) {
		t.Fatalf("logs %q: want both lines, no sentinel", res.Logs)
	}
}

func TestLauncher_NodejsPackage(t *testing.T) {
	needNode(t)
	r := launcherRuntime(t)
	pkg := zipOf(t, map[string]string{
		"package.json": `{"name": "hello", "main": "lib/hello.js"}`,
		"lib/hello.js": `const util = require("./util"); exports.main = (args) => ({greeting: util.greet(args.name)});`,
		"lib/util.js":  `exports.greet = (n) => "hello " + n;`,
	})
	b64 := []byte(base64.StdEncoding.EncodeToString(pkg))
	f := action(t, "js-pkg", "nodejs:20", b64, true, "")
	if got := resultOf(t, r, f, `{"name":"ada"}`); got["greeting"] != "hello ada" {
		t.Fatalf("result %v", got)
	}
	index := zipOf(t, map[string]string{"index.js": `exports.main = (args) => ({n: args.n + 1});`})
	if got := resultOf(t, r, action(t, "js-index", "nodejs:20", index, true, ""), `{"n":1}`); got["n"] != 2.0 {
		t.Fatalf("index.js package: result %v", got)
	}
}

func TestLauncher_Python(t *testing.T) {
	needPython(t)
	r := launcherRuntime(t)
	src := "import os\n\ndef main(args):\n    print('hello from python')\n    return {'greeting': 'hello ' + args['name'], 'id': os.environ['__OW_ACTIVATION_ID']}\n\nif __name__ == '__main__':\n    raise SystemExit('must not run')\n"
	f := action(t, "py", "python:3", []byte(src), false, "")
	for range 2 {
		if got := resultOf(t, r, f, `{"name":"ada"}`); got["greeting"] != "hello ada" || got["id"] != "a1" {
			t.Fatalf("result %v", got)
		}
	}
	other := action(t, "py-other", "python:3", []byte("def hi(args):\n    return {'n': args['n'] * 2}\n"), false, "hi")
	if got := resultOf(t, r, other, `{"n":21}`); got["n"] != 42.0 {
		t.Fatalf("main hi: result %v", got)
	}
}

func TestLauncher_PythonZip(t *testing.T) {
	needPython(t)
	r := launcherRuntime(t)
	z := zipOf(t, map[string]string{
		"__main__.py": "import helper\n\ndef main(args):\n    return {'greeting': helper.greet(args['name'])}\n",
		"helper.py":   "def greet(n):\n    return 'hello ' + n\n",
	})
	f := action(t, "py-zip", "python:3", []byte(base64.StdEncoding.EncodeToString(z)), true, "")
	if got := resultOf(t, r, f, `{"name":"ada"}`); got["greeting"] != "hello ada" {
		t.Fatalf("result %v", got)
	}
}

// An exception in main is the function's failure, with its message; the
// process stays warm and serves the next activation.
func TestLauncher_Exception(t *testing.T) {
	needNode(t)
	needPython(t)
	r := launcherRuntime(t)
	for _, tc := range []struct{ kind, code string }{
		{"nodejs:20", `function main(args) { if (args.fail) throw new Error("no such user " + args.fail); return {ok: true}; }`},
		{"nodejs:20", `async function main(args) { if (args.fail) throw new Error("no such user " + args.fail); return {ok: true}; }`},
		{"python:3", "def main(args):\n    if 'fail' in args:\n        raise ValueError('no such user ' + args['fail'])\n    return {'ok': True}\n"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			f := action(t, "fails-"+strings.ReplaceAll(tc.kind, ":", ""), tc.kind, []byte(tc.code), false, "")
			res, err := invokeDirect(t, r, f, `{"fail":"ada"}`)
			var re *runtime.Error
			if !errors.As(err, &re) || re.Class != runtime.ClassFunction || !strings.Contains(err.Error(), "no such user ada") {
				t.Fatalf("error %v, want a function error with the message", err)
			}
			if !strings.Contains(string(res.Result), "no such user ada") {
				t.Fatalf("result %s, want the error result", res.Result)
			}
			if got := resultOf(t, r, f, `{}`); got["ok"] != true {
				t.Fatalf("after the exception: %v", got)
			}
		})
	}
}

func TestLauncher_NotADictionary(t *testing.T) {
	needNode(t)
	r := launcherRuntime(t)
	f := action(t, "js-number", "nodejs:20", []byte(`function main() { return 42; }`), false, "")
	_, err := invokeDirect(t, r, f, `{}`)
	if runtime.ClassOf(err) != runtime.ClassFunction || !strings.Contains(err.Error(), "did not return a dictionary") {
		t.Fatalf("error %v", err)
	}
}

func TestLauncher_NoMainIsAnInitError(t *testing.T) {
	needNode(t)
	r := launcherRuntime(t)
	f := action(t, "js-nomain", "nodejs:20", []byte(`function other() { return {}; }`), false, "")
	_, err := invokeDirect(t, r, f, `{}`)
	if runtime.ClassOf(err) != runtime.ClassInit || !strings.Contains(err.Error(), "no function main") {
		t.Fatalf("error %v, want an init error naming main", err)
	}
}

func TestActionCode(t *testing.T) {
	script := []byte("#!/bin/bash\necho '{\"ok\":true}' >&3\n")
	exe, cfg, err := process.ActionCode("blackbox", script, false, "")
	if err != nil || !bytes.Equal(exe, script) || cfg[process.ConfigKind] != "blackbox" {
		t.Fatalf("blackbox: %q %v %v", exe, cfg, err)
	}
	native := zipExec(t, script)
	if exe, _, err := process.ActionCode("native", []byte(base64.StdEncoding.EncodeToString(native)), true, ""); err != nil || !bytes.Equal(exe, native) {
		t.Fatalf("native zip: %v", err)
	}
	a, _, err := process.ActionCode("nodejs:20", []byte("function main() { return {}; }"), false, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := process.ActionCode("nodejs:20", []byte("function main() { return {}; }"), false, "")
	if !bytes.Equal(a, b) {
		t.Fatal("the same exec gave two codes: its version would change on every deploy")
	}
	for name, other := range map[string]func() ([]byte, map[string]string, error){
		"kind": func() ([]byte, map[string]string, error) {
			return process.ActionCode("nodejs:18", []byte("function main() { return {}; }"), false, "")
		},
		"main": func() ([]byte, map[string]string, error) {
			return process.ActionCode("nodejs:20", []byte("function main() { return {}; }"), false, "other")
		},
	} {
		if c, _, err := other(); err != nil || bytes.Equal(a, c) {
			t.Errorf("another %s gave the same code (%v)", name, err)
		}
	}
	for _, tc := range []struct {
		name, kind, code string
		binary           bool
		main             string
		want             error
	}{
		{"Unknown", "java", "class A {}", false, "", process.ErrUnknownKind},
		{"Swift", "swift:5", "func main() {}", false, "", process.ErrUnknownKind},
		{"Python2", "python:2", "def main(a): return a", false, "", process.ErrUnknownKind},
		{"NotBase64", "nodejs:20", "not base64!", true, "", process.ErrInvalidCode},
		{"NotAZip", "python:3", base64.StdEncoding.EncodeToString([]byte("plain")), true, "", process.ErrInvalidCode},
		{"NodeZipWithoutPackage", "nodejs:20", base64.StdEncoding.EncodeToString(zipOf(t, map[string]string{"lib/a.js": ""})), true, "", process.ErrInvalidCode},
		{"PythonZipWithoutMain", "python:3", base64.StdEncoding.EncodeToString(zipOf(t, map[string]string{"main.py": ""})), true, "", process.ErrInvalidCode},
		{"BadMain", "nodejs:20", "function main() {}", false, "x; process.exit(1)", process.ErrInvalidCode},
		{"EmptyBlackbox", "blackbox", "", false, "", process.ErrInvalidCode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := process.ActionCode(tc.kind, []byte(tc.code), tc.binary, tc.main); !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
	for kind, want := range map[string]bool{"nodejs:20": true, "python:3": true, "blackbox": true, "native": true, "wasm": false, "sequence": false} {
		if process.HostKind(kind) != want {
			t.Errorf("HostKind(%s) = %v", kind, !want)
		}
	}
}

// Without an interpreter the kind is refused at deploy (Prepare) and at
// run, naming what is missing.
func TestLauncher_MissingInterpreter(t *testing.T) {
	t.Setenv("PATH", "/nonexistent")
	bare := newRuntime(t, process.Options{})
	f := action(t, "js", "nodejs:20", []byte("function main() { return {}; }"), false, "")
	if err := bare.Prepare(t.Context(), f); runtime.ClassOf(err) != runtime.ClassInit || !strings.Contains(err.Error(), "nodejs:20 needs node") {
		t.Fatalf("Prepare: %v, want an init error naming the kind and node", err)
	}
	if _, err := invokeDirect(t, bare, f, `{}`); runtime.ClassOf(err) != runtime.ClassInit || !strings.Contains(err.Error(), "need node") {
		t.Fatalf("Invoke: %v", err)
	}
	blackbox := fn(t, "bb", []byte(pyValue))
	if err := bare.Prepare(t.Context(), blackbox); err != nil {
		t.Fatalf("Prepare of an --exec action: %v", err)
	}
}

// --exec-user applies to the launcher kinds as to any process function.
func TestLauncher_ExecUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("--exec-user needs root")
	}
	needNode(t)
	needPython(t)
	work, err := os.MkdirTemp("", "dedupfn-launcher-test-") // reachable by the exec user
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	r := newRuntime(t, process.Options{WorkDir: work, ExecUser: "nobody", Node: "/usr/bin/node", Python: "/usr/bin/python3"})
	for kind, code := range map[string]string{
		"nodejs:20": `function main() { return {uid: process.getuid()}; }`,
		"python:3":  "import os\ndef main(args):\n    return {'uid': os.getuid()}\n",
	} {
		f := action(t, "uid-"+strings.ReplaceAll(kind, ":", ""), kind, []byte(code), false, "")
		if got := resultOf(t, r, f, `{}`); got["uid"] != 65534.0 {
			t.Errorf("%s ran as uid %v, want nobody (65534)", kind, got["uid"])
		}
	}
}

// The memory limit of a nodejs action is V8's heap (node does not start
// under an address-space limit that small); a python action's is
// RLIMIT_AS, as for any process function. Over it, the run is ClassOOM.
func TestLauncher_MemoryLimit(t *testing.T) {
	needNode(t)
	needPython(t)
	r := launcherRuntime(t)
	for _, tc := range []struct{ kind, code string }{
		{"nodejs:20", `function main(a) { if (a.hog) { const k = []; for (;;) k.push(new Array(1e6).fill(k.length)); } return {ok: true}; }`},
		{"python:3", "def main(a):\n    if a.get('hog'):\n        k = []\n        while True:\n            k.append([len(k)] * 1000000)\n    return {'ok': True}\n"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			f := action(t, "mem-"+strings.ReplaceAll(tc.kind, ":", ""), tc.kind, []byte(tc.code), false, "")
			call := func(params string) (runtime.Result, error) {
				return r.Invoke(t.Context(), &runtime.Invocation{Function: f, Value: json.RawMessage(params),
					Limits: runtime.Limits{Timeout: 30 * time.Second, MemoryBytes: 256 << 20}})
			}
			if res, err := call(`{}`); err != nil || string(res.Result) != `{"ok":true}` && string(res.Result) != `{"ok": true}` {
				t.Fatalf("under a 256 MiB limit: %s, %v", res.Result, err)
			}
			if _, err := call(`{"hog":true}`); runtime.ClassOf(err) != runtime.ClassOOM {
				t.Fatalf("over the limit: %v, want an OOM error", err)
			}
		})
	}
}
