package wasm_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/runtimetest"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm/wasmtest"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// sharedCacheDir is one compilation cache for the whole test process, so
// the fresh runtimes the conformance suite asks for do not each compile
// every fixture again.
var sharedCacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasm-cache-")
	if err != nil {
		panic(err)
	}
	sharedCacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newRuntime returns a Runtime with opts (the shared cache dir by
// default), closed at cleanup.
func newRuntime(tb testing.TB, opts wasm.Options) *wasm.Runtime {
	tb.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = sharedCacheDir
	}
	r, err := wasm.New(opts)
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

// fixture returns the function name of testdata/fixture (one module
// that picks its behaviour by its argv[0], the function's name).
func fixture(tb testing.TB, name string) runtime.Function {
	tb.Helper()
	return wasmtest.Function(name, wasmtest.Build(tb, filepath.Join("testdata", "fixture")))
}

func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		New: func(t testing.TB) runtime.Runtime {
			r, err := wasm.New(wasm.Options{CacheDir: sharedCacheDir})
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
		Fixture: fixture,
	})
}

// invoke runs fn on input and returns the result, output and error.
func invoke(tb testing.TB, r runtime.Runtime, fn runtime.Function, input io.Reader, lim runtime.Limits) (runtime.Result, string, error) {
	tb.Helper()
	if lim.Timeout == 0 {
		lim.Timeout = time.Minute
	}
	var out bytes.Buffer
	res, err := r.Invoke(tb.Context(), &runtime.Invocation{
		Function: fn, Input: input, Output: &out, Limits: lim,
	})
	return res, out.String(), err
}

// wantClass asserts err is a *runtime.Error of class c.
func wantClass(tb testing.TB, err error, c runtime.Class) *runtime.Error {
	tb.Helper()
	var re *runtime.Error
	if !errors.As(err, &re) {
		tb.Fatalf("error %v (%T) is not a *runtime.Error of class %s", err, err, c)
	}
	if re.Class != c {
		tb.Fatalf("error class = %s, want %s (error: %v)", re.Class, c, err)
	}
	return re
}

func TestHostFilesInvisible(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	fn := fixture(t, "readfile")
	for _, name := range []string{"/etc/passwd", "etc/passwd", "../../../../etc/passwd", "/proc/self/environ"} {
		_, out, err := invoke(t, r, fn, strings.NewReader(name), runtime.Limits{})
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if !strings.HasPrefix(out, "error: ") {
			t.Errorf("read %s: function reports %q, want an error", name, out)
		}
	}
}

func TestNoNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{})
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			close(accepted)
		}
	}()

	r := newRuntime(t, wasm.Options{})
	_, out, err := invoke(t, r, fixture(t, "dial"), strings.NewReader(ln.Addr().String()), runtime.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "error: ") {
		t.Errorf("dial reports %q, want an error", out)
	}
	select {
	case <-accepted:
		t.Error("the listener accepted a connection from the function")
	case <-time.After(200 * time.Millisecond):
	}
}

func TestCorruptModule(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	for _, code := range [][]byte{[]byte("not a wasm module"), {0x00, 'a', 's', 'm', 1, 0, 0, 0, 0xff}, nil} {
		_, _, err := invoke(t, r, wasmtest.Function("corrupt", code), strings.NewReader("x"), runtime.Limits{})
		wantClass(t, err, runtime.ClassInit)
	}
	// A corrupt module is not cached: the runtime still works afterwards.
	if _, out, err := invoke(t, r, fixture(t, "upper"), strings.NewReader("ok"), runtime.Limits{}); err != nil || out != "OK" {
		t.Fatalf("upper after corrupt module = %q, %v", out, err)
	}
}

// emptyCommand is the smallest WASI command, assembled by hand:
// (module (func (export "_start")) (memory (export "memory") 1)).
// It compiles in no time, unlike a Go module.
var emptyCommand = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: func() -> ()
	0x03, 0x02, 0x01, 0x00, // func 0 has type 0
	0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1 page
	0x07, 0x13, 0x02, // export section, 2 exports
	0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00,
	0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00,
	0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: empty body
}

// noStart is emptyCommand with "_start" renamed "_stars": a valid
// module that is not a WASI command.
func noStart() []byte {
	b := bytes.Clone(emptyCommand)
	i := bytes.Index(b, []byte("_start"))
	b[i+5] = 's'
	return b
}

