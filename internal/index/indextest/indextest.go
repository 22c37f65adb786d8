// Package indextest is the conformance suite every index.Index backend
// runs: a backend is done when Run passes against the real store.
package indextest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
)

// Run runs the suite; newIndex returns a fresh, empty index (closed by the
// suite) for each subtest.
func Run(t *testing.T, newIndex func(t testing.TB) index.Index) {
	fresh := func(t *testing.T) index.Index {
		t.Helper()
		idx := newIndex(t)
		t.Cleanup(func() { idx.Close() })
		return idx
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, index.Index)
	}{
		{"FirstClaimIsMiss", testFirstClaimIsMiss},
		{"SecondClaimWaits", testSecondClaimWaits},
		{"CompleteThenHit", testCompleteThenHit},
		{"StaleTokenRejected", testStaleTokenRejected},
		{"DoneRecordUntouchable", testDoneRecordUntouchable},
		{"ExpiredLeaseTakeover", testExpiredLeaseTakeover},
		{"OldOwnerCannotTouchSuccessor", testOldOwnerCannotTouchSuccessor},
		{"RenewKeepsClaim", testRenewKeepsClaim},
		{"FailNotCached", testFailNotCached},
		{"FailCached", testFailCached},
		{"Release", testRelease},
		{"ExternalID", testExternalID},
		{"DeleteAndGet", testDeleteAndGet},
		{"Records", testRecords},
		{"BadLease", testBadLease},
		{"Docs", testDocs},
		{"Blobs", testBlobs},
		{"Activations", testActivations},
		{"ActivationOrder", testActivationOrder},
		{"HammerOneKey", testHammerOneKey},
		{"HammerManyKeys", testHammerManyKeys},
		{"HammerAfterRelease", testHammerAfterRelease},
		{"HammerTakeover", testHammerTakeover},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, fresh(t)) })
	}
}

var parts = index.Parts{Tenant: "t", Function: "f", CodeDigest: "c", Params: "{}", RuntimeVersion: "r/1", Fingerprint: "sha256:00"}

const lease = time.Minute

func claim(t *testing.T, idx index.Index, key, owner string, l time.Duration) index.Claimed {
	t.Helper()
	c, err := idx.Claim(t.Context(), key, parts, owner, l)
	if err != nil {
		t.Fatalf("Claim(%s, %s): %v", key, owner, err)
	}
	return c
}

func mustMiss(t *testing.T, idx index.Index, key, owner string, l time.Duration) index.Record {
	t.Helper()
	c := claim(t, idx, key, owner, l)
	if c.Outcome != index.Miss {
		t.Fatalf("Claim(%s, %s) = %v, want miss", key, owner, c.Outcome)
	}
	if c.Record.Token == "" {
		t.Fatal("a miss carries no token")
	}
	return c.Record
}

func testFirstClaimIsMiss(t *testing.T, idx index.Index) {
	r := mustMiss(t, idx, "k", "a", lease)
	if r.Attempt != 1 || r.Owner != "a" || r.State != index.Running || r.Parts != parts {
		t.Fatalf("record %+v: want running, owner a, attempt 1, parts stored", r)
	}
	if time.Until(r.LeaseUntil) < lease/2 {
		t.Fatalf("lease until %s, want about a minute from now", r.LeaseUntil)
	}
}

func testSecondClaimWaits(t *testing.T, idx index.Index) {
	mustMiss(t, idx, "k", "a", lease)
	c := claim(t, idx, "k", "b", lease)
	if c.Outcome != index.Wait || c.Record.Owner != "a" {
		t.Fatalf("second claim = %v owner %q, want wait on owner a", c.Outcome, c.Record.Owner)
	}
}

func testCompleteThenHit(t *testing.T, idx index.Index) {
	r := mustMiss(t, idx, "k", "a", lease)
	out := &index.Output{Bucket: "b", Key: "o", ETag: "e", Size: 3, ContentType: "image/jpeg"}
	if err := idx.Complete(t.Context(), "k", r.Token, index.Completion{Output: out, Result: json.RawMessage(`{"ok":true}`), FunctionMS: 12.5}); err != nil {
		t.Fatal(err)
	}
	c := claim(t, idx, "k", "b", lease)
	if c.Outcome != index.Hit {
		t.Fatalf("claim after complete = %v, want hit", c.Outcome)
	}
	got := c.Record
	if got.State != index.Done || *got.Output != *out || string(got.Result) != `{"ok":true}` || got.FunctionMS != 12.5 || got.Parts != parts {
		t.Fatalf("hit record %+v: output, result, cost or parts lost", got)
	}
}

