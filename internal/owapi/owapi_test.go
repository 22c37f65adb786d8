package owapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
	_ "github.com/dedupfn/dedupfn/internal/index/bolt"
	"github.com/dedupfn/dedupfn/internal/owapi"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

const (
	guestKey = "11111111-2222-3333-4444-555555555555:guest-secret-key-0123456789"
	acmeKey  = "66666666-7777-8888-9999-000000000000:acme-secret-key-0123456789"
)

// fakeInvoker stands for the pipeline: it records each invocation and
// answers the params, with "n" incremented when present (so a sequence's
// chaining shows), or an application error when params has "fail".
type fakeInvoker struct {
	idx   index.Activations
	mu    sync.Mutex
	calls []pipeline.DirectRequest
	delay time.Duration
}

func (f *fakeInvoker) InvokeDirect(ctx context.Context, inv pipeline.DirectRequest) (activation.Record, error) {
	f.mu.Lock()
	f.calls = append(f.calls, inv)
	f.mu.Unlock()
	time.Sleep(f.delay)
	var p map[string]any
	json.Unmarshal(inv.Params, &p)
	rec := activation.Record{ID: inv.ActivationID, Tenant: inv.Function.Tenant, Function: inv.Function.Name,
		Version: inv.Function.Version, Start: time.Now(), Decision: activation.Miss, Logs: "ran\n"}
	if n, ok := p["n"].(float64); ok {
		p["n"] = n + 1
	}
	if _, ok := p["fail"]; ok {
		rec.Decision, rec.Error, rec.ErrorClass = activation.Error, "it failed", "function"
		p = map[string]any{"error": "it failed"}
	}
	rec.Result, _ = json.Marshal(p)
	return rec, f.idx.AddActivation(ctx, rec)
}

func (f *fakeInvoker) invocations() []pipeline.DirectRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]pipeline.DirectRequest(nil), f.calls...)
}

// fakeDeployer accepts every definition and bucket.
type fakeDeployer struct{}

func (fakeDeployer) Prepare(context.Context, registry.Function, []byte) error { return nil }
func (fakeDeployer) CheckBuckets(context.Context, registry.Function) error    { return nil }

type env struct {
	t   *testing.T
	url string
	reg *registry.Registry
	inv *fakeInvoker
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, func(*owapi.Config) {})
}

// newEnvWith is newEnv with its config changed by mod.
func newEnvWith(t *testing.T, mod func(*owapi.Config)) *env {
	t.Helper()
	idx := testutil.BoltIndex(t)
	reg := registry.New(idx, nil)
	inv := &fakeInvoker{idx: idx}
	cfg := owapi.Config{
		Namespaces: []owapi.Namespace{
			{Name: "guest", Key: guestKey, Admin: true},
			{Name: "acme", Key: acmeKey, Tenant: "acme", Buckets: []string{"acme-in", "acme-out"}},
		},
		Registry: reg, Index: idx, Invoker: inv, Deployer: fakeDeployer{},
		ActionCode: func(kind string, code []byte, binary bool, main string) ([]byte, map[string]string, error) {
			return append([]byte("exe:"), code...), map[string]string{"main": main}, nil
		},
		TenantRuntimes: []string{"wasm"}, MaxCodeBytes: 1 << 20,
	}
	mod(&cfg)
	srv, err := owapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &env{t: t, url: ts.URL, reg: reg, inv: inv}
}

