package pipeline_test

// Determinism audits. "Runs" are counted by the functions themselves: the
// in-process auditRuntime counts its executions, and the process function
// appends a line to a side file on each one.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// auditRuntime upper-cases its input; param "mode" makes it impure:
//
//	random      appends a random number
//	time        appends the time in nanoseconds
//	fail-again  fails every execution after the first
//
// Param "sleep" (a duration) delays every execution, cancellably, and
// "sleep-again" every execution after the first (the audits, in tests
// with one miss).
type auditRuntime struct {
	calls atomic.Int64 // executions started
	done  atomic.Int64 // executions that ran to their end
}

func (r *auditRuntime) Name() string                { return "audit" }
func (r *auditRuntime) Version() string             { return "audit/1" }
func (r *auditRuntime) Close(context.Context) error { return nil }

func (r *auditRuntime) Invoke(ctx context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	n := r.calls.Add(1)
	sleep := inv.Params["sleep"]
	if n > 1 && inv.Params["sleep-again"] != "" {
		sleep = inv.Params["sleep-again"]
	}
	if d, err := time.ParseDuration(sleep); err == nil {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return runtime.Result{}, runtime.Errorf(runtime.ClassPlatform, "cancelled: %v", ctx.Err())
		}
	}
	data, err := io.ReadAll(inv.Input)
	if err != nil {
		return runtime.Result{}, err
	}
	out := bytes.ToUpper(data)
	switch inv.Params["mode"] {
	case "random":
		out = fmt.Appendf(out, " %s", rand.Text())
	case "time":
		out = fmt.Appendf(out, " %d", time.Now().UnixNano())
	case "fail-again":
		if n > 1 {
			return runtime.Result{}, runtime.Errorf(runtime.ClassFunction, "exit status 1")
		}
	}
	inv.Output.Write(out)
	r.done.Add(1)
	return runtime.Result{OutputWritten: true}, nil
}

// auditEnv is an env whose pipeline runs auditRuntime (and, if given,
// more runtimes) and exports its metrics to prom.
type auditEnv struct {
	*env
	art  *auditRuntime
	prom *prometheus.Registry
}

func newAuditEnv(t *testing.T, more map[string]runtime.Runtime) *auditEnv {
	t.Helper()
	return newAuditEnvWith(t, more, store)
}