func testStaleTokenRejected(t *testing.T, idx index.Index) {
	r := mustMiss(t, idx, "k", "a", lease)
	ctx := t.Context()
	for name, call := range map[string]func() error{
		"Complete":      func() error { return idx.Complete(ctx, "k", "stale", index.Completion{}) },
		"Fail":          func() error { return idx.Fail(ctx, "k", "stale", "x", "function", false) },
		"FailCached":    func() error { return idx.Fail(ctx, "k", "stale", "x", "function", true) },
		"Release":       func() error { return idx.Release(ctx, "k", "stale") },
		"Renew":         func() error { return idx.Renew(ctx, "k", "stale", lease) },
		"SetExternalID": func() error { return idx.SetExternalID(ctx, "k", "stale", "x") },
		"EmptyToken":    func() error { return idx.Release(ctx, "k", "") },
		"AbsentKey":     func() error { return idx.Complete(ctx, "absent", r.Token, index.Completion{}) },
	} {
		if err := call(); !errors.Is(err, index.ErrNotOwner) {
			t.Errorf("%s with a stale token: %v, want ErrNotOwner", name, err)
		}
	}
	got, err := idx.Get(ctx, "k")
	if err != nil || got.State != index.Running || got.Token != r.Token || got.ExternalID != "" {
		t.Fatalf("after rejected calls the record is %+v, %v; want it untouched", got, err)
	}
}

func testExpiredLeaseTakeover(t *testing.T, idx index.Index) {
	old := mustMiss(t, idx, "k", "a", 50*time.Millisecond)
	time.Sleep(120 * time.Millisecond)
	c := claim(t, idx, "k", "b", lease)
	if c.Outcome != index.Miss || c.Record.Attempt != 2 || c.Record.Owner != "b" || c.Record.Token == old.Token {
		t.Fatalf("claim after expiry = %v %+v: want a takeover miss, attempt 2, new owner and token", c.Outcome, c.Record)
	}
	if err := idx.Complete(t.Context(), "k", old.Token, index.Completion{}); !errors.Is(err, index.ErrNotOwner) {
		t.Fatalf("the old owner completed after takeover: %v", err)
	}
	if err := idx.Complete(t.Context(), "k", c.Record.Token, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
		t.Fatalf("the new owner cannot complete: %v", err)
	}
}