// do sends a request with key (Basic) and returns status, headers and body.
func (e *env) do(key, method, path string, body any) (int, http.Header, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		user, pass, _ := strings.Cut(key, ":")
		req.SetBasicAuth(user, pass)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// want fails unless status is want, and decodes the body into v.
func (e *env) want(key, method, path string, body any, want int, v any) http.Header {
	e.t.Helper()
	status, h, b := e.do(key, method, path, body)
	if status != want {
		e.t.Fatalf("%s %s = %d %s, want %d", method, path, status, b, want)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return h
}

func wasmAction(params map[string]any) map[string]any {
	a := map[string]any{"exec": map[string]any{"kind": "wasm", "binary": true, "code": base64.StdEncoding.EncodeToString([]byte("\x00asm fake"))}}
	if params != nil {
		var kv []map[string]any
		for k, v := range params {
			kv = append(kv, map[string]any{"key": k, "value": v})
		}
		a["parameters"] = kv
	}
	return a
}

type errBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func TestNew_RefusesKeys(t *testing.T) {
	idx := testutil.BoltIndex(t)
	for _, tc := range []struct {
		name string
		ns   []owapi.Namespace
		want string
	}{
		{"WellKnownGuestKey", []owapi.Namespace{{Name: "guest", Key: owapi.WellKnownGuestKey, Admin: true}}, "well-known"},
		{"ShortKey", []owapi.Namespace{{Name: "guest", Key: "a:b", Admin: true}}, "UUID:KEY"},
		{"NoColon", []owapi.Namespace{{Name: "guest", Key: "abcdefghijklmnopqrstuvwxyz", Admin: true}}, "UUID:KEY"},
		{"SameKeyTwice", []owapi.Namespace{{Name: "guest", Key: guestKey, Admin: true}, {Name: "acme", Key: guestKey, Tenant: "acme"}}, "another namespace"},
		{"NoTenant", []owapi.Namespace{{Name: "nobody", Key: acmeKey}}, "neither"},
		{"SystemName", []owapi.Namespace{{Name: "whisk.system", Key: acmeKey, Admin: true}}, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := owapi.New(owapi.Config{Namespaces: tc.ns, Registry: registry.New(idx, nil), Index: idx, Invoker: &fakeInvoker{}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, key, path string
		want            int
	}{
		{"NoAuth", "", "/api/v1/namespaces", 401},
		{"WrongKey", guestKey + "x", "/api/v1/namespaces", 401},
		{"OtherUUIDSameKey", "00000000-2222-3333-4444-555555555555:guest-secret-key-0123456789", "/api/v1/namespaces", 401},
		{"Guest", guestKey, "/api/v1/namespaces", 200},
		{"Tenant", acmeKey, "/api/v1/namespaces/_/actions", 200},
		{"TenantOwnByName", acmeKey, "/api/v1/namespaces/acme/actions", 200},
		{"TenantOtherNamespace", acmeKey, "/api/v1/namespaces/guest/actions", 403},
		{"GuestTenantNamespace", guestKey, "/api/v1/namespaces/acme/actions", 403},
		{"UnknownNamespace", acmeKey, "/api/v1/namespaces/nobody/triggers", 403},
		{"SystemReadable", acmeKey, "/api/v1/namespaces/whisk.system/actions/utils/echo", 200},
		{"SystemNotForTriggers", acmeKey, "/api/v1/namespaces/whisk.system/triggers", 403},
		{"UnknownPath", guestKey, "/api/v1/nope", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, b := e.do(tc.key, "GET", tc.path, nil)
			if status != tc.want {
				t.Fatalf("GET %s = %d %s, want %d", tc.path, status, b, tc.want)
			}
			if status >= 400 {
				var eb errBody
				if json.Unmarshal(b, &eb) != nil || eb.Error == "" || len(eb.Code) != 32 {
					t.Fatalf("error body %s, want OpenWhisk's {error, code}", b)
				}
			}
		})
	}
	var ns []string
	e.want(acmeKey, "GET", "/api/v1/namespaces", nil, 200, &ns)
	if len(ns) != 1 || ns[0] != "acme" {
		t.Fatalf("namespaces of acme = %v, want [acme]", ns)
	}
}

type actionJSON struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	Exec      struct {
		Kind       string   `json:"kind"`
		Code       *string  `json:"code"`
		Binary     bool     `json:"binary"`
		Components []string `json:"components"`
	} `json:"exec"`
	Parameters  []json.RawMessage `json:"parameters"`
	Annotations []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	} `json:"annotations"`
}

func (a actionJSON) annotation(key string) string {
	for _, kv := range a.Annotations {
		if kv.Key == key {
			return string(kv.Value)
		}
	}
	return ""
}

func TestActions_CRUD(t *testing.T) {
	e := newEnv(t)
	const path = "/api/v1/namespaces/_/actions/hello"
	var a actionJSON
	e.want(acmeKey, "PUT", path, wasmAction(map[string]any{"greeting": "hi", "n": 3}), 200, &a)
	if a.Name != "hello" || a.Namespace != "acme" || a.Version != "0.0.1" || a.Exec.Kind != "wasm" || a.Exec.Code == nil {
		t.Fatalf("created %+v", a)
	}
	if !strings.Contains(a.annotation("dedupfn"), `"version":"`) || !strings.Contains(a.annotation("dedupfn"), `"dedup":true`) {
		t.Fatalf("dedupfn annotation %s, want the dedup version", a.annotation("dedupfn"))
	}
	fn, err := e.reg.Get(t.Context(), "acme", "ow.hello")
	if err != nil || fn.Runtime != "wasm" || fn.NoDedup {
		t.Fatalf("registry function = %+v, %v", fn, err)
	}
	var eb errBody
	e.want(acmeKey, "PUT", path, wasmAction(nil), 409, &eb)
	e.want(acmeKey, "PUT", path+"?overwrite=true", map[string]any{"annotations": []map[string]any{{"key": "dedupfn-dedup", "value": false}}}, 200, &a)
	if a.Version != "0.0.2" || len(a.Parameters) != 2 {
		t.Fatalf("updated version %s params %d, want 0.0.2 with the params kept", a.Version, len(a.Parameters))
	}
	if fn, _ := e.reg.Get(t.Context(), "acme", "ow.hello"); !fn.NoDedup {
		t.Fatal("dedupfn-dedup: false did not make the function NoDedup")
	}
	var noCode actionJSON
	e.want(acmeKey, "GET", path+"?code=false", nil, 200, &noCode)
	if noCode.Exec.Code != nil {
		t.Fatalf("code=false returned code %q", *noCode.Exec.Code)
	}
	var list []actionJSON
	e.want(acmeKey, "GET", "/api/v1/namespaces/_/actions?limit=1", nil, 200, &list)
	if len(list) != 1 || list[0].Name != "hello" {
		t.Fatalf("list = %+v", list)
	}
	e.want(guestKey, "GET", "/api/v1/namespaces/_/actions", nil, 200, &list)
	if len(list) != 0 {
		t.Fatalf("guest lists acme's actions: %+v", list)
	}
	e.want(acmeKey, "DELETE", path, nil, 200, nil)
	e.want(acmeKey, "GET", path, nil, 404, &eb)
	if eb.Error != "The requested resource does not exist." {
		t.Fatalf("404 body %+v", eb)
	}
	if _, err := e.reg.Get(t.Context(), "acme", "ow.hello"); err == nil {
		t.Fatal("the registry function outlived its action")
	}
}

func TestActions_Kinds(t *testing.T) {
	e := newEnv(t)
	node := map[string]any{"exec": map[string]any{"kind": "nodejs:default", "code": "function main(p) { return p }"}}
	var eb errBody
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/js", node, 403, &eb)
	if !strings.Contains(eb.Error, "kind 'nodejs:20'") {
		t.Fatalf("403 body %+v", eb)
	}
	var a actionJSON
	e.want(guestKey, "PUT", "/api/v1/namespaces/_/actions/js", node, 200, &a)
	if a.Exec.Kind != "nodejs:20" || a.Exec.Code == nil || *a.Exec.Code != "function main(p) { return p }" {
		t.Fatalf("created %+v", a)
	}
	if fn, err := e.reg.Get(t.Context(), registry.DefaultTenant, "ow.js"); err != nil || fn.Runtime != "process" {
		t.Fatalf("registry function %+v, %v", fn, err)
	}
	for _, limits := range []map[string]any{{"memory": 4096}, {"timeout": 300_001}, {"concurrency": 2}} {
		a := wasmAction(nil)
		a["limits"] = limits
		e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/big", a, 400, nil)
	}
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/big", wasmAction(map[string]any{"x": strings.Repeat("p", 70<<10)}), 413, nil)
	e.want(guestKey, "PUT", "/api/v1/namespaces/_/actions/x", map[string]any{"exec": map[string]any{"kind": "cobol:85", "code": "x"}}, 400, &eb)
	if !strings.Contains(eb.Error, "'cobol:85' is not supported") {
		t.Fatalf("400 body %+v", eb)
	}
}

type activationJSON struct {
	ActivationID string `json:"activationId"`
	Namespace    string `json:"namespace"`
	Name         string `json:"name"`
	Version      string `json:"version"`
	Cause        string `json:"cause"`
	Response     struct {
		Status     string          `json:"status"`
		StatusCode int             `json:"statusCode"`
		Success    bool            `json:"success"`
		Result     json.RawMessage `json:"result"`
	} `json:"response"`
	Logs        []string `json:"logs"`
	Annotations []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	} `json:"annotations"`
}

func TestInvoke(t *testing.T) {
	e := newEnv(t)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/packages/pkg", map[string]any{"parameters": []map[string]any{{"key": "a", "value": "pkg"}, {"key": "b", "value": "pkg"}}}, 200, nil)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/pkg/act", wasmAction(map[string]any{"b": "action", "c": "action"}), 200, nil)
	var rec activationJSON
	h := e.want(acmeKey, "POST", "/api/v1/namespaces/_/actions/pkg/act?blocking=true", map[string]any{"c": "payload", "d": []int{1}}, 200, &rec)
	if h.Get("x-openwhisk-activation-id") != rec.ActivationID || len(rec.ActivationID) != 32 {
		t.Fatalf("activation id %q, header %q", rec.ActivationID, h.Get("x-openwhisk-activation-id"))
	}
	if got := string(rec.Response.Result); got != `{"a":"pkg","b":"action","c":"payload","d":[1]}` {
		t.Fatalf("result %s, want package < action < payload", got)
	}
	if !rec.Response.Success || rec.Response.Status != "success" || rec.Name != "act" || rec.Namespace != "acme" || rec.Version != "0.0.1" {
		t.Fatalf("activation %+v", rec)
	}
	var paths []string
	for _, a := range rec.Annotations {
		paths = append(paths, a.Key+"="+string(a.Value))
	}
	if all := strings.Join(paths, " "); !strings.Contains(all, `path="acme/pkg/act"`) || !strings.Contains(all, `kind="wasm"`) || !strings.Contains(all, `dedupfn={"decision":"miss"`) {
		t.Fatalf("annotations %s", all)
	}

	var result map[string]any
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/actions/pkg/act?blocking=true&result=true", map[string]any{"x": 1}, 200, &result)
	if result["x"] != float64(1) || result["a"] != "pkg" {
		t.Fatalf("result only = %v", result)
	}
	var accepted map[string]string
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/actions/pkg/act", nil, 202, &accepted)
	if len(accepted["activationId"]) != 32 {
		t.Fatalf("202 body %v", accepted)
	}
	testutil.Eventually(t, 5*time.Second, "the non-blocking activation", func() bool {
		status, _, _ := e.do(acmeKey, "GET", "/api/v1/namespaces/_/activations/"+accepted["activationId"], nil)
		return status == 200
	})
	e.want(guestKey, "GET", "/api/v1/namespaces/_/activations/"+accepted["activationId"], nil, 404, nil)

	e.want(acmeKey, "POST", "/api/v1/namespaces/_/actions/pkg/act?blocking=true", map[string]any{"fail": true}, 502, &rec)
	if rec.Response.Success || rec.Response.Status != "application error" || !strings.Contains(string(rec.Response.Result), "it failed") {
		t.Fatalf("failed activation %+v", rec.Response)
	}

	e.inv.delay = 300 * time.Millisecond
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/actions/pkg/act?blocking=true&timeout=50", nil, 202, &accepted)

	var list []activationJSON
	e.want(acmeKey, "GET", "/api/v1/namespaces/_/activations?limit=2&docs=true", nil, 200, &list)
	if len(list) != 2 || list[0].Response.Status == "" {
		t.Fatalf("list = %+v", list)
	}
	e.want(acmeKey, "GET", "/api/v1/namespaces/_/activations?name=pkg/act&limit=200", nil, 200, &list)
	if len(list) < 4 {
		t.Fatalf("list by name: %d records, want >= 4", len(list))
	}
	var logs map[string][]string
	e.want(acmeKey, "GET", "/api/v1/namespaces/_/activations/"+list[0].ActivationID+"/logs", nil, 200, &logs)
	if len(logs["logs"]) != 1 || logs["logs"][0] != "ran" {
		t.Fatalf("logs %v", logs)
	}
	e.want(acmeKey, "GET", "/api/v1/namespaces/_/activations?limit=201", nil, 400, nil)
	e.want(guestKey, "GET", "/api/v1/namespaces/_/activations?limit=200", nil, 200, &list)
	if len(list) != 0 {
		t.Fatalf("guest lists acme's activations: %d", len(list))
	}
	e.want(acmeKey, "GET", "/api/v1/namespaces/_/activations?limit=200&since="+strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10), nil, 200, &list)
	if len(list) != 0 {
		t.Fatalf("since an hour ahead: %d activations", len(list))
	}
	e.want(acmeKey, "GET", "/api/v1/namespaces/_/activations?limit=200&upto=1000", nil, 200, &list)
	if len(list) != 0 {
		t.Fatalf("upto 1970: %d activations", len(list))
	}
}

