package openwhisk_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk/owtest"
	"github.com/dedupfn/dedupfn/internal/runtime/runtimetest"
)

// controller starts an owtest controller with the suite's actions.
func controller(tb testing.TB) (*owtest.Server, string) {
	tb.Helper()
	s := owtest.New()
	srv := httptest.NewServer(s)
	tb.Cleanup(func() { srv.Close(); s.Close() })
	body := func(p map[string]any) []byte {
		b, _ := base64.StdEncoding.DecodeString(p["body"].(string))
		return b
	}
	s.Register(runtimetest.Upper, func(_ context.Context, p map[string]any, logf func(string, ...any)) (map[string]any, error) {
		logf("upper %v/%v", p["bucket"], p["key"])
		return map[string]any{"body": base64.StdEncoding.EncodeToString(bytes.ToUpper(body(p)))}, nil
	})
	s.Register(runtimetest.Param, func(_ context.Context, p map[string]any, _ func(string, ...any)) (map[string]any, error) {
		g, _ := p["greeting"].(string)
		return map[string]any{"body": base64.StdEncoding.EncodeToString(append([]byte(g), body(p)...))}, nil
	})
	s.Register(runtimetest.Fail, func(_ context.Context, _ map[string]any, logf func(string, ...any)) (map[string]any, error) {
		logf("boom")
		return nil, errors.New("boom")
	})
	s.Register(runtimetest.Hang, func(ctx context.Context, _ map[string]any, _ func(string, ...any)) (map[string]any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	s.Register("slow", func(ctx context.Context, p map[string]any, _ func(string, ...any)) (map[string]any, error) {
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
		}
		return map[string]any{"slow": true, "key": p["key"]}, nil
	})
	return s, srv.URL
}

func newRuntime(tb testing.TB, opts openwhisk.Options) *openwhisk.Runtime {
	tb.Helper()
	if opts.Auth == "" {
		opts.Auth = owtest.DefaultAuth
	}
	if opts.ThrottleBackoff == 0 {
		opts.ThrottleBackoff = 20 * time.Millisecond
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	r, err := openwhisk.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func function(api, action string) runtime.Function {
	return runtime.Function{Tenant: "default", Name: "fn-" + action, Version: "v1",
		Config: map[string]string{openwhisk.ConfigAction: action, openwhisk.ConfigAPI: api}}
}

func invoke(tb testing.TB, r *openwhisk.Runtime, f runtime.Function, mod ...func(*runtime.Invocation)) (runtime.Result, string, error) {
	tb.Helper()
	var out bytes.Buffer
	inv := &runtime.Invocation{
		Function: f,
		Params:   map[string]string{"greeting": "hi "},
		Input:    strings.NewReader("input"),
		Object: runtime.ObjectRef{Bucket: "in", Key: "a.txt", Size: 5, SHA256: "abc",
			GetURL: "http://s3.example/get", PutURL: "http://s3.example/put"},
		Output: &out,
		Limits: runtime.Limits{Timeout: 10 * time.Second},
	}
	for _, m := range mod {
		m(inv)
	}
	res, err := r.Invoke(tb.Context(), inv)
	return res, out.String(), err
}

func wantClass(tb testing.TB, err error, c runtime.Class, text string) {
	tb.Helper()
	var re *runtime.Error
	if !errors.As(err, &re) || re.Class != c {
		tb.Fatalf("error = %v, want a %s error", err, c)
	}
	if !strings.Contains(err.Error(), text) {
		tb.Fatalf("error = %v, want it to contain %q", err, text)
	}
}

func TestConformance(t *testing.T) {
	var api string
	runtimetest.Run(t, runtimetest.Harness{
		New: func(tb testing.TB) runtime.Runtime {
			_, api = controller(tb)
			return newRuntime(tb, openwhisk.Options{API: api, InlineLimit: 8 << 20})
		},
		Fixture: func(_ testing.TB, name string) runtime.Function {
			return function(api, name)
		},
		// Memory is the remote platform's business.
		NoMemoryLimit: true,
	})
}

func TestInvoke(t *testing.T) {
	s, api := controller(t)
	r := newRuntime(t, openwhisk.Options{API: api})
	var ids []string
	res, out, err := invoke(t, r, function(api, "/_/upper"), func(inv *runtime.Invocation) {
		inv.OnExternalID = func(id string) { ids = append(ids, id) }
	})
	if err != nil {
		t.Fatal(err)
	}
	if out != "INPUT" || !res.OutputWritten {
		t.Fatalf("output %q written %v, want INPUT", out, res.OutputWritten)
	}
	if res.ExternalID == "" || len(ids) != 1 || ids[0] != res.ExternalID {
		t.Fatalf("external id %q, reported %v", res.ExternalID, ids)
	}
	if !strings.Contains(res.Logs, "upper in/a.txt") {
		t.Fatalf("logs = %q", res.Logs)
	}
	if s.Invokes("upper") != 1 {
		t.Fatalf("invokes = %d", s.Invokes("upper"))
	}
}

func TestParamsCarryObjectRef(t *testing.T) {
	s, api := controller(t)
	var got map[string]any
	s.Register("capture", func(_ context.Context, p map[string]any, _ func(string, ...any)) (map[string]any, error) {
		got = p
		return map[string]any{"ok": true}, nil
	})
	r := newRuntime(t, openwhisk.Options{API: api, InlineLimit: 4})
	res, out, err := invoke(t, r, function(api, "capture"))
	if err != nil {
		t.Fatal(err)
	}
	if out != "" || res.OutputWritten || string(res.Result) != `{"ok":true}` {
		t.Fatalf("result %s output %q written %v", res.Result, out, res.OutputWritten)
	}
	want := map[string]any{"bucket": "in", "key": "a.txt", "size": 5.0, "sha256": "abc",
		"get_url": "http://s3.example/get", "put_url": "http://s3.example/put", "greeting": "hi "}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("param %s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["body"]; ok {
		t.Error("a 5-byte input was inlined over a 4-byte limit")
	}
}

func TestAcceptedThenPolled(t *testing.T) {
	s, api := controller(t)
	s.SetBlockingTimeout(10 * time.Millisecond)
	r := newRuntime(t, openwhisk.Options{API: api})
	var reported string
	var reportedAt, finishedAt time.Time
	res, _, err := invoke(t, r, function(api, "slow"), func(inv *runtime.Invocation) {
		inv.OnExternalID = func(id string) { reported, reportedAt = id, time.Now() }
	})
	finishedAt = time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.Result), `"slow":true`) || res.ExternalID != reported || reported == "" {
		t.Fatalf("result %s id %q reported %q", res.Result, res.ExternalID, reported)
	}
	if finishedAt.Sub(reportedAt) < 200*time.Millisecond {
		t.Fatal("the activation id was not reported before the result arrived")
	}
	if n := s.Invokes("slow"); n != 1 {
		t.Fatalf("invoked %d times, want 1", n)
	}
}

func TestApplicationError(t *testing.T) {
	_, api := controller(t)
	r := newRuntime(t, openwhisk.Options{API: api})
	res, _, err := invoke(t, r, function(api, runtimetest.Fail))
	wantClass(t, err, runtime.ClassFunction, "application error: boom")
	if res.ExternalID == "" || !strings.Contains(res.Logs, "boom") {
		t.Fatalf("result %+v: want the activation id and logs", res)
	}
}

func TestThrottledThenRetried(t *testing.T) {
	s, api := controller(t)
	s.Throttle(3)
	r := newRuntime(t, openwhisk.Options{API: api})
	_, out, err := invoke(t, r, function(api, "upper"))
	if err != nil || out != "INPUT" {
		t.Fatalf("out %q err %v", out, err)
	}
	if n := s.Invokes("upper"); n != 1 {
		t.Fatalf("invoked %d times, want 1", n)
	}

	s.Throttle(100)
	r = newRuntime(t, openwhisk.Options{API: api, ThrottleRetries: 2})
	_, _, err = invoke(t, r, function(api, "upper"))
	wantClass(t, err, runtime.ClassPlatform, "throttled (429) 3 times")
}

func TestNotFoundAndAuth(t *testing.T) {
	_, api := controller(t)
	r := newRuntime(t, openwhisk.Options{API: api})
	_, _, err := invoke(t, r, function(api, "/guest/pkg/missing"))
	wantClass(t, err, runtime.ClassInit, "openwhisk: action /guest/pkg/missing not found")

	bad := newRuntime(t, openwhisk.Options{API: api, Auth: "nobody:wrong"})
	_, _, err = invoke(t, bad, function(api, "upper"))
	wantClass(t, err, runtime.ClassInit, "openwhisk: authentication rejected")

	_, _, err = invoke(t, r, function(api, "/someone-else/upper"))
	wantClass(t, err, runtime.ClassInit, "openwhisk: authentication rejected (403)")
}

func TestResumeExternalID(t *testing.T) {
	s, api := controller(t)
	s.SetBlockingTimeout(10 * time.Millisecond)
	r := newRuntime(t, openwhisk.Options{API: api})
	// A first owner starts the activation and gives up (its context ends).
	ctx, cancel := context.WithCancel(t.Context())
	var id string
	inv := &runtime.Invocation{Function: function(api, "slow"), Object: runtime.ObjectRef{Key: "k"},
		Limits: runtime.Limits{Timeout: 10 * time.Second}, OnExternalID: func(s string) { id = s; cancel() }}
	if _, err := r.Invoke(ctx, inv); err == nil {
		t.Fatal("cancelled invoke succeeded")
	}
	if id == "" || s.Invokes("slow") != 1 {
		t.Fatalf("id %q invokes %d", id, s.Invokes("slow"))
	}
	// The next owner resumes it: no second invoke.
	res, _, err := invoke(t, r, function(api, "slow"), func(inv *runtime.Invocation) { inv.ExternalID = id })
	if err != nil {
		t.Fatal(err)
	}
	if res.ExternalID != id || !strings.Contains(string(res.Result), `"key":"k"`) {
		t.Fatalf("resumed result %s id %q, want activation %s", res.Result, res.ExternalID, id)
	}
	if n := s.Invokes("slow"); n != 1 {
		t.Fatalf("invoked %d times, want 1", n)
	}
}

func TestCompletionWithoutResultIsUnfinished(t *testing.T) {
	s, api := controller(t)
	s.DropResults("upper", true)
	r := newRuntime(t, openwhisk.Options{API: api})
	_, _, err := invoke(t, r, function(api, "upper"), func(inv *runtime.Invocation) { inv.Limits.Timeout = 400 * time.Millisecond })
	wantClass(t, err, runtime.ClassTimeout, "record without a result")
	if n := s.Invokes("upper"); n != 1 {
		t.Fatalf("invoked %d times, want 1", n)
	}
}

func TestLostConnectionIsPlatform(t *testing.T) {
	// A controller that takes the request and drops the connection.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj, _ := w.(http.Hijacker)
		c, _, _ := hj.Hijack()
		c.Close()
	}))
	t.Cleanup(srv.Close)
	r := newRuntime(t, openwhisk.Options{API: srv.URL})
	_, _, err := invoke(t, r, function(srv.URL, "upper"))
	wantClass(t, err, runtime.ClassPlatform, "openwhisk: invoke /_/upper")
}