func testRenewKeepsClaim(t *testing.T, idx index.Index) {
	r := mustMiss(t, idx, "k", "a", 150*time.Millisecond)
	for range 4 {
		time.Sleep(60 * time.Millisecond)
		if err := idx.Renew(t.Context(), "k", r.Token, 150*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if c := claim(t, idx, "k", "b", lease); c.Outcome != index.Wait {
		t.Fatalf("claim on a renewed lease = %v, want wait", c.Outcome)
	}
}

func testFailNotCached(t *testing.T, idx index.Index) {
	r := mustMiss(t, idx, "k", "a", lease)
	if err := idx.Fail(t.Context(), "k", r.Token, "timeout", "timeout", false); err != nil {
		t.Fatal(err)
	}
	if c := claim(t, idx, "k", "b", lease); c.Outcome != index.Miss || c.Record.Attempt != 1 {
		t.Fatalf("claim after uncached failure = %v attempt %d, want a fresh miss", c.Outcome, c.Record.Attempt)
	}
}

func testFailCached(t *testing.T, idx index.Index) {
	r := mustMiss(t, idx, "k", "a", lease)
	if err := idx.Fail(t.Context(), "k", r.Token, "bad input", "function", true); err != nil {
		t.Fatal(err)
	}
	c := claim(t, idx, "k", "b", lease)
	if c.Outcome != index.Hit || c.Record.State != index.Failed || c.Record.Error != "bad input" || c.Record.ErrorClass != "function" {
		t.Fatalf("claim after cached failure = %v %+v", c.Outcome, c.Record)
	}
}

func testRelease(t *testing.T, idx index.Index) {
	r := mustMiss(t, idx, "k", "a", lease)
	if err := idx.Release(t.Context(), "k", r.Token); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, idx, "k", "b", lease)
}

func testExternalID(t *testing.T, idx index.Index) {
	r := mustMiss(t, idx, "k", "a", 50*time.Millisecond)
	if err := idx.SetExternalID(t.Context(), "k", r.Token, "ow-123"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond)
	// The successor learns the remote activation it must poll instead of invoking again.
	c := claim(t, idx, "k", "b", lease)
	if c.Outcome != index.Miss || c.Record.ExternalID != "ow-123" {
		t.Fatalf("takeover = %v %+v, want the external id kept", c.Outcome, c.Record)
	}
}

func testDeleteAndGet(t *testing.T, idx index.Index) {
	if _, err := idx.Get(t.Context(), "k"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("Get of absent key: %v, want ErrNotFound", err)
	}
	mustMiss(t, idx, "k", "a", lease)
	for range 2 {
		if err := idx.Delete(t.Context(), "k"); err != nil {
			t.Fatalf("Delete (idempotent): %v", err)
		}
	}
	if _, err := idx.Get(t.Context(), "k"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
}

func testRecords(t *testing.T, idx index.Index) {
	for i := range 5 {
		mustMiss(t, idx, fmt.Sprintf("k%d", i), "a", lease)
	}
	seen := map[string]bool{}
	if err := idx.Records(t.Context(), func(r index.Record) error { seen[r.Key] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 5 {
		t.Fatalf("Records saw %v, want 5 keys", seen)
	}
}

func testBadLease(t *testing.T, idx index.Index) {
	if _, err := idx.Claim(t.Context(), "k", parts, "a", 0); err == nil {
		t.Fatal("Claim with lease 0 succeeded")
	}
}

func testDocs(t *testing.T, idx index.Index) {
	ctx := t.Context()
	for _, id := range []string{"b", "a", "c"} {
		if err := idx.PutDoc(ctx, "function", id, []byte(`{"id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	idx.PutDoc(ctx, "other", "z", []byte(`{}`))
	if err := idx.PutDoc(ctx, "function", "a", []byte(`{"id":"a2"}`)); err != nil {
		t.Fatal(err)
	}
	if doc, err := idx.GetDoc(ctx, "function", "a"); err != nil || string(doc) != `{"id":"a2"}` {
		t.Fatalf("GetDoc = %s, %v", doc, err)
	}
	var ids []string
	idx.Docs(ctx, "function", func(id string, _ []byte) error { ids = append(ids, id); return nil })
	if fmt.Sprint(ids) != "[a b c]" {
		t.Fatalf("Docs ids %v, want [a b c] in order and no other kind", ids)
	}
	if err := idx.DeleteDoc(ctx, "function", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := idx.GetDoc(ctx, "function", "a"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("GetDoc after delete: %v", err)
	}
	if err := idx.DeleteDoc(ctx, "function", "a"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("DeleteDoc of absent doc: %v, want ErrNotFound", err)
	}
}

func testBlobs(t *testing.T, idx index.Index) {
	ctx := t.Context()
	data := make([]byte, 3<<20) // a realistic module size
	for i := range data {
		data[i] = byte(i * 7)
	}
	for range 2 {
		if err := idx.PutBlob(ctx, "d1", data); err != nil {
			t.Fatalf("PutBlob (idempotent): %v", err)
		}
	}
	got, err := idx.GetBlob(ctx, "d1")
	if err != nil || len(got) != len(data) || string(got[:100]) != string(data[:100]) || string(got[len(got)-100:]) != string(data[len(data)-100:]) {
		t.Fatalf("GetBlob: %d bytes, %v", len(got), err)
	}
	if _, err := idx.GetBlob(ctx, "absent"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("GetBlob absent: %v", err)
	}
}

func testActivations(t *testing.T, idx index.Index) {
	ctx := t.Context()
	base := time.Now().UTC().Add(-time.Hour)
	add := func(i int, tenant, fn string, d activation.Decision) activation.Record {
		r := activation.Record{
			ID: fmt.Sprintf("act-%02d", i), Tenant: tenant, Function: fn, Decision: d, Start: base.Add(time.Duration(i) * time.Second),
			Event: activation.Object{Bucket: "in", Key: fmt.Sprintf("k%d", i), ETag: "e"}, FunctionMS: 10, SavedMS: 0,
		}
		if d == activation.Hit {
			r.SavedMS = 10
		}
		if err := idx.AddActivation(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	add(1, "acme", "thumb", activation.Miss)
	add(2, "acme", "thumb", activation.Hit)
	add(3, "acme", "ocr", activation.Error)
	add(4, "globex", "thumb", activation.Wait)
	dup := add(5, "globex", "thumb", activation.Miss)
	if err := idx.AddActivation(ctx, dup); err != nil { // a redelivery
		t.Fatal(err)
	}

	got, err := idx.GetActivation(ctx, "act-03")
	if err != nil || got.Function != "ocr" || got.Decision != activation.Error {
		t.Fatalf("GetActivation = %+v, %v", got, err)
	}
	if _, err := idx.GetActivation(ctx, "absent"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("GetActivation absent: %v", err)
	}
	ids := func(f activation.Filter) string {
		recs, err := idx.Activations(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, r := range recs {
			s = append(s, r.ID)
		}
		return fmt.Sprint(s)
	}
	for _, tc := range []struct {
		name string
		f    activation.Filter
		want string
	}{
		{"All", activation.Filter{}, "[act-05 act-04 act-03 act-02 act-01]"},
		{"Limit", activation.Filter{Limit: 2}, "[act-05 act-04]"},
		{"Tenant", activation.Filter{Tenant: "acme"}, "[act-03 act-02 act-01]"},
		{"Function", activation.Filter{Function: "thumb", Tenant: "acme"}, "[act-02 act-01]"},
	} {
		if got := ids(tc.f); got != tc.want {
			t.Errorf("Activations %s = %s, want %s", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		bucket, key, etag string
		want              bool
	}{{"in", "k1", "e", true}, {"in", "k1", "other", false}, {"in", "k9", "e", false}} {
		if seen, err := idx.ObjectSeen(ctx, tc.bucket, tc.key, tc.etag); err != nil || seen != tc.want {
			t.Errorf("ObjectSeen(%s/%s %s) = %v, %v; want %v", tc.bucket, tc.key, tc.etag, seen, err, tc.want)
		}
	}
	all, err := idx.Stats(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if all.Events != 5 || all.Runs != 2 || all.Hits != 2 || all.Waits != 1 || all.Errors != 1 || all.FunctionMS != 20 || all.SavedMS != 10 {
		t.Fatalf("Stats(all) = %+v: a redelivered activation counted twice, or totals differ from activation.Stats.Add", all)
	}
	acme, _ := idx.Stats(ctx, "acme")
	if acme.Events != 3 || acme.Runs != 1 || acme.Hits != 1 || acme.Errors != 1 {
		t.Fatalf("Stats(acme) = %+v", acme)
	}
}

func hammer(t *testing.T, idx index.Index, keys, goroutines int) map[string]int {
	var wg sync.WaitGroup
	start := make(chan struct{})
	var mu sync.Mutex
	misses := map[string]int{}
	for g := range goroutines {
		for k := range keys {
			wg.Go(func() {
				<-start
				key := fmt.Sprintf("key-%d", k)
				c, err := idx.Claim(t.Context(), key, parts, fmt.Sprintf("owner-%d", g), lease)
				if err != nil {
					t.Error(err)
					return
				}
				switch c.Outcome {
				case index.Miss:
					mu.Lock()
					misses[key]++
					mu.Unlock()
				case index.Wait:
				default:
					t.Errorf("claim outcome %v, want miss or wait", c.Outcome)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	return misses
}

func testHammerOneKey(t *testing.T, idx index.Index) {
	p := 32
	if testing.Short() {
		p = 8
	}
	if m := hammer(t, idx, 1, p); m["key-0"] != 1 {
		t.Fatalf("%d goroutines claiming one key: %d misses, want exactly 1", p, m["key-0"])
	}
}

func testHammerManyKeys(t *testing.T, idx index.Index) {
	n, p := 10, 8
	if testing.Short() {
		n, p = 4, 4
	}
	m := hammer(t, idx, n, p)
	for k := range n {
		if got := m[fmt.Sprintf("key-%d", k)]; got != 1 {
			t.Errorf("key-%d: %d misses, want 1", k, got)
		}
	}
}