// newAuditEnvWith is newAuditEnv whose pipeline uses objs.
func newAuditEnvWith(t *testing.T, more map[string]runtime.Runtime, objs objects.Store) *auditEnv {
	t.Helper()
	idx, in, out := newIndexAndBuckets(t, "a")
	a := &auditEnv{env: &env{t: t, idx: idx, reg: registry.New(idx, nil), in: in, out: out}, art: &auditRuntime{}, prom: prometheus.NewRegistry()}
	rts := map[string]runtime.Runtime{"audit": a.art}
	for name, rt := range more {
		rts[name] = rt
	}
	var err error
	a.pipe, err = pipeline.New(pipeline.Config{
		Index: idx, Objects: objs, Registry: a.reg, Runtimes: rts, Metrics: a.prom,
		Owner: "test-replica", SpoolDir: t.TempDir(), RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.pipe.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

// deployAudited deploys an auditRuntime function with the given params
// and audit settings.
func (a *auditEnv) deployAudited(name string, params map[string]string, audit registry.Audit) registry.Function {
	a.t.Helper()
	return a.deploy(name, func(f *registry.Function) {
		f.Runtime, f.Params, f.Audit = "audit", params, audit
	})
}

// metric is the value of the counter name with the given labels (0 if
// it has not been counted yet).
func (a *auditEnv) metric(name string, labels map[string]string) float64 {
	a.t.Helper()
	mfs, err := a.prom.Gather()
	if err != nil {
		a.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// audited is how many audits have ended (whatever their result).
func (a *auditEnv) audited() float64 {
	var n float64
	for _, r := range []string{"match", "mismatch", "error", "skipped"} {
		n += a.metric("dedupfn_audits_total", map[string]string{"result": r})
	}
	return n
}

func (a *auditEnv) waitAudited(n float64) {
	a.t.Helper()
	testutil.Eventually(a.t, 20*time.Second, fmt.Sprintf("%v audits to end", n), func() bool { return a.audited() >= n })
}

func (a *auditEnv) activation(key string) activation.Record {
	a.t.Helper()
	for _, r := range a.activations() {
		if r.Event.Key == key {
			return r
		}
	}
	a.t.Fatalf("no activation of %s", key)
	return activation.Record{}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestAudit_NondeterministicFunctionIsMarked(t *testing.T) {
	for _, tc := range []struct {
		mode, policy string
		thirdRuns    bool // with the version marked, a third upload runs
	}{
		{"random", registry.OnMismatchDisableDedup, true},
		{"time", registry.OnMismatchWarn, false},
	} {
		t.Run(tc.mode+"/"+tc.policy, func(t *testing.T) {
			a := newAuditEnv(t, nil)
			fn := a.deployAudited("impure", map[string]string{"mode": tc.mode}, registry.Audit{Rate: 1, OnMismatch: tc.policy})

			a.handle(a.put("a1.txt", "content A"))
			a.handle(a.put("a2.txt", "content A"))
			a.waitAudited(1)
			if got := a.art.calls.Load(); got != 2 {
				t.Fatalf("function executed %d times after a miss and an audited hit, want 2", got)
			}
			if d := a.decisions(); d["a1.txt"] != activation.Miss || d["a2.txt"] != activation.Hit {
				t.Fatalf("decisions %v, want a1 miss, a2 hit (the audit does not change the hit)", d)
			}
			if got := a.metric("dedupfn_audit_mismatches_total", map[string]string{"tenant": fn.Tenant, "function": fn.Name}); got != 1 {
				t.Fatalf("dedupfn_audit_mismatches_total = %v, want 1", got)
			}
			if got := a.metric("dedupfn_audits_total", map[string]string{"result": "mismatch"}); got != 1 {
				t.Fatalf(`dedupfn_audits_total{result="mismatch"} = %v, want 1`, got)
			}

			got, err := a.reg.Get(t.Context(), fn.Tenant, fn.Name)
			if err != nil {
				t.Fatal(err)
			}
			m := got.Nondeterministic
			if m == nil {
				t.Fatal("function version not marked nondeterministic after a mismatch")
			}
			hit := a.activation("a2.txt")
			recorded := sha256Hex(a.output("a1.txt")) // the hit reused a1's output
			if m.Version != fn.Version || m.Activation != hit.ID || m.DedupKey != hit.Key || m.RecordedDigest != recorded ||
				len(m.AuditDigest) != 64 || m.AuditDigest == recorded || time.Since(m.At) > time.Minute {
				t.Fatalf("mark %+v, want version %s, activation %s, key %s, recorded digest %s and another audit digest",
					*m, fn.Version, hit.ID, hit.Key, recorded)
			}
			listed := a.reg.List(fn.Tenant)
			if len(listed) != 1 || listed[0].Nondeterministic == nil || *listed[0].Nondeterministic != *m {
				t.Fatalf("List: %+v, want the function with its mark", listed)
			}

			a.handle(a.put("a3.txt", "content A"))
			third := a.activation("a3.txt")
			if tc.thirdRuns {
				if third.Decision != activation.Miss || a.art.calls.Load() != 3 {
					t.Fatalf("disable-dedup: third upload %s after %d executions, want a miss and 3 executions", third.Decision, a.art.calls.Load())
				}
				if got := a.metric("dedupfn_audits_total", map[string]string{"result": "mismatch"}); got != 1 {
					t.Fatalf("a run was audited: %v mismatches, want still 1", got)
				}
				return
			}
			if third.Decision != activation.Hit {
				t.Fatalf("warn: third upload %s, want a hit (results still reused)", third.Decision)
			}
			a.waitAudited(2) // and audited again
			if got := a.art.calls.Load(); got != 3 {
				t.Fatalf("warn: %d executions, want 3 (miss, two audits)", got)
			}
			if got := a.metric("dedupfn_audit_mismatches_total", map[string]string{"tenant": fn.Tenant, "function": fn.Name}); got != 2 {
				t.Fatalf("dedupfn_audit_mismatches_total = %v, want 2", got)
			}
			again, _ := a.reg.Get(t.Context(), fn.Tenant, fn.Name)
			if again.Nondeterministic == nil || *again.Nondeterministic != *m {
				t.Fatalf("mark after a second mismatch %+v, want the first one kept %+v", again.Nondeterministic, *m)
			}
		})
	}
}

func TestAudit_DeterministicFunctionIsNeverMarked(t *testing.T) {
	a := newAuditEnv(t, nil)
	fn := a.deployAudited("pure", nil, registry.Audit{Rate: 1, OnMismatch: registry.OnMismatchDisableDedup})
	a.handle(a.put("p0.txt", "content P"))
	for i := 1; i <= 3; i++ {
		a.handle(a.put(fmt.Sprintf("p%d.txt", i), "content P"))
		a.waitAudited(float64(i))
	}
	if got := a.art.calls.Load(); got != 4 {
		t.Fatalf("function executed %d times, want 4 (a miss and 3 audits)", got)
	}
	if got := a.metric("dedupfn_audits_total", map[string]string{"result": "match"}); got != 3 {
		t.Fatalf(`dedupfn_audits_total{result="match"} = %v, want 3`, got)
	}
	if got := a.metric("dedupfn_audit_mismatches_total", nil); got != 0 {
		t.Fatalf("dedupfn_audit_mismatches_total = %v, want 0", got)
	}
	if got, _ := a.reg.Get(t.Context(), fn.Tenant, fn.Name); got.Nondeterministic != nil {
		t.Fatalf("pure function marked %+v", *got.Nondeterministic)
	}
	for key, d := range a.decisions() {
		if key != "p0.txt" && d != activation.Hit {
			t.Errorf("%s: %s, want hit", key, d)
		}
	}
}

func TestAudit_RateZeroNeverRuns(t *testing.T) {
	a := newAuditEnv(t, nil)
	a.deployAudited("impure", map[string]string{"mode": "random"}, registry.Audit{})
	for i := range 4 {
		a.handle(a.put(fmt.Sprintf("z%d.txt", i), "content Z"))
	}
	// Close waits for every audit started: none may have been.
	if err := a.pipe.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := a.art.calls.Load(); got != 1 {
		t.Fatalf("function executed %d times with audit rate 0, want 1", got)
	}
	if got := a.audited() + a.metric("dedupfn_audits_total", map[string]string{"result": "dropped"}); got != 0 {
		t.Fatalf("%v audits counted with rate 0, want 0", got)
	}
}

func TestAudit_NewVersionStartsClean(t *testing.T) {
	a := newAuditEnv(t, nil)
	params := map[string]string{"mode": "random"}
	v1 := a.deployAudited("impure", params, registry.Audit{Rate: 1, OnMismatch: registry.OnMismatchDisableDedup})
	a.handle(a.put("n1.txt", "content N"))
	a.handle(a.put("n2.txt", "content N"))
	a.waitAudited(1)
	if got, _ := a.reg.Get(t.Context(), v1.Tenant, v1.Name); got.Nondeterministic == nil {
		t.Fatal("v1 not marked")
	}

	// Audit settings are not part of the version: redeploying with others
	// keeps the version, and its mark.
	same := a.deployAudited("impure", params, registry.Audit{Rate: 0.5, OnMismatch: registry.OnMismatchDisableDedup})
	if same.Version != v1.Version || same.Nondeterministic == nil {
		t.Fatalf("redeploy with other audit settings: version %s (was %s), mark %v: want the same version, still marked", same.Version, v1.Version, same.Nondeterministic)
	}

	// New params: a new version, unmarked, whose results are reused.
	v2 := a.deployAudited("impure", map[string]string{"mode": "random", "v": "2"}, registry.Audit{Rate: 0.000001, OnMismatch: registry.OnMismatchDisableDedup})
	if v2.Version == v1.Version {
		t.Fatal("changed params kept the version")
	}
	if v2.Nondeterministic != nil {
		t.Fatalf("new version deployed marked: %+v", *v2.Nondeterministic)
	}
	got, err := a.reg.Get(t.Context(), v2.Tenant, v2.Name)
	if err != nil || got.Nondeterministic != nil {
		t.Fatalf("Get new version: %+v, %v: want no mark", got.Nondeterministic, err)
	}
	if l := a.reg.List(""); len(l) != 1 || l[0].Version != v2.Version || l[0].Nondeterministic != nil {
		t.Fatalf("List: %+v, want the new version unmarked", l)
	}
	calls := a.art.calls.Load()
	a.handle(a.put("n3.txt", "content N"))
	a.handle(a.put("n4.txt", "content N"))
	if d := a.decisions(); d["n3.txt"] != activation.Miss || d["n4.txt"] != activation.Hit {
		t.Fatalf("new version: n3 %s, n4 %s, want miss then hit", d["n3.txt"], d["n4.txt"])
	}
	if got := a.art.calls.Load() - calls; got != 1 {
		t.Fatalf("new version executed %d times for two uploads of one content, want 1", got)
	}
}

func TestAudit_HitDoesNotWaitForAudit(t *testing.T) {
	a := newAuditEnv(t, nil)
	a.deployAudited("slow", map[string]string{"mode": "time", "sleep-again": "1500ms"}, registry.Audit{Rate: 1})
	a.handle(a.put("s1.txt", "content S"))
	start := time.Now()
	a.handle(a.put("s2.txt", "content S"))
	took := time.Since(start)
	// The audit starts in the background (it first reads the recorded
	// output and the input): wait for it, well within its 1.5 s run.
	for deadline := time.Now().Add(time.Second); a.art.calls.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if a.art.calls.Load() != 2 || a.art.done.Load() != 1 {
		t.Fatalf("after the hit returned: %d executions started, %d ended; want the audit started and still running", a.art.calls.Load(), a.art.done.Load())
	}
	hit := a.activation("s2.txt")
	if hit.Decision != activation.Hit || hit.Timings.TotalMS > 700 || took > 700*time.Millisecond {
		t.Fatalf("hit %s recorded after %.0f ms (Handle took %s) with its 1.5 s audit running: want a hit in well under 1.5 s", hit.Decision, hit.Timings.TotalMS, took)
	}
	a.waitAudited(1)
	if got := a.metric("dedupfn_audits_total", map[string]string{"result": "mismatch"}); got != 1 {
		t.Fatalf("audit result: %v mismatches, want 1", got)
	}
}

func TestAudit_FunctionErrorIsNotMismatch(t *testing.T) {
	a := newAuditEnv(t, nil)
	fn := a.deployAudited("flaky", map[string]string{"mode": "fail-again"}, registry.Audit{Rate: 1, OnMismatch: registry.OnMismatchDisableDedup})
	a.handle(a.put("f1.txt", "content F"))
	a.handle(a.put("f2.txt", "content F"))
	a.waitAudited(1)
	if a.art.calls.Load() != 2 {
		t.Fatalf("%d executions, want 2", a.art.calls.Load())
	}
	if got := a.metric("dedupfn_audits_total", map[string]string{"result": "error"}); got != 1 {
		t.Fatalf(`dedupfn_audits_total{result="error"} = %v, want 1`, got)
	}
	if got, _ := a.reg.Get(t.Context(), fn.Tenant, fn.Name); got.Nondeterministic != nil {
		t.Fatalf("a failed audit marked the function: %+v", *got.Nondeterministic)
	}
	if d := a.decisions(); d["f2.txt"] != activation.Hit {
		t.Fatalf("f2: %s, want hit", d["f2.txt"])
	}
}

func TestAudit_BusyAuditsAreDroppedNotQueued(t *testing.T) {
	a := newAuditEnv(t, nil)
	a.deployAudited("slow", map[string]string{"sleep-again": "1s"}, registry.Audit{Rate: 1})
	a.handle(a.put("b0.txt", "content B"))
	const hits = pipeline.DefaultMaxAudits + 3
	for i := 1; i <= hits; i++ {
		a.handle(a.put(fmt.Sprintf("b%d.txt", i), "content B"))
	}
	if got := a.metric("dedupfn_audits_total", map[string]string{"result": "dropped"}); got != hits-pipeline.DefaultMaxAudits {
		t.Fatalf(`dedupfn_audits_total{result="dropped"} = %v after %d hits, want %d`, got, hits, hits-pipeline.DefaultMaxAudits)
	}
	a.waitAudited(pipeline.DefaultMaxAudits)
	if got := a.art.calls.Load(); got != 1+pipeline.DefaultMaxAudits {
		t.Fatalf("%d executions, want %d (a miss and the audits that got a slot)", got, 1+pipeline.DefaultMaxAudits)
	}
	// Slots are given back: the next hit is audited.
	a.handle(a.put("b-last.txt", "content B"))
	a.waitAudited(pipeline.DefaultMaxAudits + 1)
	if got := a.metric("dedupfn_audits_total", map[string]string{"result": "match"}); got != pipeline.DefaultMaxAudits+1 {
		t.Fatalf("%v matching audits, want %d", got, pipeline.DefaultMaxAudits+1)
	}
}

func TestAudit_ZeroReadHitFetchesInput(t *testing.T) {
	a := newAuditEnv(t, nil)
	fn := a.deployAudited("impure", map[string]string{"mode": "random"}, registry.Audit{Rate: 1})
	trusted := func(ev event.Event) event.Event {
		ev.SHA256, ev.Source = sha256Hex("content T"), "embedded" // as the built-in endpoint sends it
		return ev
	}
	a.handle(trusted(a.put("t1.txt", "content T")))
	a.handle(trusted(a.put("t2.txt", "content T")))
	a.waitAudited(1)
	if got := a.metric("dedupfn_audits_total", map[string]string{"result": "mismatch"}); got != 1 {
		t.Fatalf("audit of a hit that read no input: %v mismatches, want 1 (results: skipped %v, error %v)", got,
			a.metric("dedupfn_audits_total", map[string]string{"result": "skipped"}), a.metric("dedupfn_audits_total", map[string]string{"result": "error"}))
	}
	if got, _ := a.reg.Get(t.Context(), fn.Tenant, fn.Name); got.Nondeterministic == nil {
		t.Fatal("not marked")
	}
}

// gatedStore holds the second read of one key until gate is closed.
type gatedStore struct {
	objects.Store
	key   string
	reads atomic.Int64
	gate  chan struct{}
}

func (s *gatedStore) Get(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, objects.Info, error) {
	if key == s.key && s.reads.Add(1) == 2 {
		<-s.gate
	}
	return s.Store.Get(ctx, bucket, key, versionID, etag)
}

func TestAudit_InputChangedIsSkipped(t *testing.T) {
	gated := &gatedStore{Store: store, key: "c2.txt", gate: make(chan struct{})}
	a := newAuditEnvWith(t, nil, gated)
	fn := a.deployAudited("impure", map[string]string{"mode": "random"}, registry.Audit{Rate: 1})
	a.handle(a.put("c1.txt", "content C"))
	a.handle(a.put("c2.txt", "content C")) // the hit reads c2.txt; its audit's read waits
	a.put("c2.txt", "content D")           // replaced before the audit reads it
	close(gated.gate)
	a.waitAudited(1)
	if got := a.metric("dedupfn_audits_total", map[string]string{"result": "skipped"}); got != 1 || a.art.calls.Load() != 1 {
		t.Fatalf("audit of a replaced input: %v skipped after %d executions, want 1 skipped and no run", got, a.art.calls.Load())
	}
	if got, _ := a.reg.Get(t.Context(), fn.Tenant, fn.Name); got.Nondeterministic != nil {
		t.Fatal("an audit that compared nothing marked the function")
	}
}

func TestClose_CancelsAndWaitsForAudits(t *testing.T) {
	a := newAuditEnv(t, nil)
	fn := a.deployAudited("slow", map[string]string{"mode": "random", "sleep-again": "10s"}, registry.Audit{Rate: 1})
	a.handle(a.put("x1.txt", "content X"))
	a.handle(a.put("x2.txt", "content X"))
	testutil.Eventually(t, 5*time.Second, "the audit to start running", func() bool { return a.art.calls.Load() == 2 })
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := a.pipe.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %s: it should cancel the audit, not wait out its function", took)
	}
	if a.art.done.Load() != 1 {
		t.Fatalf("%d executions ran to their end, want 1 (the audit cancelled)", a.art.done.Load())
	}
	if got := a.metric("dedupfn_audits_total", map[string]string{"result": "skipped"}); got != 1 {
		t.Fatalf(`dedupfn_audits_total{result="skipped"} = %v after Close, want 1`, got)
	}
	if got, _ := a.reg.Get(t.Context(), fn.Tenant, fn.Name); got.Nondeterministic != nil {
		t.Fatal("a cancelled audit marked the function")
	}
	// Closed: hits are still served, and not audited.
	a.handle(a.put("x3.txt", "content X"))
	if d := a.decisions()["x3.txt"]; d != activation.Hit || a.art.calls.Load() != 2 {
		t.Fatalf("after Close: %s and %d executions, want a hit and no audit", d, a.art.calls.Load())
	}
	if got := a.metric("dedupfn_audits_total", map[string]string{"result": "dropped"}); got != 1 {
		t.Fatalf(`after Close: dedupfn_audits_total{result="dropped"} = %v, want 1 (the sampled hit)`, got)
	}
	if err := a.pipe.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// clockAction is an actionloop process function that returns the time as
// its result and appends a line to the side file named by env SIDE for
// each execution. Only bash builtins: actions get no PATH.
const clockAction = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do
  echo run >> "$SIDE"
  echo "{\"now\":\"$EPOCHREALTIME\"}" >&3
done
`

// TestAudit_ProcessFunctionEmbeddingTime runs the whole thing with a real
// function that returns the time: found out by its first audited hit, and
// run on every event after (disable-dedup).
func TestAudit_ProcessFunctionEmbeddingTime(t *testing.T) {
	if _, err := os.Stat("/bin/bash"); err != nil {
		testutil.Missing(t, "/bin/bash (the test action's interpreter)")
	}
	prt, err := process.New(process.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prt.Close(context.Background()) })
	a := newAuditEnv(t, map[string]runtime.Runtime{"process": prt})
	side := filepath.Join(t.TempDir(), "executions.log")
	executions := func() int {
		f, err := os.Open(side)
		if os.IsNotExist(err) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		n := 0
		for sc := bufio.NewScanner(f); sc.Scan(); {
			n++
		}
		return n
	}
	f := registry.Function{
		Name: "clock", Runtime: "process", Trigger: registry.Trigger{Bucket: a.in}, Output: registry.Output{Bucket: a.out},
		Config: map[string]string{"env.SIDE": side},
		Audit:  registry.Audit{Rate: 1, OnMismatch: registry.OnMismatchDisableDedup},
	}
	f, err = a.reg.Deploy(t.Context(), f, []byte(clockAction))
	if err != nil {
		t.Fatal(err)
	}
	a.handle(a.put("k1", "content A"))
	if got := executions(); got != 1 {
		t.Fatalf("%d executions after the first upload, want 1", got)
	}
	a.handle(a.put("k2", "content A"))
	a.waitAudited(1)
	if got := executions(); got != 2 {
		t.Fatalf("%d executions after an audited hit, want 2", got)
	}
	got, _ := a.reg.Get(t.Context(), f.Tenant, f.Name)
	m := got.Nondeterministic
	if m == nil {
		t.Fatalf("a function returning the time was not marked (audits: match %v, error %v, skipped %v)",
			a.metric("dedupfn_audits_total", map[string]string{"result": "match"}),
			a.metric("dedupfn_audits_total", map[string]string{"result": "error"}),
			a.metric("dedupfn_audits_total", map[string]string{"result": "skipped"}))
	}
	// The recorded output is the result stored as k1.json.
	if want := sha256Hex(a.output("k1.json")); m.RecordedDigest != want || m.AuditDigest == want {
		t.Fatalf("mark digests recorded %s audit %s, want recorded %s and another", m.RecordedDigest, m.AuditDigest, want)
	}
	a.handle(a.put("k3", "content A"))
	if got := executions(); got != 3 {
		t.Fatalf("%d executions after a third upload of a disable-dedup nondeterministic version, want 3", got)
	}
	if d := a.decisions(); d["k1"] != activation.Miss || d["k2"] != activation.Hit || d["k3"] != activation.Miss {
		t.Fatalf("decisions %v, want k1 miss, k2 hit, k3 miss (run)", d)
	}
	if out := a.output("k3.json"); !strings.Contains(out, `"now"`) {
		t.Fatalf("k3 output %q, want the function's own result", out)
	}
}