func TestDescribeChangesOnUpdate(t *testing.T) {
	s, api := controller(t)
	r := newRuntime(t, openwhisk.Options{API: api})
	f := function(api, "/_/echo")
	v1, err := openwhisk.CreateAction(t.Context(), nil, api, owtest.DefaultAuth, "echo", openwhisk.KindNative, []byte("#!/bin/bash\necho v1\n"), map[string]string{"p": "1"})
	if err != nil || v1 != "0.0.1" {
		t.Fatalf("create: version %q err %v", v1, err)
	}
	a, _ := s.Action("echo")
	if a.Exec.Kind != "blackbox" || !a.Exec.Binary || a.Exec.Image != openwhisk.NativeImage {
		t.Fatalf("created exec = %+v", a.Exec)
	}
	zipped, _ := base64.StdEncoding.DecodeString(a.Exec.Code)
	if !bytes.HasPrefix(zipped, []byte("PK\x03\x04")) {
		t.Fatal("native code was not uploaded as a zip")
	}
	d1, err := r.Describe(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	d1again, _ := r.Describe(t.Context(), f)
	if d1 != d1again || len(d1) != 64 {
		t.Fatalf("digests %q, %q: want a stable sha256", d1, d1again)
	}
	// The created action runs (owtest echoes its params, defaults merged).
	res, _, err := invoke(t, r, f)
	if err != nil {
		t.Fatal(err)
	}
	var echoed map[string]any
	if err := json.Unmarshal(res.Result, &echoed); err != nil || echoed["p"] != "1" || echoed["key"] != "a.txt" {
		t.Fatalf("echo result %s", res.Result)
	}
	// Updating the code changes version and digest.
	v2, err := openwhisk.CreateAction(t.Context(), nil, api, owtest.DefaultAuth, "echo", openwhisk.KindNative, []byte("#!/bin/bash\necho v2\n"), nil)
	if err != nil || v2 != "0.0.2" {
		t.Fatalf("update: version %q err %v", v2, err)
	}
	d2, err := r.Describe(t.Context(), f)
	if err != nil || d2 == d1 {
		t.Fatalf("digest after update %q (err %v), was %q: want a change", d2, err, d1)
	}
	_, err = r.Describe(t.Context(), function(api, "nope"))
	wantClass(t, err, runtime.ClassInit, "not found")
}

func TestConcurrentInvokes(t *testing.T) {
	s, api := controller(t)
	r := newRuntime(t, openwhisk.Options{API: api})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, out, err := invoke(t, r, function(api, "upper")); err != nil || out != "INPUT" {
				t.Errorf("out %q err %v", out, err)
			}
		})
	}
	wg.Wait()
	if n := s.Invokes("upper"); n != 8 {
		t.Fatalf("invokes = %d, want 8", n)
	}
}

