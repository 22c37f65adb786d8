package pipeline_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm/wasmtest"
)

// slotWatch is the real wasm runtime with Invoke, called only while the
// pipeline holds a run slot, marked; Load and Prepare are the runtime's.
type slotWatch struct {
	*wasm.Runtime
	inSlot atomic.Bool
}

func (w *slotWatch) Invoke(ctx context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	w.inSlot.Store(true)
	defer w.inSlot.Store(false)
	return w.Runtime.Invoke(ctx, inv)
}

// compileLog counts the wasm runtime's compiles and those made while a
// run slot was held.
type compileLog struct {
	w                 *slotWatch
	compiles, inSlots atomic.Int64
}

func (c *compileLog) Enabled(context.Context, slog.Level) bool { return true }
func (c *compileLog) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *compileLog) WithGroup(string) slog.Handler            { return c }
func (c *compileLog) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == "compiled module" {
		c.compiles.Add(1)
		if c.w.inSlot.Load() {
			c.inSlots.Add(1)
		}
	}
	return nil
}

// Issue 17 item 11: after a cache eviction an event recompiled its module
// inside a run slot, holding it for the whole compile.
func TestWasmCompile_EventCompilesOutsideRunSlot(t *testing.T) {
	idx, in, out := newIndexAndBuckets(t, "")
	e := &env{t: t, idx: idx, reg: registry.New(idx, nil), in: in, out: out}
	log := &compileLog{}
	rt, err := wasm.New(wasm.Options{MaxCachedModules: 1, CacheDir: t.TempDir(), Logger: slog.New(log)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	log.w = &slotWatch{Runtime: rt}
	e.pipe, err = pipeline.New(pipeline.Config{
		Index: idx, Objects: store, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"wasm": log.w},
		Owner: "test-replica", SpoolDir: t.TempDir(), RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxRuns: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two modules that do nothing, so each evicts the other from a cache
	// of one.
	for name, code := range map[string][]byte{"a": wasmtest.CompileBomb(1), "b": wasmtest.CompileBomb(2)} {
		fn := registry.Function{Name: name, Runtime: "wasm", Trigger: registry.Trigger{Bucket: in, Prefix: name + "/"}, Output: registry.Output{Bucket: out}}
		if _, err := e.reg.Deploy(t.Context(), fn, code); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"a/1", "b/1", "a/2"} { // a/2: a was evicted by b
		e.handle(e.put(key, "content of "+key))
	}
	for key, d := range e.decisions() {
		if d != "miss" {
			t.Errorf("%s: decision %s, want miss", key, d)
		}
	}
	if got := log.compiles.Load(); got != 3 {
		t.Fatalf("%d compiles, want 3 (a, b, a again after its eviction)", got)
	}
	if got := log.inSlots.Load(); got != 0 {
		t.Fatalf("%d of 3 compiles ran inside a run slot, want 0", got)
	}
}
