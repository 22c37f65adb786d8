package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/inputurl"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// slowEcho is an --exec (actionloop) action that notes each run in the
// file named by its "runs" param, waits "delay" seconds, then reads its
// input from get_url and PUTs those bytes to put_url as its output.
const slowEcho = `#!/usr/bin/python3
import json, os, sys, time, urllib.request
out = os.fdopen(3, "w")
out.write('{"ok":true}\n'); out.flush()
for line in sys.stdin:
    v = json.loads(line)["value"]
    with open(v["runs"], "a") as f:
        f.write(v["key"] + "\n")
    time.sleep(float(v["delay"]))
    data = urllib.request.urlopen(v["get_url"]).read()
    urllib.request.urlopen(urllib.request.Request(v["put_url"], data=data, method="PUT")).read()
    out.write(json.dumps({"read": len(data)}) + "\n"); out.flush()
`

// deployCode deploys a function of the given code.
func (e *env) deployCode(name string, code []byte, mutate func(*registry.Function)) {
	e.t.Helper()
	f := registry.Function{Name: name, Trigger: registry.Trigger{Bucket: e.in}, Output: registry.Output{Bucket: e.out}}
	mutate(&f)
	if _, err := e.reg.Deploy(e.t.Context(), f, code); err != nil {
		e.t.Fatal(err)
	}
}

