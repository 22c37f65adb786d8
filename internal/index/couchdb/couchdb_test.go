package couchdb_test

import (
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	kivik "github.com/go-kivik/kivik/v4"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/index/couchdb"
	"github.com/dedupfn/dedupfn/internal/index/indextest"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

var dbSeq atomic.Int64

// TestConformance runs the shared suite against a real CouchDB-API server
// (pouchdb-server): the hammer subtests go through real 409 conflicts.
func TestConformance(t *testing.T) {
	srv := peers.StartCouchDB(t)
	indextest.Run(t, func(t testing.TB) index.Index {
		idx, err := index.Open(t.Context(), srv.URL(fmt.Sprintf("dedupfn-%d", dbSeq.Add(1))), index.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return idx
	})
}

func TestOpenURLErrors(t *testing.T) {
	for _, raw := range []string{"couchdb://host:5984", "couchdb:///db"} {
		u, _ := url.Parse(raw)
		if _, err := couchdb.Open(t.Context(), u, index.Options{}); err == nil || !strings.Contains(err.Error(), "couchdb://[user:pass@]host:port/dbname") {
			t.Errorf("Open(%s): %v, want the expected form", raw, err)
		}
	}
}

// Two handles on one database (two replicas) see each other's claims and
// documents, and a second Open of an existing database works.
func TestReplicasShareState(t *testing.T) {
	srv := peers.StartCouchDB(t)
	a, err := index.Open(t.Context(), srv.URL("shared"), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := index.Open(t.Context(), srv.URL("shared"), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := a.Claim(t.Context(), "k", index.Parts{Function: "f"}, "replica-a", time.Minute)
	if err != nil || c.Outcome != index.Miss {
		t.Fatalf("claim on a: %v %v", c.Outcome, err)
	}
	if c, _ := b.Claim(t.Context(), "k", index.Parts{Function: "f"}, "replica-b", time.Minute); c.Outcome != index.Wait || c.Record.Owner != "replica-a" {
		t.Fatalf("claim on b = %v owner %q, want wait on replica-a", c.Outcome, c.Record.Owner)
	}
	if err := a.PutDoc(t.Context(), "function", "x", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if doc, err := b.GetDoc(t.Context(), "function", "x"); err != nil || string(doc) != `{"v":1}` {
		t.Fatalf("b reads %s, %v", doc, err)
	}
}

// A claim document without a lease deadline (written by hand, by an older
// version, or damaged) is locked: nobody takes it over.
func TestZeroLeaseIsLocked(t *testing.T) {
	srv := peers.StartCouchDB(t)
	idx, err := index.Open(t.Context(), srv.URL("zero"), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	db := idx.(*couchdb.DB)
	indextest.ZeroLeaseIsLocked(t, db, db.ClearLeaseForTest)
}

// DocsPrefix (and Docs, its "" prefix) give the same answers when every
// listing takes several pages, each ending inside or at a prefix's range.
func TestDocsPrefix_Pages(t *testing.T) {
	srv := peers.StartCouchDB(t)
	for _, page := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(page), func(t *testing.T) {
			couchdb.SetListPageForTest(t, page)
			idx, err := index.Open(t.Context(), srv.URL(fmt.Sprintf("pages-%d", page)), index.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer idx.Close()
			indextest.DocsPrefix(t, idx)
		})
	}
}

// WatchDocs sees documents of its kind written through another handle (a
// second replica) within a second, and only those.
func TestWatchDocs(t *testing.T) {
	srv := peers.StartCouchDB(t)
	open := func() *couchdb.DB {
		idx, err := index.Open(t.Context(), srv.URL("watch"), index.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { idx.Close() })
		return idx.(*couchdb.DB)
	}
	writer, watcher := open(), open()
	indextest.WatchDocs(t, writer, watcher)
}

func TestWatchDocsBadKind(t *testing.T) {
	srv := peers.StartCouchDB(t)
	idx, err := index.Open(t.Context(), srv.URL("badkind"), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	for _, kind := range []string{"", "a:b"} {
		if err := idx.(*couchdb.DB).WatchDocs(t.Context(), kind, func() {}); err == nil || !strings.Contains(err.Error(), "kind must be") {
			t.Errorf("WatchDocs(%q): %v, want an invalid kind error", kind, err)
		}
	}
}

// TestPruneActivations_RacingReplicas: two replicas pruning the same
// database at once, across several batches, delete each old activation
// once and leave the totals exact.
func TestPruneActivations_RacingReplicas(t *testing.T) {
	srv := peers.StartCouchDB(t)
	open := func() index.Index {
		idx, err := index.Open(t.Context(), srv.URL("prune"), index.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { idx.Close() })
		return idx
	}
	indextest.PruneRacing(t, open(), open(), 700)
}

// upgradeDB starts a CouchDB-API server and returns a raw client of its
// database name, for writing design documents as other versions did,
// and open, which opens that database as this version does (closed with
// the test).
func upgradeDB(t *testing.T, name string) (*kivik.DB, func() index.Index) {
	t.Helper()
	srv := peers.StartCouchDB(t)
	client, err := kivik.New("couch", "http://"+srv.Addr+"/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	open := func() index.Index {
		t.Helper()
		idx, err := index.Open(t.Context(), srv.URL(name), index.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { idx.Close() })
		return idx
	}
	return client.DB(name), open
}

// TestDesignUpgrade: a database whose design document an older version
// wrote (no fnstats view, no version) gets the new one on Open, with
// Stats unchanged; a handle whose view an older replica removed again
// puts it back when asked; a newer version's design document is left
// alone.
func TestDesignUpgrade(t *testing.T) {
	ctx := t.Context()
	raw, open := upgradeDB(t, "upgrade")
	design := func() map[string]any {
		t.Helper()
		var doc map[string]any
		if err := raw.Get(ctx, "_design/dedupfn").ScanDoc(&doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	// downgrade rewrites the design document as an older version had it.
	downgrade := func() {
		t.Helper()
		doc := design()
		delete(doc["views"].(map[string]any), "fnstats")
		delete(doc, "dedupfn")
		if _, err := raw.Put(ctx, "_design/dedupfn", doc); err != nil {
			t.Fatal(err)
		}
	}
	idx := open()
	for i, fn := range []string{"a", "b", "a"} {
		if err := idx.AddActivation(ctx, activation.Record{ID: fmt.Sprint(i), Tenant: "t", Function: fn, Decision: activation.Miss, Start: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	fnEvents := func(idx index.Index) string {
		t.Helper()
		fs, err := idx.FunctionStats(ctx, "t")
		if err != nil {
			t.Fatalf("FunctionStats: %v", err)
		}
		var s []string
		for _, f := range fs {
			s = append(s, fmt.Sprintf("%s:%d", f.Function, f.Events))
		}
		return fmt.Sprint(s)
	}
	downgrade()
	if st, err := idx.Stats(ctx, ""); err != nil || st.Events != 3 || st.Runs != 3 {
		t.Fatalf("Stats with the old design document = %+v, %v", st, err)
	}
	if got := fnEvents(open()); got != "[a:2 b:1]" {
		t.Fatalf("FunctionStats after reopening an old database = %s, want [a:2 b:1]", got)
	}
	if v, _ := design()["dedupfn"].(map[string]any); v["version"] != float64(couchdb.DesignVersionForTest) {
		t.Fatalf("design document version %v after Open, want %d", v, couchdb.DesignVersionForTest)
	}
	downgrade() // an older replica restarts in a rolling upgrade
	if got := fnEvents(idx); got != "[a:2 b:1]" {
		t.Fatalf("FunctionStats after an older replica rewrote the design document = %s, want [a:2 b:1]", got)
	}
	if st, err := idx.Stats(ctx, ""); err != nil || st.Events != 3 || st.Runs != 3 {
		t.Fatalf("Stats after the upgrades = %+v, %v", st, err)
	}

	newer := design()
	newer["dedupfn"] = map[string]any{"version": couchdb.DesignVersionForTest + 1}
	newer["views"].(map[string]any)["future"] = map[string]any{"map": "function (doc) {}"}
	rev, err := raw.Put(ctx, "_design/dedupfn", newer)
	if err != nil {
		t.Fatal(err)
	}
	open()
	if got := design()["_rev"]; got != rev {
		t.Fatalf("Open replaced a newer version's design document: rev %v, want %s", got, rev)
	}
}

// TestDesignUpgrade_Deletes: a database whose design document version 2
// wrote (stats views without deletes) gets the views that count them on
// Open, and the deletes already recorded count.
func TestDesignUpgrade_Deletes(t *testing.T) {
	ctx := t.Context()
	raw, open := upgradeDB(t, "upgrade_v2")
	idx := open()
	for i, d := range []activation.Decision{activation.Miss, activation.Delete, activation.Delete} {
		if err := idx.AddActivation(ctx, activation.Record{ID: fmt.Sprint(i), Tenant: "t", Function: "f", Decision: d, Start: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	// The design document as version 2 wrote it: no deletes in the views.
	var doc map[string]any
	if err := raw.Get(ctx, "_design/dedupfn").ScanDoc(&doc); err != nil {
		t.Fatal(err)
	}
	views := doc["views"].(map[string]any)
	for _, name := range []string{"stats", "fnstats"} {
		v := views[name].(map[string]any)
		for part, old := range map[string]string{"map": "\n    deletes: d === \"delete\" ? 1 : 0,", "reduce": " deletes: 0,"} {
			s := v[part].(string)
			if !strings.Contains(s, old) {
				t.Fatalf("%s %s has no %q:\n%s", name, part, old, s)
			}
			v[part] = strings.Replace(s, old, "", 1)
		}
	}
	doc["dedupfn"] = map[string]any{"version": 2}
	if _, err := raw.Put(ctx, "_design/dedupfn", doc); err != nil {
		t.Fatal(err)
	}
	if st, err := idx.Stats(ctx, "t"); err != nil || st.Events != 3 || st.Deletes != 0 {
		t.Fatalf("Stats with the version-2 design document = %+v, %v; want 3 events, no deletes counted", st, err)
	}

	idx = open()
	// A version above 2, or a version-2 replica in a rolling upgrade would
	// take the views as its own of other content and write them back.
	if err := raw.Get(ctx, "_design/dedupfn").ScanDoc(&doc); err != nil {
		t.Fatal(err)
	}
	if v, _ := doc["dedupfn"].(map[string]any); v["version"] != float64(couchdb.DesignVersionForTest) || couchdb.DesignVersionForTest <= 2 {
		t.Fatalf("design document version %v after Open, want %d, above 2", v, couchdb.DesignVersionForTest)
	}
	if st, err := idx.Stats(ctx, "t"); err != nil || st.Events != 3 || st.Runs != 1 || st.Deletes != 2 {
		t.Fatalf("Stats after Open upgraded the design document = %+v, %v; want 3 events, 1 run, 2 deletes", st, err)
	}
	fs, err := idx.FunctionStats(ctx, "t")
	if err != nil || len(fs) != 1 || fs[0].Deletes != 2 {
		t.Fatalf("FunctionStats after the upgrade = %+v, %v; want f with 2 deletes", fs, err)
	}
}
