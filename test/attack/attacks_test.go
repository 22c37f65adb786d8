package attack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk/owtest"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm/wasmtest"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// copyFn is a copy.wasm function from in/prefix to out, key for key.
func copyFn(t *testing.T, name, in, prefix, out string, shared bool) api.DeployRequest {
	return api.DeployRequest{Code: mustRead(t, copyWasm), Function: registry.Function{
		Name: name, Runtime: "wasm", Shared: shared,
		Trigger: registry.Trigger{Bucket: in, Prefix: prefix},
		Output:  registry.Output{Bucket: out},
	}}
}

func mustDeploy(t *testing.T, c *api.Client, req api.DeployRequest) {
	t.Helper()
	if _, err := deploy(t, c, req); err != nil {
		t.Fatalf("deploy %s: %v", req.Function.Name, err)
	}
}

func TestAttacks(t *testing.T) {
	t.Run("MD5CollisionSameKey", attackMD5SameKey)
	t.Run("MD5CollisionRecordedOutput", attackMD5RecordedOutput)
	t.Run("SwapBackSameKey", attackSwapBack)
	t.Run("GetURLOverwriteRace", attackGetURLRace)
	t.Run("PresignedURLsAfterActivation", attackPresignAfter)
	t.Run("UploaderSetsOutputMarker", attackOutputMarker)
	t.Run("DotSegmentsInKey", attackDotSegments)
	t.Run("SharedExplainProbe", attackSharedExplain)
	t.Run("SharedForceInvoke", attackSharedForce)
	t.Run("PurgeProbe", attackPurgeProbe)
	t.Run("MetricsAsTenant", attackMetricsAsTenant)
	t.Run("IdleConnectionFlood", attackIdleFlood)
	t.Run("SlowBodyDeploys", attackSlowBodies)
	t.Run("HugeParams", attackHugeParams)
	t.Run("OpenWhiskOtherNamespace", attackOpenWhiskNamespace)
	t.Run("CompileBomb", attackCompileBomb)
	t.Run("ChainIntoOtherTenant", attackChainIntoOtherTenant)
}

// A then its MD5 twin B under one key: B must run, and the output hold B.
func attackMD5SameKey(t *testing.T) {
	s := startServer(t)
	mustDeploy(t, s.client(acmeToken), copyFn(t, "cp", "acme-in", "k/", "acme-out", false))
	a, b := testutil.MD5CollisionPair()
	s.put("acme-in", "k/doc.bin", a, nil)
	s.waitActivations(1, time.Minute, onKey("acme-in", "k/doc.bin"))
	s.put("acme-in", "k/doc.bin", b, nil)
	var n int
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		n = len(s.waitActivations(1, time.Minute, onKey("acme-in", "k/doc.bin")))
		if n >= 2 && bytes.Equal(s.get("acme-out", "k/doc.bin"), b) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := s.get("acme-out", "k/doc.bin")
	report(t, "2 activations, output = B", fmt.Sprintf("%d activations, output %s (B is %s)", n, short(out), short(b)))
	if n != 2 || !bytes.Equal(out, b) {
		t.Errorf("after uploading B over its MD5 twin A: %d activations, output %s; want 2 and B's bytes", n, short(out))
	}
}

// bad, then clean, then bad again at one key ("scan clean, then swap
// back", no collision needed): the third upload must run, and the output
// hold f(bad).
func attackSwapBack(t *testing.T) {
	s := startServer(t)
	mustDeploy(t, s.client(acmeToken), copyFn(t, "cp", "acme-in", "k/", "acme-out", false))
	for i, body := range []string{"bad", "clean"} {
		s.put("acme-in", "k/doc.txt", []byte(body), nil)
		s.waitActivations(i+1, time.Minute, onKey("acme-in", "k/doc.txt"))
	}
	s.put("acme-in", "k/doc.txt", []byte("bad"), nil)
	var out []byte
	var n int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, n = s.get("acme-out", "k/doc.txt"), len(s.waitActivations(0, time.Second, onKey("acme-in", "k/doc.txt")))
		if n >= 3 {
			break
		}
	}
	report(t, "3 activations, output = bad", fmt.Sprintf("%d activations, output %q", n, out))
	if string(out) != "bad" {
		t.Errorf("after bad, clean, bad at one key: output %q, %d activations; want \"bad\"", out, n)
	}
}

