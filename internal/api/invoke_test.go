package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
)

// countingRuntime counts the invocations it runs.
type countingRuntime struct {
	nopRuntime
	runs *atomic.Int64
}

func (r countingRuntime) Invoke(ctx context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	r.runs.Add(1)
	return r.nopRuntime.Invoke(ctx, inv)
}

// Issue 19 item 6: invoke on a missing object is a 404 naming bucket and
// key, and records nothing; invoke on an object outside the function's
// trigger is a 400 saying which part does not match, unless any_key.
func TestInvoke_MissingObjectAndOutsideTrigger(t *testing.T) {
	var runs atomic.Int64
	e := newEnv(t, setup{runtimes: map[string]runtime.Runtime{"test": countingRuntime{runs: &runs}}})
	ctx := t.Context()
	store.MakeBucket(ctx, "acme-in") // may exist: the store is the test process's
	store.MakeBucket(ctx, "acme-out")
	for _, o := range []struct{ bucket, key string }{
		{"acme-in", "item6/photos/a.jpg"}, {"acme-in", "item6/docs/a.jpg"}, {"acme-in", "item6/photos/a.png"}, {"acme-out", "item6/photos/b.jpg"},
	} {
		if _, err := store.Put(ctx, o.bucket, o.key, strings.NewReader(o.key), int64(len(o.key)), objects.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.reg.Deploy(ctx, registry.Function{Tenant: "acme", Name: "thumb", Runtime: "test",
		Trigger: registry.Trigger{Bucket: "acme-in", Prefix: "item6/photos/", Suffixes: []string{".jpg", ".jpeg"}},
		Output:  registry.Output{Bucket: "acme-out", KeyTemplate: "out/{key}"}}, []byte("code")); err != nil {
		t.Fatal(err)
	}
	acme := &api.Client{BaseURL: e.ts.URL, Token: acmeToken}
	recorded := func() int {
		recs, err := acme.ListActivations(ctx, api.ActivationQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	for _, tc := range []struct {
		name        string
		bucket, key string
		anyKey      bool
		status      int
		says        []string
		runs        int64 // the total after the call
		records     int
	}{
		{"Missing", "acme-in", "item6/photos/none.jpg", false, 404, []string{"acme-in", "item6/photos/none.jpg", "no such object"}, 0, 0},
		{"MissingAnyKey", "acme-in", "item6/none.txt", true, 404, []string{"acme-in", "item6/none.txt"}, 0, 0},
		{"OutsidePrefix", "acme-in", "item6/docs/a.jpg", false, 400, []string{"prefix", "item6/photos/", "--any-key", "any_key"}, 0, 0},
		{"OutsideSuffix", "acme-in", "item6/photos/a.png", false, 400, []string{"suffix", ".jpg", ".jpeg", "--any-key"}, 0, 0},
		{"OutsideBucket", "acme-out", "item6/photos/b.jpg", false, 400, []string{"bucket", "acme-in", "acme-out", "--any-key"}, 0, 0},
		// Outside the trigger and missing: the trigger is checked first (no read).
		{"OutsideAndMissing", "acme-in", "item6/docs/none.jpg", false, 400, []string{"prefix"}, 0, 0},
		{"AnyKey", "acme-in", "item6/docs/a.jpg", true, 200, nil, 1, 1},
		{"InTrigger", "acme-in", "item6/photos/a.jpg", false, 200, nil, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"function": "thumb", "bucket": tc.bucket, "key": tc.key}
			if tc.anyKey {
				body["any_key"] = true
			}
			code, resp := e.do(t, "POST", "/v1/invoke", acmeToken, body)
			if code != tc.status {
				t.Fatalf("invoke %s/%s (any_key %v): %d %s, want %d", tc.bucket, tc.key, tc.anyKey, code, resp, tc.status)
			}
			for _, s := range tc.says {
				if !strings.Contains(resp, s) {
					t.Errorf("invoke %s/%s: %s; want it to say %s", tc.bucket, tc.key, resp, s)
				}
			}
			if code == 200 {
				var rec activation.Record
				if err := json.Unmarshal([]byte(resp), &rec); err != nil || rec.Decision != activation.Miss {
					t.Errorf("invoke %s/%s: %s, %v; want a run", tc.bucket, tc.key, resp, err)
				}
			}
			if n := runs.Load(); n != tc.runs {
				t.Errorf("after invoke %s/%s the function ran %d times in all, want %d", tc.bucket, tc.key, n, tc.runs)
			}
			if n := recorded(); n != tc.records {
				t.Errorf("after invoke %s/%s %d activations are recorded, want %d", tc.bucket, tc.key, n, tc.records)
			}
		})
	}
	// any_key widens the trigger, never the tenant's buckets.
	if code, body := e.do(t, "POST", "/v1/invoke", acmeToken, map[string]any{"function": "thumb", "bucket": "globex-in", "key": "x.jpg", "any_key": true}); code != http.StatusForbidden {
		t.Errorf("acme's any_key invoke on globex-in: %d %s, want 403", code, body)
	}
	if code, _ := e.do(t, "POST", "/v1/invoke", acmeToken, map[string]any{"function": "thumb", "bucket": "acme-in", "key": "x", "any_key": "yes"}); code != http.StatusBadRequest {
		t.Errorf("any_key a string: %d, want 400", code)
	}
}