func TestNotACommand(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	_, _, err := invoke(t, r, wasmtest.Function("nostart", noStart()), strings.NewReader(""), runtime.Limits{})
	re := wantClass(t, err, runtime.ClassInit)
	if !strings.Contains(re.Error(), "_start") {
		t.Errorf("error %q does not name _start", re)
	}
	res, out, err := invoke(t, r, wasmtest.Function("empty", emptyCommand), strings.NewReader("ignored"), runtime.Limits{})
	if err != nil || out != "" || !res.OutputWritten {
		t.Fatalf("empty command: result %+v, output %q, error %v", res, out, err)
	}
}

func TestCompilationCacheDir(t *testing.T) {
	dir := t.TempDir()
	fn := wasmtest.Function("empty", emptyCommand)
	for i := range 2 { // the second runtime starts from the files of the first
		r := newRuntime(t, wasm.Options{CacheDir: dir})
		if _, _, err := invoke(t, r, fn, strings.NewReader("abc"), runtime.Limits{}); err != nil {
			t.Fatalf("runtime %d: %v", i, err)
		}
		var files int
		err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files++
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if files == 0 {
			t.Fatalf("runtime %d: compilation cache dir %s holds no files", i, dir)
		}
	}
}

func TestOutputLimit(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	in := strings.Repeat("a", 100<<10)
	_, _, err := invoke(t, r, fixture(t, "upper"), strings.NewReader(in), runtime.Limits{MaxOutputBytes: 1000})
	re := wantClass(t, err, runtime.ClassFunction)
	if !strings.Contains(re.Error(), "output exceeds 1000 bytes") {
		t.Errorf("error %q does not say the output limit", re)
	}
	// Exactly at the limit is fine.
	_, out, err := invoke(t, r, fixture(t, "upper"), strings.NewReader(in[:1000]), runtime.Limits{MaxOutputBytes: 1000})
	if err != nil || len(out) != 1000 {
		t.Fatalf("output at the limit: %d bytes, error %v", len(out), err)
	}
}

func TestLogsBounded(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	fn := fixture(t, "noisy")
	res, _, err := invoke(t, r, fn, strings.NewReader("1000"), runtime.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logs) != 1000 {
		t.Errorf("logs are %d bytes, want all 1000", len(res.Logs))
	}
	res, _, err = invoke(t, r, fn, strings.NewReader("1000000"), runtime.Limits{MaxLogBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Logs, strings.Repeat("x", 99)+"\n") || !strings.Contains(res.Logs, "bytes of stderr dropped") || len(res.Logs) > 4096+100 {
		t.Errorf("logs of 1 MB stderr with a 4 KiB bound are %d bytes ending %q", len(res.Logs), res.Logs[max(0, len(res.Logs)-60):])
	}
	res, _, err = invoke(t, r, fn, strings.NewReader("1000000"), runtime.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logs) > wasm.DefaultMaxLogBytes+100 {
		t.Errorf("logs are %d bytes, want at most about %d by default", len(res.Logs), wasm.DefaultMaxLogBytes)
	}
}

// errReader yields some bytes, then fails.
type errReader struct{ n int }

func (e *errReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(p), e.n)
	for i := range p[:k] {
		p[i] = 'a'
	}
	e.n -= k
	return k, nil
}

func TestInputErrorIsPlatform(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	_, _, err := invoke(t, r, fixture(t, "upper"), &errReader{n: 10000}, runtime.Limits{})
	re := wantClass(t, err, runtime.ClassPlatform)
	if !strings.Contains(re.Error(), "connection reset") {
		t.Errorf("error %q does not carry the input error", re)
	}
}

func TestMemoryMinimumOverLimit(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	_, _, err := invoke(t, r, fixture(t, "upper"), strings.NewReader("x"), runtime.Limits{MemoryBytes: 64 << 10})
	wantClass(t, err, runtime.ClassOOM)
}

func TestMemoryLimitAllowsNormalRun(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	in := strings.Repeat("abc", 1<<20)
	_, out, err := invoke(t, r, fixture(t, "upper"), strings.NewReader(in), runtime.Limits{MemoryBytes: 32 << 20})
	if err != nil || out != strings.ToUpper(in) {
		t.Fatalf("upper under 32 MiB: %d bytes, error %v", len(out), err)
	}
}