func TestBuiltins(t *testing.T) {
	e := newEnv(t)
	var rec activationJSON
	e.want(acmeKey, "POST", "/api/v1/namespaces/whisk.system/actions/utils/echo?blocking=true", map[string]any{"hi": 1}, 200, &rec)
	calls := e.inv.invocations()
	if len(calls) != 1 || calls[0].Function.Tenant != "acme" || calls[0].Function.Runtime != owapi.BuiltinRuntime || calls[0].Function.NoDedup {
		t.Fatalf("invocations %+v", calls)
	}
	e.want(acmeKey, "POST", "/api/v1/namespaces/whisk.system/actions/utils/date?blocking=true", nil, 200, &rec)
	if calls := e.inv.invocations(); !calls[1].Function.NoDedup {
		t.Fatal("utils/date is deduplicated")
	}
	var pkgs []map[string]any
	e.want(acmeKey, "GET", "/api/v1/namespaces/whisk.system/packages", nil, 200, &pkgs)
	if len(pkgs) != 2 {
		t.Fatalf("whisk.system packages %v", pkgs)
	}
	e.want(acmeKey, "PUT", "/api/v1/namespaces/whisk.system/actions/utils/mine", wasmAction(nil), 403, nil)
	e.want(acmeKey, "DELETE", "/api/v1/namespaces/whisk.system/actions/utils/echo", nil, 403, nil)
}

