package indextest

import (
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
)

// ZeroLeaseIsLocked checks that a running claim without a lease deadline
// (written by hand, by an older version, or damaged) is locked: nobody
// takes it over, and its owner can still complete it. clearLease removes
// the lease deadline of the record under key as the backend stores it,
// behind idx's back (the API cannot build that state).
func ZeroLeaseIsLocked(t *testing.T, idx index.Claims, clearLease func(t testing.TB, key string)) {
	t.Helper()
	if !index.Live(index.Record{State: index.Running}, time.Now()) {
		t.Fatal("index.Live treats a zero lease as free")
	}
	r := mustMiss(t, idx, "k", "a", lease)
	clearLease(t, "k")
	c, err := idx.Claim(t.Context(), "k", index.Parts{}, "b", time.Millisecond)
	if err != nil || c.Outcome != index.Wait || c.Record.Owner != "a" || !c.Record.LeaseUntil.IsZero() {
		t.Fatalf("claim on a record without lease deadline = %v %+v, %v; want wait (locked)", c.Outcome, c.Record, err)
	}
	if err := idx.Complete(t.Context(), "k", r.Token, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
		t.Fatalf("its owner cannot complete: %v", err)
	}
}
