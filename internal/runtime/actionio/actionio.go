// Package actionio is the object-passing convention shared by the runtimes
// that run OpenWhisk-style actions (process and openwhisk): what an action
// receives as parameters, and how its result can carry the output object.
package actionio

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"

	"github.com/dedupfn/dedupfn/internal/runtime"
)

// DefaultInlineLimit is the largest input passed inline as "body".
const DefaultInlineLimit = 1 << 20

// Params builds an action's parameters: the deploy params, then the
// object's fields (bucket, key, size, etag, sha256, content_type, get_url,
// put_url, ...), then the input itself, base64-encoded as "body", when it
// is at most inlineLimit bytes (a negative limit never inlines).
func Params(inv *runtime.Invocation, inlineLimit int64) (map[string]any, error) {
	v := map[string]any{}
	for k, p := range inv.Params {
		v[k] = p
	}
	b, err := json.Marshal(inv.Object)
	if err != nil {
		return nil, fmt.Errorf("encode object: %w", err)
	}
	var ref map[string]any
	if err := json.Unmarshal(b, &ref); err != nil {
		return nil, fmt.Errorf("encode object: %w", err)
	}
	for k, x := range ref {
		v[k] = x
	}
	if inv.Input != nil && inlineLimit >= 0 && inv.Object.Size <= inlineLimit {
		data, err := io.ReadAll(io.LimitReader(inv.Input, inlineLimit+1))
		if err != nil {
			return nil, fmt.Errorf("read input: %w", err)
		}
		if int64(len(data)) <= inlineLimit {
			v["body"] = base64.StdEncoding.EncodeToString(data)
		}
	}
	return v, nil
}

// Output applies the output convention to a successful result: a JSON
// object with a base64 string "body" carries the output object, which is
// written to inv.Output (OutputWritten is set) and removed from the result
// so the index does not store it twice. Any other result is returned as
// it is.
func Output(res runtime.Result, inv *runtime.Invocation) (runtime.Result, error) {
	var obj map[string]json.RawMessage
	if inv.Output == nil || json.Unmarshal(res.Result, &obj) != nil {
		return res, nil
	}
	var body string
	raw, ok := obj["body"]
	if !ok || json.Unmarshal(raw, &body) != nil {
		return res, nil
	}
	data, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return res, nil // not base64: an ordinary string field
	}
	if m := inv.Limits.MaxOutputBytes; m > 0 && int64(len(data)) > m {
		return res, runtime.Errorf(runtime.ClassFunction, "output of %d bytes exceeds the limit of %d", len(data), m)
	}
	if _, err := inv.Output.Write(data); err != nil {
		return res, runtime.Errorf(runtime.ClassPlatform, "write output: %v", err)
	}
	delete(obj, "body")
	rest, err := json.Marshal(obj)
	if err != nil {
		return res, runtime.Errorf(runtime.ClassPlatform, "encode result: %v", err)
	}
	res.Result = rest
	res.OutputWritten = true
	return res, nil
}
