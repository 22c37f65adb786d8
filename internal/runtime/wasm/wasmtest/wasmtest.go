// Package wasmtest builds Go programs to WebAssembly (GOOS=wasip1
// GOARCH=wasm) for tests of the wasm runtime and of example functions.
package wasmtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm"
)

// build is one package's build, done once per test process.
type build struct {
	once sync.Once
	code []byte
	err  error
}

var builds sync.Map // absolute package dir → *build

// Build compiles the main package in dir to a wasip1 module and returns
// its bytes. Each dir is built once per test process; the go build cache
// makes later processes fast. A failed build fails tb.
func Build(tb testing.TB, dir string) []byte {
	tb.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		tb.Fatal(err)
	}
	v, _ := builds.LoadOrStore(abs, &build{})
	b := v.(*build)
	b.once.Do(func() {
		out := filepath.Join(tb.TempDir(), filepath.Base(abs)+".wasm")
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = abs
		cmd.Env = append(buildEnv(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = &buildError{dir: abs, err: err, out: string(msg)}
			return
		}
		b.code, b.err = os.ReadFile(out)
	})
	if b.err != nil {
		tb.Fatalf("wasmtest: build %s: %v", abs, b.err)
	}
	return b.code
}

// buildEnv is the environment without settings that break a wasm build
// (a GOFLAGS=-race meant for the test binary, a host GOOS/GOARCH).
func buildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "GOFLAGS", "GOOS", "GOARCH", "CGO_ENABLED":
		default:
			env = append(env, kv)
		}
	}
	return env
}

type buildError struct {
	dir string
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ":\n" + e.out }

// Function returns a runtime.Function named name running code, with its
// CodeDigest and Version set as the pipeline would.
func Function(name string, code []byte) runtime.Function {
	sum := sha256.Sum256(code)
	digest := hex.EncodeToString(sum[:])
	return runtime.Function{
		Tenant:     "test",
		Name:       name,
		Version:    digest[:12],
		CodeDigest: digest,
		Code:       code,
	}
}

// NewRuntime returns a wasm runtime with its own compile cache, closed
// when the test ends: the way each example's test runs its module.
func NewRuntime(tb testing.TB) *wasm.Runtime {
	tb.Helper()
	r, err := wasm.New(wasm.Options{CacheDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// CompileBomb returns a valid WASI command module whose one function,
// _start, holds blocks empty blocks one after the other and does nothing.
// wazero's compile time grows with the square of a function's blocks
// (40,000 of them took 27 s), so it is the shape of a module that holds a
// core while it compiles; the wasm runtime refuses it past its limits.
func CompileBomb(blocks int) []byte { return ManyBlocks(1, blocks) }

// ManyBlocks returns a valid WASI command module of functions functions
// (the first is _start) of blocks sequential empty blocks each. With
// blocks within the runtime's limits it is admitted, and compiles for
// about functions times as long as one function takes: a compile to
// cancel.
func ManyBlocks(functions, blocks int) []byte {
	body := []byte{0} // no locals
	for range blocks {
		body = append(body, 0x02, 0x40, 0x0b) // block (no result) end
	}
	body = append(body, 0x0b) // end of the function
	funcs := appendULEB(nil, uint64(functions))
	code := appendULEB(nil, uint64(functions))
	for range functions {
		funcs = append(funcs, 0) // type 0
		code = appendULEB(code, uint64(len(body)))
		code = append(code, body...)
	}
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = appendSection(m, 1, []byte{1, 0x60, 0, 0})                                  // type 0: () -> ()
	m = appendSection(m, 3, funcs)                                                  // functions
	m = appendSection(m, 7, []byte{1, 6, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00}) // export "_start" = func 0
	return appendSection(m, 10, code)
}

func appendSection(m []byte, id byte, contents []byte) []byte {
	m = appendULEB(append(m, id), uint64(len(contents)))
	return append(m, contents...)
}

func appendULEB(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
