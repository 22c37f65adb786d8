package wasm_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm"
)

// invokeDirect runs fn directly on params (Invocation.Value): no input
// object, no output writer.
func invokeDirect(tb testing.TB, r runtime.Runtime, fn runtime.Function, params string, lim runtime.Limits) (runtime.Result, error) {
	tb.Helper()
	if lim.Timeout == 0 {
		lim.Timeout = time.Minute
	}
	return r.Invoke(tb.Context(), &runtime.Invocation{Function: fn, Value: json.RawMessage(params), Limits: lim})
}

// Invoked directly, a module reads the parameters on stdin; its stdout
// is the result.
func TestDirect_ParamsOnStdinResultOnStdout(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	res, err := invokeDirect(t, r, fixture(t, "echo"), `{"name":"ada","n":[1,2]}`, runtime.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Result) != `{"name":"ada","n":[1,2]}` || res.OutputWritten || !strings.Contains(res.Logs, "echo") {
		t.Fatalf("result %s, output written %v, logs %q", res.Result, res.OutputWritten, res.Logs)
	}
	up, err := invokeDirect(t, r, fixture(t, "upper"), `{"name":"ada"}`, runtime.Limits{})
	if err != nil || string(up.Result) != `{"NAME":"ADA"}` {
		t.Fatalf("upper: %s, %v", up.Result, err)
	}
}

func TestDirect_ResultMustBeAnObject(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	for _, params := range []string{`[1,2]`, `"text"`, `{"a":`} {
		_, err := invokeDirect(t, r, fixture(t, "echo"), params, runtime.Limits{})
		wantClass(t, err, runtime.ClassFunction)
		if !errors.Is(err, runtime.ErrResultNotObject) {
			t.Errorf("stdout %s: %v, want ErrResultNotObject", params, err)
		}
	}
	// not JSON at all
	_, err := invokeDirect(t, r, fixture(t, "readfile"), `{}`, runtime.Limits{})
	if !errors.Is(err, runtime.ErrResultNotObject) {
		t.Fatalf("readfile: %v, want ErrResultNotObject", err)
	}
}

func TestDirect_ErrorResultIsAFunctionError(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	res, err := invokeDirect(t, r, fixture(t, "echo"), `{"error":"bad input"}`, runtime.Limits{})
	re := wantClass(t, err, runtime.ClassFunction)
	if !strings.Contains(re.Error(), "bad input") || string(res.Result) != `{"error":"bad input"}` {
		t.Fatalf("error %v, result %s: want the error named and the result kept", err, res.Result)
	}
	_, err = invokeDirect(t, r, fixture(t, "fail"), `{}`, runtime.Limits{})
	wantClass(t, err, runtime.ClassFunction) // exit 3
}

func TestDirect_ResultOverTheLimit(t *testing.T) {
	r := newRuntime(t, wasm.Options{})
	params := `{"big":"` + strings.Repeat("x", 100) + `"}`
	_, err := invokeDirect(t, r, fixture(t, "echo"), params, runtime.Limits{MaxOutputBytes: 64})
	re := wantClass(t, err, runtime.ClassFunction)
	if !strings.Contains(re.Error(), "exceeds 64 bytes") {
		t.Fatalf("error %v, want the limit named", err)
	}
	if _, err := invokeDirect(t, r, fixture(t, "echo"), params, runtime.Limits{MaxOutputBytes: 1 << 10}); err != nil {
		t.Fatalf("under the limit: %v", err)
	}
}
