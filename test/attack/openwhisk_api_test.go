package attack

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/owapi"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// Keys of the OpenWhisk API (/api/v1): one per namespace.
const (
	owGuestKey  = "a0000000-0000-4000-8000-000000000001:guest-ow-key-0123456789abcdef"
	owAcmeKey   = "a0000000-0000-4000-8000-000000000002:acme-ow-key-0123456789abcdef"
	owGlobexKey = "a0000000-0000-4000-8000-000000000003:globex-ow-key-0123456789abcdef"
)

// owKeysEnv gives guest (the admin), acme and globex their keys.
var owKeysEnv = "DEDUPFN_OPENWHISK_KEYS=guest=" + owGuestKey + ";acme=" + owAcmeKey + ";globex=" + owGlobexKey

// TestOpenWhiskAPIAttacks are the attacks on the OpenWhisk API: a key
// reaching another namespace, the well-known guest key, host code as a
// tenant, a feed on another tenant's bucket, a cross-site request, and
// the feed's authKey kept at rest.
func TestOpenWhiskAPIAttacks(t *testing.T) {
	t.Run("OWKeyOtherNamespace", attackOWOtherNamespace)
	t.Run("OWWellKnownGuestKey", attackOWWellKnownKey)
	t.Run("OWUnknownNamespace", attackOWUnknownNamespace)
	t.Run("OWNoKeys", attackOWNoKeys)
	t.Run("OWTokensDoNotCross", attackOWTokensCross)
	t.Run("OWTenantHostCode", attackOWTenantHostCode)
	t.Run("OWFeedOtherBucket", attackOWFeedOtherBucket)
	t.Run("OWCrossSite", attackOWCrossSite)
	t.Run("OWFeedAuthKeyAtRest", attackOWAuthKeyAtRest)
	t.Run("OWHugeLimitsAndParams", attackOWHugeLimits)
}

// acme asks for a terabyte of memory, an hour's timeout, and 25 MiB of
// parameters: each refused, as fn deploy refuses them (--max-memory,
// --max-params), and no function deployed.
func attackOWHugeLimits(t *testing.T) {
	s := startServerEnv(t, []string{owKeysEnv})
	var sts []string
	for _, tc := range []struct {
		name string
		mod  func(a map[string]any)
	}{
		{"memory", func(a map[string]any) { a["limits"] = map[string]any{"memory": 1 << 20} }},
		{"timeout", func(a map[string]any) { a["limits"] = map[string]any{"timeout": 3_600_000} }},
		{"params", func(a map[string]any) {
			a["parameters"] = []map[string]any{{"key": "x", "value": strings.Repeat("p", 25<<20)}}
		}},
	} {
		a := copyAction(t)
		tc.mod(a)
		st, b := s.ow(owAcmeKey, "PUT", "/namespaces/_/actions/big-"+tc.name, a)
		sts = append(sts, fmt.Sprintf("%s=%d", tc.name, st))
		if st < 400 || st >= 500 {
			t.Errorf("acme's action with huge %s: %d %.300s", tc.name, st, b)
		}
	}
	fns, err := s.client(adminToken).Functions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	report(t, "refused, no function", fmt.Sprintf("%s; %d functions", strings.Join(sts, " "), len(fns)))
	if len(fns) != 0 {
		t.Errorf("functions deployed: %d", len(fns))
	}
}

// ow sends an OpenWhisk API request with key (Basic; "" = none) and
// returns the status and body.
func (s *server) ow(key, method, path string, body any, hdr ...string) (int, []byte) {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+s.api+"/api/v1"+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		u, p, _ := strings.Cut(key, ":")
		req.SetBasicAuth(u, p)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// copyAction is copy.wasm as an OpenWhisk wasm action.
func copyAction(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(copyWasm)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"exec": map[string]any{"kind": "wasm", "binary": true, "code": base64.StdEncoding.EncodeToString(b)}}
}

