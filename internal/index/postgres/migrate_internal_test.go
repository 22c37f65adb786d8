package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// TestMigrate_FunctionStatsFromKeptActivations: a database a version-1
// replica wrote (activations kept, one pruned already) gets per-function
// totals counted from the activations it keeps when a newer replica
// opens it; the tenant totals, which count the pruned one too, stay as
// they were, and both go on counting.
func TestMigrate_FunctionStatsFromKeptActivations(t *testing.T) {
	ctx := t.Context()
	conn, raw := oldSchema(t, "upgrade_v1", 1)
	now := time.Now().UTC()
	kept := []activation.Record{
		{ID: "a1", Tenant: "acme", Function: "thumb", Decision: activation.Miss, FunctionMS: 7.5, Start: now},
		{ID: "a2", Tenant: "acme", Function: "thumb", Decision: activation.Wait, FunctionMS: 7.5, SavedMS: 7.5, Start: now},
		{ID: "a3", Tenant: "acme", Function: "ocr", Decision: activation.Error, DeadLetter: true, Start: now},
		{ID: "a4", Tenant: "globex", Function: "thumb", Decision: activation.Skipped, Start: now},
	}
	pruned := activation.Record{ID: "a0", Tenant: "acme", Function: "thumb", Decision: activation.Miss, FunctionMS: 1, Start: now.Add(-time.Hour)}
	tenantTotals := map[string]activation.Stats{}
	for _, r := range append([]activation.Record{pruned}, kept...) {
		st := tenantTotals[r.Tenant]
		st.Add(r)
		tenantTotals[r.Tenant] = st
	}
	for _, r := range kept {
		doc, _ := json.Marshal(r)
		if _, err := conn.Exec(ctx, `INSERT INTO dedupfn_activations (id, tenant, function, start, bucket, key, etag, record)
			VALUES ($1, $2, $3, $4, '', '', '', $5)`, r.ID, r.Tenant, r.Function, r.Start, string(doc)); err != nil {
			t.Fatal(err)
		}
	}
	for tenant, st := range tenantTotals {
		if _, err := conn.Exec(ctx, `INSERT INTO dedupfn_stats (tenant, shard, events, runs, hits, waits, errors, skipped, dead_letters, function_ms, saved_ms)
			VALUES ($1, 3, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, tenant, st.Events, st.Runs, st.Hits, st.Waits, st.Errors, st.Skipped,
			st.DeadLetters, st.FunctionMS, st.SavedMS); err != nil {
			t.Fatal(err)
		}
	}

	d := openMigrated(t, raw)
	want := map[string]activation.Stats{}
	for _, r := range kept {
		k := r.Tenant + "/" + r.Function
		st := want[k]
		st.Add(r)
		want[k] = st
	}
	fnTotals := func() map[string]activation.Stats {
		t.Helper()
		fs, err := d.FunctionStats(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]activation.Stats{}
		for _, f := range fs {
			m[f.Tenant+"/"+f.Function] = f.Stats
		}
		return m
	}
	if got := fnTotals(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("FunctionStats after the migration =\n%+v\nwant (from the kept activations)\n%+v", got, want)
	}
	if st, err := d.Stats(ctx, "acme"); err != nil || st != tenantTotals["acme"] {
		t.Fatalf("Stats(acme) after the migration = %+v, %v; want %+v as before", st, err, tenantTotals["acme"])
	}
	next := activation.Record{ID: "a5", Tenant: "acme", Function: "thumb", Decision: activation.Hit, SavedMS: 7.5, Start: now}
	if err := d.AddActivation(ctx, next); err != nil {
		t.Fatal(err)
	}
	w := want["acme/thumb"]
	w.Add(next)
	want["acme/thumb"] = w
	if got := fnTotals(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("FunctionStats after one more =\n%+v\nwant\n%+v", got, want)
	}
	wt := tenantTotals["acme"]
	wt.Add(next)
	if st, _ := d.Stats(ctx, "acme"); st != wt {
		t.Fatalf("Stats(acme) after one more = %+v, want %+v", st, wt)
	}
}

// oldSchema creates the database name with the schema as a replica of
// the given migration version left it, and returns a connection to it
// (closed with the test) and its URL.
func oldSchema(t *testing.T, name string, version int) (*pgx.Conn, string) {
	t.Helper()
	raw := peers.StartPostgres(t).CreateDB(t, name)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	ms, err := migrations()
	if err != nil || len(ms) <= version || ms[version-1].version != version {
		t.Fatalf("migrations = %d, %v; want versions up to %d and later ones", len(ms), err, version)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE dedupfn_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
		applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:version] {
		if _, err := conn.Exec(ctx, m.sql); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO dedupfn_schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			t.Fatal(err)
		}
	}
	return conn, raw
}

// openMigrated opens the database at raw as a replica of this version
// does, migrating it, and closes it with the test.
func openMigrated(t *testing.T, raw string) *DB {
	t.Helper()
	cfg, err := parseURL(mustURL(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	d, err := openConfig(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestMigrate_DeletesColumn: a database a version-2 replica wrote gets
// the deletes counters when a newer replica opens it, its totals as they
// were, and deletes count from then on in both totals.
func TestMigrate_DeletesColumn(t *testing.T) {
	ctx := t.Context()
	conn, raw := oldSchema(t, "upgrade_v2", 2)
	// Totals a version-2 replica counted.
	for _, sql := range []string{
		`INSERT INTO dedupfn_stats (tenant, shard, events, runs, hits) VALUES ('acme', 1, 3, 2, 1)`,
		`INSERT INTO dedupfn_function_stats (tenant, function, shard, events, runs, hits) VALUES ('acme', 'thumb', 1, 3, 2, 1)`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	d := openMigrated(t, raw)
	want := activation.Stats{Events: 3, Runs: 2, Hits: 1}
	if st, err := d.Stats(ctx, "acme"); err != nil || st != want {
		t.Fatalf("Stats after the migration = %+v, %v; want %+v as before", st, err, want)
	}
	del := activation.Record{ID: "d1", Tenant: "acme", Function: "thumb", Decision: activation.Delete, Start: time.Now().UTC()}
	if err := d.AddActivation(ctx, del); err != nil {
		t.Fatal(err)
	}
	want.Add(del)
	if want.Deletes != 1 {
		t.Fatalf("Stats.Add of a delete = %+v, want 1 delete", want)
	}
	if st, err := d.Stats(ctx, "acme"); err != nil || st != want {
		t.Fatalf("Stats after a delete = %+v, %v; want %+v", st, err, want)
	}
	fs, err := d.FunctionStats(ctx, "acme")
	if err != nil || len(fs) != 1 || fs[0].Stats != want {
		t.Fatalf("FunctionStats after a delete = %+v, %v; want thumb %+v", fs, err, want)
	}
}