// globex overwrites the recorded output of a shared function with an
// MD5 twin; acme's later upload of the original must still get f(A).
func attackMD5RecordedOutput(t *testing.T) {
	s := startServer(t)
	mustDeploy(t, s.client(globexToken), copyFn(t, "sh", "globex-in", "sh/", "globex-out", true))
	mustDeploy(t, s.client(acmeToken), copyFn(t, "sh", "acme-in", "sh/", "acme-out", true))
	a, b := testutil.MD5CollisionPair()
	s.put("globex-in", "sh/a.bin", a, nil)
	s.waitActivations(1, time.Minute, onKey("globex-in", "sh/a.bin"))
	s.put("globex-out", "sh/a.bin", b, nil) // the recorded output, replaced by its twin
	s.put("acme-in", "sh/a.bin", a, nil)
	recs := s.waitActivations(1, time.Minute, onKey("acme-in", "sh/a.bin"))
	out := s.get("acme-out", "sh/a.bin")
	report(t, "acme's output = A", fmt.Sprintf("decision %s, output %s (A is %s)", recs[0].Decision, short(out), short(a)))
	if !bytes.Equal(out, a) {
		t.Errorf("acme's output %s, want A's bytes %s (decision %s)", short(out), short(a), recs[0].Decision)
	}
}

// fetchFn is the admin's process action from ow to ow-out.
func fetchFn(t *testing.T, log string, ms int) api.DeployRequest {
	return api.DeployRequest{Code: mustRead(t, fetchAction), Function: registry.Function{
		Name: "fetch", Runtime: "process",
		Params:  map[string]string{"log": log, "ms": fmt.Sprint(ms)},
		Trigger: registry.Trigger{Bucket: "ow-in"},
		Output:  registry.Output{Bucket: "ow-out"},
		// RLIMIT_AS: a Go runtime reserves ~1 GiB of address space at start.
		Limits: registry.Limits{Timeout: 20 * time.Second, MemoryMB: 1536},
	}}
}