func TestParseAction(t *testing.T) {
	tests := []struct {
		in, ns, name, err string
	}{
		{in: "hello", ns: "_", name: "hello"},
		{in: "pkg/hello", ns: "_", name: "pkg/hello"},
		{in: "/ns/hello", ns: "ns", name: "hello"},
		{in: "/ns/pkg/hello", ns: "ns", name: "pkg/hello"},
		{in: "/ns", err: "expected /NS/[PKG/]ACTION"},
		{in: "a/b/c", err: "expected [/NS/][PKG/]ACTION"},
		{in: "pkg/", err: "empty name part"},
		{in: "", err: "empty name part"},
	}
	for _, tt := range tests {
		a, err := openwhisk.ParseAction(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseAction(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || a.Namespace != tt.ns || a.Name != tt.name {
			t.Errorf("ParseAction(%q) = %+v, %v; want %s %s", tt.in, a, err, tt.ns, tt.name)
		}
	}
}

func TestMissingConfig(t *testing.T) {
	r := newRuntime(t, openwhisk.Options{})
	_, _, err := invoke(t, r, runtime.Function{Name: "f"})
	wantClass(t, err, runtime.ClassInit, "has no openwhisk.action")
	t.Setenv(openwhisk.EnvAuth, "")
	noAuth, err := openwhisk.New(openwhisk.Options{API: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = invoke(t, noAuth, function("http://127.0.0.1:1", "x"))
	wantClass(t, err, runtime.ClassInit, "DEDUPFN_OPENWHISK_AUTH")
	if _, err := openwhisk.New(openwhisk.Options{Auth: "nocolon"}); err == nil {
		t.Fatal("New accepted auth without a colon")
	}
}

// Issue 9 item 3: a function naming a host outside the operator's
// allow-list got the operator's key as Basic auth (SSRF). Neither invoke,
// resume nor describe may send anything there.
func TestHostNotAllowed(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(evil.Close)
	_, allowed := controller(t)
	r := newRuntime(t, openwhisk.Options{API: allowed})
	f := function(evil.URL, runtimetest.Upper)
	_, _, err := invoke(t, r, f)
	wantClass(t, err, runtime.ClassInit, "allow-list")
	_, _, err = invoke(t, r, f, func(inv *runtime.Invocation) { inv.ExternalID = "0123" })
	wantClass(t, err, runtime.ClassInit, "allow-list")
	_, err = r.Describe(t.Context(), f)
	wantClass(t, err, runtime.ClassInit, "allow-list")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 0 {
		t.Fatalf("the host outside the allow-list received %q", seen)
	}
	// The operator's own host, and hosts it allows, still work.
	if _, out, err := invoke(t, r, function(allowed, runtimetest.Upper)); err != nil || out != "INPUT" {
		t.Fatalf("allowed host: %q, %v", out, err)
	}
}

func TestCheckAPI(t *testing.T) {
	allow := []string{"https://ow.example.com", "http://10.0.0.5:3233/api/v1"}
	for _, tc := range []struct {
		api string
		ok  bool
	}{
		{"https://ow.example.com", true},
		{"https://OW.example.com:443/", true},
		{"https://ow.example.com/api/v1", true},
		{"https://user:pass@ow.example.com", true},
		{"http://10.0.0.5:3233", true},
		{"http://ow.example.com", false},                // downgrade: the key in clear
		{"https://ow.example.com:8443", false},          // another port, another server
		{"https://ow.example.com.evil.example", false},  // suffix
		{"https://evil.example/ow.example.com", false},  // path
		{"https://evil.example#@ow.example.com", false}, // fragment trick
		{"http://10.0.0.5:3234", false},
	} {
		err := openwhisk.CheckAPI(allow, tc.api)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, openwhisk.ErrNotAllowed)) {
			t.Errorf("CheckAPI(%q) = %v, want ok=%v", tc.api, err, tc.ok)
		}
	}
	if err := openwhisk.CheckAPI(allow, "ftp://x"); err == nil || errors.Is(err, openwhisk.ErrNotAllowed) {
		t.Errorf("CheckAPI(ftp://x) = %v, want a parse error", err)
	}
}

// Issue 17 item 16: "/_/../.." was sent verbatim, so the controller's
// path cleaning decided which resource it named. Action names are
// OpenWhisk entity names: no "..", no extra segments, OpenWhisk's charset.
func TestParseAction_RejectsTraversalAndBadNames(t *testing.T) {
	for _, in := range []string{
		"/_/../..", "../x", "/ns/..", "pkg/..", "/../x", "/ns/a..b", "./x", "/./x",
		"a/b/c", "/ns/a/b/c", "x%2f..", "a?b=c", "a#b", "a\\b", "a b ", " a", "-a", "a\x00", "é",
		"/" + strings.Repeat("n", 257) + "/a", strings.Repeat("a", 257),
	} {
		if a, err := openwhisk.ParseAction(in); err == nil {
			t.Errorf("ParseAction(%q) = %+v, want an error", in, a)
		}
	}
	for _, in := range []string{"hello", "/guest/pkg/hello_world", "/ns@x/a.b-c", "a b", "_x", "/_/x"} {
		if _, err := openwhisk.ParseAction(in); err != nil {
			t.Errorf("ParseAction(%q): %v, want it accepted", in, err)
		}
	}
}

// authLog wraps a controller, recording each request's path and auth.
type authLog struct {
	next http.Handler
	mu   sync.Mutex
	seen []string
}

func (l *authLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.seen = append(l.seen, r.Method+" "+r.URL.EscapedPath()+" auth="+r.Header.Get("Authorization"))
	l.mu.Unlock()
	l.next.ServeHTTP(w, r)
}

func (l *authLog) requests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seen...)
}

