package wasm_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm/wasmtest"
)

// Issue 17 item 11: a module of 40,000 blocks in one function compiled
// for 27 s; it must be refused before wazero compiles it.
func TestWasmCompileLimits_BombRefusedBeforeCompile(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	start := time.Now()
	err := r.Prepare(t.Context(), wasmtest.Function("bomb", wasmtest.CompileBomb(40_000)))
	took := time.Since(start)
	const want = "function 0 has 40000 blocks and branches, over the limit of 8192 (--wasm-max-function-branches)"
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, wasm.ErrOverLimit) {
		t.Fatalf("Prepare(40,000-block bomb) = %v, want an error saying %q", err, want)
	}
	wantClass(t, err, runtime.ClassInit)
	if took > 2*time.Second {
		t.Fatalf("refusing the bomb took %v, want < 2s (it must not be compiled)", took)
	}
}

// Each limit is enforced and named; a module within all of them compiles.
func TestWasmCompileLimits_EachLimit(t *testing.T) {
	bomb := wasmtest.CompileBomb(100) // 100 blocks, 302 bytes of body
	for _, tc := range []struct {
		name string
		lim  wasm.CodeLimits
		want string // "" = admitted
	}{
		{"Defaults", wasm.CodeLimits{}, ""},
		{"Bytes", wasm.CodeLimits{FunctionBytes: 300}, "function 0 has 302 bytes of code, over the limit of 300 (--wasm-max-function-bytes)"},
		{"Branches", wasm.CodeLimits{Branches: 99}, "function 0 has 100 blocks and branches, over the limit of 99 (--wasm-max-function-branches)"},
		{"AtLimits", wasm.CodeLimits{FunctionBytes: 302, Branches: 100, Nesting: 1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRuntime(t, wasm.Options{CodeLimits: tc.lim})
			err := r.Prepare(t.Context(), wasmtest.Function("b", bomb))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Prepare: %v, want it admitted", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Prepare: %v, want %q", err, tc.want)
			}
		})
	}
	// Parameters are locals to the compiler: 5,000 of them with 2,000
	// branches compiled for 33 s and 750 MB.
	r := newRuntime(t, wasm.Options{})
	err := r.Prepare(t.Context(), wasmtest.Function("params", paramsBomb(5000, 2000)))
	const want = "function 0 has 10005000 branches × values (locals and block parameters and results), over the limit of 500000 (--wasm-max-function-branch-values)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Prepare(5,000 params, 2,000 branches): %v, want %q", err, want)
	}
	// So are a block's parameters and results: blocks of 3,000 of each
	// with 4,000 branches compiled for 43 s and 620 MB.
	err = r.Prepare(t.Context(), wasmtest.Function("blocks", blockValuesBomb(3000, 2000)))
	if want := "function 0 has 24000000 branches × values"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Prepare(2,000 blocks of 3,000 parameters and results): %v, want %q", err, want)
	}
	r = newRuntime(t, wasm.Options{CodeLimits: wasm.CodeLimits{Locals: 99}})
	err = r.Prepare(t.Context(), wasmtest.Function("params", paramsBomb(100, 1)))
	if want := "function 0 has 100 locals (parameters included), over the limit of 99 (--wasm-max-function-locals)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Prepare(100 params) with Locals 99: %v, want %q", err, want)
	}
	if _, err := wasm.New(wasm.Options{CodeLimits: wasm.CodeLimits{Nesting: -1}}); err == nil || !strings.Contains(err.Error(), "max nesting must be >= 0, got -1") {
		t.Errorf("New with Nesting -1: error %v", err)
	}
}

// The limits must admit real modules by a wide margin: Go's wasm output
// has the largest functions of the languages measured (docs/security.md).
func TestWasmCompileLimits_GoModulesWellWithin(t *testing.T) {
	for _, dir := range []string{filepath.Join("testdata", "fixture"), filepath.Join("..", "..", "..", "examples", "thumbnail")} {
		bytes, branches, nesting, locals, branchValues := wasm.FunctionMaxima(wasmtest.Build(t, dir))
		t.Logf("%s: largest function %d bytes, %d branches, %d nested, %d locals, %d branches × values",
			dir, bytes, branches, nesting, locals, branchValues)
		// A margin of at least 2.5 on each (8,192 / 2,783 is the narrowest).
		if 5*bytes > 2*wasm.DefaultMaxFunctionBytes || 5*branches > 2*wasm.DefaultMaxFunctionBranches ||
			5*nesting > 2*wasm.DefaultMaxFunctionNesting || 5*locals > 2*wasm.DefaultMaxFunctionLocals ||
			5*branchValues > 2*wasm.DefaultMaxFunctionBranchValues {
			t.Errorf("%s is within less than 2.5 times of a default limit", dir)
		}
		if err := newRuntime(t, wasm.Options{}).Prepare(t.Context(), wasmtest.Function("real", wasmtest.Build(t, dir))); err != nil {
			t.Errorf("Prepare(%s): %v", dir, err)
		}
	}
}

