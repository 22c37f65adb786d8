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
		{"DeleteResult", testDeleteResult},
		{"RepointOutput", RepointOutput},
		{"Records", testRecords},
		{"BadLease", testBadLease},
		{"Docs", testDocs},
		{"DocsPrefix", DocsPrefix},
		{"PutDocs", PutDocs},
		{"DocsWithWrites", DocsWithWrites},
		{"Blobs", testBlobs},
		{"Activations", testActivations},
		{"ActivationOrder", testActivationOrder},
		{"ActivationsByFunction", testActivationsByFunction},
		{"ActivationsByPrefix", testActivationsByPrefix},
		{"PruneActivations", testPruneActivations},
		{"FunctionStats", testFunctionStats},
		{"HammerOneKey", testHammerOneKey},
		{"HammerManyKeys", testHammerManyKeys},
		{"HammerAfterRelease", testHammerAfterRelease},
		{"HammerTakeover", testHammerTakeover},
		{"WaitChangeWakes", testWaitChangeWakes},
		{"WaitChangeAlreadyChanged", testWaitChangeAlreadyChanged},
		{"WaitChangeLeaseExpiry", testWaitChangeLeaseExpiry},
		{"WaitChangeMany", testWaitChangeMany},
		{"WaitChangeContext", testWaitChangeContext},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, fresh(t)) })
	}
}

var parts = index.Parts{Tenant: "t", Function: "f", CodeDigest: "c", Params: "{}", RuntimeVersion: "r/1", Fingerprint: "sha256:00"}

const lease = time.Minute

func claim(t *testing.T, idx index.Claims, key, owner string, l time.Duration) index.Claimed {
	t.Helper()
	c, err := idx.Claim(t.Context(), key, parts, owner, l)
	if err != nil {
		t.Fatalf("Claim(%s, %s): %v", key, owner, err)
	}
	return c
}

func mustMiss(t *testing.T, idx index.Claims, key, owner string, l time.Duration) index.Record {
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
	out := &index.Output{Bucket: "b", Key: "o", ETag: "e", Size: 3, ContentType: "image/jpeg", SHA256: "abababababababababababababababababababababababababababababababab", ResultObject: true}
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
	if c := claim(t, idx, "k", "b", lease); c.Outcome != index.Wait || c.Record.Owner != "a" {
		t.Fatalf("claim after rejected calls = %v owner %q, want wait on a", c.Outcome, c.Record.Owner)
	}
}