func TestClose(t *testing.T) {
	r, err := wasm.New(wasm.Options{CacheDir: sharedCacheDir})
	if err != nil {
		t.Fatal(err)
	}
	fn := fixture(t, "hang")
	// Compile first, so the invocation below is running, not compiling,
	// when Close comes (a compile under -race can take seconds).
	if err := r.Prepare(t.Context(), fn); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := invoke(t, r, fn, strings.NewReader(""), runtime.Limits{Timeout: time.Minute})
		errc <- err
	}()
	time.Sleep(500 * time.Millisecond) // let it start running
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		wantClass(t, err, runtime.ClassPlatform)
	case <-time.After(10 * time.Second):
		t.Fatal("running invocation did not stop on Close")
	}
	if err := r.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, _, err = invoke(t, r, fixture(t, "upper"), strings.NewReader("x"), runtime.Limits{})
	wantClass(t, err, runtime.ClassPlatform)
}

func TestParamsEnv(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	var out bytes.Buffer
	_, err := r.Invoke(t.Context(), &runtime.Invocation{
		Function: fixture(t, "param"),
		Params:   map[string]string{"greeting": `quote " and ünïcode `},
		Input:    strings.NewReader("!"),
		Output:   &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := `quote " and ünïcode !`; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestNameVersion(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	if r.Name() != "wasm" {
		t.Errorf("Name() = %q", r.Name())
	}
	if want := "wasm/wazero-" + wasm.WazeroVersion + "/" + wasm.ABIVersion; r.Version() != want {
		t.Errorf("Version() = %q, want %q", r.Version(), want)
	}
	mod, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "github.com/tetratelabs/wazero v"+wasm.WazeroVersion+" ") &&
		!strings.Contains(string(mod), "github.com/tetratelabs/wazero v"+wasm.WazeroVersion+"\n") {
		t.Errorf("go.mod does not require wazero v%s: update wasm.WazeroVersion", wasm.WazeroVersion)
	}
}

func TestCompiledModuleEviction(t *testing.T) {
	r := newRuntime(t, wasm.Options{MaxCachedModules: 1})
	other := bytes.Clone(emptyCommand)
	other[22] = 2 // memory min 2 pages: a different module
	a := wasmtest.Function("a", emptyCommand)
	b := wasmtest.Function("b", other)
	for i, fn := range []runtime.Function{a, b, a, b, b, a} {
		if _, _, err := invoke(t, r, fn, strings.NewReader(""), runtime.Limits{}); err != nil {
			t.Fatalf("invocation %d of %s: %v", i, fn.Name, err)
		}
	}
	if _, err := wasm.New(wasm.Options{MaxCachedModules: -1}); err == nil || !strings.Contains(err.Error(), "max cached modules must be >= 0, got -1") {
		t.Errorf("New with MaxCachedModules -1: error %v", err)
	}
}

// A function sees real clocks: a sleep takes its time and the wall clock
// is today's (wazero's default clocks are fakes that never advance).
func TestRealClock(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	fn := fixture(t, "sleep")
	if err := r.Prepare(t.Context(), fn); err != nil { // compile time is not sleep time
		t.Fatal(err)
	}
	start := time.Now()
	_, out, err := invoke(t, r, fn, strings.NewReader(""), runtime.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || out != "true" {
		t.Fatalf("a 300ms sleep took %s and the wall clock said %q", took, out)
	}
}

// A Go module's ~30,000 data segments are merged into a few at compile
// time; the fixture's tests above run the merged module.
func TestMergeDataSegments_GoModule(t *testing.T) {
	bin := wasmtest.Build(t, filepath.Join("testdata", "fixture"))
	merged := wasm.MergeDataSegments(bin)
	before, after := wasm.SegmentCount(t, bin), wasm.SegmentCount(t, merged)
	if before < 1000 || after > 16 {
		t.Fatalf("segments %d → %d; want a Go module's thousands merged into a few", before, after)
	}
	t.Logf("data segments %d → %d, module %d → %d bytes", before, after, len(bin), len(merged))
}
