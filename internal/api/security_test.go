package api_test

// Each test here reproduces an attack from issue 9 against the API; see
// docs/security.md, which names them.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk/owtest"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// env is one API server under attack.
type env struct {
	ts  *httptest.Server
	idx index.Index
	reg *registry.Registry
}

// setup configures an env before it starts.
type setup struct {
	noTokens bool                       // loopback quickstart: no admin, no tenants
	runtimes map[string]runtime.Runtime // default: test, wasm, process, openwhisk (no-ops)
	owAllow  []string
	// ow are tenants' OpenWhisk identities (api.Tenant.OpenWhisk).
	ow map[string]openwhisk.Tenant
}

func newEnv(t *testing.T, s setup) *env {
	t.Helper()
	makeBuckets(t)
	idx := testutil.BoltIndex(t)
	reg := registry.New(idx, nil)
	rts := s.runtimes
	if rts == nil {
		rts = map[string]runtime.Runtime{"test": nopRuntime{}, "wasm": nopRuntime{}, "process": nopRuntime{}, "openwhisk": nopRuntime{}}
	}
	pipe, err := pipeline.New(pipeline.Config{Index: idx, Objects: store, Registry: reg, Runtimes: rts})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	cfg := api.Config{Pipeline: pipe, Registry: reg, Index: idx, ListenAddr: ts.Listener.Addr().String(),
		OpenWhiskAllow: s.owAllow, TenantRuntimes: []string{"test", "wasm", "openwhisk"}, Gatherer: prometheus.NewRegistry()}
	if !s.noTokens {
		cfg.AdminToken = adminToken
		cfg.Tenants = []api.Tenant{
			{Name: "acme", Token: acmeToken, Buckets: []string{"acme-in", "acme-out"}},
			{Name: "globex", Token: otherToken, Buckets: []string{"globex-in", "globex-out"}},
		}
		for i := range cfg.Tenants {
			cfg.Tenants[i].OpenWhisk = s.ow[cfg.Tenants[i].Name]
		}
	}
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	return &env{ts: ts, idx: idx, reg: reg}
}

// do sends one request; body may be nil, a string or any JSON value.
func (e *env) do(t *testing.T, method, path, token string, body any, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func fnDef(name, runtime, in, out string) registry.Function {
	return registry.Function{Name: name, Runtime: runtime, Trigger: registry.Trigger{Bucket: in}, Output: registry.Output{Bucket: out}}
}

func deployReq(fn registry.Function, code string) api.DeployRequest {
	var c []byte
	if code != "" {
		c = []byte(code)
	}
	return api.DeployRequest{Function: fn, Code: c}
}

// Issue 9 item 1: a tenant token deployed an --exec (process) action, host
// code running as the server.
func TestDeployProcess_TenantForbidden(t *testing.T) {
	e := newEnv(t, setup{})
	req := deployReq(fnDef("sh", "process", "acme-in", "acme-out"), "#!/bin/sh\ncat /proc/$PPID/environ\n")
	code, body := e.do(t, "POST", "/v1/functions", acmeToken, req)
	if code != http.StatusForbidden || !strings.Contains(body, "only the admin") {
		t.Fatalf("tenant deploys a process action: %d %s, want 403 saying only the admin may", code, body)
	}
	if fns := e.reg.List(""); len(fns) != 0 {
		t.Fatalf("the refused deploy stored %d functions", len(fns))
	}
	if code, body := e.do(t, "POST", "/v1/functions", adminToken, req); code != http.StatusOK {
		t.Fatalf("admin deploys a process action: %d %s, want 200", code, body)
	}
}

// Issue 9 item 2: tenants used each other's buckets as trigger, output,
// invoke and explain targets.
func TestTenantBuckets(t *testing.T) {
	e := newEnv(t, setup{})
	if code, body := e.do(t, "POST", "/v1/functions", acmeToken, deployReq(fnDef("own", "wasm", "acme-in", "acme-out"), "x")); code != http.StatusOK {
		t.Fatalf("acme deploys on its own buckets: %d %s", code, body)
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
	}{
		{"DeployTriggerOther", "POST", "/v1/functions", deployReq(fnDef("f", "wasm", "globex-in", "acme-out"), "x")},
		{"DeployOutputOther", "POST", "/v1/functions", deployReq(fnDef("f", "wasm", "acme-in", "globex-out"), "x")},
		{"InvokeOther", "POST", "/v1/invoke", pipeline.InvokeRequest{Function: "own", Bucket: "globex-in", Key: "secret-cat.jpg"}},
		{"ExplainOther", "GET", "/v1/explain?fn=own&bucket=globex-in&key=secret-cat.jpg", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(t, tc.method, tc.path, acmeToken, tc.body)
			if code != http.StatusForbidden || !strings.Contains(body, "globex-") {
				t.Fatalf("%s %s as acme: %d %s, want 403 naming the bucket", tc.method, tc.path, code, body)
			}
		})
	}
	if _, err := e.reg.Get(t.Context(), "acme", "f"); err == nil {
		t.Fatal("a refused deploy was stored")
	}
}

// authRecorder is a listener that records every Authorization header it
// receives: the tenant's server in the SSRF attack.
type authRecorder struct {
	mu    sync.Mutex
	auths []string
}

func (a *authRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.auths = append(a.auths, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization"))
	a.mu.Unlock()
	w.WriteHeader(http.StatusNotFound)
}

func (a *authRecorder) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.auths...)
}

