package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// countingAction is an actionloop action invoked directly: it appends its
// value to the file $RUNS (one line per execution), sleeps "delay"
// seconds, and answers {"echo": value}, or {"error": fail} when the
// parameters hold "fail".
const countingAction = `#!/usr/bin/python3
import json, os, sys, time
out = os.fdopen(3, "w")
out.write('{"ok":true}\n'); out.flush()
for line in sys.stdin:
    v = json.loads(line)["value"]
    with open(os.environ["RUNS"], "a") as f:
        f.write(json.dumps(v, sort_keys=True) + "\n")
    time.sleep(float(v.get("delay", 0)))
    if "fail" in v:
        out.write(json.dumps({"error": v["fail"]}) + "\n")
    else:
        out.write(json.dumps({"echo": v}) + "\n")
    out.flush()
`

// directEnv is a pipeline with the process runtime and one action of
// countingAction deployed, counting its executions in runs.
type directEnv struct {
	t    testing.TB
	pipe *pipeline.Pipeline
	reg  *registry.Registry
	idx  index.Index
	runs string
	fn   registry.Function
}

func newDirectEnv(tb testing.TB, mutate func(*registry.Function)) *directEnv {
	tb.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testutil.Missing(tb, "/usr/bin/python3 (the test action's interpreter)")
	}
	rt, err := process.New(process.Options{WorkDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rt.Close(context.Background()) })
	idx := testutil.BoltIndex(tb)
	e := &directEnv{t: tb, reg: registry.New(idx, nil), idx: idx, runs: filepath.Join(tb.TempDir(), "runs")}
	e.pipe, err = pipeline.New(pipeline.Config{
		Index: idx, Objects: store, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"process": rt},
		Owner: "test-replica", SpoolDir: tb.TempDir(), RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.deploy(mutate)
	return e
}

// deploy (re)deploys the action, changed by mutate.
func (e *directEnv) deploy(mutate func(*registry.Function)) {
	e.t.Helper()
	f := registry.Function{Name: "count", Runtime: "process", Config: map[string]string{"env.RUNS": e.runs}}
	if mutate != nil {
		mutate(&f)
	}
	var err error
	if e.fn, err = e.reg.Deploy(e.t.Context(), f, []byte(countingAction)); err != nil {
		e.t.Fatal(err)
	}
	if !e.fn.IsAction() {
		e.t.Fatal("deployed a bucket function, want an action")
	}
}