func TestSequence(t *testing.T) {
	e := newEnv(t)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/inc", wasmAction(nil), 200, nil)
	seq := map[string]any{"exec": map[string]any{"kind": "sequence", "components": []string{"inc", "/_/inc", "/whisk.system/utils/echo"}}}
	var a actionJSON
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/seq", seq, 200, &a)
	if a.Exec.Kind != "sequence" || strings.Join(a.Exec.Components, ",") != "/acme/inc,/acme/inc,/whisk.system/utils/echo" {
		t.Fatalf("sequence %+v", a.Exec)
	}
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/bad", map[string]any{"exec": map[string]any{"kind": "sequence", "components": []string{"nope"}}}, 400, nil)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/other", map[string]any{"exec": map[string]any{"kind": "sequence", "components": []string{"/guest/x"}}}, 400, nil)
	var rec activationJSON
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/actions/seq?blocking=true", map[string]any{"n": 0}, 200, &rec)
	if string(rec.Response.Result) != `{"n":3}` || len(rec.Logs) != 3 {
		t.Fatalf("sequence activation %+v", rec)
	}
	calls := e.inv.invocations()
	for i, c := range calls {
		if c.Cause != rec.ActivationID || c.ActivationID != rec.Logs[i] {
			t.Fatalf("component %d: cause %q id %q, want cause %q id %q", i, c.Cause, c.ActivationID, rec.ActivationID, rec.Logs[i])
		}
	}
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/actions/seq?blocking=true", map[string]any{"fail": 1}, 502, &rec)
	if len(rec.Logs) != 1 {
		t.Fatalf("a failed component did not stop the sequence: logs %v", rec.Logs)
	}
}

