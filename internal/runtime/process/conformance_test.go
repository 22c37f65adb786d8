package process_test

import (
	"testing"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
	"github.com/dedupfn/dedupfn/internal/runtime/runtimetest"
)

// TestConformance runs the runtime suite with real actions: Upper and
// Param in python3, Fail, Hang and Hog in bash. The inline limit is
// raised so the suite's 5 MiB input travels inline (its fixtures have no
// object store to fetch get_url from).
func TestConformance(t *testing.T) {
	needPython(t)
	fixtures := map[string]string{
		runtimetest.Upper: pyUpper,
		runtimetest.Param: pyParam,
		runtimetest.Fail:  bashFail,
		runtimetest.Hang:  bashHang,
		runtimetest.Hog:   bashHog,
	}
	runtimetest.Run(t, runtimetest.Harness{
		New: func(tb testing.TB) runtime.Runtime {
			return newRuntime(tb, process.Options{InlineLimit: 8 << 20})
		},
		Fixture: func(tb testing.TB, name string) runtime.Function {
			code, ok := fixtures[name]
			if !ok {
				tb.Fatalf("no fixture %q", name)
			}
			return fn(tb, name, []byte(code))
		},
	})
}