// basic is the Authorization header of auth "UUID:KEY".
func basic(auth string) string {
	u, p, _ := strings.Cut(auth, ":")
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(u, p)
	return r.Header.Get("Authorization")
}

// Issue 17 item 16: globex deployed --openwhisk-action acme-enrich and
// dedupfn invoked it with the operator's key. A tenant's function never
// gets the operator's key: without an OpenWhisk identity of its own it
// makes no request at all.
func TestInvoke_TenantFunctionNeverGetsOperatorKey(t *testing.T) {
	ow := owtest.New()
	ow.Register("acme-enrich", func(context.Context, map[string]any, func(string, ...any)) (map[string]any, error) {
		return map[string]any{"secret": "acme's"}, nil
	})
	log := &authLog{next: ow}
	srv := httptest.NewServer(log)
	t.Cleanup(func() { srv.Close(); ow.Close() })
	r := newRuntime(t, openwhisk.Options{API: srv.URL, Auth: owtest.DefaultAuth})
	f := function(srv.URL, "acme-enrich")
	f.Tenant = "globex"
	_, _, err := invoke(t, r, f)
	wantClass(t, err, runtime.ClassInit, "namespace")
	_, _, err = invoke(t, r, f, func(inv *runtime.Invocation) { inv.ExternalID = "0123" })
	wantClass(t, err, runtime.ClassInit, "namespace")
	_, err = r.Describe(t.Context(), f)
	wantClass(t, err, runtime.ClassInit, "namespace")
	if got := log.requests(); len(got) != 0 {
		t.Fatalf("a tenant's function without an OpenWhisk namespace sent %q", got)
	}
	if ow.Invokes("acme-enrich") != 0 {
		t.Fatal("acme's action ran for globex")
	}
}