func TestTriggersAndRules(t *testing.T) {
	e := newEnv(t)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/act", wasmAction(map[string]any{"from": "action"}), 200, nil)
	var trig map[string]any
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/triggers/t", map[string]any{"parameters": []map[string]any{{"key": "from", "value": "trigger"}}}, 200, &trig)
	if trig["version"] != "0.0.1" {
		t.Fatalf("trigger %v", trig)
	}
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/triggers/t", nil, 204, nil)
	var rule map[string]any
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/rules/r", map[string]any{"trigger": "/acme/t", "action": "/acme/act"}, 200, &rule)
	if rule["status"] != "active" || rule["action"].(map[string]any)["path"] != "acme" {
		t.Fatalf("rule %v", rule)
	}
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/rules/r2", map[string]any{"trigger": "/acme/nope", "action": "/acme/act"}, 404, nil)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/rules/r3", map[string]any{"trigger": "/acme/t", "action": "/guest/act"}, 403, nil)
	var fired map[string]string
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/triggers/t", map[string]any{"p": 1}, 202, &fired)
	testutil.Eventually(t, 5*time.Second, "the rule's invocation", func() bool { return len(e.inv.invocations()) == 1 })
	c := e.inv.invocations()[0]
	if c.Cause != fired["activationId"] || string(c.Params) != `{"from":"trigger","p":1}` {
		t.Fatalf("rule invocation cause %q params %s", c.Cause, c.Params)
	}
	var rec activationJSON
	e.want(acmeKey, "GET", "/api/v1/namespaces/_/activations/"+fired["activationId"], nil, 200, &rec)
	if rec.Name != "t" || len(rec.Logs) != 1 || !strings.Contains(rec.Logs[0], c.ActivationID) {
		t.Fatalf("trigger activation %+v", rec)
	}
	e.want(acmeKey, "GET", "/api/v1/namespaces/_/triggers/t", nil, 200, &trig)
	if trig["rules"].(map[string]any)["acme/r"] == nil {
		t.Fatalf("trigger's rules %v", trig["rules"])
	}
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/rules/r", map[string]any{"status": "inactive"}, 200, nil)
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/triggers/t", nil, 204, nil)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/rules/r?overwrite=true", map[string]any{"trigger": "/acme/t", "action": "/whisk.system/utils/echo"}, 200, &rule)
	e.want(acmeKey, "DELETE", "/api/v1/namespaces/_/triggers/t", nil, 200, nil)
	e.want(acmeKey, "DELETE", "/api/v1/namespaces/_/rules/r", nil, 200, nil)
}

