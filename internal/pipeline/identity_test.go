package pipeline_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/testutil"
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
