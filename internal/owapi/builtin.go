package owapi

import (
	"context"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
)

// Builtins is the runtime of the built-in utils (BuiltinRuntime): serve
// registers it with the pipeline beside wasm and process, so the utils'
// invocations are deduplicated and recorded as every action's are.
type Builtins struct{}

var _ runtime.Runtime = Builtins{}

// Name is BuiltinRuntime.
func (Builtins) Name() string { return BuiltinRuntime }

// Version is BuiltinVersion: part of the utils' dedup keys.
func (Builtins) Version() string { return BuiltinVersion }

// Close does nothing: the runtime holds nothing.
func (Builtins) Close(context.Context) error { return nil }

// Invoke runs the built-in its function's config names on the
// invocation's value (direct mode); an error is the function's.
func (Builtins) Invoke(ctx context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	start := time.Now()
	out, err := runBuiltin(inv.Function.Config[ConfigBuiltin], inv.Value)
	if err != nil {
		return runtime.Result{}, &runtime.Error{Class: runtime.ClassFunction, Err: err}
	}
	return runtime.Result{Result: out, Duration: time.Since(start)}, nil
}