// sideLines reads the action's side file.
func sideLines(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// A 2 MB input reaches the action only by get_url; the key is overwritten
// before the action fetches it. Whatever A's activation recorded must be
// A's output: a later upload of A elsewhere must deliver A.
func attackGetURLRace(t *testing.T) {
	s := startServer(t)
	log := filepath.Join(t.TempDir(), "side.log")
	mustDeploy(t, s.client(adminToken), fetchFn(t, log, 1500))
	a := bytes.Repeat([]byte("A"), 2<<20)
	b := bytes.Repeat([]byte("B"), 2<<20)
	s.put("ow-in", "first.bin", a, nil)
	time.Sleep(600 * time.Millisecond)
	s.put("ow-in", "first.bin", b, nil)
	s.waitActivations(2, 2*time.Minute, onKey("ow-in", "first.bin"))
	s.put("ow-in", "second.bin", a, nil)
	recs := s.waitActivations(1, time.Minute, onKey("ow-in", "second.bin"))
	out := s.get("ow-out", "second.bin")
	report(t, "second.bin's output = A", fmt.Sprintf("decision %s, output %s (A is %s)", recs[0].Decision, short(out), short(a)))
	if !bytes.Equal(out, a) {
		t.Errorf("A uploaded again got output %s, want A's bytes (decision %s): the record for A holds another content's output", short(out), recs[0].Decision)
	}
}

// The action's input and output URLs must be dead once its activation ended.
func attackPresignAfter(t *testing.T) {
	s := startServer(t)
	log := filepath.Join(t.TempDir(), "side.log")
	mustDeploy(t, s.client(adminToken), fetchFn(t, log, 0))
	s.put("ow-in", "big.bin", bytes.Repeat([]byte("x"), 2<<20), nil)
	s.waitActivations(1, time.Minute, onKey("ow-in", "big.bin"))
	var getURL, putURL string
	for _, l := range sideLines(t, log) {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "start" {
			getURL, putURL = f[1], f[2]
		}
	}
	if getURL == "" || getURL == "-" {
		t.Fatalf("the action got no get_url: %v", sideLines(t, log))
	}
	time.Sleep(time.Second)
	status := func(method, u string) int {
		req, _ := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader("late"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	g := status(http.MethodGet, getURL)
	// A presigned PUT cannot be revoked: it must expire with the
	// activation's deadline (its timeout, 20 s, plus a margin), not 1 h on.
	expires := "-"
	if u, err := url.Parse(putURL); err == nil && putURL != "-" {
		expires = u.Query().Get("X-Amz-Expires")
	}
	secs, _ := strconv.Atoi(expires)
	report(t, "GET refused after the activation; PUT expires ≤ 60s", fmt.Sprintf("GET %d, PUT expires in %ss", g, expires))
	if g == 200 {
		t.Errorf("get_url still served the input after the activation ended (HTTP %d)", g)
	}
	if secs <= 0 || secs > 60 {
		t.Errorf("put_url expires in %q seconds, want within the activation's deadline (20s timeout + margin)", expires)
	}
}

// An uploader sets dedupfn's own output marker on its object: the object
// must still trigger the function.
func attackOutputMarker(t *testing.T) {
	s := startServer(t)
	mustDeploy(t, s.client(acmeToken), copyFn(t, "cp", "acme-in", "", "acme-out", false))
	s.put("acme-in", "marked.txt", []byte("hello"), map[string]string{"dedupfn-output-of": "cp@v1", "dedupfn-input": "x"})
	s.put("acme-in", "plain.txt", []byte("plain"), nil)
	s.waitActivations(1, time.Minute, onKey("acme-in", "plain.txt"))
	time.Sleep(time.Second)
	n := len(s.waitActivations(0, time.Second, onKey("acme-in", "marked.txt")))
	out := s.get("acme-out", "marked.txt")
	report(t, "marked upload runs", fmt.Sprintf("%d activations, output %s", n, short(out)))
	if n != 1 || string(out) != "hello" {
		t.Errorf("upload with a client-set dedupfn-output-of: %d activations, output %q; want it to run like any upload", n, out)
	}
}

// Keys with dot segments are stored cleaned; the event must be too.
func attackDotSegments(t *testing.T) {
	s := startServer(t)
	mustDeploy(t, s.client(adminToken), copyFn(t, "cp", "dots", "t/", "dots-out", false))
	s.put("dots", ".dedupfn/staging/../../t/c.txt", []byte("c"), nil)
	s.put("dots", "t/x/../b.txt", []byte("b"), nil)
	var c, b []byte
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, b = s.get("dots-out", "t/c.txt"), s.get("dots-out", "t/b.txt"); c != nil && b != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	report(t, "outputs t/c.txt and t/b.txt", fmt.Sprintf("t/c.txt %q, t/b.txt %q", c, b))
	if string(c) != "c" || string(b) != "b" {
		t.Errorf("keys with dot segments: outputs t/c.txt=%q t/b.txt=%q, want \"c\" and \"b\"", c, b)
	}
}

// sharedPair deploys one shared copy function for acme and for globex and
// has acme process a confidential object.
func sharedPair(t *testing.T, s *server) (secret []byte) {
	mustDeploy(t, s.client(acmeToken), copyFn(t, "sh", "acme-in", "sh/", "acme-out", true))
	mustDeploy(t, s.client(globexToken), copyFn(t, "sh", "globex-in", "sh/", "globex-out", true))
	secret = []byte("layoffs: everyone in building 7")
	s.put("acme-in", "sh/hr/layoffs-2027-confidential.txt", secret, nil)
	s.waitActivations(1, time.Minute, onKey("acme-in", "sh/hr/layoffs-2027-confidential.txt"))
	return secret
}

// globex guesses acme's content and asks explain: it may learn that it
// would hit, never where acme's output is or who ran it.
func attackSharedExplain(t *testing.T) {
	s := startServer(t)
	secret := sharedPair(t, s)
	s.put("globex-in", "sh/guess.txt", secret, nil)
	s.waitActivations(1, time.Minute, onKey("globex-in", "sh/guess.txt"))
	x, err := s.client(globexToken).Explain(t.Context(), "sh", "globex-in", "sh/guess.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(x)
	recs, err := s.client(globexToken).Activations(t.Context(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	acts, _ := json.Marshal(recs)
	leaks := []string{}
	for _, w := range []string{"acme", "layoffs"} {
		if bytes.Contains(body, []byte(w)) {
			leaks = append(leaks, "explain:"+w)
		}
		if bytes.Contains(acts, []byte(w)) {
			leaks = append(leaks, "activations:"+w)
		}
	}
	report(t, "nothing of acme's", fmt.Sprintf("leaks %v", leaks))
	if len(leaks) > 0 {
		t.Errorf("globex's explain/activations reveal acme's data %v:\n%s", leaks, body)
	}
}

// globex forces a run of the shared function: the shared record (acme's
// output location) must stay as it was.
func attackSharedForce(t *testing.T) {
	s := startServer(t)
	secret := sharedPair(t, s)
	admin := s.client(adminToken)
	admin.Tenant = "acme"
	before, err := admin.Explain(t.Context(), "sh", "acme-in", "sh/hr/layoffs-2027-confidential.txt")
	if err != nil || before.Record == nil || before.Record.Output == nil {
		t.Fatalf("admin explain before: %+v, %v", before, err)
	}
	s.put("globex-in", "sh/guess.txt", secret, nil)
	s.waitActivations(1, time.Minute, onKey("globex-in", "sh/guess.txt"))
	_, ferr := s.client(globexToken).Invoke(t.Context(), pipeline.InvokeRequest{Function: "sh", Bucket: "globex-in", Key: "sh/guess.txt", Force: true})
	after, err := admin.Explain(t.Context(), "sh", "acme-in", "sh/hr/layoffs-2027-confidential.txt")
	if err != nil || after.Record == nil || after.Record.Output == nil {
		t.Fatalf("admin explain after: %+v, %v", after, err)
	}
	b, a := before.Record.Output.Bucket+"/"+before.Record.Output.Key, after.Record.Output.Bucket+"/"+after.Record.Output.Key
	report(t, "shared record unchanged", fmt.Sprintf("force err %v; record output %s → %s", ferr != nil, b, a))
	if a != b {
		t.Errorf("globex's force replaced the shared record: output %s → %s", b, a)
	}
}

// globex purges a function acme has and one nobody has: same answer.
func attackPurgeProbe(t *testing.T) {
	s := startServer(t)
	mustDeploy(t, s.client(acmeToken), copyFn(t, "secret-fn", "acme-in", "", "acme-out", false))
	mustDeploy(t, s.client(globexToken), copyFn(t, "secret-fn", "globex-in", "", "globex-out", false))
	s.put("acme-in", "x.txt", []byte("x"), nil)
	recs := s.waitActivations(1, time.Minute, onKey("acme-in", "x.txt"))
	answer := func(req api.PurgeRequest) string {
		n, err := s.client(globexToken).Purge(t.Context(), req)
		return fmt.Sprintf("%d %v", n, err)
	}
	other := answer(api.PurgeRequest{Function: "secret-fn", Key: recs[0].Key})
	absent := answer(api.PurgeRequest{Function: "secret-fn", Key: strings.Repeat("0", len(recs[0].Key))})
	report(t, "same answer", fmt.Sprintf("acme's key: %q, absent key: %q", other, absent))
	if other != absent {
		t.Errorf("purge of acme's record answers %q, of an absent one %q: globex learns acme holds it", other, absent)
	}
}

func attackMetricsAsTenant(t *testing.T) {
	s := startServer(t)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.api+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+globexToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	report(t, "403", fmt.Sprint(resp.StatusCode))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("/metrics with a tenant token: HTTP %d, want 403", resp.StatusCode)
	}
}

// 1,010 idle connections to the S3 port, then a signed ListBuckets.
func attackIdleFlood(t *testing.T) {
	s := startServer(t)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 1010 {
		c, err := net.Dial("tcp", s.s3)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	for range 100 {
		c, err := net.Dial("tcp", s.api)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	start := time.Now()
	var lerr error
	ok := false
	for time.Since(start) < 60*time.Second {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, lerr = s.minio().ListBuckets(ctx)
		cancel()
		if lerr == nil {
			ok = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	report(t, "ls works within 15s", fmt.Sprintf("%d idle conns; ls ok=%v after %s", len(conns), ok, took.Round(100*time.Millisecond)))
	if !ok || took > 15*time.Second {
		t.Errorf("with %d idle connections, ListBuckets ok=%v after %s (last error %v)", len(conns), ok, took, lerr)
	}
}

// slowBody sends a deploy body one byte every 5 s.
func slowBody(ctx context.Context, addr, token string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/functions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", addr, token)
	for ctx.Err() == nil {
		if _, err := c.Write([]byte(" ")); err != nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

// Slow deploy bodies must not hold the deploy slots the admin needs.
func attackSlowBodies(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { slowBody(ctx, s.api, globexToken) })
	}
	defer func() { cancel(); wg.Wait() }()
	time.Sleep(2 * time.Second) // the slow bodies hold what they can
	start := time.Now()
	dctx, dcancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer dcancel()
	_, err := s.client(adminToken).Deploy(dctx, copyFn(t, "cp", "dots", "", "dots-out", false))
	took := time.Since(start)
	report(t, "admin deploy within 10s", fmt.Sprintf("err %v after %s", err, took.Round(100*time.Millisecond)))
	if err != nil || took > 10*time.Second {
		t.Errorf("admin deploy beside 4 slow bodies: err %v after %s", err, took)
	}
}

// Params of 25 MiB are refused at deploy.
func attackHugeParams(t *testing.T) {
	s := startServer(t)
	req := copyFn(t, "big", "acme-in", "", "acme-out", false)
	req.Function.Params = map[string]string{"x": strings.Repeat("p", 25<<20)}
	_, err := deploy(t, s.client(acmeToken), req)
	report(t, "refused", fmt.Sprintf("err %v", firstLine(err)))
	if err == nil {
		t.Errorf("deploy with 25 MiB params accepted")
	}
}

// globex names acme's OpenWhisk action, and a path that climbs out of
// the namespace: both refused, and the controller never called.
func attackOpenWhiskNamespace(t *testing.T) {
	ow := owtest.New()
	ow.Register("acme-enrich", func(context.Context, map[string]any, func(string, ...any)) (map[string]any, error) {
		return map[string]any{"ok": true}, nil
	})
	hs := httptest.NewServer(ow)
	defer hs.Close()
	defer ow.Close()
	s := startServerEnv(t, []string{"DEDUPFN_OPENWHISK_AUTH=" + owtest.DefaultAuth}, "--openwhisk-api", hs.URL)
	var errs []string
	for _, action := range []string{"acme-enrich", "/guest/acme-enrich", "/_/../../guest/acme-enrich"} {
		req := api.DeployRequest{Function: registry.Function{
			Name: "enrich", Runtime: "openwhisk", Config: map[string]string{"openwhisk.action": action},
			Trigger: registry.Trigger{Bucket: "globex-in"}, Output: registry.Output{Bucket: "globex-out"},
		}}
		_, err := deploy(t, s.client(globexToken), req)
		if err == nil {
			t.Errorf("globex deployed OpenWhisk action %q of another namespace", action)
		}
		errs = append(errs, firstLine(err))
	}
	s.put("globex-in", "x.txt", []byte("x"), nil)
	time.Sleep(2 * time.Second)
	n := ow.Invokes("acme-enrich")
	report(t, "deploys refused, 0 invokes", fmt.Sprintf("%d invokes; %s", n, strings.Join(errs, " | ")))
	if n != 0 {
		t.Errorf("acme's action was invoked %d times for globex", n)
	}
}

// globex deploys compile bombs in a loop while acme's uploads keep
// coming: every bomb is refused at once, and acme's events stay fast.
func attackCompileBomb(t *testing.T) {
	s := startServer(t)
	mustDeploy(t, s.client(acmeToken), copyFn(t, "cp", "acme-in", "", "acme-out", false))
	bomb := wasmtest.CompileBomb(40000)
	ctx, cancel := context.WithCancel(t.Context())
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		deploys  int
		accepted int
		slowest  time.Duration
	)
	inflight := map[int]time.Time{} // deploys under way, by goroutine
	for g := range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				start := time.Now()
				mu.Lock()
				inflight[g] = start
				mu.Unlock()
				_, err := s.client(globexToken).Deploy(ctx, api.DeployRequest{Code: bomb, Function: registry.Function{
					Name: "bomb", Runtime: "wasm", Trigger: registry.Trigger{Bucket: "globex-in"}, Output: registry.Output{Bucket: "globex-out"},
				}})
				mu.Lock()
				delete(inflight, g)
				if ctx.Err() == nil {
					deploys++
					slowest = max(slowest, time.Since(start))
					if err == nil {
						accepted++
					}
				}
				mu.Unlock()
			}
		})
	}
	const uploads = 40
	for i := range uploads {
		s.put("acme-in", fmt.Sprintf("u/%02d.txt", i), []byte(fmt.Sprintf("upload %d", i)), nil)
		time.Sleep(100 * time.Millisecond) // 4 s and more of uploads beside the bombs
	}
	recs := s.waitActivations(uploads, 2*time.Minute, func(r activation.Record) bool { return r.Tenant == "acme" })
	mu.Lock()
	for _, start := range inflight { // a deploy still compiling counts as slow as it is now
		slowest = max(slowest, time.Since(start))
	}
	mu.Unlock()
	cancel()
	wg.Wait()
	var lat []float64
	for _, r := range recs {
		lat = append(lat, r.Timings.QueueMS+r.Timings.TotalMS)
	}
	slices.Sort(lat)
	p99 := lat[(len(lat)*99+99)/100-1]
	report(t, "bombs refused < 2s; acme p99 < 1s", fmt.Sprintf("%d bomb deploys, %d accepted, slowest %s; acme p99 %.0f ms over %d events", deploys, accepted, slowest.Round(time.Millisecond), p99, len(lat)))
	if accepted > 0 || slowest > 2*time.Second {
		t.Errorf("compile bombs: %d of %d deploys accepted, slowest answer %s", accepted, deploys, slowest)
	}
	if p99 > 1000 {
		t.Errorf("acme's events under globex's compile bombs: p99 %.0f ms", p99)
	}
}

func firstLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	l, _, _ := strings.Cut(err.Error(), "\n")
	if len(l) > 80 {
		l = l[:80] + "…"
	}
	return l
}