// Issue 9 item 3: --openwhisk-api pointed the server's OpenWhisk key at a
// host of the tenant's choosing.
func TestOpenWhiskSSRF(t *testing.T) {
	evil := &authRecorder{}
	evilSrv := httptest.NewServer(evil)
	t.Cleanup(evilSrv.Close)
	const operatorAPI = "https://openwhisk.operator.example"
	ow, err := openwhisk.New(openwhisk.Options{Auth: "operator-uuid:operator-key", API: operatorAPI})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, setup{runtimes: map[string]runtime.Runtime{"openwhisk": ow}, owAllow: []string{operatorAPI}})
	ctx := t.Context()
	if err := store.MakeBucket(ctx, "acme-in"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, "acme-in", "cat.jpg", strings.NewReader("meow"), 4, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	fn := fnDef("steal", "openwhisk", "acme-in", "acme-out")
	fn.Config = map[string]string{openwhisk.ConfigAction: "x", openwhisk.ConfigAPI: evilSrv.URL}
	for _, token := range []string{acmeToken, adminToken} {
		code, body := e.do(t, "POST", "/v1/functions", token, deployReq(fn, ""))
		if code != http.StatusForbidden || !strings.Contains(body, "allow-list") {
			t.Errorf("deploy naming %s: %d %s, want 403 naming the allow-list", evilSrv.URL, code, body)
		}
	}
	// A function stored without the API's check (an older release, another
	// replica) still never gets the operator's key sent to that host.
	fn.Tenant = "acme"
	if _, err := e.reg.Deploy(ctx, fn, nil); err != nil {
		t.Fatal(err)
	}
	e.do(t, "POST", "/v1/invoke", acmeToken, pipeline.InvokeRequest{Function: "steal", Bucket: "acme-in", Key: "cat.jpg"})
	if got := evil.seen(); len(got) != 0 {
		t.Fatalf("the tenant's host received %q", got)
	}
}