func TestObjectsFeed(t *testing.T) {
	e := newEnv(t)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/thumb", wasmAction(map[string]any{"size": 64}), 200, nil)
	feed := func(event string, params map[string]any) map[string]any {
		p := map[string]any{"lifecycleEvent": event, "triggerName": "/_/objs", "authKey": acmeKey}
		for k, v := range params {
			p[k] = v
		}
		return p
	}
	const feedPath = "/api/v1/namespaces/whisk.system/actions/dedupfn/objects?blocking=true"
	e.want(acmeKey, "POST", feedPath, feed("CREATE", map[string]any{"bucket": "guest-in", "output_bucket": "acme-out"}), 403, nil)
	e.want(acmeKey, "POST", feedPath, feed("CREATE", map[string]any{"bucket": "acme-in", "output_bucket": "acme-in"}), 400, nil)
	e.want(acmeKey, "POST", feedPath, feed("CREATE", map[string]any{"bucket": "acme-in", "output_bucket": "acme-out", "output_key": "{nope}"}), 400, nil)
	e.want(acmeKey, "POST", feedPath, feed("CREATE", map[string]any{"bucket": "acme-in", "output_bucket": "acme-out", "on_input_delete": "shred"}), 400, nil)
	var rec activationJSON
	e.want(acmeKey, "POST", feedPath, feed("CREATE", map[string]any{"bucket": "acme-in", "suffix": ".jpg", "output_bucket": "acme-out", "output_key": "thumbs/{key}", "on_input_delete": "delete"}), 200, &rec)
	if strings.Contains(string(rec.Response.Result), "secret") {
		t.Fatalf("the feed's activation holds the auth key: %s", rec.Response.Result)
	}
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/rules/r", map[string]any{"trigger": "/acme/objs", "action": "/acme/thumb"}, 200, nil)
	fn, err := e.reg.Get(t.Context(), "acme", "owrule.r")
	if err != nil || fn.Trigger.Bucket != "acme-in" || fn.Output.KeyTemplate != "thumbs/{key}" || fn.Runtime != "wasm" || fn.Params["size"] != "64" || fn.OnInputDelete != "delete" {
		t.Fatalf("bucket function %+v, %v", fn, err)
	}
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/rules/r", map[string]any{"status": "inactive"}, 200, nil)
	if _, err := e.reg.Get(t.Context(), "acme", "owrule.r"); err == nil {
		t.Fatal("a disabled rule kept its bucket function")
	}
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/rules/r", map[string]any{"status": "active"}, 200, nil)
	if _, err := e.reg.Get(t.Context(), "acme", "owrule.r"); err != nil {
		t.Fatal("an enabled rule has no bucket function")
	}
	var cfg map[string]any
	e.want(acmeKey, "POST", feedPath+"&result=true", feed("READ", nil), 200, &cfg)
	if cfg["config"].(map[string]any)["bucket"] != "acme-in" {
		t.Fatalf("READ %v", cfg)
	}
	e.want(acmeKey, "DELETE", "/api/v1/namespaces/_/rules/r", nil, 200, nil)
	if _, err := e.reg.Get(t.Context(), "acme", "owrule.r"); err == nil {
		t.Fatal("a deleted rule kept its bucket function")
	}
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/rules/r", map[string]any{"trigger": "/acme/objs", "action": "/acme/thumb"}, 200, nil)
	e.want(acmeKey, "DELETE", "/api/v1/namespaces/_/actions/thumb", nil, 200, nil)
	if _, err := e.reg.Get(t.Context(), "acme", "owrule.r"); err == nil {
		t.Fatal("a deleted action's rule kept its bucket function")
	}
	e.want(guestKey, "POST", feedPath, map[string]any{"lifecycleEvent": "DELETE", "triggerName": "/acme/objs"}, 403, nil)
}

