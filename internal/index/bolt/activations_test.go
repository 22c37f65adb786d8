package bolt_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index/bolt"
)

// addActs adds n activations of fn, one a second from base.
func addActs(t *testing.T, db *bolt.DB, tenant, fn string, n int, base time.Time) {
	t.Helper()
	for i := range n {
		r := activation.Record{ID: fmt.Sprintf("%s-%s-%d", tenant, fn, i), Tenant: tenant, Function: fn, Decision: activation.Miss, Start: base.Add(time.Duration(i) * time.Second)}
		if err := db.AddActivation(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
}

// reads lists with f and returns the ids and how many records were decoded.
func reads(t *testing.T, db *bolt.DB, f activation.Filter) (int, int64) {
	t.Helper()
	before := bolt.ActivationsReadForTest()
	recs, err := db.Activations(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	return len(recs), bolt.ActivationsReadForTest() - before
}

// TestActivations_FilterReadsOnlyMatches: listing one function's (or one
// tenant's) activations reads only that function's records, not every
// activation newer than them.
func TestActivations_FilterReadsOnlyMatches(t *testing.T) {
	db, err := bolt.OpenFile(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addActs(t, db, "acme", "rare", 3, base)                    // the oldest
	addActs(t, db, "globex", "busy", 500, base.Add(time.Hour)) // newer than all of them
	for _, f := range []activation.Filter{{Function: "rare"}, {Tenant: "acme"}, {Tenant: "acme", Function: "rare"}} {
		if n, read := reads(t, db, f); n != 3 || read != 3 {
			t.Errorf("Activations(%+v) returned %d and decoded %d records; want 3 and 3", f, n, read)
		}
	}
	if n, read := reads(t, db, activation.Filter{Function: "busy", Limit: 10}); n != 10 || read != 10 {
		t.Errorf("Activations(busy, limit 10) returned %d and decoded %d records; want 10 and 10", n, read)
	}
}

// TestActivations_IndexBuiltOnOpen: a file written before the activation
// indexes existed gets them when opened, so old activations are listed by
// function and tenant too.
func TestActivations_IndexBuiltOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	db, err := bolt.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addActs(t, db, "acme", "rare", 3, base)
	addActs(t, db, "globex", "busy", 50, base.Add(time.Hour))
	db.DropActivationIndexesForTest(t)
	db.Close()
	db, err = bolt.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, read := reads(t, db, activation.Filter{Function: "rare"}); n != 3 || read != 3 {
		t.Fatalf("Activations(rare) on a migrated file returned %d and decoded %d; want 3 and 3", n, read)
	}
	if n, _ := reads(t, db, activation.Filter{Tenant: "globex"}); n != 50 {
		t.Fatalf("Activations(globex) on a migrated file returned %d, want 50", n)
	}
}

// TestPruneActivations_ManyBatches: pruning more than one write
// transaction's worth deletes every old activation and keeps the rest.
func TestPruneActivations_ManyBatches(t *testing.T) {
	db, err := bolt.OpenFile(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addActs(t, db, "acme", "f", 2500, base)
	n, err := db.PruneActivations(t.Context(), base.Add(2100*time.Second))
	if err != nil || n != 2100 {
		t.Fatalf("PruneActivations = %d, %v; want 2100", n, err)
	}
	if got, _ := reads(t, db, activation.Filter{Limit: 1000}); got != 400 {
		t.Fatalf("%d activations kept, want 400", got)
	}
	if st, _ := db.Stats(t.Context(), ""); st.Events != 2500 {
		t.Fatalf("Stats.Events = %d after pruning, want 2500", st.Events)
	}
}

// TestFunctionStats_BuiltOnOpen: a file written before the per-function
// totals existed gets them when opened, counted from the activations it
// keeps; the tenant totals, which count the pruned ones too, stay.
func TestFunctionStats_BuiltOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	db, err := bolt.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addActs(t, db, "acme", "rare", 3, base)
	addActs(t, db, "acme", "busy", 5, base.Add(time.Hour))
	addActs(t, db, "globex", "busy", 2, base.Add(time.Hour))
	if n, err := db.PruneActivations(t.Context(), base.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("PruneActivations = %d, %v; want 1", n, err)
	}
	db.DropFunctionStatsForTest(t)
	db.Close()
	db, err = bolt.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fs, err := db.FunctionStats(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, fmt.Sprintf("%s/%s:%d", f.Tenant, f.Function, f.Runs))
	}
	if want := "[acme/busy:5 acme/rare:2 globex/busy:2]"; fmt.Sprint(got) != want {
		t.Fatalf("FunctionStats on a migrated file = %v, want %s (from the kept activations)", got, want)
	}
	if st, _ := db.Stats(t.Context(), "acme"); st.Runs != 8 {
		t.Fatalf("Stats(acme).Runs = %d after the migration, want 8 (pruned ones included)", st.Runs)
	}
	addActs(t, db, "acme", "new", 1, base.Add(2*time.Hour))
	if fs, _ := db.FunctionStats(t.Context(), "acme"); len(fs) != 3 || fs[1].Function != "new" || fs[1].Events != 1 {
		t.Fatalf("FunctionStats(acme) after one more = %+v, want busy, new (1 event), rare", fs)
	}
}
