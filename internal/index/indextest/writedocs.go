package indextest

import (
	"errors"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
)

// DocsWithWrites checks the documents that ride on an event's last
// write: Completion.Docs are stored by a successful Complete, and a stale
// token is still ErrNotOwner (whether its documents are stored is the
// backend's: see DocsOnlyWithTheClaim); AddActivation's
// docs are stored with the record, and also by a second add of the same
// id, which counts nothing twice.
func DocsWithWrites(t *testing.T, idx index.Index) {
	ctx := t.Context()
	get := func(kind, id string) string {
		t.Helper()
		doc, err := idx.GetDoc(ctx, kind, id)
		if errors.Is(err, index.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(doc)
	}

	c, err := idx.Claim(ctx, "dw", index.Parts{Function: "f", Fingerprint: "sha256:dw"}, "o", time.Minute)
	if err != nil || c.Outcome != index.Miss {
		t.Fatalf("claim: %v %v", c.Outcome, err)
	}
	docs := []index.Doc{{Kind: "output", ID: "o1", Doc: []byte(`{"v":1}`)}, {Kind: "derived", ID: "i.o1", Doc: []byte(`{"v":2}`)}}
	if err := idx.Complete(ctx, "dw", "stale-"+c.Record.Token, index.Completion{Output: &index.Output{Key: "x"}, Docs: docs}); !errors.Is(err, index.ErrNotOwner) {
		t.Fatalf("complete with a stale token = %v, want ErrNotOwner", err)
	}
	if err := idx.Complete(ctx, "dw", c.Record.Token, index.Completion{Output: &index.Output{Key: "o1"}, Docs: docs}); err != nil {
		t.Fatal(err)
	}
	if got := get("output", "o1") + get("derived", "i.o1"); got != `{"v":1}{"v":2}` {
		t.Fatalf("docs after Complete = %q", got)
	}
	if r, err := idx.Get(ctx, "dw"); err != nil || r.State != index.Done || r.Output.Key != "o1" {
		t.Fatalf("record after Complete = %+v, %v", r, err)
	}

	rec := activation.Record{ID: "dw-act", Tenant: "t", Function: "f", Decision: activation.Hit, Start: time.Now().UTC()}
	before, err := idx.Stats(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.AddActivation(ctx, rec, index.Doc{Kind: "copy", ID: "k.o2", Doc: []byte(`{"v":3}`)}); err != nil {
		t.Fatal(err)
	}
	if got := get("copy", "k.o2"); got != `{"v":3}` {
		t.Fatalf("doc after AddActivation = %q", got)
	}
	// A redelivered event's add: the record is there; its docs are stored
	// (they describe the output this delivery wrote), nothing is counted.
	if err := idx.AddActivation(ctx, rec, index.Doc{Kind: "copy", ID: "k.o3", Doc: []byte(`{"v":4}`)}); err != nil {
		t.Fatal(err)
	}
	if got := get("copy", "k.o3"); got != `{"v":4}` {
		t.Fatalf("doc after a second AddActivation = %q", got)
	}
	after, err := idx.Stats(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if after.Events != before.Events+1 || after.Hits != before.Hits+1 {
		t.Fatalf("stats %+v → %+v: want one event and one hit more", before, after)
	}
	if _, err := idx.GetActivation(ctx, "dw-act"); err != nil {
		t.Fatal(err)
	}
}

// DocsOnlyWithTheClaim checks, on a backend whose Complete is one
// transaction (bolt, PostgreSQL), that a Complete refused for a stale
// token stores none of its documents.
func DocsOnlyWithTheClaim(t *testing.T, idx index.Index) {
	ctx := t.Context()
	c, err := idx.Claim(ctx, "fenced", index.Parts{Function: "f", Fingerprint: "sha256:fenced"}, "o", time.Minute)
	if err != nil || c.Outcome != index.Miss {
		t.Fatalf("claim: %v %v", c.Outcome, err)
	}
	stale := index.Completion{Output: &index.Output{Key: "x"}, Docs: []index.Doc{{Kind: "output", ID: "stale", Doc: []byte(`{}`)}}}
	if err := idx.Complete(ctx, "fenced", "stale-"+c.Record.Token, stale); !errors.Is(err, index.ErrNotOwner) {
		t.Fatalf("complete with a stale token = %v, want ErrNotOwner", err)
	}
	if doc, err := idx.GetDoc(ctx, "output", "stale"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("a refused Complete stored its document: %q, %v", doc, err)
	}
}