// Issue 9 item 4: tenant tokens without an admin token made every caller
// admin ("Bearer garbage" listed and deleted tenants' functions).
func TestTenantTokensRequireAdmin(t *testing.T) {
	idx := testutil.BoltIndex(t)
	reg := registry.New(idx, nil)
	pipe, err := pipeline.New(pipeline.Config{Index: idx, Objects: store, Registry: reg, Runtimes: map[string]runtime.Runtime{"test": nopRuntime{}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.New(api.Config{Pipeline: pipe, Registry: reg, Index: idx,
		Tenants: []api.Tenant{{Name: "acme", Token: acmeToken, Buckets: []string{"acme-in"}}}})
	if err == nil || !strings.Contains(err.Error(), "admin token") {
		t.Fatalf("api.New with tenant tokens and no admin token: %v, want an error naming the admin token", err)
	}
}

// Issue 9 item 4: X-Dedupfn-Tenant let a caller choose its tenant.
func TestTenantHeaderIgnored(t *testing.T) {
	e := newEnv(t, setup{})
	if code, body := e.do(t, "POST", "/v1/functions", otherToken, deployReq(fnDef("g", "wasm", "globex-in", "globex-out"), "x")); code != http.StatusOK {
		t.Fatalf("globex deploy: %d %s", code, body)
	}
	for _, tc := range []struct{ method, path string }{{"GET", "/v1/functions"}, {"GET", "/v1/functions/g"}, {"DELETE", "/v1/functions/g"}} {
		code, body := e.do(t, tc.method, tc.path, acmeToken, nil, api.TenantHeader, "globex")
		if strings.Contains(body, `"g"`) || (code != http.StatusOK && code != http.StatusNotFound) {
			t.Errorf("%s %s as acme claiming globex: %d %s", tc.method, tc.path, code, body)
		}
	}
	if _, err := e.reg.Get(t.Context(), "globex", "g"); err != nil {
		t.Fatalf("globex's function is gone: %v", err)
	}
	// The admin may act for a tenant.
	if code, body := e.do(t, "GET", "/v1/functions/g", adminToken, nil, api.TenantHeader, "globex"); code != http.StatusOK {
		t.Fatalf("admin acting for globex: %d %s", code, body)
	}
}

// Issue 9 item 5: a tenant's purge deleted shared results, its own and
// other tenants' shared functions of the same name.
func TestPurgeShared(t *testing.T) {
	e := newEnv(t, setup{})
	ctx := t.Context()
	shared := fnDef("thumb", "wasm", "acme-in", "acme-out")
	shared.Shared = true
	if code, body := e.do(t, "POST", "/v1/functions", acmeToken, deployReq(shared, "x")); code != http.StatusOK {
		t.Fatalf("acme deploys a shared function: %d %s", code, body)
	}
	if code, body := e.do(t, "POST", "/v1/functions", otherToken, deployReq(fnDef("thumb", "wasm", "globex-in", "globex-out"), "x")); code != http.StatusOK {
		t.Fatalf("globex deploys thumb: %d %s", code, body)
	}
	claim := func(key, tenant string) {
		t.Helper()
		if _, err := e.idx.Claim(ctx, key, index.Parts{Tenant: tenant, Function: "thumb"}, "test", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	claim("k-shared", "*shared*")
	claim("k-globex", "globex")
	code, body := e.do(t, "POST", "/v1/purge", otherToken, api.PurgeRequest{Function: "thumb"})
	if code != http.StatusOK || !strings.Contains(body, `"purged": 1`) {
		t.Fatalf("globex purges its thumb: %d %s, want 1 record purged", code, body)
	}
	if _, err := e.idx.Get(ctx, "k-shared"); err != nil {
		t.Fatalf("globex's purge deleted acme's shared result: %v", err)
	}
	// Not globex's: answered as an absent key (TestPurge_NotYoursLikeAbsent).
	code, body = e.do(t, "POST", "/v1/purge", otherToken, api.PurgeRequest{Function: "thumb", Key: "k-shared"})
	if code != http.StatusOK || !strings.Contains(body, `"purged": 0`) {
		t.Fatalf("globex purges the shared key: %d %s, want purged 0", code, body)
	}
	code, body = e.do(t, "POST", "/v1/purge", acmeToken, api.PurgeRequest{Function: "thumb"})
	if code != http.StatusForbidden || !strings.Contains(body, "admin") {
		t.Fatalf("acme purges its shared function: %d %s, want 403: shared results are purged by the admin", code, body)
	}
	if _, err := e.idx.Get(ctx, "k-shared"); err != nil {
		t.Fatalf("a tenant's purge deleted a shared result: %v", err)
	}
	code, body = e.do(t, "POST", "/v1/purge", adminToken, api.PurgeRequest{Function: "thumb"}, api.TenantHeader, "acme")
	if code != http.StatusOK || !strings.Contains(body, `"purged": 1`) {
		t.Fatalf("admin purges acme's shared function: %d %s", code, body)
	}
}

// Issue 9 item 6: on loopback without a token, any web page could deploy
// and run an --exec script (text/plain POST, or DNS rebinding).
func TestCrossSite(t *testing.T) {
	e := newEnv(t, setup{noTokens: true})
	exec := deployReq(fnDef("pwn", "process", "dedup-in", "dedup-out"), "#!/bin/sh\nid\n")
	j, _ := json.Marshal(exec)
	port := e.ts.URL[strings.LastIndex(e.ts.URL, ":")+1:]
	post := func(t *testing.T, ctype string, hdr ...string) (int, string) {
		t.Helper()
		return e.do(t, "POST", "/v1/functions", "", string(j), append([]string{"Content-Type", ctype}, hdr...)...)
	}
	for _, tc := range []struct {
		name  string
		code  int
		send  func(t *testing.T) (int, string)
		inMsg string
	}{
		{"TextPlainFromEvilOrigin", 403, func(t *testing.T) (int, string) {
			return post(t, "text/plain", "Origin", "http://evil.example")
		}, "origin"},
		{"JSONFromEvilOrigin", 403, func(t *testing.T) (int, string) {
			return post(t, "application/json", "Origin", "http://evil.example")
		}, "origin"},
		{"NullOrigin", 403, func(t *testing.T) (int, string) { return post(t, "application/json", "Origin", "null") }, "origin"},
		{"TextPlainNoOrigin", 415, func(t *testing.T) (int, string) { return post(t, "text/plain") }, "application/json"},
		{"FormNoOrigin", 415, func(t *testing.T) (int, string) { return post(t, "application/x-www-form-urlencoded") }, "application/json"},
		{"RebindPost", 403, func(t *testing.T) (int, string) {
			return post(t, "application/json", "Host", "evil.example:"+port, "Origin", "http://evil.example:"+port)
		}, "host"},
		{"RebindGet", 403, func(t *testing.T) (int, string) {
			return e.do(t, "GET", "/v1/functions", "", nil, "Host", "evil.example:"+port)
		}, "host"},
		{"RebindDashboard", 403, func(t *testing.T) (int, string) { return e.do(t, "GET", "/", "", nil, "Host", "evil.example:"+port) }, "host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := tc.send(t)
			if code != tc.code || !strings.Contains(strings.ToLower(body), tc.inMsg) {
				t.Fatalf("%d %s, want %d mentioning %q", code, body, tc.code, tc.inMsg)
			}
		})
	}
	if fns := e.reg.List(""); len(fns) != 0 {
		t.Fatalf("cross-site requests deployed %d functions", len(fns))
	}
	// The API's own pages and the CLI still work.
	for _, host := range []string{"", "localhost:" + port, "[::1]:" + port} {
		hdr := []string{"Origin", "http://" + host}
		if host == "" {
			hdr = []string{"Origin", e.ts.URL}
		} else {
			hdr = append(hdr, "Host", host)
		}
		if code, body := post(t, "application/json", hdr...); code != http.StatusOK {
			t.Fatalf("same-origin deploy via %q: %d %s", host, code, body)
		}
	}
	if code, body := e.do(t, "GET", "/v1/functions", "", nil); code != http.StatusOK {
		t.Fatalf("CLI-style GET: %d %s", code, body)
	}
}

// Issue 9 item 7: with a token set the dashboard was a 401.
func TestDashboard(t *testing.T) {
	e := newEnv(t, setup{})
	code, body := e.do(t, "GET", "/", "", nil)
	if code != http.StatusOK || !strings.Contains(body, `id="token"`) || !strings.Contains(body, "sessionStorage") {
		t.Fatalf("GET / without token: %d, want 200 with the token prompt", code)
	}
	// The token comes from the prompt and lives in sessionStorage only:
	// it is read from nowhere else, and the URL (the hash routes to an
	// activation) is never read for it. test/e2e's TestDashboard checks
	// the same in a browser.
	if n, m := strings.Count(body, "sessionStorage.getItem("), strings.Count(body, "sessionStorage.getItem(TOKEN_KEY)"); n == 0 || n != m {
		t.Errorf("the dashboard reads sessionStorage %d times, %d of them for the token; want only the token", n, m)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, "location.") && strings.Contains(strings.ToLower(line), "token") {
			t.Errorf("the dashboard may read a token from its URL: %s", strings.TrimSpace(line))
		}
	}
	for _, p := range []string{"/v1/stats", "/v1/activations", "/v1/functions", "/metrics"} {
		if code, _ := e.do(t, "GET", p, "", nil); code != http.StatusUnauthorized && code != http.StatusNotFound {
			t.Errorf("GET %s without token: %d, want 401", p, code)
		}
	}
}

// Issue 9 item 11: --memory 100000 was accepted.
func TestDeployMemoryCap(t *testing.T) {
	e := newEnv(t, setup{})
	fn := fnDef("big", "wasm", "acme-in", "acme-out")
	fn.Limits.MemoryMB = 100000
	code, body := e.do(t, "POST", "/v1/functions", acmeToken, deployReq(fn, "x"))
	if code != http.StatusBadRequest || !strings.Contains(body, "2048") {
		t.Fatalf("deploy with 100000 MB: %d %s, want 400 naming the 2048 MB maximum", code, body)
	}
	fn.Limits.MemoryMB = 2048
	if code, body := e.do(t, "POST", "/v1/functions", acmeToken, deployReq(fn, "x")); code != http.StatusOK {
		t.Fatalf("deploy with 2048 MB: %d %s", code, body)
	}
}

// zeros is n bytes of base64 "A" (decoding to zero bytes), allocating
// nothing, so the test measures the server's allocations.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), z.n)
	for i := range p[:n] {
		p[i] = 'A'
	}
	z.n -= n
	return int(n), nil
}

// deployBody is a deploy of codeBytes of code, as a stream.
func deployBody(codeBytes int64) (io.Reader, int64) {
	head := `{"function":{"name":"big","runtime":"wasm","trigger":{"bucket":"acme-in"},"output":{"bucket":"acme-out"}},"code":"`
	tail := `"}`
	b64 := (codeBytes + 2) / 3 * 4
	return io.MultiReader(strings.NewReader(head), &zeros{b64}, strings.NewReader(tail)), int64(len(head)+len(tail)) + b64
}

// Issue 9 item 9: a 180 MiB deploy took 1.1 GB RSS.
func TestDeployTooLarge(t *testing.T) {
	e := newEnv(t, setup{})
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("Chunked=%v", chunked), func(t *testing.T) {
			body, n := deployBody(100 << 20)
			if chunked {
				body = io.MultiReader(body) // hides the length from net/http
			}
			req, _ := http.NewRequestWithContext(t.Context(), "POST", e.ts.URL+"/v1/functions", body)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+adminToken)
			if !chunked {
				req.ContentLength = n
			}
			var before, after goruntime.MemStats
			goruntime.ReadMemStats(&before)
			resp, err := http.DefaultClient.Do(req)
			if err != nil && !chunked {
				t.Fatal(err)
			}
			goruntime.ReadMemStats(&after)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "64 MiB") {
					t.Fatalf("100 MiB deploy: %d %s, want 413 naming the 64 MiB cap", resp.StatusCode, b)
				}
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; !chunked && alloc > 16<<20 {
				t.Fatalf("refusing a 100 MiB deploy allocated %d MiB", alloc>>20)
			}
		})
	}
	if fns := e.reg.List(""); len(fns) != 0 {
		t.Fatal("an oversized deploy was stored")
	}
}