// A zip sent as base64 code without binary (as the npm client sends a
// Buffer) is binary, as OpenWhisk infers it.
func TestActions_ZipInferredBinary(t *testing.T) {
	e := newEnv(t)
	zip := base64.StdEncoding.EncodeToString([]byte("PK\x03\x04 rest of a zip"))
	var a actionJSON
	e.want(guestKey, "PUT", "/api/v1/namespaces/_/actions/z", map[string]any{"exec": map[string]any{"kind": "nodejs:20", "code": zip}}, 200, &a)
	if !a.Exec.Binary || a.Exec.Code == nil || *a.Exec.Code != zip {
		t.Fatalf("exec %+v, want binary with the code as sent", a.Exec)
	}
	e.want(guestKey, "PUT", "/api/v1/namespaces/_/actions/s", map[string]any{"exec": map[string]any{"kind": "nodejs:20", "code": "function main() {}"}}, 200, &a)
	if a.Exec.Binary {
		t.Fatal("source code made binary")
	}
}

// A namespace's invocations in flight are bounded (429 beyond), and
// another namespace's are not taken by them.
func TestInvoke_InFlightBound(t *testing.T) {
	e := newEnvWith(t, func(c *owapi.Config) { c.MaxInFlight = 2 })
	e.inv.delay = 500 * time.Millisecond
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/slow", wasmAction(nil), 200, nil)
	e.want(guestKey, "PUT", "/api/v1/namespaces/_/actions/slow", wasmAction(nil), 200, nil)
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/actions/slow", nil, 202, nil)
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/actions/slow", nil, 202, nil)
	var eb errBody
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/actions/slow", nil, 429, &eb)
	if !strings.Contains(eb.Error, "Too many concurrent requests") {
		t.Fatalf("429 body %+v", eb)
	}
	e.want(guestKey, "POST", "/api/v1/namespaces/_/actions/slow", nil, 202, nil)
	testutil.Eventually(t, 5*time.Second, "a slot free again", func() bool {
		st, _, _ := e.do(acmeKey, "POST", "/api/v1/namespaces/_/actions/slow", nil)
		return st == 202
	})
}

