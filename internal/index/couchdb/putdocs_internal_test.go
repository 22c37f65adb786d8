package couchdb

import (
	"fmt"
	"testing"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// TestPutDocs_TwoRequests: a PutDocs of documents of several kinds, new
// and existing, is one read of their revisions and one bulk write.
func TestPutDocs_TwoRequests(t *testing.T) {
	srv := peers.StartCouchDB(t)
	d, reqs, _ := openCounted(t, srv, "putdocs")
	ctx := t.Context()
	if err := d.PutDoc(ctx, "output", "b", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	reqs.take()
	err := d.PutDocs(ctx, []index.Doc{
		{Kind: "derived", ID: "a", Doc: []byte(`{"v":2}`)},
		{Kind: "output", ID: "b", Doc: []byte(`{"v":2}`)},
		{Kind: "copy", ID: "c", Doc: []byte(`{"v":2}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := reqs.take()
	if want := "[POST /putdocs/_all_docs POST /putdocs/_bulk_docs]"; fmt.Sprint(got) != want {
		t.Fatalf("PutDocs requests = %v, want %s", got, want)
	}
	if doc, err := d.GetDoc(ctx, "output", "b"); err != nil || string(doc) != `{"v":2}` {
		t.Fatalf("GetDoc(output/b) = %s, %v", doc, err)
	}
}
