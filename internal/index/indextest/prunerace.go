package indextest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
)

// PruneRacing checks that two replicas (a and b, two handles on one
// database) pruning at once, across several batches, delete each of old
// activations exactly once and leave the totals as they were.
func PruneRacing(t *testing.T, a, b index.Index, old int) {
	t.Helper()
	const kept = 5
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range old + kept {
		r := activation.Record{ID: fmt.Sprintf("a%05d", i), Tenant: []string{"x", "y"}[i%2], Function: "f", Decision: activation.Miss, Start: base.Add(time.Duration(i) * time.Second), FunctionMS: 1}
		if err := a.AddActivation(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	before, err := a.Stats(t.Context(), "")
	if err != nil || before.Events != int64(old+kept) {
		t.Fatalf("Stats = %+v, %v", before, err)
	}
	fnBefore, err := a.FunctionStats(t.Context(), "")
	if err != nil || len(fnBefore) != 2 {
		t.Fatalf("FunctionStats = %+v, %v; want x/f and y/f", fnBefore, err)
	}
	cutoff := base.Add(time.Duration(old) * time.Second)
	var wg sync.WaitGroup
	var pruned atomic.Int64
	for _, idx := range []index.Index{a, b} {
		wg.Go(func() {
			n, err := idx.PruneActivations(t.Context(), cutoff)
			if err != nil {
				t.Error(err)
			}
			pruned.Add(int64(n))
		})
	}
	wg.Wait()
	if n := pruned.Load(); n != int64(old) {
		t.Fatalf("replicas pruned %d in all, want %d", n, old)
	}
	for _, idx := range []index.Index{a, b} {
		if st, err := idx.Stats(t.Context(), ""); err != nil || st != before {
			t.Fatalf("Stats after pruning = %+v, %v; want %+v", st, err, before)
		}
		checkFunctionStats(t, idx, "", fnBefore, "after racing prunes")
	}
	if recs, _ := b.Activations(t.Context(), activation.Filter{}); len(recs) != kept {
		t.Fatalf("%d activations kept, want %d", len(recs), kept)
	}
}
