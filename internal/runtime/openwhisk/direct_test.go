package openwhisk_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk"
)

// A direct invocation's parameters are the remote action's params, as
// they are: no object fields, no body; its result is the result.
func TestInvoke_DirectParams(t *testing.T) {
	s, api := controller(t)
	var got map[string]any
	s.Register("direct", func(_ context.Context, p map[string]any, _ func(string, ...any)) (map[string]any, error) {
		got = p
		if p["fail"] != nil {
			return nil, errors.New("bad input")
		}
		return map[string]any{"sum": p["a"].(float64) + p["b"].(float64)}, nil
	})
	r := newRuntime(t, openwhisk.Options{API: api})
	inv := &runtime.Invocation{Function: function(api, "/_/direct"), Value: json.RawMessage(`{"a":1,"b":2,"nested":{"x":[true]}}`),
		Limits: runtime.Limits{Timeout: 10 * time.Second}}
	res, err := r.Invoke(t.Context(), inv)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Result) != `{"sum":3}` || res.OutputWritten || res.ExternalID == "" {
		t.Fatalf("result %s, output written %v, external id %q", res.Result, res.OutputWritten, res.ExternalID)
	}
	if len(got) != 3 || got["nested"].(map[string]any)["x"].([]any)[0] != true {
		t.Fatalf("the action got %v, want exactly the parameters", got)
	}
	inv.Value = json.RawMessage(`{"fail":1}`)
	_, err = r.Invoke(t.Context(), inv)
	wantClass(t, err, runtime.ClassFunction, "bad input")
}