// Issue 9 item 9: four large deploys at once doubled the memory of one;
// deploys beyond api.DefaultMaxDeploys wait for a slot.
func TestDeployConcurrencyLimit(t *testing.T) {
	e := newEnv(t, setup{})
	send := func(body io.Reader, name string) <-chan int {
		done := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest("POST", e.ts.URL+"/v1/functions", body)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+adminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- -1
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		return done
	}
	// Two uploads that stall after their first MiB (read before a slot
	// is taken) hold both slots.
	var pipes []*io.PipeWriter
	var slow []<-chan int
	for i := range 2 {
		pr, pw := io.Pipe()
		pipes = append(pipes, pw)
		slow = append(slow, send(pr, fmt.Sprint("slow", i)))
		go pw.Write([]byte(`{"function":{"name":"slow` + fmt.Sprint(i) + `","runtime":"wasm","trigger":{"bucket":"dedup-in"},"output":{"bucket":"dedup-out"}},"code":"` + strings.Repeat("A", 1<<20)))
	}
	t.Cleanup(func() {
		for _, pw := range pipes {
			pw.CloseWithError(errors.New("test over"))
		}
	})
	time.Sleep(200 * time.Millisecond)
	j, _ := json.Marshal(deployReq(fnDef("quick", "wasm", "dedup-in", "dedup-out"), "x"))
	quick := send(bytes.NewReader(j), "quick")
	select {
	case code := <-quick:
		t.Fatalf("a third deploy ran while two were uploading: %d", code)
	case <-time.After(300 * time.Millisecond):
	}
	pipes[0].Write([]byte(`"}`))
	pipes[0].Close()
	if code := <-slow[0]; code != http.StatusOK {
		t.Fatalf("first slow deploy: %d", code)
	}
	select {
	case code := <-quick:
		if code != http.StatusOK {
			t.Fatalf("third deploy: %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the third deploy did not get the freed slot")
	}
}

// Issue 17 item 17: /metrics showed every tenant's functions to a tenant
// token. Metrics are the admin's.
func TestMetrics_AdminOnly(t *testing.T) {
	e := newEnv(t, setup{})
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"NoToken", "", http.StatusUnauthorized},
		{"WrongToken", "nope", http.StatusUnauthorized},
		{"Tenant", acmeToken, http.StatusForbidden},
		{"OtherTenant", otherToken, http.StatusForbidden},
		{"Admin", adminToken, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := e.do(t, "GET", "/metrics", tc.token, nil); code != tc.want {
				t.Fatalf("GET /metrics: %d %s, want %d", code, body, tc.want)
			}
		})
	}
	if code, body := e.do(t, "GET", "/metrics", acmeToken, nil, api.TenantHeader, "default"); code != http.StatusForbidden {
		t.Fatalf("GET /metrics as a tenant naming another tenant: %d %s, want 403", code, body)
	}
	// Without tokens (loopback quickstart) every caller is the admin.
	if code, body := newEnv(t, setup{noTokens: true}).do(t, "GET", "/metrics", "", nil); code != http.StatusOK {
		t.Fatalf("GET /metrics without tokens configured: %d %s, want 200", code, body)
	}
}

