package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/index/indextest"
	"github.com/dedupfn/dedupfn/internal/index/postgres"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

var dbSeq atomic.Int64

// newDB creates a fresh database on pg and returns its index URL.
func newDB(t testing.TB, pg *peers.Postgres) string {
	t.Helper()
	return pg.CreateDB(t, fmt.Sprintf("dedupfn_%d", dbSeq.Add(1)))
}

func open(t testing.TB, rawURL string) *postgres.DB {
	t.Helper()
	idx, err := index.Open(t.Context(), rawURL, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	return idx.(*postgres.DB)
}

// TestConformance runs the shared suite against a real PostgreSQL server,
// a fresh database for each subtest.
func TestConformance(t *testing.T) {
	pg := peers.StartPostgres(t)
	indextest.Run(t, func(t testing.TB) index.Index {
		idx, err := index.Open(t.Context(), newDB(t, pg), index.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return idx
	})
}

func TestOpenURLErrors(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"postgres://host:5432", "postgres://[user:pass@]host:port/dbname"},
		{"postgres:///db", "postgres://[user:pass@]host:port/dbname"},
		{"postgres://u:secret@host:5432/db?sslmode=bogus", "sslmode"},
	} {
		u, _ := url.Parse(tc.raw)
		_, err := postgres.Open(t.Context(), u, index.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s): %v, want an error about %q", tc.raw, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%s): the error shows the password: %v", tc.raw, err)
		}
	}
}

// Credentials may come from the environment instead of the URL, and both
// scheme spellings open the same index.
func TestOpenCredentialsFromEnv(t *testing.T) {
	pg := peers.StartPostgres(t)
	pg.CreateDB(t, "envcreds")
	t.Setenv("DEDUPFN_POSTGRES_USER", peers.PostgresUser)
	t.Setenv("DEDUPFN_POSTGRES_PASSWORD", peers.PostgresPassword)
	for _, scheme := range []string{"postgres", "postgresql"} {
		idx := open(t, scheme+"://"+pg.Addr+"/envcreds?sslmode=disable")
		if err := idx.PutDoc(t.Context(), "function", scheme, []byte(`{}`)); err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
	}
	t.Setenv("DEDUPFN_POSTGRES_PASSWORD", "wrong")
	if _, err := index.Open(t.Context(), "postgres://"+pg.Addr+"/envcreds?sslmode=disable", index.Options{}); err == nil {
		t.Fatal("Open with a wrong password from the environment succeeded")
	}
}