// blockValuesBomb is a module of one function of blocks blocks, each of
// values i32 parameters and as many results, and each with a br_if.
func blockValuesBomb(values, blocks int) []byte {
	i32s := bytes.Repeat([]byte{0x7f}, values)
	typ := []byte{2, 0x60, 0, 0, 0x60} // type 0: () -> (); type 1: values -> values
	typ = append(uleb(typ, values), i32s...)
	typ = append(uleb(typ, values), i32s...)
	body := []byte{0}
	for range values {
		body = append(body, 0x41, 0x00) // i32.const 0
	}
	for range blocks {
		body = append(body, 0x02, 0x01, 0x41, 0x00, 0x0d, 0x00, 0x0b) // block (type 1) i32.const 0 br_if 0 end
	}
	for range values {
		body = append(body, 0x1a) // drop
	}
	body = append(body, 0x0b)
	m := section([]byte("\x00asm\x01\x00\x00\x00"), 1, typ)
	m = section(m, 3, []byte{1, 0})
	return section(m, 10, append(uleb([]byte{1}, len(body)), body...))
}

func uleb(b []byte, v int) []byte {
	for ; v >= 0x80; v >>= 7 {
		b = append(b, byte(v)|0x80)
	}
	return append(b, byte(v))
}

func section(m []byte, id byte, c []byte) []byte { return append(uleb(append(m, id), len(c)), c...) }

// paramsBomb is a module of one function of params i32 parameters whose
// body is a loop of branches br_if back to it.
func paramsBomb(params, branches int) []byte {
	typ := uleb([]byte{1, 0x60}, params)
	for range params {
		typ = append(typ, 0x7f)
	}
	typ = append(typ, 0)          // no results
	body := []byte{0, 0x03, 0x40} // no locals; loop
	for range branches {
		body = append(body, 0x41, 0x00, 0x0d, 0x00) // i32.const 0; br_if 0
	}
	body = append(body, 0x0b, 0x0b)
	m := section([]byte("\x00asm\x01\x00\x00\x00"), 1, typ)
	m = section(m, 3, []byte{1, 0})
	return section(m, 10, append(uleb([]byte{1}, len(body)), body...))
}

// slowModule compiles for many seconds in all, a fraction of a second per
// function, each within the limits.
func slowModule() runtime.Function {
	return wasmtest.Function("slow", wasmtest.ManyBlocks(400, 3000))
}

// Issue 17 item 11: the compile ran under context.WithoutCancel and went on
// when its deploy's client had gone away.
func TestWasmCompile_CancelledWithContext(t *testing.T) {
	r, err := wasm.New(wasm.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = r.Prepare(ctx, slowModule())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Prepare with a context ending after 300ms: %v, want its deadline", err)
	}
	// The compile itself must have stopped, not only the wait for it:
	// Close waits for compiles in progress.
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if err := r.Close(cctx); err != nil {
		t.Fatalf("Close after the cancelled compile (%v after it started): %v", time.Since(start), err)
	}
}

// SIGTERM closes the runtime: a compile in progress must not delay it.
func TestWasmCompile_CloseStopsCompile(t *testing.T) {
	r, err := wasm.New(wasm.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- r.Prepare(context.Background(), slowModule()) }()
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close during a compile: %v", err)
	}
	wantClass(t, <-errc, runtime.ClassPlatform)
}

// A caller waiting on a compile that another caller started and then
// abandoned compiles the module itself rather than fail.
func TestWasmCompile_WaiterOutlivesCancelledCompiler(t *testing.T) {
	r := newRuntime(t, wasm.Options{CacheDir: t.TempDir()})
	fn := wasmtest.Function("some", wasmtest.ManyBlocks(20, 1000))
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { first <- r.Prepare(ctx, fn) }()
	time.Sleep(20 * time.Millisecond)
	second := make(chan error, 1)
	go func() { second <- r.Prepare(t.Context(), fn) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	<-first
	if err := <-second; err != nil {
		t.Fatalf("Prepare by the caller that stayed: %v", err)
	}
}

// compileCounter counts the runtime's "compiled module" debug logs.
type compileCounter struct{ n atomic.Int64 }

func (c *compileCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *compileCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *compileCounter) WithGroup(string) slog.Handler            { return c }
func (c *compileCounter) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == "compiled module" {
		c.n.Add(1)
	}
	return nil
}

// A module loaded for a run is not evicted before the run: its Invoke
// does not compile.
func TestWasmLoad_PinsAgainstEviction(t *testing.T) {
	var compiles compileCounter
	r := newRuntime(t, wasm.Options{MaxCachedModules: 1, Logger: slog.New(&compiles), CacheDir: t.TempDir()})
	a := wasmtest.Function("a", wasmtest.CompileBomb(1))
	b := wasmtest.Function("b", wasmtest.CompileBomb(2))
	release, err := r.Load(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []runtime.Function{b, a} {
		if _, _, err := invoke(t, r, fn, strings.NewReader(""), runtime.Limits{}); err != nil {
			t.Fatalf("invoke %s: %v", fn.Name, err)
		}
	}
	if got := compiles.n.Load(); got != 2 {
		t.Fatalf("%d compiles for load a, invoke b, invoke a, want 2 (a pinned while loaded)", got)
	}
	release()
	release()                                     // safe twice
	for _, fn := range []runtime.Function{b, a} { // a was evicted once released
		if _, _, err := invoke(t, r, fn, strings.NewReader(""), runtime.Limits{}); err != nil {
			t.Fatalf("invoke %s: %v", fn.Name, err)
		}
	}
	if got := compiles.n.Load(); got != 4 {
		t.Fatalf("%d compiles after release, want 4 (the cache holds one module)", got)
	}
}