// acme's key on globex's and guest's namespaces, for every verb: each
// refused (403), and globex's action neither read, changed, run nor
// deleted; an activation id of globex's is a 404 for acme.
func attackOWOtherNamespace(t *testing.T) {
	s := startServerEnv(t, []string{owKeysEnv})
	if st, b := s.ow(owGlobexKey, "PUT", "/namespaces/_/actions/secret", copyAction(t)); st != 200 {
		t.Fatalf("globex creates its action: %d %s", st, b)
	}
	st, b := s.ow(owGlobexKey, "POST", "/namespaces/_/actions/secret?blocking=true", map[string]any{"v": 1})
	var act struct {
		ActivationID string `json:"activationId"`
	}
	json.Unmarshal(b, &act)
	if st != 200 || act.ActivationID == "" {
		t.Fatalf("globex invokes its action: %d %s", st, b)
	}
	var got []string
	refused := 0
	for _, r := range []struct{ method, path string }{
		{"GET", "/namespaces/globex/actions"},
		{"GET", "/namespaces/globex/actions/secret"},
		{"PUT", "/namespaces/globex/actions/secret?overwrite=true"},
		{"POST", "/namespaces/globex/actions/secret?blocking=true"},
		{"DELETE", "/namespaces/globex/actions/secret"},
		{"GET", "/namespaces/globex/activations"},
		{"GET", "/namespaces/globex/activations/" + act.ActivationID},
		{"GET", "/namespaces/guest/actions"},
		{"PUT", "/namespaces/globex/triggers/t"},
		{"GET", "/namespaces/%2e%2e/actions"},
		{"GET", "/namespaces/_/actions/..%2f..%2fglobex%2factions%2fsecret"},
		{"GET", "/namespaces/_/activations/" + act.ActivationID},
		{"GET", "/namespaces/_/activations/" + act.ActivationID + "/result"},
	} {
		var body any
		if r.method == "PUT" {
			body = copyAction(t)
		}
		st, b := s.ow(owAcmeKey, r.method, r.path, body)
		got = append(got, fmt.Sprintf("%s %s=%d", r.method, r.path, st))
		if st == 403 || st == 404 || st == 400 {
			refused++
		} else {
			t.Errorf("acme's key: %s %s = %d %s", r.method, r.path, st, b)
		}
	}
	st, b = s.ow(owGlobexKey, "GET", "/namespaces/_/actions/secret", nil)
	var a struct {
		Version string `json:"version"`
	}
	json.Unmarshal(b, &a)
	report(t, "every request refused; globex's action unchanged", fmt.Sprintf("%d/%d refused; globex's action %d v%s", refused, len(got), st, a.Version))
	if st != 200 || a.Version != "0.0.1" {
		t.Errorf("globex's action after acme's attempts: %d %s", st, b)
	}
}

// serveExits runs dedupfn serve with env and wants it to exit at start
// with an error containing want.
func serveExits(t *testing.T, want string, env ...string) string {
	t.Helper()
	cmd := exec.Command(dedupfnBin, "serve", "--data", t.TempDir(), "--s3-addr", testutil.FreeAddr(t), "--api-addr", testutil.FreeAddr(t))
	cmd.Env = append(os.Environ(), "DEDUPFN_ACCESS_KEY="+accessKey, "DEDUPFN_SECRET_KEY="+secretKey, "DEDUPFN_API_TOKEN="+adminToken,
		"DEDUPFN_TENANT_TOKENS=acme="+acmeToken+":acme-in,acme-out")
	cmd.Env = append(cmd.Env, env...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("serve did not exit; output:\n%s", out)
	}
	if err == nil || !strings.Contains(string(out), want) {
		t.Errorf("serve: %v, output:\n%s\nwant an exit with %q", err, out, want)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, want) {
			return l
		}
	}
	return firstLine(fmt.Errorf("%s", strings.TrimSpace(string(out))))
}

// OpenWhisk's distribution ships a guest key everybody knows: serve
// refuses to start with it.
func attackOWWellKnownKey(t *testing.T) {
	out := serveExits(t, "well-known guest key", "DEDUPFN_OPENWHISK_KEYS=guest="+owapi.WellKnownGuestKey)
	report(t, "serve refuses to start", out)
}

// A key for a namespace that is neither the admin's nor a tenant's:
// serve refuses to start.
func attackOWUnknownNamespace(t *testing.T) {
	out := serveExits(t, "neither the admin's", "DEDUPFN_OPENWHISK_KEYS=nobody="+owAcmeKey)
	report(t, "serve refuses to start", out)
}

// Without keys there is no OpenWhisk API: 404, whatever the credentials.
func attackOWNoKeys(t *testing.T) {
	s := startServer(t)
	st, _ := s.ow(owapi.WellKnownGuestKey, "GET", "/namespaces", nil)
	st2, _ := s.ow("", "GET", "/namespaces/_/actions", nil)
	report(t, "404", fmt.Sprintf("%d, %d", st, st2))
	if st != 404 || st2 != 404 {
		t.Errorf("/api/v1 without keys answered %d and %d", st, st2)
	}
}

// The admin's bearer token does not open /api/v1, and an OpenWhisk key
// does not open the dedupfn API.
func attackOWTokensCross(t *testing.T) {
	s := startServerEnv(t, []string{owKeysEnv})
	st1, _ := s.ow("", "GET", "/namespaces", nil, "Authorization", "Bearer "+adminToken)
	req, _ := http.NewRequest("GET", "http://"+s.api+"/v1/functions", nil)
	u, p, _ := strings.Cut(owGuestKey, ":")
	req.SetBasicAuth(u, p)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("GET", "http://"+s.api+"/v1/functions", nil)
	req.Header.Set("Authorization", "Bearer "+owGuestKey)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	report(t, "401 each", fmt.Sprintf("bearer on /api/v1 %d; OW key on /v1 %d (basic), %d (bearer)", st1, resp.StatusCode, resp2.StatusCode))
	if st1 != 401 || resp.StatusCode != 401 || resp2.StatusCode != 401 {
		t.Error("a credential of one API opened the other")
	}
}

