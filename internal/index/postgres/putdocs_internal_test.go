package postgres

import (
	"testing"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// TestPutDocs_OneRoundTrip: a PutDocs of documents of several kinds is
// one statement, however many documents, once the statement is prepared.
func TestPutDocs_OneRoundTrip(t *testing.T) {
	pg := peers.StartPostgres(t)
	d, ct := openCounted(t, pg.CreateDB(t, "putdocs"))
	ctx := t.Context()
	docs := func(v string) []index.Doc {
		return []index.Doc{
			{Kind: "derived", ID: "a", Doc: []byte(v)},
			{Kind: "output", ID: "b", Doc: []byte(v)},
			{Kind: "copy", ID: "c", Doc: []byte(v)},
		}
	}
	if err := d.PutDocs(ctx, docs(`{"v":1}`)); err != nil { // prepares the statement
		t.Fatal(err)
	}
	ct.take()
	if err := d.PutDocs(ctx, docs(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	if n := ct.take(); n != 1 {
		t.Fatalf("PutDocs of 3 documents: %d round trips, want 1", n)
	}
	if doc, err := d.GetDoc(ctx, "copy", "c"); err != nil || string(doc) != `{"v":2}` {
		t.Fatalf("GetDoc(copy/c) = %s, %v", doc, err)
	}
}
