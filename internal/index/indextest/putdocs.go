package indextest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/dedupfn/dedupfn/internal/index"
)

// PutDocs checks index.Docs.PutDocs: it stores every document, of any
// mix of kinds, replacing existing ones (also one deleted before), the
// last of two with the same kind and id wins, an empty list changes
// nothing, and concurrent calls on the same ids all succeed. Where the
// backend implements index.DocRevisions, the revision of every kind
// written changes and that of any other kind stays put.
func PutDocs(t *testing.T, idx index.Index) {
	ctx := t.Context()
	put := func(kind, id, doc string) {
		t.Helper()
		if err := idx.PutDoc(ctx, kind, id, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	put("derived", "a", `{"v":1}`)
	put("output", "x", `{"v":1}`)
	put("derived", "gone", `{"v":1}`)
	put("other", "z", `{"v":1}`)
	if err := idx.DeleteDoc(ctx, "derived", "gone"); err != nil {
		t.Fatal(err)
	}
	kinds := []string{"derived", "output", "copy", "other"}
	dr, _ := idx.(index.DocRevisions)
	revs := func() map[string]uint64 {
		t.Helper()
		m := map[string]uint64{}
		for _, k := range kinds {
			if dr == nil {
				continue
			}
			r, err := dr.DocsRevision(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			m[k] = r
		}
		return m
	}
	list := func() string {
		t.Helper()
		var s []string
		for _, k := range kinds {
			err := idx.Docs(ctx, k, func(id string, doc []byte) error {
				s = append(s, k+"/"+id+"="+string(doc))
				return nil
			})
			if err != nil {
				t.Fatalf("Docs(%s): %v", k, err)
			}
		}
		return fmt.Sprint(s)
	}

	before, stored := revs(), list()
	for _, empty := range [][]index.Doc{nil, {}} {
		if err := idx.PutDocs(ctx, empty); err != nil {
			t.Fatalf("PutDocs(%#v): %v", empty, err)
		}
	}
	if got := list(); got != stored {
		t.Fatalf("an empty PutDocs changed the documents:\n got %s\nwant %s", got, stored)
	}
	if got := revs(); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("an empty PutDocs moved the revisions from %v to %v", before, got)
	}

	err := idx.PutDocs(ctx, []index.Doc{
		{Kind: "derived", ID: "a", Doc: []byte(`{"v":2}`)},    // replaces
		{Kind: "output", ID: "x", Doc: []byte(`{"v":2}`)},     // replaces, another kind
		{Kind: "copy", ID: "c", Doc: []byte(`{"v":1}`)},       // new, a third kind
		{Kind: "derived", ID: "b", Doc: []byte(`{"v":1}`)},    // new
		{Kind: "derived", ID: "gone", Doc: []byte(`{"v":2}`)}, // deleted before
		{Kind: "copy", ID: "d", Doc: []byte(`{"v":1}`)},
		{Kind: "copy", ID: "d", Doc: []byte(`{"v":2}`)}, // the last one wins
	})
	if err != nil {
		t.Fatalf("PutDocs: %v", err)
	}
	want := `[derived/a={"v":2} derived/b={"v":1} derived/gone={"v":2} output/x={"v":2} copy/c={"v":1} copy/d={"v":2} other/z={"v":1}]`
	if got := list(); got != want {
		t.Fatalf("after PutDocs:\n got %s\nwant %s", got, want)
	}
	if doc, err := idx.GetDoc(ctx, "copy", "d"); err != nil || string(doc) != `{"v":2}` {
		t.Fatalf("GetDoc(copy/d) = %s, %v; want the last one put", doc, err)
	}
	if dr != nil {
		after := revs()
		for _, k := range []string{"derived", "output", "copy"} {
			if after[k] == before[k] {
				t.Errorf("PutDocs wrote %s documents but left its revision at %d", k, after[k])
			}
		}
		if after["other"] != before["other"] {
			t.Errorf("PutDocs wrote no other document but moved its revision from %d to %d", before["other"], after["other"])
		}
	}

	// Replicas noting the same outputs at once: every call succeeds (a
	// backend that detects conflicts retries them) and each document
	// holds one of the versions written.
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := []byte(fmt.Sprintf(`{"w":%d}`, w))
			errs[w] = idx.PutDocs(ctx, []index.Doc{{Kind: "derived", ID: "a", Doc: v}, {Kind: "output", ID: "x", Doc: v}, {Kind: "copy", ID: "new", Doc: v}})
		}()
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("concurrent PutDocs %d: %v", w, err)
		}
	}
	for _, d := range []struct{ kind, id string }{{"derived", "a"}, {"output", "x"}, {"copy", "new"}} {
		doc, err := idx.GetDoc(ctx, d.kind, d.id)
		var w int
		if err == nil {
			_, err = fmt.Sscanf(string(doc), `{"w":%d}`, &w)
		}
		if err != nil || w < 0 || w >= writers {
			t.Errorf("%s/%s after concurrent PutDocs = %s, %v; want one writer's version", d.kind, d.id, doc, err)
		}
	}
}
