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
