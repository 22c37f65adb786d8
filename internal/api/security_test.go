package api_test

// Each test here reproduces an attack from issue 9 against the API; see
// docs/security.md, which names them.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk"
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
}

func newEnv(t *testing.T, s setup) *env {
	t.Helper()
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
		OpenWhiskAllow: s.owAllow, TenantRuntimes: []string{"test", "wasm", "openwhisk"}}
	if !s.noTokens {
		cfg.AdminToken = adminToken
		cfg.Tenants = []api.Tenant{
			{Name: "acme", Token: acmeToken, Buckets: []string{"acme-in", "acme-out"}},
			{Name: "globex", Token: otherToken, Buckets: []string{"globex-in", "globex-out"}},
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
	code, body = e.do(t, "POST", "/v1/purge", otherToken, api.PurgeRequest{Function: "thumb", Key: "k-shared"})
	if code == http.StatusOK {
		t.Fatalf("globex purges the shared key: %d %s", code, body)
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
	exec := deployReq(fnDef("pwn", "process", "in", "out"), "#!/bin/sh\nid\n")
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
		go pw.Write([]byte(`{"function":{"name":"slow` + fmt.Sprint(i) + `","runtime":"wasm","trigger":{"bucket":"in"},"output":{"bucket":"out"}},"code":"` + strings.Repeat("A", 1<<20)))
	}
	t.Cleanup(func() {
		for _, pw := range pipes {
			pw.CloseWithError(errors.New("test over"))
		}
	})
	time.Sleep(200 * time.Millisecond)
	j, _ := json.Marshal(deployReq(fnDef("quick", "wasm", "in", "out"), "x"))
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
