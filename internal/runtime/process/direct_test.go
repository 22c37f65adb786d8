package process_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
)

// pyValue answers with the activation's whole value, or with what its
// "answer" param holds (raw JSON).
const pyValue = `#!/usr/bin/python3
import json, os, sys
out = os.fdopen(3, "w")
out.write('{"ok":true}\n'); out.flush()
for line in sys.stdin:
    v = json.loads(line)["value"]
    out.write((v["answer"] if "answer" in v else json.dumps({"value": v})) + "\n")
    out.flush()
`

// invokeDirect runs f directly on params (Invocation.Value).
func invokeDirect(tb testing.TB, r runtime.Runtime, f runtime.Function, params string) (runtime.Result, error) {
	tb.Helper()
	return r.Invoke(tb.Context(), &runtime.Invocation{Function: f, Value: json.RawMessage(params),
		Limits: runtime.Limits{Timeout: 20 * time.Second}, ActivationID: "a1"})
}

// Invoked directly, the actionloop "value" is exactly the parameters (no
// object fields, no body) and the result line is the result.
func TestDirect_ValueIsTheParams(t *testing.T) {
	needPython(t)
	r := newRuntime(t, process.Options{})
	f := fn(t, "value", []byte(pyValue))
	res, err := invokeDirect(t, r, f, `{"name":"ada","n":[1,{"x":null}]}`)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Value map[string]any }
	if err := json.Unmarshal(res.Result, &got); err != nil || len(got.Value) != 2 || got.Value["name"] != "ada" {
		t.Fatalf("result %s: want the value to be exactly the parameters", res.Result)
	}
	if res.OutputWritten {
		t.Fatal("a direct invocation wrote an output object")
	}
	// A "body" is not the output convention in direct mode: it is the result.
	res, err = invokeDirect(t, r, f, `{"answer":"{\"body\":\"aGk=\",\"n\":1}"}`)
	if err != nil || string(res.Result) != `{"body":"aGk=","n":1}` || res.OutputWritten {
		t.Fatalf("body result: %s written %v, %v", res.Result, res.OutputWritten, err)
	}
}

func TestDirect_Results(t *testing.T) {
	needPython(t)
	r := newRuntime(t, process.Options{})
	f := fn(t, "value", []byte(pyValue))
	for _, tc := range []struct {
		name, answer string
		class        runtime.Class
		text         string
	}{
		{"ErrorResult", `{"error":"bad input"}`, runtime.ClassFunction, "bad input"},
		{"Array", `[1,2]`, runtime.ClassFunction, runtime.ErrResultNotObject.Error()},
		{"NotJSON", `hello`, runtime.ClassFunction, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(map[string]string{"answer": tc.answer})
			res, err := invokeDirect(t, r, f, string(b))
			var re *runtime.Error
			if !errors.As(err, &re) || re.Class != tc.class || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %v, want class %s naming %q", err, tc.class, tc.text)
			}
			if tc.name == "ErrorResult" && string(res.Result) != tc.answer {
				t.Fatalf("result %s: want the error result kept", res.Result)
			}
		})
	}
	// The process stays usable after each.
	if _, err := invokeDirect(t, r, f, `{}`); err != nil {
		t.Fatal(err)
	}
}
