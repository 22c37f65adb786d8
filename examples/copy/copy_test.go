package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm/wasmtest"
)

// TestWasm builds this example to WebAssembly and runs it through the
// wasm runtime, as dedupfn would: the output is the input.
func TestWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and compiles a wasm module")
	}
	fn := wasmtest.Function("copy", wasmtest.Build(t, "."))
	r := wasmtest.NewRuntime(t)
	for _, size := range []int{0, 1, 4096, 1 << 20} {
		in := bytes.Repeat([]byte{'x', 0, 0xff}, size/3+1)[:size]
		var out bytes.Buffer
		_, err := r.Invoke(t.Context(), &runtime.Invocation{
			Function: fn, Input: bytes.NewReader(in), Output: &out,
			Limits: runtime.Limits{Timeout: time.Minute, MemoryBytes: 64 << 20, MaxOutputBytes: 2 << 20},
		})
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Errorf("%d bytes: output of %d bytes differs from the input", size, out.Len())
		}
	}
}