// Issue 17 item 16: a tenant's function runs in the tenant's own
// namespace with the tenant's own key, whatever namespace its action
// names; one naming another namespace makes no request.
func TestInvoke_TenantScopedToOwnNamespace(t *testing.T) {
	const acmeAuth = "acme-uuid:acme-key"
	ow := owtest.New()
	ow.Auth, ow.Namespace = acmeAuth, "acme-ns"
	ow.Register("enrich", func(_ context.Context, p map[string]any, _ func(string, ...any)) (map[string]any, error) {
		return map[string]any{"body": base64.StdEncoding.EncodeToString([]byte("enriched"))}, nil
	})
	log := &authLog{next: ow}
	srv := httptest.NewServer(log)
	t.Cleanup(func() { srv.Close(); ow.Close() })
	r := newRuntime(t, openwhisk.Options{API: srv.URL, Auth: owtest.DefaultAuth,
		Tenants: map[string]openwhisk.Tenant{"acme": {Namespace: "acme-ns", Auth: acmeAuth}}})
	for _, action := range []string{"enrich", "/_/enrich", "/acme-ns/enrich"} {
		f := function(srv.URL, action)
		f.Tenant = "acme"
		if _, out, err := invoke(t, r, f); err != nil || out != "enriched" {
			t.Fatalf("acme invokes %s: %q, %v", action, out, err)
		}
		if _, err := r.Describe(t.Context(), f); err != nil {
			t.Fatalf("describe acme's %s: %v", action, err)
		}
	}
	reqs := log.requests()
	for _, req := range reqs {
		if !strings.Contains(req, "/api/v1/namespaces/acme-ns/") || !strings.HasSuffix(req, " auth="+basic(acmeAuth)) {
			t.Errorf("acme's function sent %q; want acme's namespace and key only", req)
		}
	}
	if len(reqs) != 6 {
		t.Errorf("%d requests, want 3 invokes and 3 describes: %q", len(reqs), reqs)
	}
	for _, action := range []string{"/guest/enrich", "/globex-ns/enrich", "/acme-ns2/enrich"} {
		f := function(srv.URL, action)
		f.Tenant = "acme"
		_, _, err := invoke(t, r, f)
		wantClass(t, err, runtime.ClassInit, "not in namespace acme-ns")
	}
	if n := len(log.requests()); n != len(reqs) {
		t.Fatalf("actions outside acme's namespace sent %q", log.requests()[len(reqs):])
	}
	if _, err := openwhisk.New(openwhisk.Options{Tenants: map[string]openwhisk.Tenant{"acme": {Namespace: "../x", Auth: acmeAuth}}}); err == nil ||
		!strings.Contains(err.Error(), "namespace must be") {
		t.Fatalf("New with a bad tenant namespace: %v", err)
	}
	if _, err := openwhisk.New(openwhisk.Options{Tenants: map[string]openwhisk.Tenant{"acme": {Namespace: "acme-ns", Auth: "nocolon-secret"}}}); err == nil ||
		strings.Contains(err.Error(), "nocolon-secret") {
		t.Fatalf("New with a bad tenant auth: %v, want an error not quoting it", err)
	}
}