// Three replicas opening a new database at once: the advisory lock lets
// one create the schema, the others find it, and every one works.
func TestMigrateConcurrentOpen(t *testing.T) {
	pg := peers.StartPostgres(t)
	raw := newDB(t, pg)
	var wg sync.WaitGroup
	idxs := make([]*postgres.DB, 3)
	for i := range idxs {
		wg.Go(func() {
			idx, err := index.Open(t.Context(), raw, index.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { idx.Close() })
			idxs[i] = idx.(*postgres.DB)
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	conn, err := pgx.Connect(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n, version int
	if err := conn.QueryRow(t.Context(), "SELECT count(*), max(version) FROM dedupfn_schema_migrations").Scan(&n, &version); err != nil {
		t.Fatal(err)
	}
	if want := postgres.SchemaVersionForTest(); n != want || version != want {
		t.Fatalf("schema_migrations has %d rows up to version %d, want each of the %d migrations applied once", n, version, want)
	}
	for i, idx := range idxs {
		want := index.Wait
		if i == 0 {
			want = index.Miss
		}
		if c, err := idx.Claim(t.Context(), "k", index.Parts{}, fmt.Sprint(i), time.Minute); err != nil || c.Outcome != want {
			t.Fatalf("replica %d: claim = %v, %v; want %v", i, c.Outcome, err, want)
		}
	}
	// Reopening an up-to-date database applies nothing.
	open(t, raw)
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM dedupfn_schema_migrations").Scan(&n); err != nil || n != postgres.SchemaVersionForTest() {
		t.Fatalf("after a reopen schema_migrations has %d rows, %v", n, err)
	}
}

// Two handles on one database (two replicas) see each other's claims,
// results and documents, and report the same totals.
func TestReplicasShareState(t *testing.T) {
	pg := peers.StartPostgres(t)
	raw := newDB(t, pg)
	a, b := open(t, raw), open(t, raw)
	ctx := t.Context()
	c, err := a.Claim(ctx, "k", index.Parts{Function: "f"}, "replica-a", time.Minute)
	if err != nil || c.Outcome != index.Miss {
		t.Fatalf("claim on a: %v %v", c.Outcome, err)
	}
	if got, _ := b.Claim(ctx, "k", index.Parts{Function: "f"}, "replica-b", time.Minute); got.Outcome != index.Wait || got.Record.Owner != "replica-a" {
		t.Fatalf("claim on b = %v owner %q, want wait on replica-a", got.Outcome, got.Record.Owner)
	}
	if err := a.Complete(ctx, "k", c.Record.Token, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Claim(ctx, "k", index.Parts{Function: "f"}, "replica-b", time.Minute); got.Outcome != index.Hit || got.Record.Output.Key != "o" {
		t.Fatalf("claim on b after a completed = %v %+v, want hit", got.Outcome, got.Record)
	}
	for i, idx := range []*postgres.DB{a, b, a, b} {
		if err := idx.AddActivation(ctx, activation.Record{ID: fmt.Sprint(i), Tenant: "t", Decision: activation.Hit, Start: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	sa, _ := a.Stats(ctx, "")
	sb, _ := b.Stats(ctx, "t")
	if sa.Events != 4 || sa.Hits != 4 || sa != sb {
		t.Fatalf("stats on a %+v, on b %+v: want the same 4 hits", sa, sb)
	}
}

// A running claim without a lease deadline (written by hand or damaged)
// is locked: nobody takes it over, and its owner can still complete it.
func TestZeroLeaseIsLocked(t *testing.T) {
	pg := peers.StartPostgres(t)
	idx := open(t, newDB(t, pg))
	indextest.ZeroLeaseIsLocked(t, idx, idx.ClearLeaseForTest)
}

// Leases are the server's: a replica whose clock runs an hour ahead
// still sees a live lease as live (the statement compares with now()).
func TestLeaseUsesServerClock(t *testing.T) {
	pg := peers.StartPostgres(t)
	raw := newDB(t, pg)
	idx := open(t, raw)
	conn, err := pgx.Connect(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	c, err := idx.Claim(t.Context(), "k", index.Parts{}, "a", time.Minute)
	if err != nil || c.Outcome != index.Miss {
		t.Fatal(c.Outcome, err)
	}
	var serverLease time.Time
	var ahead time.Duration
	if err := conn.QueryRow(t.Context(), `SELECT lease_until, (lease_until - now()) FROM dedupfn_claims WHERE key = 'k'`).Scan(&serverLease, &ahead); err != nil {
		t.Fatal(err)
	}
	if ahead < 50*time.Second || ahead > time.Minute || !serverLease.Equal(c.Record.LeaseUntil) {
		t.Fatalf("lease until %s is %s ahead of the server's now(), want about a minute, the claim's %s", serverLease, ahead, c.Record.LeaseUntil)
	}
	// Move the lease into the server's past: expired whatever our clock says.
	if _, err := conn.Exec(t.Context(), `UPDATE dedupfn_claims SET lease_until = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if got, err := idx.Claim(t.Context(), "k", index.Parts{}, "b", time.Minute); err != nil || got.Outcome != index.Miss || got.Record.Attempt != 2 {
		t.Fatalf("claim on a lease the server's clock says expired = %v %+v, %v; want a takeover", got.Outcome, got.Record, err)
	}
}

// DocsPrefix reads a range of the primary key, not the kind's every
// document: its statement's generic plan (what a prepared statement runs
// with) bounds the index scan by the prefix.
func TestDocsPrefix_IndexRange(t *testing.T) {
	pg := peers.StartPostgres(t)
	raw := newDB(t, pg)
	open(t, raw) // migrates
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, sql := range []string{
		`INSERT INTO dedupfn_docs (kind, id, body)
			SELECT 'lineage', md5(i::text) || '/' || i, '{}' FROM generate_series(1, 20000) AS i`,
		`ANALYZE dedupfn_docs`,
		`SET plan_cache_mode = force_generic_plan`,
		`PREPARE docs_prefix AS ` + postgres.DocsPrefixSQLForTest,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	rows, err := conn.Query(ctx, `EXPLAIN EXECUTE docs_prefix('lineage', 'ab', 'ab`+string(utf8.MaxRune)+`')`, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "dedupfn_docs_pkey") || !strings.Contains(plan, "id >= $2") || !strings.Contains(plan, "id < $3") || strings.Contains(plan, "Seq Scan") {
		t.Fatalf("DocsPrefix's plan does not bound a scan of the primary key by the prefix:\n%s", plan)
	}
	t.Logf("plan:\n%s", plan)
}

// WatchDocs sees documents of its kind written through another handle (a
// second replica) within a second, and only those.
func TestWatchDocs(t *testing.T) {
	pg := peers.StartPostgres(t)
	raw := newDB(t, pg)
	writer, watcher := open(t, raw), open(t, raw)
	indextest.WatchDocs(t, writer, watcher)
}

// TestListenerReconnects: when the server drops the listener's
// connection, waiters return (and claim again) instead of hanging until
// their backstop, and WatchDocs calls fn again once it listens anew.
func TestListenerReconnects(t *testing.T) {
	pg := peers.StartPostgres(t)
	raw := newDB(t, pg)
	owner, w := open(t, raw), open(t, raw)
	ctx := t.Context()
	calls := make(chan struct{}, 100)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go w.WatchDocs(wctx, "function", func() { calls <- struct{}{} })
	select {
	case <-calls:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchDocs did not start")
	}
	c, _ := owner.Claim(ctx, "k", index.Parts{}, "a", time.Hour)
	cur, _ := w.Claim(ctx, "k", index.Parts{}, "b", time.Hour)
	if cur.Outcome != index.Wait {
		t.Fatalf("claim = %v, want wait", cur.Outcome)
	}
	woke := make(chan error, 1)
	go func() { woke <- w.WaitChange(ctx, cur.Record) }()
	time.Sleep(200 * time.Millisecond)
	conn, err := pgx.Connect(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listener connections, %v; want 1", killed, err)
	}
	select {
	case err := <-woke:
		if err != nil {
			t.Fatalf("WaitChange after the listener's connection broke = %v, want nil", err)
		}
	case <-time.After(time.Second):
		t.Fatal("WaitChange did not return when the listener's connection broke")
	}
	select {
	case <-calls:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchDocs did not call fn after the listener reconnected")
	}
	// The new connection delivers: the end of the claim wakes a new waiter.
	woke2 := make(chan error, 1)
	go func() { woke2 <- w.WaitChange(ctx, cur.Record) }()
	time.Sleep(200 * time.Millisecond)
	if err := owner.Complete(ctx, "k", c.Record.Token, index.Completion{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-woke2:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("the waiter was not woken through the new connection")
	}
}

func TestWatchDocsBadKind(t *testing.T) {
	pg := peers.StartPostgres(t)
	idx := open(t, newDB(t, pg))
	if err := idx.WatchDocs(t.Context(), "", func() {}); err == nil || !strings.Contains(err.Error(), "kind must be") {
		t.Errorf("WatchDocs(\"\"): %v, want an invalid kind error", err)
	}
}

// TestPruneActivations_RacingReplicas: two replicas pruning the same
// database at once, across several batches, delete each old activation
// once and leave the totals exact.
func TestPruneActivations_RacingReplicas(t *testing.T) {
	pg := peers.StartPostgres(t)
	raw := newDB(t, pg)
	indextest.PruneRacing(t, open(t, raw), open(t, raw), 2500)
}

// TestWaitChange_ClockSkewNoSpin (issue 17 item 7): leases are set and
// checked on the database's clock, so a waiter on a replica whose clock is
// off still sleeps until the lease really ends, claims once more and takes
// it over: ahead, it must not wake early and claim in a loop (on f13dda0,
// thousands of Claims a second); behind, it must not sleep past the end.
func TestWaitChange_ClockSkewNoSpin(t *testing.T) {
	pg := peers.StartPostgres(t)
	raw := newDB(t, pg)
	const lease = 2 * time.Second
	for _, skew := range []time.Duration{time.Second, -time.Second} {
		t.Run(fmt.Sprintf("skew%s", skew), func(t *testing.T) {
			owner, w := open(t, raw), open(t, raw)
			postgres.SkewClockForTest(w, skew)
			ctx := t.Context()
			key := "skew" + skew.String()
			if c, err := owner.Claim(ctx, key, index.Parts{}, "owner", lease); err != nil || c.Outcome != index.Miss {
				t.Fatalf("owner's claim = %v, %v", c.Outcome, err)
			}
			start := time.Now()
			claims := 0
			for {
				c, err := w.Claim(ctx, key, index.Parts{}, "waiter", lease)
				claims++
				if err != nil {
					t.Fatal(err)
				}
				if c.Outcome == index.Miss {
					break
				}
				if c.Outcome != index.Wait || claims > 1e6 {
					t.Fatalf("claim %d = %v, want wait until the lease ends, then miss", claims, c.Outcome)
				}
				if err := w.WaitChange(ctx, c.Record); err != nil {
					t.Fatal(err)
				}
			}
			took := time.Since(start)
			t.Logf("skew %s: took the lease over after %s with %d claims", skew, took, claims)
			if claims > 3 {
				t.Errorf("the waiter made %d claims during one lease of %s, want at most 3 (no spinning)", claims, lease)
			}
			if took > lease+700*time.Millisecond {
				t.Errorf("the waiter took the lease over after %s, want about %s (the lease)", took, lease)
			}
		})
	}
}

// A Complete refused for a stale token stores none of its documents: the
// claim and the documents are one statement.
func TestCompleteDocsOnlyWithTheClaim(t *testing.T) {
	pg := peers.StartPostgres(t)
	indextest.DocsOnlyWithTheClaim(t, open(t, newDB(t, pg)))
}