// Issue 17 item 18: purging another tenant's dedup key answered "record
// belongs to another tenant", an absent key {"purged": 0}: a probe for
// whether another tenant processed some content. Both answer the same.
func TestPurge_NotYoursLikeAbsent(t *testing.T) {
	e := newEnv(t, setup{})
	ctx := t.Context()
	for _, token := range []string{acmeToken, otherToken} {
		if code, body := e.do(t, "POST", "/v1/functions", token, deployReq(fnDef("thumb", "wasm", tenantBucket(token, "in"), tenantBucket(token, "out")), "x")); code != http.StatusOK {
			t.Fatalf("deploy thumb: %d %s", code, body)
		}
	}
	for key, tenant := range map[string]string{"k-acme": "acme", "k-shared": "*shared*"} {
		if _, err := e.idx.Claim(ctx, key, index.Parts{Tenant: tenant, Function: "thumb"}, "test", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	absentCode, absent := e.do(t, "POST", "/v1/purge", otherToken, api.PurgeRequest{Function: "thumb", Key: "k-absent"})
	if absentCode != http.StatusOK || !strings.Contains(absent, `"purged": 0`) {
		t.Fatalf("globex purges an absent key: %d %s, want 200 purged 0", absentCode, absent)
	}
	for _, key := range []string{"k-acme", "k-shared"} {
		code, body := e.do(t, "POST", "/v1/purge", otherToken, api.PurgeRequest{Function: "thumb", Key: key})
		if code != absentCode || body != absent {
			t.Errorf("globex purges %s: %d %s; want the absent key's answer %d %s", key, code, body, absentCode, absent)
		}
		if _, err := e.idx.Get(ctx, key); err != nil {
			t.Errorf("globex's purge deleted %s: %v", key, err)
		}
	}
}

// tenantBucket is the bucket "in" or "out" of the tenant of token.
func tenantBucket(token, which string) string {
	if token == otherToken {
		return "globex-" + which
	}
	return "acme-" + which
}

// Issue 17 item 21: docs/security.md said the dashboard never reads
// location.hash, which it does to route to an activation. The document
// must name every part of its URL the page reads, and the page must use
// the hash only as an activation id.
func TestDashboard_URLReadsDocumented(t *testing.T) {
	code, page := newEnv(t, setup{}).do(t, "GET", "/", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /: %d", code)
	}
	// The embedded store changes the working directory: find the document
	// from this file.
	_, self, _, _ := goruntime.Caller(0)
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(self), "../../docs/security.md"))
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	for _, m := range regexp.MustCompile(`location\.(\w+)(\s*=[^=])?`).FindAllStringSubmatch(page, -1) {
		if m[2] == "" { // an assignment (location.hash = ...) writes, it does not read
			read[m[1]] = true
		}
	}
	if len(read) == 0 {
		t.Fatal("found no location reads in the dashboard: the test's pattern is stale")
	}
	const marker = "The page reads only these parts of its URL:"
	_, section, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("docs/security.md lacks %q followed by the location properties the page reads (%v)", marker, read)
	}
	section, _, _ = strings.Cut(section, "\n\n")
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("`location\\.(\\w+)`").FindAllStringSubmatch(section, -1) {
		listed[m[1]] = true
	}
	if !maps.Equal(read, listed) {
		t.Errorf("the dashboard reads location.%v; docs/security.md lists location.%v", slices.Sorted(maps.Keys(read)), slices.Sorted(maps.Keys(listed)))
	}
	for _, bad := range []string{"does not read `location.hash`", "never reads `location.hash`"} {
		if strings.Contains(string(doc), bad) {
			t.Errorf("docs/security.md still says the page %s", bad)
		}
	}
	// The hash is only ever parsed as #/activation/ID, and the id only
	// escaped into the activation's API path.
	for _, line := range strings.Split(page, "\n") {
		if strings.Contains(line, "location.hash") && !strings.Contains(line, "location.hash =") &&
			!strings.Contains(line, `/^#\/activation\/(.+)$/.exec(location.hash)`) {
			t.Errorf("the dashboard reads location.hash other than as #/activation/ID: %s", strings.TrimSpace(line))
		}
	}
	if !strings.Contains(page, `api("/v1/activations/" + encodeURIComponent(id))`) {
		t.Error("the activation id from the hash is not escaped into /v1/activations/{id}")
	}
}

// countRuntime upper-cases its input and counts its runs; an input
// starting with "fail:" is a deterministic function error naming the
// object, as real functions' errors often do.
type countRuntime struct{ runs atomic.Int64 }

func (*countRuntime) Name() string                { return "wasm" }
func (*countRuntime) Version() string             { return "count/1" }
func (*countRuntime) Close(context.Context) error { return nil }
func (c *countRuntime) Invoke(_ context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	c.runs.Add(1)
	b, err := io.ReadAll(inv.Input)
	if err != nil {
		return runtime.Result{}, err
	}
	if bytes.HasPrefix(b, []byte("fail:")) {
		return runtime.Result{}, &runtime.Error{Class: runtime.ClassFunction, Err: fmt.Errorf("cannot parse %s/%s", inv.Object.Bucket, inv.Object.Key)}
	}
	_, err = inv.Output.Write(bytes.ToUpper(b))
	return runtime.Result{OutputWritten: true}, err
}