// urlEnv is a pipeline with the given runtimes and an input server on
// loopback, wired as serve wires it.
func urlEnv(t *testing.T, rts map[string]runtime.Runtime) *env {
	t.Helper()
	idx, in, out := newIndexAndBuckets(t, "url")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := inputurl.New("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(inputurl.Route, inputs)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e := &env{t: t, idx: idx, reg: registry.New(idx, nil), in: in, out: out}
	e.pipe, err = pipeline.New(pipeline.Config{
		Index: idx, Objects: store, Registry: e.reg, Runtimes: rts, Inputs: inputs,
		Owner: "test-replica", SpoolDir: t.TempDir(), RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestGetURL_ReadsTheFingerprintedBytes: an input over the inline limit
// reaches an --exec action only through get_url. The key is overwritten
// with other bytes while the action waits before fetching: what the
// action reads, and what is recorded as the output of the first
// content's fingerprint, must be the first content.
func TestGetURL_ReadsTheFingerprintedBytes(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testutil.Missing(t, "/usr/bin/python3 (the test action's interpreter)")
	}
	rt, err := process.New(process.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	e := urlEnv(t, map[string]runtime.Runtime{"process": rt})
	runs := filepath.Join(t.TempDir(), "runs")
	e.deployCode("echo", []byte(slowEcho), func(f *registry.Function) {
		f.Runtime = "process"
		f.Params = map[string]string{"runs": runs, "delay": "1.5"}
	})

	a := strings.Repeat("A", 2<<20) // over the 1 MiB inline limit
	b := strings.Repeat("B", 2<<20)
	ev := e.put("first.bin", a)
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(600 * time.Millisecond) // the action is waiting to fetch
		if _, err := store.Put(t.Context(), e.in, "first.bin", strings.NewReader(b), int64(len(b)), objects.PutOptions{}); err != nil {
			t.Error(err)
		}
	})
	e.handle(ev)
	wg.Wait()

	recs := e.activations()
	if len(recs) != 1 {
		t.Fatalf("%d activations, want 1", len(recs))
	}
	r := recs[0]
	sum := sha256.Sum256([]byte(a))
	if !strings.HasSuffix(r.Fingerprint, hex.EncodeToString(sum[:])) {
		t.Fatalf("fingerprint %s, want A's (sha256 %x)", r.Fingerprint, sum)
	}
	switch r.Decision {
	case activation.Miss:
		got := e.output("first.bin")
		if got != a {
			t.Fatalf("A's activation recorded an output of %d bytes starting %.8q: want A's own bytes", len(got), got)
		}
	case activation.Error:
		if r.ErrorClass != string(runtime.ClassPlatform) {
			t.Fatalf("error %q class %q: a changed input may only fail as a platform error", r.Error, r.ErrorClass)
		}
	default:
		t.Fatalf("decision %s (%s), want a miss", r.Decision, r.Error)
	}
	n, _ := os.ReadFile(runs)
	if got := strings.Count(string(n), "\n"); got != 1 {
		t.Fatalf("the action ran %d times, want 1", got)
	}
	if r.Decision != activation.Miss {
		return
	}
	// A later upload of A is a hit that delivers A's output, not B.
	e.handle(e.put("second.bin", a))
	if d := e.decisions(); d["second.bin"] != activation.Hit {
		t.Fatalf("decisions %v, want second.bin a hit", d)
	}
	if got := e.output("second.bin"); got != a {
		t.Errorf("the hit on A delivered %d bytes starting %.8q: want A's", len(got), got)
	}
}

// urlRuntime records the URLs it is given and reads its input from get_url.
type urlRuntime struct {
	mu       sync.Mutex
	get, put string
	read     []byte
}

func (r *urlRuntime) Name() string                { return "urls" }
func (r *urlRuntime) Version() string             { return "urls/1" }
func (r *urlRuntime) Close(context.Context) error { return nil }

func (r *urlRuntime) Invoke(ctx context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.get, r.put = inv.Object.GetURL, inv.Object.PutURL
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, inv.Object.GetURL, nil)
	if err != nil {
		return runtime.Result{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return runtime.Result{}, runtime.Errorf(runtime.ClassPlatform, "get input: %v", err)
	}
	defer resp.Body.Close()
	r.read, err = io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return runtime.Result{}, runtime.Errorf(runtime.ClassPlatform, "get input: %s %v", resp.Status, err)
	}
	inv.Output.Write(r.read)
	return runtime.Result{OutputWritten: true}, nil
}

// TestPresignedURLs_ExpireWithTheActivation: get_url and put_url are
// valid for the activation's deadline (its timeout and a small margin),
// not an hour; get_url is refused as soon as the activation has ended.
func TestPresignedURLs_ExpireWithTheActivation(t *testing.T) {
	rt := &urlRuntime{}
	e := urlEnv(t, map[string]runtime.Runtime{"urls": rt})
	const timeout = 5 * time.Second
	e.deploy("echo", func(f *registry.Function) { f.Runtime = "urls"; f.Limits.Timeout = timeout })
	e.handle(e.put("a.txt", "the input"))
	if d := e.decisions(); d["a.txt"] != activation.Miss {
		t.Fatalf("decisions %v, want a miss", d)
	}
	if string(rt.read) != "the input" {
		t.Fatalf("get_url gave %q during the activation", rt.read)
	}

	resp, err := http.Get(rt.get)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || bytes.Contains(body, []byte("the input")) {
		t.Errorf("get_url after the activation ended: %s %q, want it refused", resp.Status, body)
	}

	u, err := url.Parse(rt.put)
	if err != nil {
		t.Fatal(err)
	}
	secs, err := strconv.Atoi(u.Query().Get("X-Amz-Expires"))
	if err != nil {
		t.Fatalf("put_url %s: no X-Amz-Expires", rt.put)
	}
	if got, max := time.Duration(secs)*time.Second, timeout+pipeline.DefaultURLMargin; got > max {
		t.Errorf("put_url valid for %s, want at most the timeout and margin, %s", got, max)
	}
}

// TestDeploy_RemoteActionNeedsAReachablePublicURL: a function on a remote
// OpenWhisk is refused at deploy while get_url names loopback; one on a
// loopback OpenWhisk, or with a public URL others reach, is accepted.
func TestDeploy_RemoteActionNeedsAReachablePublicURL(t *testing.T) {
	ow, err := openwhisk.New(openwhisk.Options{API: "https://ow.example", Allow: []string{"http://127.0.0.1:3233"}, Auth: "u:k"})
	if err != nil {
		t.Fatal(err)
	}
	idx := testutil.BoltIndex(t)
	fn := func(api string) registry.Function {
		f := registry.Function{Name: "enrich", Runtime: "openwhisk", Trigger: registry.Trigger{Bucket: "in"}, Output: registry.Output{Bucket: "out"},
			Config: map[string]string{openwhisk.ConfigAction: "enrich"}}
		if api != "" {
			f.Config[openwhisk.ConfigAPI] = api
		}
		return f
	}
	for _, c := range []struct {
		public, api string
		refused     bool
	}{
		{"http://127.0.0.1:8080", "", true}, // the runtime's default host, remote
		{"http://127.0.0.1:8080", "http://127.0.0.1:3233", false},
		{"https://dedupfn.example:8080", "", false},
	} {
		inputs, err := inputurl.New(c.public)
		if err != nil {
			t.Fatal(err)
		}
		p, err := pipeline.New(pipeline.Config{Index: idx, Objects: store, Registry: registry.New(idx, nil),
			Runtimes: map[string]runtime.Runtime{"openwhisk": ow}, Inputs: inputs})
		if err != nil {
			t.Fatal(err)
		}
		err = p.Prepare(t.Context(), fn(c.api), nil)
		if c.refused && (err == nil || !strings.Contains(err.Error(), "--public-url") || !strings.Contains(err.Error(), "ow.example")) {
			t.Errorf("public %s, api %q: %v, want a refusal naming ow.example and --public-url", c.public, c.api, err)
		}
		if !c.refused && err != nil {
			t.Errorf("public %s, api %q: %v, want it accepted", c.public, c.api, err)
		}
	}
}
