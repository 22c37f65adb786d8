package indextest

import (
	"testing"

	"github.com/dedupfn/dedupfn/internal/index"
)

// DocRevisions checks an index.DocRevisions: the revision of a kind
// changes at every put and delete of a document of that kind, and stays
// put while nothing of that kind is written (other kinds, claims).
func DocRevisions(t *testing.T, idx index.Index) {
	t.Helper()
	dr, ok := idx.(index.DocRevisions)
	if !ok {
		t.Fatalf("%T does not implement index.DocRevisions", idx)
	}
	ctx := t.Context()
	rev := func() uint64 {
		t.Helper()
		r, err := dr.DocsRevision(ctx, "function")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	last := rev()
	for i, write := range []func() error{
		func() error { return idx.PutDoc(ctx, "function", "a", []byte(`{"v":1}`)) },
		func() error { return idx.PutDoc(ctx, "function", "a", []byte(`{"v":2}`)) },
		func() error { return idx.DeleteDoc(ctx, "function", "a") },
	} {
		if err := write(); err != nil {
			t.Fatal(err)
		}
		if r := rev(); r == last {
			t.Fatalf("write %d of a function document left its revision at %d", i, r)
		} else {
			last = r
		}
	}
	if err := idx.PutDoc(ctx, "other", "z", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := idx.Claim(ctx, "k", parts, "a", 60e9); err != nil {
		t.Fatal(err)
	}
	if r := rev(); r != last {
		t.Fatalf("writes of other kinds and claims moved the function revision from %d to %d", last, r)
	}
}