// rejectAll calls every token-checked method with token and requires
// ErrNotOwner from each, and the record under key unchanged.
func rejectAll(t *testing.T, idx index.Index, key, token string) {
	t.Helper()
	ctx := t.Context()
	before, err := idx.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Complete", func() error {
			return idx.Complete(ctx, key, token, index.Completion{Output: &index.Output{Key: "evil"}, Result: json.RawMessage(`{"evil":1}`)})
		}},
		{"Fail", func() error { return idx.Fail(ctx, key, token, "x", "function", false) }},
		{"FailCached", func() error { return idx.Fail(ctx, key, token, "x", "function", true) }},
		{"Release", func() error { return idx.Release(ctx, key, token) }},
		{"Renew", func() error { return idx.Renew(ctx, key, token, time.Hour) }},
		{"SetExternalID", func() error { return idx.SetExternalID(ctx, key, token, "evil") }},
	} {
		if err := tc.call(); !errors.Is(err, index.ErrNotOwner) {
			t.Errorf("%s with token %q: %v, want ErrNotOwner", tc.name, token, err)
		}
	}
	after, err := idx.Get(ctx, key)
	if err != nil {
		t.Fatalf("record gone after rejected calls: %v", err)
	}
	if b, a := mustJSON(t, before), mustJSON(t, after); b != a {
		t.Fatalf("rejected calls changed the record:\nbefore %s\nafter  %s", b, a)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A completed record belongs to nobody: its former owner (a duplicate
// delivery finishing late) can neither overwrite nor delete it.
func testDoneRecordUntouchable(t *testing.T, idx index.Index) {
	r := mustMiss(t, idx, "k", "a", lease)
	out := &index.Output{Bucket: "b", Key: "o"}
	if err := idx.Complete(t.Context(), "k", r.Token, index.Completion{Output: out, Result: json.RawMessage(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	rejectAll(t, idx, "k", r.Token)
	rejectAll(t, idx, "k", "")
	c := claim(t, idx, "k", "b", lease)
	if c.Outcome != index.Hit || c.Record.Output.Key != "o" || string(c.Record.Result) != `{"n":1}` {
		t.Fatalf("claim = %v %+v, want the original result", c.Outcome, c.Record)
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
	if got := claim(t, idx, "k", "c", lease); got.Outcome != index.Hit || got.Record.Output.Key != "o" || got.Record.Attempt != 2 {
		t.Fatalf("claim after the successor completed = %v %+v, want its hit", got.Outcome, got.Record)
	}
}

// The owner whose lease expired (it was slow, not dead) comes back after
// a successor took over: none of its calls may touch the successor's claim.
func testOldOwnerCannotTouchSuccessor(t *testing.T, idx index.Index) {
	old := mustMiss(t, idx, "k", "a", 50*time.Millisecond)
	time.Sleep(120 * time.Millisecond)
	succ := mustMiss(t, idx, "k", "b", lease)
	rejectAll(t, idx, "k", old.Token)
	if c := claim(t, idx, "k", "c", lease); c.Outcome != index.Wait || c.Record.Owner != "b" || c.Record.Token != succ.Token {
		t.Fatalf("claim = %v %+v, want wait on the successor b", c.Outcome, c.Record)
	}
	if err := idx.Renew(t.Context(), "k", succ.Token, lease); err != nil {
		t.Fatalf("the successor cannot renew: %v", err)
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
	if _, err := idx.Get(t.Context(), "k"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("Get after uncached failure: %v, want ErrNotFound (deleted)", err)
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
	if c.Outcome != index.Hit || c.Record.State != index.Failed || c.Record.Error != "bad input" || c.Record.ErrorClass != "function" || c.Record.Parts != parts {
		t.Fatalf("claim after cached failure = %v %+v", c.Outcome, c.Record)
	}
	rejectAll(t, idx, "k", r.Token)
}

func testRelease(t *testing.T, idx index.Index) {
	r := mustMiss(t, idx, "k", "a", lease)
	if err := idx.Release(t.Context(), "k", r.Token); err != nil {
		t.Fatal(err)
	}
	if err := idx.Release(t.Context(), "k", r.Token); !errors.Is(err, index.ErrNotOwner) {
		t.Fatalf("second Release: %v, want ErrNotOwner", err)
	}
	if n := mustMiss(t, idx, "k", "b", lease); n.Attempt != 1 || n.Token == r.Token {
		t.Fatalf("claim after release: %+v, want a fresh claim with a new token", n)
	}
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
	if err := idx.Delete(t.Context(), "never"); err != nil {
		t.Fatalf("Delete of an absent key: %v, want nil (idempotent)", err)
	}
	r := mustMiss(t, idx, "k", "a", lease)
	if got, err := idx.Get(t.Context(), "k"); err != nil || got.Token != r.Token || got.Owner != "a" || got.State != index.Running {
		t.Fatalf("Get = %+v, %v; want the running claim", got, err)
	}
	for range 2 {
		if err := idx.Delete(t.Context(), "k"); err != nil {
			t.Fatalf("Delete (idempotent): %v", err)
		}
	}
	if _, err := idx.Get(t.Context(), "k"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
	if err := idx.Complete(t.Context(), "k", r.Token, index.Completion{}); !errors.Is(err, index.ErrNotOwner) {
		t.Fatalf("Complete after an operator delete: %v, want ErrNotOwner", err)
	}
	mustMiss(t, idx, "k", "b", lease)
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
	stop := errors.New("stop")
	calls := 0
	if err := idx.Records(t.Context(), func(index.Record) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Records with fn failing: %v after %d calls, want fn's error after 1", err, calls)
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
	if err := idx.PutDoc(ctx, "other", "z", []byte(`{"z":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := idx.PutDoc(ctx, "function", "a", []byte(`{"id":"a2"}`)); err != nil {
		t.Fatal(err)
	}
	if doc, err := idx.GetDoc(ctx, "function", "a"); err != nil || string(doc) != `{"id":"a2"}` {
		t.Fatalf("GetDoc = %s, %v", doc, err)
	}
	list := func(kind string) string {
		var s []string
		err := idx.Docs(ctx, kind, func(id string, doc []byte) error { s = append(s, id+"="+string(doc)); return nil })
		if err != nil {
			t.Fatalf("Docs(%s): %v", kind, err)
		}
		return fmt.Sprint(s)
	}
	if got, want := list("function"), `[a={"id":"a2"} b={"id":"b"} c={"id":"c"}]`; got != want {
		t.Fatalf("Docs(function) = %s, want %s: ordered by id, latest version, no other kind", got, want)
	}
	if got, want := list("other"), `[z={"z":1}]`; got != want {
		t.Fatalf("Docs(other) = %s, want %s", got, want)
	}
	if got := list("none"); got != "[]" {
		t.Fatalf("Docs(none) = %s, want nothing", got)
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
	if got, want := list("function"), `[b={"id":"b"} c={"id":"c"}]`; got != want {
		t.Fatalf("Docs after delete = %s, want %s", got, want)
	}
	if err := idx.PutDoc(ctx, "function", "a", []byte(`{"id":"a3"}`)); err != nil {
		t.Fatalf("PutDoc after delete: %v", err)
	}
	if doc, err := idx.GetDoc(ctx, "function", "a"); err != nil || string(doc) != `{"id":"a3"}` {
		t.Fatalf("GetDoc after re-put = %s, %v", doc, err)
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
	var recs []activation.Record
	add := func(i int, tenant, fn string, d activation.Decision) activation.Record {
		r := activation.Record{
			ID: fmt.Sprintf("act-%02d", i), Tenant: tenant, Function: fn, Decision: d, Start: base.Add(time.Duration(i) * time.Second),
			Event: activation.Object{Bucket: "in", Key: fmt.Sprintf("k%d", i), ETag: "e"}, FunctionMS: 10 + float64(i),
			Result: json.RawMessage(`{"i":` + fmt.Sprint(i) + `}`),
		}
		switch d {
		case activation.Hit, activation.Wait:
			r.SavedMS = 10
		case activation.Error:
			r.Error, r.ErrorClass, r.DeadLetter = "boom", "function", i%2 == 1
		}
		if err := idx.AddActivation(ctx, r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		return r
	}
	add(1, "acme", "thumb", activation.Miss)
	add(2, "acme", "thumb", activation.Hit)
	add(3, "acme", "ocr", activation.Error)
	add(4, "globex", "thumb", activation.Wait)
	add(5, "globex", "ocr", activation.Skipped)
	add(6, "acme", "ocr", activation.Miss)
	dup := add(7, "globex", "thumb", activation.Miss)
	add(8, "acme", "thumb", activation.Delete) // an output deleted with its input: counted apart
	dup2 := dup
	dup2.Decision = activation.Hit // a redelivery recorded differently must still not count
	for _, r := range []activation.Record{dup, dup2} {
		if err := idx.AddActivation(ctx, r); err != nil {
			t.Fatalf("AddActivation of an existing id: %v, want nil (idempotent)", err)
		}
	}

	got, err := idx.GetActivation(ctx, "act-03")
	if err != nil || got.Function != "ocr" || got.Decision != activation.Error || got.Error != "boom" || !got.DeadLetter || !got.Start.Equal(recs[2].Start) {
		t.Fatalf("GetActivation = %+v, %v", got, err)
	}
	if got, err := idx.GetActivation(ctx, "act-07"); err != nil || got.Decision != activation.Miss || string(got.Result) != `{"i":7}` {
		t.Fatalf("GetActivation after a duplicate add = %+v, %v; want the first record", got, err)
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
		{"All", activation.Filter{}, "[act-08 act-07 act-06 act-05 act-04 act-03 act-02 act-01]"},
		{"Limit", activation.Filter{Limit: 2}, "[act-08 act-07]"},
		{"Tenant", activation.Filter{Tenant: "acme"}, "[act-08 act-06 act-03 act-02 act-01]"},
		{"Function", activation.Filter{Function: "thumb"}, "[act-08 act-07 act-04 act-02 act-01]"},
		{"TenantFunction", activation.Filter{Function: "thumb", Tenant: "acme"}, "[act-08 act-02 act-01]"},
		{"TenantLimit", activation.Filter{Tenant: "acme", Limit: 3}, "[act-08 act-06 act-03]"},
		{"FunctionLimit", activation.Filter{Function: "ocr", Limit: 1}, "[act-06]"},
		{"UnknownTenant", activation.Filter{Tenant: "nobody"}, "[]"},
		// Since is inclusive: act-05 started exactly at it.
		{"Since", activation.Filter{Since: base.Add(5 * time.Second)}, "[act-08 act-07 act-06 act-05]"},
		{"SinceTenant", activation.Filter{Tenant: "acme", Since: base.Add(2 * time.Second)}, "[act-08 act-06 act-03 act-02]"},
		{"SinceFunction", activation.Filter{Function: "thumb", Since: base.Add(3 * time.Second)}, "[act-08 act-07 act-04]"},
		{"SinceTenantFunctionLimit", activation.Filter{Tenant: "globex", Function: "thumb", Since: base, Limit: 1}, "[act-07]"},
		{"SinceFuture", activation.Filter{Since: base.Add(time.Hour)}, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(tc.f); got != tc.want {
				t.Errorf("Activations(%+v) = %s, want %s", tc.f, got, tc.want)
			}
		})
	}
	for _, tenant := range []string{"", "acme", "globex", "nobody"} {
		var want activation.Stats
		for _, r := range recs {
			if tenant == "" || r.Tenant == tenant {
				want.Add(r)
			}
		}
		got, err := idx.Stats(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if tenant == "" && (want.Deletes != 1 || want.Runs != 3 || want.Hits != 2) {
			t.Fatalf("test records add up to %+v, want 1 delete apart from 3 runs and 2 hits", want)
		}
		if got != want {
			t.Errorf("Stats(%q) = %+v\nwant (activation.Stats.Add over each record once) %+v", tenant, got, want)
		}
	}
}

// ActivationsByPrefix finds the records whose id starts with the prefix,
// in id order, of the tenant asked for only (issue 19 item 5: short ids).
func testActivationsByPrefix(t *testing.T, idx index.Index) {
	ctx := t.Context()
	base := time.Now().UTC().Add(-time.Hour)
	for i, r := range []struct{ id, tenant string }{
		{"fab772f05bca0001", "acme"},
		{"fab772f05bca0002", "acme"},
		{"fab772f05bcb0003", "acme"},
		{"fab772f05bca0004", "globex"}, // shares acme's prefixes
		{"fab772f0", "acme"},           // a full id that is also a prefix of the others
		{"fab772f1ffff", "acme"},
		{"fab772f", "acme"}, // sorts before every fab772f0...
		{"fab772g", "acme"}, // the first id past the prefix fab772f
		{"fab772f05bca%_", "globex"},
	} {
		rec := activation.Record{ID: r.id, Tenant: r.tenant, Function: "f", Decision: activation.Miss,
			Start: base.Add(-time.Duration(i) * time.Second)} // newest first differs from id order
		if err := idx.AddActivation(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		prefix, tenant string
		limit          int
		want           string
	}{
		{"fab772f05bca", "acme", 10, "[fab772f05bca0001 fab772f05bca0002]"},
		{"fab772f05bca", "globex", 10, "[fab772f05bca%_ fab772f05bca0004]"},
		{"fab772f05bca", "", 10, "[fab772f05bca%_ fab772f05bca0001 fab772f05bca0002 fab772f05bca0004]"},
		{"fab772f05bc", "acme", 10, "[fab772f05bca0001 fab772f05bca0002 fab772f05bcb0003]"},
		{"fab772f05bc", "acme", 2, "[fab772f05bca0001 fab772f05bca0002]"},
		// The limit counts the tenant's records only: globex's 0004 sorts
		// between acme's and must not take a place.
		{"fab772f05bca000", "acme", 2, "[fab772f05bca0001 fab772f05bca0002]"},
		{"fab772f05bca000", "globex", 1, "[fab772f05bca0004]"}, // past two of acme's first
		{"fab772f0", "acme", 10, "[fab772f0 fab772f05bca0001 fab772f05bca0002 fab772f05bcb0003]"},
		{"fab772f05bca0004", "acme", 10, "[]"},
		{"fab772f05bca0004", "globex", 10, "[fab772f05bca0004]"},
		{"fab772f05bca%", "acme", 10, "[]"}, // LIKE's wildcards are plain characters
		{"fab772f05bc_", "", 10, "[]"},
		{"fab772f1", "acme", 10, "[fab772f1ffff]"},
		{"fab772f", "acme", 10, "[fab772f fab772f0 fab772f05bca0001 fab772f05bca0002 fab772f05bcb0003 fab772f1ffff]"},
		{"0000", "", 10, "[]"},
		{"fab772f05bca", "nobody", 10, "[]"},
	} {
		recs, err := idx.ActivationsByPrefix(ctx, tc.prefix, tc.tenant, tc.limit)
		if err != nil {
			t.Fatalf("ActivationsByPrefix(%q, %q, %d): %v", tc.prefix, tc.tenant, tc.limit, err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.ID)
			if tc.tenant != "" && r.Tenant != tc.tenant {
				t.Errorf("ActivationsByPrefix(%q, %q) returned %s of tenant %s", tc.prefix, tc.tenant, r.ID, r.Tenant)
			}
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("ActivationsByPrefix(%q, %q, %d) = %v, want %s", tc.prefix, tc.tenant, tc.limit, got, tc.want)
		}
	}
}

// Newest first means by instant, whatever the zone or the number of
// fractional digits in the stored time.
func testActivationOrder(t *testing.T, idx index.Index) {
	ctx := t.Context()
	east := time.FixedZone("east", 2*3600)
	base := time.Date(2026, 1, 1, 10, 0, 1, 0, time.UTC)
	starts := map[string]time.Time{
		"a-whole":   base,
		"b-half":    base.Add(500 * time.Millisecond),
		"c-nanos":   base.Add(123456789 * time.Nanosecond),
		"d-zone":    time.Date(2026, 1, 1, 11, 0, 2, 0, east), // 09:00:02Z, the oldest
		"e-centis":  base.Add(120 * time.Millisecond),
		"f-zoneNew": base.Add(time.Second).In(east), // 12:00:02+02:00 = 10:00:02Z, the newest
		"g-1969":    time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
	}
	for _, id := range []string{"c-nanos", "a-whole", "g-1969", "f-zoneNew", "e-centis", "d-zone", "b-half"} {
		if err := idx.AddActivation(ctx, activation.Record{ID: id, Tenant: "t", Function: "f", Decision: activation.Miss, Start: starts[id]}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := idx.Activations(ctx, activation.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.ID)
	}
	if want := "[f-zoneNew b-half c-nanos e-centis a-whole d-zone g-1969]"; fmt.Sprint(got) != want {
		t.Fatalf("Activations = %v, want newest first %s", got, want)
	}
	if !recs[0].Start.Equal(starts["f-zoneNew"]) {
		t.Fatalf("start time changed: %s, want %s", recs[0].Start, starts["f-zoneNew"])
	}
}

// hammer releases goroutines×keys claims together and returns each key's misses.
func hammer(t *testing.T, idx index.Index, keys, goroutines int) map[string][]index.Record {
	var wg sync.WaitGroup
	start := make(chan struct{})
	var mu sync.Mutex
	misses := map[string][]index.Record{}
	for g := range goroutines {
		for k := range keys {
			wg.Go(func() {
				<-start
				key := fmt.Sprintf("key-%d", k)
				owner := fmt.Sprintf("owner-%d", g)
				c, err := idx.Claim(t.Context(), key, parts, owner, lease)
				if err != nil {
					t.Error(err)
					return
				}
				switch c.Outcome {
				case index.Miss:
					mu.Lock()
					misses[key] = append(misses[key], c.Record)
					mu.Unlock()
				case index.Wait:
					if c.Record.Owner == "" || c.Record.Owner == owner {
						t.Errorf("%s waits on %q, want another owner", owner, c.Record.Owner)
					}
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

func hammerP() int {
	if testing.Short() {
		return 8
	}
	return 32
}

func testHammerOneKey(t *testing.T, idx index.Index) {
	p := hammerP()
	m := hammer(t, idx, 1, p)
	if len(m["key-0"]) != 1 {
		t.Fatalf("%d goroutines claiming one key: %d misses, want exactly 1", p, len(m["key-0"]))
	}
	got, err := idx.Get(t.Context(), "key-0")
	if err != nil || got.Token != m["key-0"][0].Token {
		t.Fatalf("stored claim %+v, %v: not the winner's", got, err)
	}
}

func testHammerManyKeys(t *testing.T, idx index.Index) {
	n, p := 10, 8
	if testing.Short() {
		n, p = 4, 4
	}
	m := hammer(t, idx, n, p)
	for k := range n {
		if got := len(m[fmt.Sprintf("key-%d", k)]); got != 1 {
			t.Errorf("key-%d: %d misses, want 1", k, got)
		}
	}
}

// A released key (its record deleted) is claimed again by exactly one.
func testHammerAfterRelease(t *testing.T, idx index.Index) {
	r := mustMiss(t, idx, "key-0", "first", lease)
	if err := idx.Release(t.Context(), "key-0", r.Token); err != nil {
		t.Fatal(err)
	}
	if m := hammer(t, idx, 1, hammerP()); len(m["key-0"]) != 1 {
		t.Fatalf("claims racing on a released key: %d misses, want exactly 1", len(m["key-0"]))
	}
}

// An expired lease is taken over by exactly one of many racing claimers.
func testHammerTakeover(t *testing.T, idx index.Index) {
	old := mustMiss(t, idx, "key-0", "crashed", 50*time.Millisecond)
	time.Sleep(120 * time.Millisecond)
	m := hammer(t, idx, 1, hammerP())
	if len(m["key-0"]) != 1 {
		t.Fatalf("claims racing on an expired lease: %d takeovers, want exactly 1", len(m["key-0"]))
	}
	w := m["key-0"][0]
	if w.Attempt != 2 || w.Token == old.Token {
		t.Fatalf("takeover %+v: want attempt 2 and a new token", w)
	}
	if err := idx.Complete(t.Context(), "key-0", w.Token, index.Completion{}); err != nil {
		t.Fatalf("the winner cannot complete: %v", err)
	}
}

func testDeleteResult(t *testing.T, idx index.Index) {
	ctx := t.Context()
	r := mustMiss(t, idx, "k", "a", lease)
	if err := idx.DeleteResult(ctx, "k", r.Updated); err != nil {
		t.Fatal(err)
	}
	if got, err := idx.Get(ctx, "k"); err != nil || got.State != index.Running {
		t.Fatalf("DeleteResult removed a running claim: %+v, %v", got, err)
	}
	if err := idx.Complete(ctx, "k", r.Token, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
		t.Fatal(err)
	}
	done, _ := idx.Get(ctx, "k")
	if err := idx.DeleteResult(ctx, "k", done.Updated.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := idx.Get(ctx, "k"); err != nil {
		t.Fatalf("DeleteResult with another update time removed the record: %v", err)
	}
	if err := idx.DeleteResult(ctx, "k", done.Updated); err != nil {
		t.Fatal(err)
	}
	// Two replicas found the same result unusable: the first deletes it
	// and claims again; the second's delete must not remove that claim.
	again := mustMiss(t, idx, "k", "b", lease)
	if err := idx.DeleteResult(ctx, "k", done.Updated); err != nil {
		t.Fatal(err)
	}
	if got, err := idx.Get(ctx, "k"); err != nil || got.Token != again.Token {
		t.Fatalf("a stale DeleteResult removed the new claim: %+v, %v", got, err)
	}
	if err := idx.DeleteResult(ctx, "absent", done.Updated); err != nil {
		t.Fatalf("DeleteResult of an absent key: %v", err)
	}
}

// Listing by function (and tenant) is newest first and exact however the
// functions' activations interleave, and the limit counts only matches.
func testActivationsByFunction(t *testing.T, idx index.Index) {
	ctx := t.Context()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 40 {
		tenant := []string{"acme", "globex"}[i%2]
		fn := []string{"thumb", "ocr", "thumbnail"}[i%3] // "thumb" is a prefix of "thumbnail": no bleed
		id := fmt.Sprintf("act-%02d", i)
		// Insert out of time order: ids and start times do not agree.
		start := base.Add(time.Duration((i*7)%40) * time.Second)
		if i%5 == 0 {
			start = start.In(time.FixedZone("east", 3600))
		}
		if err := idx.AddActivation(ctx, activation.Record{ID: id, Tenant: tenant, Function: fn, Decision: activation.Miss, Start: start}); err != nil {
			t.Fatal(err)
		}
	}
	type rec struct {
		id, tenant, fn string
		at             time.Time
	}
	var all []rec
	for i := range 40 {
		all = append(all, rec{fmt.Sprintf("act-%02d", i), []string{"acme", "globex"}[i%2], []string{"thumb", "ocr", "thumbnail"}[i%3], base.Add(time.Duration((i*7)%40) * time.Second)})
	}
	expect := func(f activation.Filter) string {
		var m []rec
		for _, r := range all {
			if (f.Tenant == "" || r.tenant == f.Tenant) && (f.Function == "" || r.fn == f.Function) {
				m = append(m, r)
			}
		}
		// newest first (start times are distinct)
		for i := range m {
			for j := i + 1; j < len(m); j++ {
				if m[j].at.After(m[i].at) {
					m[i], m[j] = m[j], m[i]
				}
			}
		}
		limit := f.Limit
		if limit == 0 {
			limit = 100
		}
		var ids []string
		for i := 0; i < len(m) && i < limit; i++ {
			ids = append(ids, m[i].id)
		}
		return fmt.Sprint(ids)
	}
	for _, f := range []activation.Filter{
		{Function: "thumb"},
		{Function: "thumb", Limit: 4},
		{Function: "thumbnail", Limit: 3},
		{Function: "ocr", Tenant: "globex"},
		{Function: "ocr", Tenant: "globex", Limit: 2},
		{Function: "thumb", Tenant: "acme", Limit: 1},
		{Function: "absent"},
		{Tenant: "acme", Limit: 5},
	} {
		recs, err := idx.Activations(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.ID)
		}
		if w := expect(f); fmt.Sprint(got) != w {
			t.Errorf("Activations(%+v) = %v, want %s", f, got, w)
		}
	}
}

// PruneActivations deletes the activations that started before the
// cutoff, with their listing entries, and leaves
// the totals as they were: Stats are counters, not a view of what is kept.
func testPruneActivations(t *testing.T, idx index.Index) {
	ctx := t.Context()
	now := time.Now().UTC()
	old, recent := now.Add(-48*time.Hour), now.Add(-time.Hour)
	var recs []activation.Record
	add := func(id, tenant, fn string, at time.Time, d activation.Decision, bucket, key string) {
		t.Helper()
		r := activation.Record{ID: id, Tenant: tenant, Function: fn, Decision: d, Start: at, FunctionMS: 5, SavedMS: 2,
			Event: activation.Object{Bucket: bucket, Key: key, ETag: "e"}}
		if err := idx.AddActivation(ctx, r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	add("o1", "acme", "thumb", old, activation.Miss, "in", "only-old")
	add("o2", "acme", "ocr", old.Add(time.Second), activation.Hit, "in", "both")
	add("o3", "globex", "thumb", old.Add(2*time.Second), activation.Error, "in", "g-old")
	add("r1", "acme", "thumb", recent, activation.Wait, "in", "both") // the same object, seen again later
	add("r2", "globex", "thumb", recent.Add(time.Second), activation.Miss, "in", "g-new")
	stats := func() map[string]activation.Stats {
		m := map[string]activation.Stats{}
		for _, tenant := range []string{"", "acme", "globex"} {
			st, err := idx.Stats(ctx, tenant)
			if err != nil {
				t.Fatal(err)
			}
			m[tenant] = st
		}
		return m
	}
	before := stats()
	if before[""].Events != 5 {
		t.Fatalf("Stats before pruning = %+v, want 5 events", before[""])
	}

	n, err := idx.PruneActivations(ctx, now.Add(-24*time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("PruneActivations = %d, %v; want 3 pruned", n, err)
	}
	for _, id := range []string{"o1", "o2", "o3"} {
		if _, err := idx.GetActivation(ctx, id); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("GetActivation(%s) after pruning: %v, want ErrNotFound", id, err)
		}
	}
	for _, id := range []string{"r1", "r2"} {
		if _, err := idx.GetActivation(ctx, id); err != nil {
			t.Errorf("GetActivation(%s), newer than the cutoff: %v", id, err)
		}
	}
	for _, tc := range []struct {
		f    activation.Filter
		want string
	}{
		{activation.Filter{}, "[r2 r1]"},
		{activation.Filter{Function: "thumb"}, "[r2 r1]"},
		{activation.Filter{Function: "ocr"}, "[]"},
		{activation.Filter{Tenant: "acme", Function: "thumb"}, "[r1]"},
		{activation.Filter{Tenant: "globex"}, "[r2]"},
	} {
		recs, err := idx.Activations(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.ID)
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("Activations(%+v) after pruning = %v, want %s", tc.f, got, tc.want)
		}
	}
	if after := stats(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("Stats changed by pruning:\n got %+v\nwant %+v", after, before)
	}
	if n, err := idx.PruneActivations(ctx, now.Add(-24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("second PruneActivations = %d, %v; want 0", n, err)
	}
	if after := stats(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("Stats changed by a second pruning:\n got %+v\nwant %+v", after, before)
	}
	// Counting goes on from the kept totals.
	add("n1", "globex", "ocr", now, activation.Miss, "in", "new")
	want := before[""]
	want.Add(recs[len(recs)-1])
	if st, err := idx.Stats(ctx, ""); err != nil || st != want {
		t.Fatalf("Stats after pruning and one more = %+v, %v; want %+v", st, err, want)
	}
	wantG := before["globex"]
	wantG.Add(recs[len(recs)-1])
	if st, err := idx.Stats(ctx, "globex"); err != nil || st != wantG {
		t.Fatalf("Stats(globex) after pruning and one more = %+v, %v; want %+v", st, err, wantG)
	}
}

// wantFunctionStats is what FunctionStats(tenant) must return for recs
// (each added once): activation.Stats.Add per tenant and function,
// sorted by tenant, then function.
func wantFunctionStats(recs []activation.Record, tenant string) []activation.FunctionStats {
	type key struct{ tenant, fn string }
	m := map[key]activation.Stats{}
	for _, r := range recs {
		if tenant == "" || r.Tenant == tenant {
			st := m[key{r.Tenant, r.Function}]
			st.Add(r)
			m[key{r.Tenant, r.Function}] = st
		}
	}
	out := []activation.FunctionStats{}
	for k, st := range m {
		out = append(out, activation.FunctionStats{Tenant: k.tenant, Function: k.fn, Stats: st})
	}
	index.SortFunctionStats(out)
	return out
}

// checkFunctionStats compares FunctionStats(tenant) with want.
func checkFunctionStats(t *testing.T, idx index.Index, tenant string, want []activation.FunctionStats, when string) {
	t.Helper()
	got, err := idx.FunctionStats(t.Context(), tenant)
	if err != nil {
		t.Fatalf("FunctionStats(%q) %s: %v", tenant, when, err)
	}
	if g, w := mustJSON(t, got), mustJSON(t, want); len(got) != len(want) || g != w {
		t.Errorf("FunctionStats(%q) %s =\n%s\nwant (activation.Stats.Add per function, each id once, sorted)\n%s", tenant, when, g, w)
	}
}

// FunctionStats are per-function counters like Stats: each activation id
// counted once, tenants apart (even a tenant whose name extends
// another's, and the same function name in two tenants), a tenant's
// functions adding up to its Stats, and pruning lowers none of them.
func testFunctionStats(t *testing.T, idx index.Index) {
	ctx := t.Context()
	if got, err := idx.FunctionStats(ctx, ""); err != nil || len(got) != 0 {
		t.Fatalf("FunctionStats of an empty index = %+v, %v; want none", got, err)
	}
	now := time.Now().UTC()
	old := now.Add(-48 * time.Hour)
	var recs []activation.Record
	add := func(id, tenant, fn string, at time.Time, d activation.Decision, dead bool) activation.Record {
		t.Helper()
		r := activation.Record{ID: id, Tenant: tenant, Function: fn, Decision: d, Start: at, DeadLetter: dead,
			FunctionMS: 4.5, Event: activation.Object{Bucket: "in", Key: id, ETag: "e"}}
		switch d {
		case activation.Hit, activation.Wait:
			r.SavedMS = 4.5
		case activation.Error:
			r.Error, r.ErrorClass = "boom", "function"
		}
		if err := idx.AddActivation(ctx, r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		return r
	}
	decisions := []activation.Decision{activation.Miss, activation.Hit, activation.Wait, activation.Error, activation.Skipped, activation.Hit, activation.Delete}
	for i := range 24 {
		tenant := []string{"acme", "globex", "acmex"}[i%3] // "acmex" extends "acme"
		fn := []string{"thumb", "ocr", "thumb/v2", "t"}[i%4]
		at := old.Add(time.Duration(i) * time.Second)
		if i%2 == 1 {
			at = now.Add(-time.Duration(i) * time.Second)
		}
		add(fmt.Sprintf("fs-%02d", i), tenant, fn, at, decisions[i%len(decisions)], i%7 == 3)
	}
	// Redeliveries, one recorded differently, do not count again.
	dup := recs[4]
	dup.Decision, dup.DeadLetter = activation.Error, true
	for _, r := range []activation.Record{recs[3], dup} {
		if err := idx.AddActivation(ctx, r); err != nil {
			t.Fatalf("AddActivation of an existing id: %v", err)
		}
	}
	tenants := []string{"", "acme", "acmex", "globex", "nobody", "acm"}
	check := func(when string) {
		t.Helper()
		for _, tenant := range tenants {
			checkFunctionStats(t, idx, tenant, wantFunctionStats(recs, tenant), when)
		}
	}
	var deletes int64
	for _, f := range wantFunctionStats(recs, "") {
		deletes += f.Deletes
	}
	if deletes == 0 {
		t.Fatal("test records hold no delete decision")
	}
	check("after adding")
	for _, tenant := range []string{"acme", "acmex", "globex"} {
		fs, err := idx.FunctionStats(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		var sum activation.Stats
		for _, f := range fs {
			sum.Events, sum.Runs, sum.Hits, sum.Waits = sum.Events+f.Events, sum.Runs+f.Runs, sum.Hits+f.Hits, sum.Waits+f.Waits
			sum.Errors, sum.Skipped, sum.DeadLetters = sum.Errors+f.Errors, sum.Skipped+f.Skipped, sum.DeadLetters+f.DeadLetters
			sum.Deletes += f.Deletes
			sum.FunctionMS, sum.SavedMS = sum.FunctionMS+f.FunctionMS, sum.SavedMS+f.SavedMS
		}
		if st, err := idx.Stats(ctx, tenant); err != nil || st != sum {
			t.Errorf("Stats(%q) = %+v, %v; want the sum of its FunctionStats %+v", tenant, st, err, sum)
		}
	}

	n, err := idx.PruneActivations(ctx, now.Add(-24*time.Hour))
	if err != nil || n != 12 {
		t.Fatalf("PruneActivations = %d, %v; want 12 pruned", n, err)
	}
	check("after pruning half of the activations")
	// Counting goes on from the kept totals, for old and new functions.
	add("fs-new-1", "acme", "thumb", now, activation.Miss, false)
	add("fs-new-2", "globex", "brand-new", now, activation.Wait, false)
	check("after pruning and adding more")
}
