package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/index"
	_ "github.com/dedupfn/dedupfn/internal/index/bolt"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// store is the built-in S3 endpoint, one per test process (the embedded
// gateway allows only one); each test uses its own buckets.
var store objects.Store

func TestMain(m *testing.M) { testutil.MainWithStore(m, &store) }

// testRuntime upper-cases its input and counts runs; params pick failures.
type testRuntime struct {
	calls atomic.Int64 // executions started
	done  atomic.Int64 // executions that ran to their end (not cancelled)
	delay time.Duration

	running, maxRunning atomic.Int64 // executions in progress at once
	forgotten           atomic.Value // name of the last function Forget was called for
}

func (r *testRuntime) Name() string                { return "test" }
func (r *testRuntime) Version() string             { return "test/1" }
func (r *testRuntime) Close(context.Context) error { return nil }

func (r *testRuntime) Forget(_ context.Context, fn runtime.Function) error {
	r.forgotten.Store(fn.Name)
	return nil
}

func (r *testRuntime) Invoke(ctx context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	n := r.calls.Add(1)
	defer r.running.Add(-1)
	if now := r.running.Add(1); now > r.maxRunning.Load() {
		r.maxRunning.Store(now)
	}
	switch inv.Params["mode"] {
	case "panic":
		panic("test runtime: deliberate bug")
	case "presign": // an OpenWhisk-style action that PUTs its output by URL
		data, err := io.ReadAll(inv.Input)
		if err != nil {
			return runtime.Result{}, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, inv.Object.PutURL, bytes.NewReader(bytes.ToUpper(data)))
		if err != nil {
			return runtime.Result{}, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return runtime.Result{}, runtime.Errorf(runtime.ClassPlatform, "put output: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return runtime.Result{}, runtime.Errorf(runtime.ClassFunction, "put output: %s", resp.Status)
		}
		r.done.Add(1)
		return runtime.Result{Result: []byte(`{"ok":true}`)}, nil
	case "fail":
		return runtime.Result{}, &runtime.Error{Class: runtime.ClassFunction, Err: errors.New("exit status 1"), Stderr: "boom"}
	case "flaky": // a platform failure on the first call only
		if n == 1 {
			return runtime.Result{}, runtime.Errorf(runtime.ClassPlatform, "connection reset")
		}
	case "hang":
		select {
		case <-ctx.Done():
		case <-time.After(inv.Limits.Timeout):
		}
		return runtime.Result{}, runtime.Errorf(runtime.ClassTimeout, "exceeded %s", inv.Limits.Timeout)
	case "json":
		return runtime.Result{Result: []byte(`{"words":3}`)}, nil
	}
	select {
	case <-time.After(r.delay):
	case <-ctx.Done():
		return runtime.Result{}, ctx.Err()
	}
	data, err := io.ReadAll(inv.Input)
	if err != nil {
		return runtime.Result{}, err
	}
	inv.Output.Write(bytes.ToUpper(data))
	r.done.Add(1)
	return runtime.Result{OutputWritten: true, Duration: r.delay + time.Millisecond}, nil
}

type env struct {
	t    *testing.T
	idx  index.Index
	reg  *registry.Registry
	rt   *testRuntime
	pipe *pipeline.Pipeline
	in   string // input bucket
	out  string // output bucket
}

var bucketSeq atomic.Int64

// newIndexAndBuckets opens a bolt index of tb's own (testutil.BoltIndex)
// and makes an input and an output bucket named after prefix in the
// shared store.
func newIndexAndBuckets(tb testing.TB, prefix string) (idx index.Index, in, out string) {
	tb.Helper()
	idx = testutil.BoltIndex(tb)
	n := bucketSeq.Add(1)
	in, out = fmt.Sprintf("%sin-%d-%d", prefix, time.Now().UnixNano()%1e6, n), fmt.Sprintf("%sout-%d-%d", prefix, time.Now().UnixNano()%1e6, n)
	for _, b := range []string{in, out} {
		if err := store.MakeBucket(tb.Context(), b); err != nil {
			tb.Fatal(err)
		}
	}
	return idx, in, out
}

func newEnv(t *testing.T) *env {
	t.Helper()
	idx, in, out := newIndexAndBuckets(t, "")
	e := &env{t: t, idx: idx, reg: registry.New(idx, nil), rt: &testRuntime{}, in: in, out: out}
	var err error
	e.pipe, err = pipeline.New(pipeline.Config{
		Index: idx, Objects: store, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"test": e.rt},
		Owner: "test-replica", SpoolDir: t.TempDir(), RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// deployLoop deploys name with its output into its own trigger bucket
// under out/{key}, which its trigger matches: a loop the graph check
// refuses at deploy, stored unchecked (testutil.DeployUnchecked) to test
// the pipeline's own guard.
func (e *env) deployLoop(name string) registry.Function {
	e.t.Helper()
	f := registry.Function{Name: name, Runtime: "test", Trigger: registry.Trigger{Bucket: e.in}, Output: registry.Output{Bucket: e.in, KeyTemplate: "out/{key}"}}
	return testutil.DeployUnchecked(e.t, e.idx, e.reg, f, []byte("code of "+name))
}

func (e *env) deploy(name string, mutate func(*registry.Function)) registry.Function {
	e.t.Helper()
	f := registry.Function{Name: name, Runtime: "test", Trigger: registry.Trigger{Bucket: e.in}, Output: registry.Output{Bucket: e.out}}
	if mutate != nil {
		mutate(&f)
	}
	f, err := e.reg.Deploy(e.t.Context(), f, []byte("code of "+name))
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// put uploads an object and returns the event the source would deliver.
func (e *env) put(key, body string) event.Event {
	e.t.Helper()
	info, err := store.Put(e.t.Context(), e.in, key, strings.NewReader(body), int64(len(body)), objects.PutOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return event.Event{Source: "test", Name: "s3:ObjectCreated:Put", Bucket: e.in, Key: key, ETag: info.ETag,
		Size: info.Size, Sequencer: fmt.Sprint(time.Now().UnixNano()), Time: time.Now()}
}

func (e *env) handle(ev event.Event) {
	e.t.Helper()
	if err := e.pipe.Handle(e.t.Context(), ev); err != nil {
		e.t.Fatalf("Handle(%s): %v", ev.Key, err)
	}
}

func (e *env) output(key string) string {
	e.t.Helper()
	rc, _, err := store.Get(e.t.Context(), e.out, key, "", "")
	if err != nil {
		e.t.Fatalf("output %s: %v", key, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func (e *env) activations() []activation.Record {
	e.t.Helper()
	recs, err := e.idx.Activations(e.t.Context(), activation.Filter{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

func (e *env) decisions() map[string]activation.Decision {
	m := map[string]activation.Decision{}
	for _, r := range e.activations() {
		m[r.Event.Key] = r.Decision
	}
	return m
}

func TestHandle_MissHitMiss(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	e.handle(e.put("a/cat.jpg", "meow"))
	e.handle(e.put("b/cat-copy.jpg", "meow"))
	e.handle(e.put("c/dog.png", "woof"))

	if got := e.rt.calls.Load(); got != 2 {
		t.Fatalf("function ran %d times, want 2", got)
	}
	want := map[string]activation.Decision{"a/cat.jpg": activation.Miss, "b/cat-copy.jpg": activation.Hit, "c/dog.png": activation.Miss}
	if got := e.decisions(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
	for key, body := range map[string]string{"a/cat.jpg": "MEOW", "b/cat-copy.jpg": "MEOW", "c/dog.png": "WOOF"} {
		if got := e.output(key); got != body {
			t.Errorf("output %s = %q, want %q", key, got, body)
		}
	}
	st, _ := e.idx.Stats(t.Context(), "")
	if st.Events != 3 || st.Runs != 2 || st.Hits != 1 || st.Errors != 0 || st.SavedMS <= 0 {
		t.Fatalf("stats %+v, want 3 events, 2 runs, 1 hit, 0 errors, saved > 0", st)
	}
}

func TestHandle_ConcurrentDuplicatesRunOnce(t *testing.T) {
	e := newEnv(t)
	e.rt.delay = 200 * time.Millisecond
	e.deploy("upper", nil)
	const n = 50
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = e.put(fmt.Sprintf("k/%02d.jpg", i), "same bytes")
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, ev := range evs {
		wg.Go(func() {
			<-start
			if err := e.pipe.Handle(t.Context(), ev); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := e.rt.calls.Load(); got != 1 {
		t.Fatalf("function ran %d times for %d identical uploads, want 1", got, n)
	}
	misses := 0
	for _, r := range e.activations() {
		if r.Decision == activation.Miss {
			misses++
		} else if r.Decision != activation.Hit && r.Decision != activation.Wait {
			t.Errorf("%s: decision %s (%s)", r.Event.Key, r.Decision, r.Error)
		}
	}
	if misses != 1 {
		t.Fatalf("%d misses, want 1", misses)
	}
	for i := range n {
		if got := e.output(fmt.Sprintf("k/%02d.jpg", i)); got != "SAME BYTES" {
			t.Fatalf("output %d = %q", i, got)
		}
	}
}

func TestHandle_RedeliveredEventRecordedOnce(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	ev := e.put("x.txt", "hello")
	e.handle(ev)
	e.handle(ev)
	if n := len(e.activations()); n != 1 {
		t.Fatalf("%d activations for one redelivered event, want 1", n)
	}
	if got := e.rt.calls.Load(); got != 1 {
		t.Fatalf("ran %d times, want 1", got)
	}
}

func TestHandle_SelfWrittenOutputsNeverTrigger(t *testing.T) {
	e := newEnv(t)
	e.out = e.in // output into the input bucket
	e.deployLoop("upper")
	e.handle(e.put("x.txt", "hello"))
	out, err := store.Stat(t.Context(), e.in, "out/x.txt")
	if err != nil {
		t.Fatal(err)
	}
	// The event for the output, as a source without metadata would deliver it.
	e.handle(event.Event{Source: "test", Bucket: e.in, Key: "out/x.txt", ETag: out.ETag, Size: out.Size, Sequencer: "2"})
	if got := e.rt.calls.Load(); got != 1 {
		t.Fatalf("ran %d times: the function triggered on its own output", got)
	}
	if n := len(e.activations()); n != 1 {
		t.Fatalf("%d activations, want 1", n)
	}
}

func TestHandle_MissingOutputIsRerun(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	e.handle(e.put("a.txt", "data"))
	if err := deleteObject(t, e.out, "a.txt"); err != nil {
		t.Fatal(err)
	}
	e.handle(e.put("b.txt", "data"))
	if got := e.rt.calls.Load(); got != 2 {
		t.Fatalf("ran %d times; a hit whose output is gone must run again", got)
	}
	if got := e.output("b.txt"); got != "DATA" {
		t.Fatalf("output %q", got)
	}
	if d := e.decisions()["b.txt"]; d != activation.Miss {
		t.Fatalf("decision %s, want miss", d)
	}
}

// deleteObject overwrites the output with other bytes: for the pipeline a
// changed output is as unusable as a deleted one (ETag differs).
func deleteObject(t *testing.T, bucket, key string) error {
	_, err := store.Put(t.Context(), bucket, key, strings.NewReader("tampered"), 8, objects.PutOptions{})
	return err
}

func TestHandle_NewVersionDoesNotReuse(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", func(f *registry.Function) { f.Params = map[string]string{"size": "1"} })
	e.handle(e.put("a.txt", "data"))
	e.deploy("upper", func(f *registry.Function) { f.Params = map[string]string{"size": "2"} })
	e.handle(e.put("b.txt", "data"))
	if got := e.rt.calls.Load(); got != 2 {
		t.Fatalf("ran %d times; a new version must not reuse the old result", got)
	}
}

func TestHandle_FunctionErrorRecordedNotCached(t *testing.T) {
	e := newEnv(t)
	e.deploy("bad", func(f *registry.Function) { f.Params = map[string]string{"mode": "fail"} })
	e.handle(e.put("a.txt", "data"))
	e.handle(e.put("b.txt", "data"))
	if got := e.rt.calls.Load(); got != 2 {
		t.Fatalf("ran %d times; deterministic errors are not retried and not cached by default, want 2", got)
	}
	for _, r := range e.activations() {
		if r.Decision != activation.Error || r.ErrorClass != "function" || !r.DeadLetter || !strings.Contains(r.Logs, "boom") {
			t.Fatalf("record %+v: want a dead-lettered function error with stderr", r)
		}
	}
}

func TestHandle_CacheFailures(t *testing.T) {
	e := newEnv(t)
	e.deploy("bad", func(f *registry.Function) { f.Params = map[string]string{"mode": "fail"}; f.CacheFailures = true })
	e.handle(e.put("a.txt", "data"))
	e.handle(e.put("b.txt", "data"))
	if got := e.rt.calls.Load(); got != 1 {
		t.Fatalf("ran %d times; with --cache-failures the error is the result, want 1", got)
	}
	for _, r := range e.activations() {
		if r.Decision != activation.Error {
			t.Fatalf("%s: decision %s, want error", r.Event.Key, r.Decision)
		}
	}
}

func TestHandle_PlatformErrorRetried(t *testing.T) {
	e := newEnv(t)
	e.deploy("flaky", func(f *registry.Function) { f.Params = map[string]string{"mode": "flaky"} })
	e.handle(e.put("a.txt", "data"))
	recs := e.activations()
	if len(recs) != 1 || recs[0].Decision != activation.Miss || recs[0].Attempts != 2 {
		t.Fatalf("records %+v: want one miss after 2 attempts", recs)
	}
}

func TestHandle_TimeoutDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.deploy("slow", func(f *registry.Function) {
		f.Params = map[string]string{"mode": "hang"}
		f.Limits.Timeout = 20 * time.Millisecond
		f.MaxAttempts = 3
	})
	e.handle(e.put("a.txt", "data"))
	recs := e.activations()
	if len(recs) != 1 || recs[0].ErrorClass != "timeout" || recs[0].Attempts != 3 || !recs[0].DeadLetter {
		t.Fatalf("records %+v: want a timeout dead-lettered after 3 attempts", recs)
	}
	if got := e.rt.calls.Load(); got != 3 {
		t.Fatalf("ran %d times, want 3", got)
	}
	// The failure is not cached: the claim is free again.
	e.handle(e.put("b.txt", "data"))
	if got := e.rt.calls.Load(); got != 6 {
		t.Fatalf("ran %d times; a timeout must never be cached", got)
	}
}

func TestHandle_MissingObjectSkipped(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	e.handle(event.Event{Source: "test", Bucket: e.in, Key: "never-uploaded.txt", Sequencer: "1"})
	recs := e.activations()
	if len(recs) != 1 || recs[0].Decision != activation.Skipped || e.rt.calls.Load() != 0 {
		t.Fatalf("records %+v: want one skipped record and no run", recs)
	}
}

func TestHandle_MalformedEventRecorded(t *testing.T) {
	e := newEnv(t)
	e.handle(event.Event{Source: "test", Key: "no-bucket"})
	recs := e.activations()
	if len(recs) != 1 || recs[0].Decision != activation.Error || !recs[0].DeadLetter || !strings.Contains(recs[0].Error, "missing bucket") {
		t.Fatalf("records %+v: want one dead-lettered error naming the missing bucket", recs)
	}
}

func TestHandle_JSONResultStored(t *testing.T) {
	e := newEnv(t)
	e.deploy("count", func(f *registry.Function) { f.Params = map[string]string{"mode": "json"} })
	e.handle(e.put("a.txt", "one two three"))
	e.handle(e.put("b.txt", "one two three"))
	if got := e.output("a.txt.json"); got != `{"words":3}` {
		t.Fatalf("a.txt.json = %q", got)
	}
	if got := e.output("b.txt.json"); got != `{"words":3}` {
		t.Fatalf("hit delivered b.txt.json = %q", got)
	}
	if e.rt.calls.Load() != 1 {
		t.Fatalf("ran %d times", e.rt.calls.Load())
	}
}

func TestHandle_ExpiredLeaseTakenOver(t *testing.T) {
	e := newEnv(t)
	f := e.deploy("upper", nil)
	ev := e.put("a.txt", "data")
	x, err := e.pipe.Explain(t.Context(), "", f.Name, e.in, "a.txt", true)
	if err != nil {
		t.Fatal(err)
	}
	// A replica that crashed mid-run left a claim with a short lease.
	if _, err := e.idx.Claim(t.Context(), x.DedupKey, x.Parts, "crashed-replica", 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.handle(ev)
	if time.Since(start) < 100*time.Millisecond {
		t.Fatal("ran before the crashed owner's lease expired")
	}
	recs := e.activations()
	if e.rt.calls.Load() != 1 || len(recs) != 1 || recs[0].Decision != activation.Miss {
		t.Fatalf("records %+v: want one takeover run", recs)
	}
}

func TestHandle_TenantsDoNotShareResults(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", func(f *registry.Function) { f.Tenant = "acme"; f.Output.KeyTemplate = "acme/{key}" })
	e.deploy("upper", func(f *registry.Function) { f.Tenant = "globex"; f.Output.KeyTemplate = "globex/{key}" })
	e.handle(e.put("a.txt", "data"))
	if got := e.rt.calls.Load(); got != 2 {
		t.Fatalf("ran %d times; each tenant must run its own", got)
	}
}

func TestInvoke_ForceReruns(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	e.handle(e.put("a.txt", "data"))
	rec, err := e.pipe.Invoke(t.Context(), pipeline.InvokeRequest{Function: "upper", Bucket: e.in, Key: "a.txt"})
	if err != nil || rec.Decision != activation.Hit {
		t.Fatalf("invoke: %v %+v, want hit", err, rec)
	}
	rec, err = e.pipe.Invoke(t.Context(), pipeline.InvokeRequest{Function: "upper", Bucket: e.in, Key: "a.txt", Force: true})
	if err != nil || rec.Decision != activation.Miss || e.rt.calls.Load() != 2 {
		t.Fatalf("invoke --force: %v %+v calls %d, want a second run", err, rec, e.rt.calls.Load())
	}
}

func TestExplainAndPurge(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	x, err := e.pipe.Explain(t.Context(), "", "upper", e.in, e.put("a.txt", "data").Key, true)
	if err != nil || !x.WouldRun {
		t.Fatalf("explain before run: %v %+v", err, x)
	}
	e.handle(e.put("b.txt", "data"))
	x, _ = e.pipe.Explain(t.Context(), "", "upper", e.in, "a.txt", true)
	if x.WouldRun || x.Record == nil || x.Parts.Fingerprint != x.Fingerprint {
		t.Fatalf("explain after run: %+v, want a hit with matching parts", x)
	}
	n, err := e.pipe.Purge(t.Context(), "", "upper", "", true)
	if err != nil || n != 1 {
		t.Fatalf("purge: %d %v, want 1", n, err)
	}
	x, _ = e.pipe.Explain(t.Context(), "", "upper", e.in, "a.txt", true)
	if !x.WouldRun {
		t.Fatal("after purge the key still hits")
	}
}

func TestNoDedupAlwaysRuns(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", func(f *registry.Function) { f.NoDedup = true })
	e.handle(e.put("a.txt", "data"))
	e.handle(e.put("b.txt", "data"))
	if got := e.rt.calls.Load(); got != 2 {
		t.Fatalf("--no-dedup ran %d times, want 2", got)
	}
}

func TestReconcileFindsMissedEvents(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	e.handle(e.put("seen.txt", "one"))
	e.put("missed.txt", "two") // its event was dropped
	if n, _ := e.pipe.Reconcile(t.Context(), time.Hour); n != 0 {
		t.Fatalf("reconcile touched %d objects younger than the grace period", n)
	}
	n, err := e.pipe.Reconcile(t.Context(), 0)
	if err != nil || n != 1 {
		t.Fatalf("reconcile found %d, %v; want 1", n, err)
	}
	if got := e.output("missed.txt"); got != "TWO" {
		t.Fatalf("output %q", got)
	}
	if n, _ := e.pipe.Reconcile(t.Context(), 0); n != 0 {
		t.Fatalf("second reconcile found %d, want 0", n)
	}
}

func TestHandle_RetentionExpiresResults(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", func(f *registry.Function) { f.Limits.Retention = 200 * time.Millisecond })
	e.handle(e.put("a.txt", "data"))
	e.handle(e.put("b.txt", "data"))
	if got := e.rt.calls.Load(); got != 1 {
		t.Fatalf("ran %d times within retention, want 1", got)
	}
	time.Sleep(300 * time.Millisecond)
	e.handle(e.put("c.txt", "data"))
	if got := e.rt.calls.Load(); got != 2 {
		t.Fatalf("ran %d times; a result past retention must not be reused", got)
	}
}

// A deleted function's runtime state (unpacked code, warm processes) is
// released on every replica, once a refresh sees the deletion.
func TestDelete_ForgetsRuntimeState(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	e.deploy("other", func(f *registry.Function) { f.Trigger.Prefix = "x/" })
	if err := e.reg.Delete(t.Context(), registry.DefaultTenant, "upper"); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.rt.forgotten.Load().(string); got != "upper" {
		t.Fatalf("runtime forgot %q, want upper", got)
	}
}

// Function executions are bounded apart from events: with one run slot
// busy, a second miss waits for it while a hit is served at once.
func TestRuns_HitsDoNotQueueBehindRuns(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	e.handle(e.put("seed.txt", "seen before"))
	e.rt.delay = 400 * time.Millisecond
	p, err := pipeline.New(pipeline.Config{
		Index: e.idx, Objects: store, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"test": e.rt},
		Owner: "one-slot", SpoolDir: t.TempDir(), MaxRuns: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	misses := []event.Event{e.put("a.txt", "new a"), e.put("b.txt", "new b")}
	hit := e.put("copy.txt", "seen before")
	var wg sync.WaitGroup
	for _, ev := range misses {
		wg.Go(func() {
			if err := p.Handle(t.Context(), ev); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // both misses claimed; one runs, one waits for the slot
	start := time.Now()
	if err := p.Handle(t.Context(), hit); err != nil {
		t.Fatal(err)
	}
	hitTook := time.Since(start)
	wg.Wait()
	if got := e.rt.maxRunning.Load(); got != 1 {
		t.Errorf("%d executions at once with MaxRuns 1", got)
	}
	if hitTook > 300*time.Millisecond {
		t.Errorf("the hit took %s: it queued behind the runs", hitTook)
	}
	if d := e.decisions(); d["copy.txt"] != activation.Hit || d["a.txt"] != activation.Miss || d["b.txt"] != activation.Miss {
		t.Errorf("decisions %v", d)
	}
}