// Review of issue 17 (D): the pipeline revokes an invocation's get_url
// when its Invoke returns, a lost lease included, and a successor resumes
// that activation: the action then fails on the dead URL. That failure is
// the platform's (retried with a fresh activation, never cached), not
// the function's. On the parent commit it was an "application error" of
// class function.
func TestResume_FailureOfAnotherInvocationsActivationIsPlatform(t *testing.T) {
	var revoked atomic.Bool
	input := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if revoked.Load() {
			http.Error(w, "revoked", http.StatusForbidden)
			return
		}
		io.WriteString(w, "input")
	}))
	defer input.Close()
	s, api := controller(t)
	s.Register("fetcher", func(ctx context.Context, p map[string]any, _ func(string, ...any)) (map[string]any, error) {
		time.Sleep(300 * time.Millisecond) // the starting invocation has given up by now
		resp, err := http.Get(p["get_url"].(string))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("get_url: %s", resp.Status)
		}
		b, _ := io.ReadAll(resp.Body)
		return map[string]any{"body": base64.StdEncoding.EncodeToString(b)}, nil
	})
	s.SetBlockingTimeout(10 * time.Millisecond)
	r := newRuntime(t, openwhisk.Options{API: api})
	ctx, cancel := context.WithCancel(t.Context())
	var id string
	inv := &runtime.Invocation{Function: function(api, "fetcher"), Object: runtime.ObjectRef{Key: "k", GetURL: input.URL},
		Limits: runtime.Limits{Timeout: 10 * time.Second}, OnExternalID: func(s string) { id = s; cancel() }}
	if _, err := r.Invoke(ctx, inv); err == nil {
		t.Fatal("cancelled invoke succeeded")
	}
	revoked.Store(true) // as the pipeline does once Invoke returns
	_, _, err := invoke(t, r, function(api, "fetcher"), func(inv *runtime.Invocation) {
		inv.ExternalID = id
		inv.Object.GetURL = input.URL + "/successor"
	})
	wantClass(t, err, runtime.ClassPlatform, "403")
}
