package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	_ "github.com/dedupfn/dedupfn/internal/objects/s3" // registers s3:
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// putBytes uploads body under key in the input bucket and returns the
// event the source would deliver; embedded is whether it is the built-in
// endpoint's own event (with the SHA-256 it computed).
func (e *env) putBytes(key string, body []byte, embedded bool) event.Event {
	e.t.Helper()
	info, err := store.Put(e.t.Context(), e.in, key, bytes.NewReader(body), int64(len(body)), objects.PutOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	ev := event.Event{Source: "test", Name: "s3:ObjectCreated:Put", Bucket: e.in, Key: key, ETag: info.ETag, Size: info.Size}
	if embedded {
		sum := sha256.Sum256(body)
		ev.Source, ev.SHA256 = "embedded", hex.EncodeToString(sum[:])
	}
	return ev
}

// Item 2: B uploaded over A where MD5(A) == MD5(B) (so the built-in store,
// without versions, gives both the same ETag) is new content: it runs, and
// the output holds f(B). A redelivery of B's event still runs nothing.
func TestEventIdentity_MD5CollisionIsNewContent(t *testing.T) {
	a, b := testutil.MD5CollisionPair()
	for _, embedded := range []bool{false, true} {
		name := map[bool]string{false: "ReadAndHashed", true: "TrustedSHA256"}[embedded]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.deploy("upper", nil)
			evA := e.putBytes("k/doc.bin", a, embedded)
			e.handle(evA)
			evB := e.putBytes("k/doc.bin", b, embedded)
			if evA.ETag != evB.ETag {
				t.Fatalf("ETags %s and %s differ: the test needs the store's ETag to be the MD5", evA.ETag, evB.ETag)
			}
			e.handle(evB)
			if got := e.rt.calls.Load(); got != 2 {
				t.Fatalf("function ran %d times for two different contents, want 2", got)
			}
			if got := e.output("k/doc.bin"); got != string(bytes.ToUpper(b)) {
				t.Fatalf("output holds f(A) (or other bytes) while the input is B")
			}
			e.handle(evB) // redelivered
			if got, n := e.rt.calls.Load(), len(e.activations()); got != 2 || n != 2 {
				t.Fatalf("after a redelivery of B: %d runs, %d activations; want 2, 2", got, n)
			}
		})
	}
}

