package wasm_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm/wasmtest"
)

// copyFunction is examples/copy (stdin to stdout, Go wasip1): the
// function of the hot-path workload, so what remains of an invoke is the
// platform's and the Go module's start-up, not the function's work.
func copyFunction(b *testing.B) runtime.Function {
	b.Helper()
	return wasmtest.Function("copy", wasmtest.Build(b, filepath.Join("..", "..", "..", "examples", "copy")))
}

func invokeCopy(b *testing.B, r *wasm.Runtime, fn runtime.Function, input []byte) {
	b.Helper()
	_, err := r.Invoke(b.Context(), &runtime.Invocation{
		Function: fn, Input: bytes.NewReader(input), Output: io.Discard,
		Limits: runtime.Limits{Timeout: time.Minute, MemoryBytes: 256 << 20, MaxOutputBytes: 1 << 20},
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWasmInvoke runs the copy function on 4 KiB. cold: a new
// runtime each time, with no compilation cache, so each op compiles the
// module; warm: one runtime whose compiled module is cached, so each op
// is an instantiation and a run (what a miss pays today).
func BenchmarkWasmInvoke(b *testing.B) {
	fn := copyFunction(b)
	input := bytes.Repeat([]byte("x"), 4096)
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, err := wasm.New(wasm.Options{})
			if err != nil {
				b.Fatal(err)
			}
			invokeCopy(b, r, fn, input)
			if err := r.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		r := newRuntime(b, wasm.Options{})
		invokeCopy(b, r, fn, input) // compile once, outside the timing
		b.ReportAllocs()
		for b.Loop() {
			invokeCopy(b, r, fn, input)
		}
	})
}