// acme creates actions of host-code kinds (they would run as the
// server): refused, and no function deployed.
func attackOWTenantHostCode(t *testing.T) {
	s := startServerEnv(t, []string{owKeysEnv})
	var sts []string
	for _, kind := range []string{"nodejs:20", "python:3", "blackbox", "native"} {
		st, b := s.ow(owAcmeKey, "PUT", "/namespaces/_/actions/h", map[string]any{"exec": map[string]any{"kind": kind, "code": "x"}})
		sts = append(sts, fmt.Sprintf("%s=%d", kind, st))
		if st != 403 {
			t.Errorf("acme created a %s action: %d %s", kind, st, b)
		}
	}
	fns, err := s.client(adminToken).Functions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	report(t, "403 each, no function", fmt.Sprintf("%s; %d functions", strings.Join(sts, " "), len(fns)))
	if len(fns) != 0 {
		t.Errorf("functions deployed: %+v", fns)
	}
}

// acme points the objects feed at globex's buckets, and a rule at
// guest's action: refused, and no bucket function deployed.
func attackOWFeedOtherBucket(t *testing.T) {
	s := startServerEnv(t, []string{owKeysEnv})
	if st, b := s.ow(owGuestKey, "PUT", "/namespaces/_/actions/adminact", copyAction(t)); st != 200 {
		t.Fatalf("guest creates its action: %d %s", st, b)
	}
	feed := func(bucket, out string) map[string]any {
		return map[string]any{"lifecycleEvent": "CREATE", "triggerName": "/_/objs", "authKey": owAcmeKey, "bucket": bucket, "output_bucket": out}
	}
	const path = "/namespaces/whisk.system/actions/dedupfn/objects?blocking=true"
	st1, _ := s.ow(owAcmeKey, "POST", path, feed("globex-in", "acme-out"))
	st2, _ := s.ow(owAcmeKey, "POST", path, feed("acme-in", "globex-out"))
	st3, b := s.ow(owAcmeKey, "POST", path, feed("acme-in", "acme-out"))
	if st3 != 200 {
		t.Fatalf("acme's own feed: %d %s", st3, b)
	}
	st4, _ := s.ow(owAcmeKey, "PUT", "/namespaces/_/rules/r", map[string]any{"trigger": "/acme/objs", "action": "/guest/adminact"})
	fns, err := s.client(adminToken).Functions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var bucketFns []registry.Function
	for _, f := range fns {
		if f.Trigger.Bucket != "" {
			bucketFns = append(bucketFns, f)
		}
	}
	report(t, "403, 403, 200, 403; no bucket function", fmt.Sprintf("%d, %d, %d, %d; %d bucket functions", st1, st2, st3, st4, len(bucketFns)))
	if st1 != 403 || st2 != 403 || st4 != 403 || len(bucketFns) != 0 {
		t.Error("acme reached another tenant's bucket or action")
	}
}

// A browser page of another site sends a state change with the guest
// key (a stored Basic credential is sent cross-site), or a DNS rebinding
// host: refused by the API's own checks, which cover /api/v1.
func attackOWCrossSite(t *testing.T) {
	s := startServerEnv(t, []string{owKeysEnv})
	st1, _ := s.ow(owGuestKey, "PUT", "/namespaces/_/actions/csrf", copyAction(t), "Sec-Fetch-Site", "cross-site")
	st2, _ := s.ow(owGuestKey, "PUT", "/namespaces/_/actions/csrf", copyAction(t), "Origin", "http://evil.example")
	st3, _ := s.ow(owGuestKey, "GET", "/namespaces/_/actions", nil, "Host", "evil.example")
	st4, _ := s.ow(owGuestKey, "GET", "/namespaces/_/actions/csrf", nil)
	report(t, "403, 403, 403; no action", fmt.Sprintf("%d, %d, %d; action %d", st1, st2, st3, st4))
	if st1 != 403 || st2 != 403 || st3 != 403 || st4 != 404 {
		t.Error("a cross-site or rebound request reached /api/v1")
	}
}

// OpenWhisk clients send the caller's key as the feed's authKey: it
// never reaches the index (the data directory holds no copy of it).
func attackOWAuthKeyAtRest(t *testing.T) {
	s := startServerEnv(t, []string{owKeysEnv})
	st, b := s.ow(owAcmeKey, "POST", "/namespaces/whisk.system/actions/dedupfn/objects?blocking=true",
		map[string]any{"lifecycleEvent": "CREATE", "triggerName": "/_/objs", "authKey": owAcmeKey, "bucket": "acme-in", "output_bucket": "acme-out"})
	if st != 200 {
		t.Fatalf("feed CREATE: %d %s", st, b)
	}
	s.ow(owAcmeKey, "GET", "/namespaces/_/activations?docs=true", nil)
	dataDir := ""
	for i, a := range s.cmd.Args {
		if a == "--data" {
			dataDir = s.cmd.Args[i+1]
		}
	}
	secret := []byte(strings.SplitN(owAcmeKey, ":", 2)[1])
	var found []string
	filepath.Walk(dataDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, secret) {
			found = append(found, p)
		}
		return nil
	})
	report(t, "no copy at rest", fmt.Sprintf("%d files hold it", len(found)))
	if len(found) > 0 || bytes.Contains(b, secret) {
		t.Errorf("the feed's authKey is kept: %v (or in the answer)", found)
	}
}