// Sequences that name each other stop after 50 invocations in all,
// however they nest.
func TestSequence_Bounded(t *testing.T) {
	e := newEnv(t)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/inc", wasmAction(nil), 200, nil)
	seq := func(c ...string) map[string]any {
		return map[string]any{"exec": map[string]any{"kind": "sequence", "components": c}}
	}
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/b", seq("inc"), 200, nil)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/a", seq("b", "b"), 200, nil)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/b?overwrite=true", seq("a", "a"), 200, nil)
	var rec activationJSON
	e.want(acmeKey, "POST", "/api/v1/namespaces/_/actions/a?blocking=true&timeout=20000", nil, 502, &rec)
	if !strings.Contains(string(rec.Response.Result), "Too many actions") {
		t.Fatalf("result %s, want the sequence bound", rec.Response.Result)
	}
	if n := len(e.inv.invocations()); n != 0 {
		t.Fatalf("%d actions ran, want none (a and b hold only each other)", n)
	}
}

// A function deployed with fn deploy under an action's or a rule's
// function name is not overwritten by the API.
func TestActions_FunctionNameTaken(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"ow.mine", "owrule.r"} {
		fn := registry.Function{Tenant: "acme", Name: name, Runtime: "wasm", Trigger: registry.Trigger{Bucket: "acme-in"}, Output: registry.Output{Bucket: "acme-out"}}
		if _, err := e.reg.Deploy(t.Context(), fn, []byte("code")); err != nil {
			t.Fatal(err)
		}
	}
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/mine", wasmAction(nil), 409, nil)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/act", wasmAction(nil), 200, nil)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/actions/act?overwrite=true", wasmAction(nil), 200, nil)
	feed := map[string]any{"lifecycleEvent": "CREATE", "triggerName": "/_/objs", "bucket": "acme-in", "output_bucket": "acme-out", "output_key": "o/{key}"}
	e.want(acmeKey, "POST", "/api/v1/namespaces/whisk.system/actions/dedupfn/objects?blocking=true", feed, 200, nil)
	e.want(acmeKey, "PUT", "/api/v1/namespaces/_/rules/r", map[string]any{"trigger": "objs", "action": "act"}, 409, nil)
	if fn, err := e.reg.Get(t.Context(), "acme", "owrule.r"); err != nil || fn.Output.KeyTemplate != "{key}" {
		t.Fatalf("fn deploy's owrule.r after the rule: %+v, %v", fn, err)
	}
}