// Item 2: the reconciler finds B, uploaded over an MD5-colliding A whose
// event was handled, when B's own event was dropped.
func TestReconcile_MD5CollisionIsNewContent(t *testing.T) {
	a, b := testutil.MD5CollisionPair()
	e := newEnv(t)
	e.deploy("upper", nil)
	e.handle(e.putBytes("k/doc.bin", a, false))
	e.putBytes("k/doc.bin", b, false) // its event is lost
	n, err := e.pipe.Reconcile(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.rt.calls.Load(); n != 1 || got != 2 {
		t.Fatalf("Reconcile found %d missed, function ran %d times; want 1 and 2", n, got)
	}
	if got := e.output("k/doc.bin"); got != string(bytes.ToUpper(b)) {
		t.Fatal("output holds f(A) while the input is B")
	}
	if n, err := e.pipe.Reconcile(t.Context(), 0); err != nil || n != 0 {
		t.Fatalf("second Reconcile = %d, %v; want 0 (B is processed)", n, err)
	}
}

// Item 4: the store resolves "." and ".." segments of a key; the event's
// key is cleaned the same way before any decision, so the object stored
// as t/c.txt triggers like t/c.txt whatever key the upload named.
func TestEventKey_CleanedLikeTheStore(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", func(f *registry.Function) { f.Trigger.Prefix = "t/" })
	for raw, stored := range map[string]string{
		".dedupfn/staging/../../t/c.txt": "t/c.txt",
		"t/x/../b.txt":                   "t/b.txt",
		"t/./y//d.txt":                   "t/y/d.txt",
	} {
		body := "data of " + stored
		ev := e.putBytes(raw, []byte(body), true) // the built-in endpoint's event names the key as sent
		if _, err := store.Stat(t.Context(), e.in, stored); err != nil {
			t.Fatalf("%s: the store did not keep it as %s: %v", raw, stored, err)
		}
		e.handle(ev)
		if got := e.output(stored); got != strings.ToUpper(body) {
			t.Errorf("%s: output %s = %q, want %q", raw, stored, got, strings.ToUpper(body))
		}
	}
	if got := e.rt.calls.Load(); got != 3 {
		t.Fatalf("function ran %d times, want 3", got)
	}
	for _, r := range e.activations() {
		if r.Decision != activation.Miss {
			t.Errorf("%s: decision %s (%s), want miss", r.Event.Key, r.Decision, r.Error)
		}
	}
}

// Item 10: a function's JSON result is stored under one rule, KEY.json,
// whether the event is a miss or a hit, also when KEY ends in .json.
func TestJSONResult_SameOutputKeyOnHitAndMiss(t *testing.T) {
	e := newEnv(t)
	e.deploy("count", func(f *registry.Function) { f.Params = map[string]string{"mode": "json"} })
	e.handle(e.put("a/b.json", `{"x":1}`))
	e.handle(e.put("c/b.json", `{"x":1}`))
	e.handle(e.put("d/b.txt", `{"x":1}`))
	if got := e.rt.calls.Load(); got != 1 {
		t.Fatalf("function ran %d times, want 1", got)
	}
	for _, key := range []string{"a/b.json.json", "c/b.json.json", "d/b.txt.json"} {
		if _, err := store.Stat(t.Context(), e.out, key); err != nil {
			t.Errorf("result of %s not at %s: %v", strings.TrimSuffix(key, ".json"), key, err)
		}
	}
	if d := e.decisions(); d["a/b.json"] != activation.Miss || d["c/b.json"] != activation.Hit || d["d/b.txt"] != activation.Hit {
		t.Fatalf("decisions %v, want miss, hit, hit", d)
	}
}

// copyRuntime writes its input as its output and counts executions.
type copyRuntime struct{ calls atomic.Int64 }

func (r *copyRuntime) Name() string                { return "test" }
func (r *copyRuntime) Version() string             { return "copy/1" }
func (r *copyRuntime) Close(context.Context) error { return nil }
func (r *copyRuntime) Invoke(ctx context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	r.calls.Add(1)
	if _, err := io.Copy(inv.Output, inv.Input); err != nil {
		return runtime.Result{}, err
	}
	return runtime.Result{OutputWritten: true}, nil
}

// storeEnv is a pipeline on a store of the test's choosing (the built-in
// endpoint, or MinIO) running copy (copyRuntime) on uploads to in.
type storeEnv struct {
	t       *testing.T
	objs    objects.Store
	idx     index.Index
	pipe    *pipeline.Pipeline
	rt      *copyRuntime
	in, out string
}

// eachStore runs test on the built-in endpoint and on a real MinIO.
func eachStore(t *testing.T, test func(t *testing.T, objs objects.Store)) {
	t.Run("Embedded", func(t *testing.T) { test(t, store) })
	t.Run("MinIO", func(t *testing.T) {
		m := peers.StartMinIO(t, peers.MinIOOptions{})
		st, err := objects.Open(t.Context(), m.URL(), objects.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		test(t, st)
	})
}

func newStoreEnv(t *testing.T, objs objects.Store, mutate func(*registry.Function)) *storeEnv {
	t.Helper()
	e := &storeEnv{t: t, objs: objs, idx: testutil.BoltIndex(t), rt: &copyRuntime{},
		in: fmt.Sprintf("id-in-%d", bucketSeq.Add(1)), out: fmt.Sprintf("id-out-%d", bucketSeq.Add(1))}
	for _, bkt := range []string{e.in, e.out} {
		if err := objs.MakeBucket(t.Context(), bkt); err != nil {
			t.Fatal(err)
		}
	}
	reg := registry.New(e.idx, nil)
	fn := registry.Function{Name: "copy", Runtime: "test", Trigger: registry.Trigger{Bucket: e.in}, Output: registry.Output{Bucket: e.out}}
	if mutate != nil {
		mutate(&fn)
	}
	// Unchecked: some tests have it write into its own trigger bucket.
	testutil.DeployUnchecked(t, e.idx, reg, fn, []byte("code of copy"))
	var err error
	e.pipe, err = pipeline.New(pipeline.Config{Index: e.idx, Objects: objs, Registry: reg,
		Runtimes: map[string]runtime.Runtime{"test": e.rt}, Owner: "r", SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *storeEnv) put(bucket, key string, body []byte, meta map[string]string) objects.Info {
	e.t.Helper()
	info, err := e.objs.Put(e.t.Context(), bucket, key, bytes.NewReader(body), int64(len(body)), objects.PutOptions{Metadata: meta})
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

// handle uploads body to the input bucket and handles its event, as a
// source without metadata or checksums delivers it.
func (e *storeEnv) handle(key string, body []byte, meta map[string]string) {
	e.t.Helper()
	info := e.put(e.in, key, body, meta)
	ev := event.Event{Source: "test", Name: "s3:ObjectCreated:Put", Bucket: e.in, Key: key, ETag: info.ETag, Size: info.Size}
	if err := e.pipe.Handle(e.t.Context(), ev); err != nil {
		e.t.Fatal(err)
	}
}

func (e *storeEnv) read(bucket, key string) []byte {
	e.t.Helper()
	rc, _, err := e.objs.Get(e.t.Context(), bucket, key, "", "")
	if err != nil {
		e.t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	return got
}

// Item 3: a hit delivers bytes whose SHA-256 is the recorded output's.
// The recorded output A is overwritten with an MD5-colliding B (same ETag);
// a later upload of A must not receive B: it runs again.
func TestHit_DeliversRecordedSHA256(t *testing.T) {
	eachStore(t, func(t *testing.T, objs objects.Store) {
		a, b := testutil.MD5CollisionPair()
		e := newStoreEnv(t, objs, nil)
		e.handle("sh/a.bin", a, nil)
		swapped := e.put(e.out, "sh/a.bin", b, nil) // the output's owner swaps it for B, same MD5
		if st, err := objs.Stat(t.Context(), e.out, "sh/a.bin"); err != nil || st.ETag != swapped.ETag {
			t.Fatalf("stat after the swap: %v", err)
		}
		e.handle("other/a.bin", a, nil)
		if got := e.read(e.out, "other/a.bin"); !bytes.Equal(got, a) {
			t.Fatalf("a hit on A delivered other bytes (SHA-256 %x), not A (%x)", sha256.Sum256(got), sha256.Sum256(a))
		}
		if got := e.rt.calls.Load(); got != 2 {
			t.Fatalf("function ran %d times, want 2 (the swapped record is a miss)", got)
		}
		// A hit on a record whose output is intact still runs nothing.
		e.handle("third/a.bin", a, nil)
		if got := e.read(e.out, "third/a.bin"); !bytes.Equal(got, a) || e.rt.calls.Load() != 2 {
			t.Fatalf("hit on an intact record: %d runs, output A = %v", e.rt.calls.Load(), bytes.Equal(got, a))
		}
	})
}

// Item 20: metadata never decides that an object is dedupfn's output: an
// uploader (any, on MinIO) who sets x-amz-meta-dedupfn-output-of on its
// upload still triggers its function, on the event path and in the
// reconciler; dedupfn's real outputs (noted in the index) still trigger
// nothing, also in the input bucket.
func TestSelfWritten_DecidedByIndexNotMetadata(t *testing.T) {
	eachStore(t, func(t *testing.T, objs objects.Store) {
		marks := map[string]string{event.MetaOutputOf: "copy@v1", event.MetaInput: "x"}
		e := newStoreEnv(t, objs, func(f *registry.Function) { f.Output.KeyTemplate = "out/{key}" })
		// objs.Put keeps metadata, as MinIO does for any uploader (the
		// built-in endpoint drops it for its clients: s3server's
		// TestClientCannotSetDedupfnMetadata).
		e.handle("marked.txt", []byte("an upload that claims to be an output"), marks)
		if got := e.rt.calls.Load(); got != 1 {
			t.Fatalf("function ran %d times on an upload marked as an output, want 1", got)
		}
		e.put(e.in, "lost.txt", []byte("its event is lost"), marks)
		if n, err := e.pipe.Reconcile(t.Context(), 0); err != nil || n != 1 || e.rt.calls.Load() != 2 {
			t.Fatalf("Reconcile = %d, %v with %d runs; want the marked upload found and run", n, err, e.rt.calls.Load())
		}

		// Real outputs in a triggered bucket: the function writes into
		// its own input bucket.
		self := newStoreEnv(t, objs, func(f *registry.Function) {
			f.Output = registry.Output{Bucket: f.Trigger.Bucket, KeyTemplate: "out/{key}"}
		})
		self.handle("x.txt", []byte("data"), nil)
		out, err := objs.Stat(t.Context(), self.in, "out/x.txt")
		if err != nil {
			t.Fatal(err)
		}
		ev := event.Event{Source: "test", Name: "s3:ObjectCreated:Put", Bucket: self.in, Key: "out/x.txt", ETag: out.ETag, Size: out.Size}
		if err := self.pipe.Handle(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		if n, err := self.pipe.Reconcile(t.Context(), 0); err != nil || n != 0 {
			t.Fatalf("Reconcile = %d, %v; want 0 (the only other object is our output)", n, err)
		}
		if got := self.rt.calls.Load(); got != 1 {
			t.Fatalf("function ran %d times: it triggered on its own output", got)
		}
	})
}

// Item 2, "scan clean, then swap" without a collision: bad, then clean,
// then bad again at one key. The third upload is not a redelivery of the
// first (its event is later): it gets its own activation, and the output
// holds f(bad) again (a run: bad's recorded output, at this very key, was
// overwritten by clean's); a redelivery of it still runs nothing.
func TestEventIdentity_SameContentAgainAfterAnotherRuns(t *testing.T) {
	for _, embedded := range []bool{false, true} {
		name := map[bool]string{false: "ReadAndHashed", true: "TrustedSHA256"}[embedded]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.deploy("upper", nil)
			put := func(body string) event.Event {
				ev := e.putBytes("k/doc.txt", []byte(body), embedded)
				ev.Time = time.Now().UTC()
				return ev
			}
			e.handle(put("bad"))
			e.handle(put("clean"))
			again := put("bad")
			e.handle(again)
			if got := e.output("k/doc.txt"); got != "BAD" {
				t.Fatalf("output %q while the input is bad again, want f(bad)", got)
			}
			e.handle(again) // redelivered
			if got, n := e.rt.calls.Load(), len(e.activations()); got != 3 || n != 3 {
				t.Fatalf("%d runs, %d activations; want 3 and 3", got, n)
			}
		})
	}
}
