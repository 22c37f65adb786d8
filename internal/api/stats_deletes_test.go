package api_test

import (
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
)

// TestStats_DeletesApart: an output deleted with its input (decision
// delete) counts in the tenant's and the function's totals as a delete,
// neither a run nor a hit, and leaves the hit rate as it was.
func TestStats_DeletesApart(t *testing.T) {
	e := newEnv(t, setup{})
	ctx := t.Context()
	now := time.Now().UTC()
	for i, d := range []activation.Decision{activation.Miss, activation.Hit, activation.Delete, activation.Delete} {
		r := activation.Record{ID: "del-" + string(rune('a'+i)), Tenant: "acme", Function: "thumb", Decision: d, Start: now}
		if err := e.idx.AddActivation(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	acme := &api.Client{BaseURL: e.ts.URL, Token: acmeToken}
	st, err := acme.Stats(ctx)
	if err != nil || st.Events != 4 || st.Runs != 1 || st.Hits != 1 || st.Deletes != 2 {
		t.Fatalf("GET /v1/stats = %+v, %v; want 4 events: 1 run, 1 hit, 2 deletes", st, err)
	}
	rows, err := acme.FunctionStats(ctx)
	if err != nil || len(rows) != 1 || rows[0].Deletes != 2 || rows[0].Runs != 1 || rows[0].Hits != 1 || rows[0].HitRate != 0.5 {
		t.Fatalf("GET /v1/stats/functions = %+v, %v; want thumb with 2 deletes, 1 run, 1 hit, hit rate 0.5", rows, err)
	}
}