// sharedEnv is an env where acme and globex have each deployed the same
// --shared function "sh" (so they share its results) on a countRuntime.
func sharedEnv(t *testing.T, mod func(*registry.Function)) (*env, *countRuntime) {
	t.Helper()
	rt := &countRuntime{}
	e := newEnv(t, setup{runtimes: map[string]runtime.Runtime{"wasm": rt}})
	for _, b := range []string{"acme-in", "acme-out", "globex-in", "globex-out"} {
		if err := store.MakeBucket(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	for _, token := range []string{acmeToken, otherToken} {
		fn := fnDef("sh", "wasm", tenantBucket(token, "in"), tenantBucket(token, "out"))
		fn.Shared, fn.CacheFailures = true, true
		if mod != nil {
			mod(&fn)
		}
		if code, body := e.do(t, "POST", "/v1/functions", token, deployReq(fn, "x")); code != http.StatusOK {
			t.Fatalf("deploy shared sh: %d %s", code, body)
		}
	}
	return e, rt
}

// put uploads body as bucket/key in the test's store.
func put(t *testing.T, bucket, key, body string) {
	t.Helper()
	if _, err := store.Put(t.Context(), bucket, key, strings.NewReader(body), int64(len(body)), objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// invokeAs invokes sh on bucket/key as token and decodes the activation.
func (e *env) invokeAs(t *testing.T, token, bucket, key string, force bool, hdr ...string) (activation.Record, string) {
	t.Helper()
	code, body := e.do(t, "POST", "/v1/invoke", token, pipeline.InvokeRequest{Function: "sh", Bucket: bucket, Key: key, Force: force}, hdr...)
	var rec activation.Record
	if err := json.Unmarshal([]byte(body), &rec); code != http.StatusOK || err != nil {
		t.Fatalf("invoke sh on %s/%s: %d %s", bucket, key, code, body)
	}
	return rec, body
}

// Issue 17 item 14: globex deployed acme's shared function, uploaded
// guessed content and called explain: the answer named acme's output
// (acme-out/hr/...), the replica that ran it and its reason text. Explain
// and every hit tell a tenant only whether it would hit, and its own
// output location.
func TestExplain_SharedShowsOnlyCallersOwn(t *testing.T) {
	e, rt := sharedEnv(t, nil)
	ctx := t.Context()
	secret := "hr/layoffs-2027-confidential-" + t.Name() + ".txt"
	put(t, "acme-in", secret, "layoffs")
	put(t, "acme-in", "hr/fail-"+t.Name()+".txt", "fail:layoffs")
	put(t, "globex-in", "guess.txt", "layoffs")
	put(t, "globex-in", "guess-fail.txt", "fail:layoffs")
	done, _ := e.invokeAs(t, acmeToken, "acme-in", secret, false)
	failed, _ := e.invokeAs(t, acmeToken, "acme-in", "hr/fail-"+t.Name()+".txt", false)
	if done.Decision != activation.Miss || failed.Decision != activation.Error || rt.runs.Load() != 2 {
		t.Fatalf("acme's runs: %s, %s, %d runs; want a miss and a cached error", done.Decision, failed.Decision, rt.runs.Load())
	}
	rec, err := e.idx.Get(ctx, done.Key)
	if err != nil {
		t.Fatal(err)
	}
	// What globex must never see: acme's buckets and keys, the replica
	// that ran it, the run's error text.
	leaks := []string{"acme", "layoffs-2027", "hr/", "cannot parse"}
	if rec.Owner != "" {
		leaks = append(leaks, rec.Owner)
	}
	noLeak := func(t *testing.T, what, body string) {
		t.Helper()
		for _, l := range leaks {
			if strings.Contains(body, l) {
				t.Errorf("%s shows globex %q:\n%s", what, l, body)
			}
		}
	}
	for _, tc := range []struct{ name, key, wantOut string }{
		{"Done", "guess.txt", "globex-out"},
		{"CachedFailure", "guess-fail.txt", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(t, "GET", "/v1/explain?fn=sh&bucket=globex-in&key="+tc.key, otherToken, nil)
			var x struct {
				WouldRun bool `json:"would_run"`
				Output   *struct {
					Bucket string `json:"bucket"`
					Key    string `json:"key"`
				} `json:"output"`
			}
			if err := json.Unmarshal([]byte(body), &x); code != http.StatusOK || err != nil {
				t.Fatalf("explain as globex: %d %s", code, body)
			}
			if x.WouldRun {
				t.Errorf("explain says globex's %s would run; it would reuse the shared result", tc.key)
			}
			if x.Output == nil || x.Output.Bucket != "globex-out" || x.Output.Key != tc.key {
				t.Errorf("explain's output location %+v, want globex-out/%s (the caller's own)", x.Output, tc.key)
			}
			noLeak(t, "explain", body)
			hit, body := e.invokeAs(t, otherToken, "globex-in", tc.key, false)
			if tc.wantOut != "" && (hit.Decision != activation.Hit || hit.Output == nil || hit.Output.Bucket != tc.wantOut) {
				t.Errorf("globex's hit: %s, output %+v; want a hit delivered to %s", hit.Decision, hit.Output, tc.wantOut)
			}
			noLeak(t, "the hit's activation", body)
		})
	}
	if n := rt.runs.Load(); n != 2 {
		t.Fatalf("%d runs, want 2: globex's uploads reuse acme's shared results", n)
	}
	// The admin still sees the whole record.
	code, body := e.do(t, "GET", "/v1/explain?fn=sh&bucket=globex-in&key=guess.txt", adminToken, nil, api.TenantHeader, "globex")
	if code != http.StatusOK || !strings.Contains(body, `"bucket": "acme-out"`) || !strings.Contains(body, secret) {
		t.Fatalf("explain as the admin: %d %s, want the record naming its output", code, body)
	}
}

// Issue 17 item 15: globex's POST /v1/invoke {"force": true} on a shared
// function deleted the shared record and replaced it with one whose
// output lives in globex-out; a retention globex set would do the same.
// Only the admin replaces or expires shared results: a tenant's force, or
// its own retention, re-runs for that tenant alone.
func TestForce_TenantDoesNotReplaceShared(t *testing.T) {
	e, rt := sharedEnv(t, nil)
	ctx := t.Context()
	put(t, "acme-in", "a.txt", "shared content")
	put(t, "globex-in", "b.txt", "shared content")
	first, _ := e.invokeAs(t, acmeToken, "acme-in", "a.txt", false)
	before, err := e.idx.Get(ctx, first.Key)
	if err != nil || rt.runs.Load() != 1 || before.Output == nil || before.Output.Bucket != "acme-out" {
		t.Fatalf("acme's run: %v, %d runs, record %+v", err, rt.runs.Load(), before)
	}
	unchanged := func(t *testing.T, after string) {
		t.Helper()
		rec, err := e.idx.Get(ctx, first.Key)
		if err != nil || rec.State != index.Done || *rec.Output != *before.Output || !rec.Updated.Equal(before.Updated) {
			t.Fatalf("after %s the shared record is %+v (%v); want it unchanged, output %+v", after, rec, err, *before.Output)
		}
	}
	forced, _ := e.invokeAs(t, otherToken, "globex-in", "b.txt", true)
	if n := rt.runs.Load(); n != 2 || forced.Decision != activation.Miss || forced.Output == nil || forced.Output.Bucket != "globex-out" {
		t.Fatalf("globex's force: %s, output %+v, %d runs; want a run of its own delivered to globex-out (2 runs)", forced.Decision, forced.Output, n)
	}
	unchanged(t, "globex's force")
	if got := objectText(t, "globex-out", "b.txt"); got != "SHARED CONTENT" {
		t.Fatalf("globex's forced output %q", got)
	}
	// Both tenants still reuse the shared result.
	for _, tc := range []struct{ token, bucket, key string }{{acmeToken, "acme-in", "a.txt"}, {otherToken, "globex-in", "b.txt"}} {
		if rec, _ := e.invokeAs(t, tc.token, tc.bucket, tc.key, false); rec.Decision != activation.Hit {
			t.Fatalf("invoke on %s after globex's force: %s, want a hit", tc.bucket, rec.Decision)
		}
	}
	if n := rt.runs.Load(); n != 2 {
		t.Fatalf("%d runs after two hits, want 2", n)
	}
	unchanged(t, "the hits")

	// globex's own retention: results older than it are not reused by
	// globex's sh, and not deleted for acme either.
	fn := fnDef("sh", "wasm", "globex-in", "globex-out")
	fn.Shared, fn.CacheFailures, fn.Limits.Retention = true, true, time.Nanosecond
	if code, body := e.do(t, "POST", "/v1/functions", otherToken, deployReq(fn, "x")); code != http.StatusOK {
		t.Fatalf("globex redeploys sh with retention 1ns: %d %s", code, body)
	}
	if code, body := e.do(t, "GET", "/v1/explain?fn=sh&bucket=globex-in&key=b.txt", otherToken, nil); code != http.StatusOK || !strings.Contains(body, `"would_run": true`) {
		t.Fatalf("globex's explain past its retention: %d %s, want would_run true", code, body)
	}
	if rec, _ := e.invokeAs(t, otherToken, "globex-in", "b.txt", false); rec.Decision != activation.Miss || rt.runs.Load() != 3 {
		t.Fatalf("globex's invoke past its retention: %s, %d runs; want a run of its own (3 runs)", rec.Decision, rt.runs.Load())
	}
	unchanged(t, "globex's retention")
	if rec, _ := e.invokeAs(t, acmeToken, "acme-in", "a.txt", false); rec.Decision != activation.Hit || rt.runs.Load() != 3 {
		t.Fatalf("acme's invoke after globex's retention: %s, %d runs; want a hit (3 runs)", rec.Decision, rt.runs.Load())
	}

	// The admin's force replaces the shared result.
	if rec, _ := e.invokeAs(t, adminToken, "acme-in", "a.txt", true, api.TenantHeader, "acme"); rec.Decision != activation.Miss || rt.runs.Load() != 4 {
		t.Fatalf("the admin's force: %s, %d runs; want a run (4 runs)", rec.Decision, rt.runs.Load())
	}
	forcedByAdmin, err := e.idx.Get(ctx, first.Key)
	if err != nil || forcedByAdmin.Updated.Equal(before.Updated) {
		t.Fatalf("after the admin's force the shared record is %+v (%v); want a new one", forcedByAdmin, err)
	}
	// The admin's own shared function (tenant default) expires it.
	fn = fnDef("sh", "wasm", "acme-in", "acme-out")
	fn.Shared, fn.CacheFailures, fn.Limits.Retention = true, true, time.Nanosecond
	if code, body := e.do(t, "POST", "/v1/functions", adminToken, deployReq(fn, "x")); code != http.StatusOK {
		t.Fatalf("the admin deploys sh with retention 1ns: %d %s", code, body)
	}
	put(t, "acme-in", "admin.txt", "shared content")
	if rec, _ := e.invokeAs(t, adminToken, "acme-in", "admin.txt", false); rec.Decision != activation.Miss || rt.runs.Load() != 5 {
		t.Fatalf("the admin's invoke past its retention: %s, %d runs; want a run (5 runs)", rec.Decision, rt.runs.Load())
	}
	if rec, err := e.idx.Get(ctx, first.Key); err != nil || rec.Updated.Equal(forcedByAdmin.Updated) || rec.Output.Key != "admin.txt" {
		t.Fatalf("after the admin's retention the shared record is %+v (%v); want a fresh one", rec, err)
	}
}

// objectText reads bucket/key from the test's store.
func objectText(t *testing.T, bucket, key string) string {
	t.Helper()
	rc, _, err := store.Get(t.Context(), bucket, key, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Issue 17 item 16: globex deployed --openwhisk-action acme-enrich, which
// ran with the operator's key. A tenant without an OpenWhisk namespace of
// its own deploys no OpenWhisk function.
func TestOpenWhisk_TenantWithoutNamespaceRefused(t *testing.T) {
	e := newEnv(t, setup{})
	fn := fnDef("enrich", "openwhisk", "globex-in", "globex-out")
	fn.Config = map[string]string{openwhisk.ConfigAction: "acme-enrich"}
	code, body := e.do(t, "POST", "/v1/functions", otherToken, deployReq(fn, ""))
	if code != http.StatusForbidden || !strings.Contains(body, "namespace") {
		t.Fatalf("globex deploys an OpenWhisk action without a namespace of its own: %d %s, want 403 naming the namespace", code, body)
	}
	if _, err := e.reg.Get(t.Context(), "globex", "enrich"); err == nil {
		t.Fatal("the refused deploy was stored")
	}
}

// Issue 17 item 16: tenants' OpenWhisk actions are confined to their own
// namespaces, at deploy (403) and at every call, which uses the tenant's
// key: globex's "acme-enrich" is globex's own action.
func TestOpenWhisk_TenantNamespace(t *testing.T) {
	const globexAuth = "globex-uuid:globex-key"
	tenants := map[string]openwhisk.Tenant{
		"acme":   {Namespace: "acme-ns", Auth: "acme-uuid:acme-key"},
		"globex": {Namespace: "globex-ns", Auth: globexAuth},
	}
	ow := owtest.New()
	ow.Auth, ow.Namespace = globexAuth, "globex-ns"
	ow.Register("acme-enrich", func(context.Context, map[string]any, func(string, ...any)) (map[string]any, error) {
		return map[string]any{"body": base64.StdEncoding.EncodeToString([]byte("globex's own"))}, nil
	})
	log := &authRecorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.mu.Lock()
		log.auths = append(log.auths, r.Method+" "+r.URL.EscapedPath()+" auth="+r.Header.Get("Authorization"))
		log.mu.Unlock()
		ow.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); ow.Close() })
	rt, err := openwhisk.New(openwhisk.Options{API: srv.URL, Auth: owtest.DefaultAuth, Tenants: tenants})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, setup{runtimes: map[string]runtime.Runtime{"openwhisk": rt}, ow: tenants})
	deploy := func(token, action string, hdr ...string) (int, string) {
		fn := fnDef("enrich", "openwhisk", "globex-in", "globex-out")
		fn.Config = map[string]string{openwhisk.ConfigAction: action}
		return e.do(t, "POST", "/v1/functions", token, deployReq(fn, ""), hdr...)
	}
	for _, tc := range []struct {
		name, token, action string
		hdr                 []string
		want                int
		inMsg               string
	}{
		{"OtherNamespace", otherToken, "/acme-ns/acme-enrich", nil, 403, "not in namespace globex-ns"},
		{"OperatorNamespace", otherToken, "/guest/x", nil, 403, "not in namespace globex-ns"},
		{"Traversal", otherToken, "/_/../..", nil, 400, "OpenWhisk name"},
		{"ExtraSegments", otherToken, "/globex-ns/pkg/a/b", nil, 400, "expected"},
		{"AdminForGlobex", adminToken, "/acme-ns/acme-enrich", []string{api.TenantHeader, "globex"}, 403, "not in namespace globex-ns"},
		{"Own", otherToken, "/globex-ns/acme-enrich", nil, 200, ""},
		{"OwnDefault", otherToken, "acme-enrich", nil, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := deploy(tc.token, tc.action, tc.hdr...)
			if code != tc.want || !strings.Contains(body, tc.inMsg) {
				t.Fatalf("deploy %s: %d %s, want %d mentioning %q", tc.action, code, body, tc.want, tc.inMsg)
			}
		})
	}
	if err := store.MakeBucket(t.Context(), "globex-in"); err != nil {
		t.Fatal(err)
	}
	if err := store.MakeBucket(t.Context(), "globex-out"); err != nil {
		t.Fatal(err)
	}
	put(t, "globex-in", "ow-"+t.Name()+".txt", "data")
	code, body := e.do(t, "POST", "/v1/invoke", otherToken, pipeline.InvokeRequest{Function: "enrich", Bucket: "globex-in", Key: "ow-" + t.Name() + ".txt"})
	if code != http.StatusOK || !strings.Contains(body, `"decision": "miss"`) {
		t.Fatalf("globex invokes its enrich: %d %s", code, body)
	}
	if got := objectText(t, "globex-out", "ow-"+t.Name()+".txt"); got != "globex's own" {
		t.Fatalf("globex's output %q", got)
	}
	reqs := log.seen()
	u, p, _ := strings.Cut(globexAuth, ":")
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(u, p)
	for _, req := range reqs {
		if !strings.Contains(req, "/api/v1/namespaces/globex-ns/actions/acme-enrich") || !strings.HasSuffix(req, "auth="+r.Header.Get("Authorization")) {
			t.Errorf("globex's function sent %q; want globex's namespace and key only", req)
		}
	}
	if len(reqs) == 0 || ow.Invokes("acme-enrich") != 1 {
		t.Fatalf("requests %q, %d invokes; want globex's action run once", reqs, ow.Invokes("acme-enrich"))
	}
}
