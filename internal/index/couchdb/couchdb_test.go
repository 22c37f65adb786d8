package couchdb_test

import (
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