// invoke invokes the action directly on params.
func (e *directEnv) invoke(params string) activation.Record {
	e.t.Helper()
	rec, err := e.pipe.InvokeDirect(e.t.Context(), pipeline.DirectRequest{Function: e.fn, Params: json.RawMessage(params)})
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

// executions is how often the action ran.
func (e *directEnv) executions() int {
	e.t.Helper()
	b, err := os.ReadFile(e.runs)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func TestInvokeDirect_IdenticalParamsRunOnce(t *testing.T) {
	e := newDirectEnv(t, nil)
	first := e.invoke(`{"name":"ada","n":1}`)
	if first.Decision != activation.Miss || string(first.Result) != `{"echo":{"n":1,"name":"ada"}}` {
		t.Fatalf("first: %s %s (%s)", first.Decision, first.Result, first.Error)
	}
	if first.EventSource != pipeline.DirectSource || first.Event.Bucket != "" || first.Event.Key != "" || first.Key == "" || len(first.ID) != 32 {
		t.Fatalf("record %+v: want an api activation with a dedup key and a 32-hex id", first)
	}
	second := e.invoke(`{"name":"ada","n":1}`)
	if second.Decision != activation.Hit || string(second.Result) != string(first.Result) || second.ID == first.ID {
		t.Fatalf("second: %s %s id %s (first %s)", second.Decision, second.Result, second.ID, first.ID)
	}
	if second.SavedMS <= 0 || second.SavedMS != first.FunctionMS {
		t.Errorf("hit saved_ms %v, want the miss's function_ms %v", second.SavedMS, first.FunctionMS)
	}
	if n := e.executions(); n != 1 {
		t.Fatalf("%d executions, want 1", n)
	}
	for _, id := range []string{first.ID, second.ID} {
		if _, err := e.idx.GetActivation(t.Context(), id); err != nil {
			t.Errorf("activation %s not recorded: %v", id, err)
		}
	}
}

func TestInvokeDirect_ConcurrentIdenticalRunOnce(t *testing.T) {
	e := newDirectEnv(t, nil)
	var wg sync.WaitGroup
	recs := make([]activation.Record, 20)
	for i := range recs {
		wg.Go(func() {
			r, err := e.pipe.InvokeDirect(t.Context(), pipeline.DirectRequest{Function: e.fn, Params: json.RawMessage(`{"delay":0.5,"x":"same"}`)})
			if err != nil {
				t.Error(err)
			}
			recs[i] = r
		})
	}
	wg.Wait()
	if n := e.executions(); n != 1 {
		t.Fatalf("%d executions of 20 concurrent identical invocations, want 1", n)
	}
	count := map[activation.Decision]int{}
	for _, r := range recs {
		count[r.Decision]++
		if string(r.Result) != string(recs[0].Result) {
			t.Errorf("result %s, want %s", r.Result, recs[0].Result)
		}
	}
	if count[activation.Miss] != 1 || count[activation.Wait]+count[activation.Hit] != 19 || count[activation.Wait] == 0 {
		t.Fatalf("decisions %v: want 1 miss and 19 waits or hits", count)
	}
}

func TestInvokeDirect_CanonicalParams(t *testing.T) {
	e := newDirectEnv(t, nil)
	a := e.invoke(`{"b":[1,2,{"y":1.0,"x":"é"}],"a":true}`)
	b := e.invoke("{ \"a\" : true ,\n \"b\":[1, 2, {\"x\":\"\\u00e9\", \"y\":1}]}")
	if a.Key != b.Key || a.Fingerprint != b.Fingerprint || b.Decision != activation.Hit {
		t.Fatalf("reordered, re-spaced params: key %s vs %s, decision %s; want the same key and a hit", a.Key, b.Key, b.Decision)
	}
	c := e.invoke(`{"a":true,"b":[2,1,{"x":"é","y":1}]}`)
	if c.Key == a.Key || c.Decision != activation.Miss {
		t.Fatalf("different values: key %s (first %s), decision %s; want another key and a run", c.Key, a.Key, c.Decision)
	}
	if n := e.executions(); n != 2 {
		t.Fatalf("%d executions, want 2", n)
	}
}

// Two integers that one IEEE double stands for canonicalize alike: they
// must not share a result.
func TestInvokeDirect_InexactIntegersNotDeduplicated(t *testing.T) {
	e := newDirectEnv(t, nil)
	a := e.invoke(`{"id":9007199254740993}`)
	b := e.invoke(`{"id":9007199254740992}`)
	if a.Decision != activation.Miss || b.Decision != activation.Miss {
		t.Fatalf("decisions %s, %s; want two runs", a.Decision, b.Decision)
	}
	if !strings.Contains(string(a.Result), "9007199254740993") {
		t.Fatalf("result %s: the action did not get the exact integer", a.Result)
	}
	if e.executions() != 2 {
		t.Fatalf("%d executions, want 2", e.executions())
	}
}

func TestInvokeDirect_NoDedupAlwaysRuns(t *testing.T) {
	e := newDirectEnv(t, func(f *registry.Function) { f.NoDedup = true })
	for range 3 {
		if r := e.invoke(`{"x":1}`); r.Decision != activation.Miss || r.Key != "" {
			t.Fatalf("no-dedup: %s key %q, want a run without a key", r.Decision, r.Key)
		}
	}
	if n := e.executions(); n != 3 {
		t.Fatalf("%d executions, want 3", n)
	}
}

func TestInvokeDirect_NewVersionRunsAgain(t *testing.T) {
	e := newDirectEnv(t, nil)
	first := e.invoke(`{"x":1}`)
	e.deploy(func(f *registry.Function) { f.Config["env.MODE"] = "v2" })
	again := e.invoke(`{"x":1}`)
	if again.Decision != activation.Miss || again.Version == first.Version || again.Key == first.Key {
		t.Fatalf("after a new version: %s version %s (was %s); want a run under a new key", again.Decision, again.Version, first.Version)
	}
	if n := e.executions(); n != 2 {
		t.Fatalf("%d executions, want 2", n)
	}
}

func TestInvokeDirect_FailureNotCachedByDefault(t *testing.T) {
	e := newDirectEnv(t, nil)
	for i := range 2 {
		r := e.invoke(`{"fail":"bad input"}`)
		if r.Decision != activation.Error || r.ErrorClass != string(runtime.ClassFunction) || !strings.Contains(r.Error, "bad input") {
			t.Fatalf("run %d: %s class %q error %q; want a function error", i, r.Decision, r.ErrorClass, r.Error)
		}
		if string(r.Result) != `{"error":"bad input"}` || r.DeadLetter || r.Attempts != 1 {
			t.Fatalf("run %d: result %s dead_letter %v attempts %d; want the error result, no dead letter, one attempt", i, r.Result, r.DeadLetter, r.Attempts)
		}
	}
	if n := e.executions(); n != 2 {
		t.Fatalf("%d executions, want 2: a failure is not cached by default", n)
	}
}

func TestInvokeDirect_FailureCachedWhenAsked(t *testing.T) {
	e := newDirectEnv(t, func(f *registry.Function) { f.CacheFailures = true })
	e.invoke(`{"fail":"bad input"}`)
	r := e.invoke(`{"fail":"bad input"}`)
	if r.Decision != activation.Error || !strings.HasPrefix(r.Error, "cached failure: ") || !strings.Contains(r.Error, "bad input") {
		t.Fatalf("second: %s %q; want the cached failure", r.Decision, r.Error)
	}
	if n := e.executions(); n != 1 {
		t.Fatalf("%d executions, want 1", n)
	}
}

func TestInvokeDirect_CallerIDCauseAndDeployParams(t *testing.T) {
	e := newDirectEnv(t, func(f *registry.Function) { f.Params = map[string]string{"greeting": "hi", "name": "deploy"} })
	id := strings.Repeat("ab", 16)
	rec, err := e.pipe.InvokeDirect(t.Context(), pipeline.DirectRequest{Function: e.fn, Params: json.RawMessage(`{"name":"call"}`), ActivationID: id, Cause: strings.Repeat("cd", 16)})
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID != id || rec.Cause != strings.Repeat("cd", 16) {
		t.Fatalf("id %s cause %s", rec.ID, rec.Cause)
	}
	if string(rec.Result) != `{"echo":{"greeting":"hi","name":"call"}}` {
		t.Fatalf("result %s: want the deploy params under the invocation's", rec.Result)
	}
	got, err := e.idx.GetActivation(t.Context(), id)
	if err != nil || got.Cause != rec.Cause {
		t.Fatalf("recorded %+v, %v", got, err)
	}
}

func TestInvokeDirect_BadParamsRecorded(t *testing.T) {
	e := newDirectEnv(t, nil)
	for _, p := range []string{`[1,2]`, `"x"`, `{"a":`, `null`} {
		r := e.invoke(p)
		if r.Decision != activation.Error || r.ErrorClass != string(runtime.ClassConfig) || r.DeadLetter {
			t.Errorf("params %s: %s class %q dead_letter %v; want a config error", p, r.Decision, r.ErrorClass, r.DeadLetter)
		}
	}
	if e.executions() != 0 {
		t.Fatal("the action ran on invalid parameters")
	}
	if r := e.invoke(""); r.Decision != activation.Miss || string(r.Result) != `{"echo":{}}` {
		t.Fatalf("no params: %s %s", r.Decision, r.Result)
	}
}

// dedupfn's own API deploys bucket functions: CheckBuckets refuses an
// action as invalid, naming the missing trigger bucket.
func TestCheckBuckets_RefusesAnAction(t *testing.T) {
	e := newDirectEnv(t, nil)
	err := e.pipe.CheckBuckets(t.Context(), e.fn)
	if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "trigger bucket must be set") {
		t.Fatalf("CheckBuckets(action) = %v, want an invalid definition naming the trigger bucket", err)
	}
}

// An action passes the deploy-time checks of Prepare (its definition,
// its runtime, its code: a nodejs action's needs node), as fn deploy's
// bucket functions do.
func TestPrepare_Action(t *testing.T) {
	e := newDirectEnv(t, nil)
	code, cfg, err := process.ActionCode("python:3", []byte("def main(a):\n    return a\n"), false, "")
	if err != nil {
		t.Fatal(err)
	}
	fn := registry.Function{Name: "py", Runtime: "process", Config: cfg}
	if err := e.pipe.Prepare(t.Context(), fn, code); err != nil {
		t.Fatalf("Prepare(action): %v", err)
	}
	fn.Runtime = "cobol"
	if err := e.pipe.Prepare(t.Context(), fn, code); err == nil || !strings.Contains(err.Error(), "not enabled") {
		t.Fatalf("Prepare(action of a runtime not enabled) = %v", err)
	}
}

// The whole path of an OpenWhisk nodejs action: ActionCode, deploy,
// InvokeDirect through the launcher, deduplicated.
func TestInvokeDirect_NodejsAction(t *testing.T) {
	if _, err := os.Stat("/usr/bin/node"); err != nil {
		testutil.Missing(t, "/usr/bin/node")
	}
	e := newDirectEnv(t, nil)
	code, cfg, err := process.ActionCode("nodejs:20", []byte(`
const fs = require("fs");
async function main(args) {
  fs.appendFileSync(process.env.RUNS, JSON.stringify(args) + "\n");
  return {greeting: "hello " + args.name};
}`), false, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg["env.RUNS"] = e.runs
	if e.fn, err = e.reg.Deploy(t.Context(), registry.Function{Name: "hello", Runtime: "process", Config: cfg}, code); err != nil {
		t.Fatal(err)
	}
	first, second := e.invoke(`{"name":"ada"}`), e.invoke(`{ "name" : "ada" }`)
	if first.Decision != activation.Miss || second.Decision != activation.Hit || string(second.Result) != `{"greeting":"hello ada"}` {
		t.Fatalf("%s %s, %s %s (%s)", first.Decision, first.Result, second.Decision, second.Result, first.Error)
	}
	if n := e.executions(); n != 1 {
		t.Fatalf("%d executions, want 1", n)
	}
}

// A function as the caller built it, limits and attempts unset, runs with
// the registry's defaults (a claim needs a lease).
func TestInvokeDirect_DefaultsUnsetLimits(t *testing.T) {
	e := newDirectEnv(t, nil)
	bare := registry.Function{Name: e.fn.Name, Runtime: e.fn.Runtime, CodeDigest: e.fn.CodeDigest, Config: e.fn.Config, Version: e.fn.Version}
	for _, want := range []activation.Decision{activation.Miss, activation.Hit} {
		rec, err := e.pipe.InvokeDirect(t.Context(), pipeline.DirectRequest{Function: bare, Params: json.RawMessage(`{"x":1}`)})
		if err != nil || rec.Decision != want || rec.Tenant != registry.DefaultTenant {
			t.Fatalf("%s tenant %q (%s), %v; want %s", rec.Decision, rec.Tenant, rec.Error, err, want)
		}
	}
}

// panicRuntime panics in every invocation: a bug on the direct path.
type panicRuntime struct{}

func (panicRuntime) Name() string                { return "panic" }
func (panicRuntime) Version() string             { return "panic/1" }
func (panicRuntime) Close(context.Context) error { return nil }
func (panicRuntime) Invoke(context.Context, *runtime.Invocation) (runtime.Result, error) {
	panic("runtime bug")
}

// A panic on the direct path is recorded as a platform error with its
// stack, and the server goes on.
func TestInvokeDirect_PanicRecorded(t *testing.T) {
	idx := testutil.BoltIndex(t)
	reg := registry.New(idx, nil)
	pipe, err := pipeline.New(pipeline.Config{Index: idx, Objects: store, Registry: reg,
		Runtimes: map[string]runtime.Runtime{"panic": panicRuntime{}}, SpoolDir: t.TempDir(), MaxRuns: 1})
	if err != nil {
		t.Fatal(err)
	}
	fn, err := reg.Deploy(t.Context(), registry.Function{Name: "p", Runtime: "panic"}, []byte("code"))
	if err != nil {
		t.Fatal(err)
	}
	// More panics than run slots (MaxRuns 1): none keeps its slot.
	for i := range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		rec, err := pipe.InvokeDirect(ctx, pipeline.DirectRequest{Function: fn, Params: json.RawMessage(`{"i":` + strconv.Itoa(i) + `}`)})
		cancel()
		if err != nil || rec.Decision != activation.Error || rec.ErrorClass != string(runtime.ClassPlatform) || !strings.Contains(rec.Logs, "goroutine") {
			t.Fatalf("%d: %s %q %q, %v; want a platform error with the stack", i, rec.Decision, rec.ErrorClass, rec.Error, err)
		}
		if _, err := idx.GetActivation(t.Context(), rec.ID); err != nil {
			t.Fatalf("not recorded: %v", err)
		}
	}
}
