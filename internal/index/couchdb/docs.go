package couchdb

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	kivik "github.com/go-kivik/kivik/v4"

	"github.com/dedupfn/dedupfn/internal/index"
)

// genericDoc holds an opaque document (functions) or a blob.
type genericDoc struct {
	ID   string `json:"_id"`
	Rev  string `json:"_rev,omitempty"`
	Type string `json:"type"`
	Body []byte `json:"body"` // base64 in JSON
}

func docID(kind, id string) string { return docPrefix + kind + ":" + id }

// PutDoc implements index.Docs.
func (d *DB) PutDoc(ctx context.Context, kind, id string, doc []byte) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.put(ctx, genericDoc{ID: docID(kind, id), Type: "doc", Body: doc}, true)
}

// PutDocs implements index.Docs in two requests: one _all_docs read of
// the documents' current revisions, then one _bulk_docs write. Not
// atomic (CouchDB writes each document of a bulk request on its own):
// after an error some may be stored, and a reader may see some before
// the others. A document another writer changed in between (a conflict)
// is written again alone, as PutDoc does.
func (d *DB) PutDocs(ctx context.Context, docs []index.Doc) error {
	if len(docs) == 0 {
		return nil
	}
	docs = index.LastDocs(docs) // a bulk request with an id twice conflicts with itself
	ctx, cancel := d.call(ctx)
	defer cancel()
	gs := make([]genericDoc, len(docs))
	ids := make([]string, len(docs))
	for i, doc := range docs {
		gs[i] = genericDoc{ID: docID(doc.Kind, doc.ID), Type: "doc", Body: doc.Doc}
		ids[i] = gs[i].ID
	}
	revs, err := d.revs(ctx, ids)
	if err != nil {
		return fmt.Errorf("couchdb: put %d docs (%s, ...): read revisions: %w", len(gs), gs[0].ID, err)
	}
	bulk := make([]any, len(gs))
	for i := range gs {
		gs[i].Rev = revs[gs[i].ID]
		bulk[i] = &gs[i]
	}
	results, err := d.db.BulkDocs(ctx, bulk)
	if err == nil && len(results) != len(gs) {
		err = fmt.Errorf("bulk write answered %d results for %d docs", len(results), len(gs))
	}
	if err != nil {
		return fmt.Errorf("couchdb: put %d docs (%s, ...): %w", len(gs), gs[0].ID, err)
	}
	for i, r := range results {
		switch {
		case r.Error == nil:
		case kivik.HTTPStatus(r.Error) == http.StatusConflict:
			if err := d.put(ctx, gs[i], true); err != nil {
				return err
			}
		default:
			return fmt.Errorf("couchdb: put %s: %w", gs[i].ID, r.Error)
		}
	}
	return nil
}

// revs reads the current revisions of the documents ids in one
// _all_docs request: id → revision, for those that exist (a deleted one
// is written anew without a revision, as PutDoc does).
func (d *DB) revs(ctx context.Context, ids []string) (map[string]string, error) {
	rs := d.db.AllDocs(ctx, kivik.Params(map[string]any{"keys": ids}))
	defer rs.Close()
	revs := make(map[string]string, len(ids))
	for rs.Next() {
		var id string
		if err := rs.ScanKey(&id); err != nil {
			if kivik.HTTPStatus(err) == http.StatusNotFound {
				continue
			}
			return nil, err
		}
		var v struct {
			Rev     string `json:"rev"`
			Deleted bool   `json:"deleted"`
		}
		if err := rs.ScanValue(&v); err != nil {
			return nil, fmt.Errorf("decode revision of %s: %w", id, err)
		}
		if !v.Deleted {
			revs[id] = v.Rev
		}
	}
	return revs, rs.Err()
}

// put writes g; with replace it overwrites whatever revision is there,
// else an existing document is left alone.
func (d *DB) put(ctx context.Context, g genericDoc, replace bool) error {
	for range maxCASRetries {
		_, err := d.db.Put(ctx, g.ID, g)
		if err == nil {
			return nil
		}
		if kivik.HTTPStatus(err) != http.StatusConflict {
			return fmt.Errorf("couchdb: put %s: %w", g.ID, err)
		}
		if !replace {
			return nil
		}
		rev, err := d.rev(ctx, g.ID)
		if err != nil && kivik.HTTPStatus(err) != http.StatusNotFound {
			return fmt.Errorf("couchdb: put %s: %w", g.ID, err)
		}
		g.Rev = rev
	}
	return fmt.Errorf("couchdb: put %s: too many conflicts", g.ID)
}

func (d *DB) getBody(ctx context.Context, id string) ([]byte, error) {
	var g genericDoc
	err := d.db.Get(ctx, id).ScanDoc(&g)
	if kivik.HTTPStatus(err) == http.StatusNotFound {
		return nil, index.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("couchdb: get %s: %w", id, err)
	}
	return g.Body, nil
}

// GetDoc implements index.Docs.
func (d *DB) GetDoc(ctx context.Context, kind, id string) ([]byte, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.getBody(ctx, docID(kind, id))
}

// DeleteDoc implements index.Docs.
func (d *DB) DeleteDoc(ctx context.Context, kind, id string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	if _, err := d.GetDoc(ctx, kind, id); err != nil {
		return err
	}
	return d.deleteDoc(ctx, docID(kind, id))
}

// Docs implements index.Docs.
func (d *DB) Docs(ctx context.Context, kind string, fn func(id string, doc []byte) error) error {
	return d.DocsPrefix(ctx, kind, "", fn)
}

// DocsPrefix implements index.Docs: the _all_docs range of the document
// ids that start with doc:KIND:PREFIX, paged (see prefixRange).
func (d *DB) DocsPrefix(ctx context.Context, kind, prefix string, fn func(id string, doc []byte) error) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	trim := docID(kind, "")
	return d.prefixRange(ctx, docID(kind, prefix), func(id string, rs *kivik.ResultSet) error {
		var g genericDoc
		if err := rs.ScanDoc(&g); err != nil {
			return fmt.Errorf("couchdb: decode %s: %w", id, err)
		}
		return fn(strings.TrimPrefix(id, trim), g.Body)
	})
}

// PutBlob implements index.Blobs.
func (d *DB) PutBlob(ctx context.Context, digest string, data []byte) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.put(ctx, genericDoc{ID: blobPrefix + digest, Type: "blob", Body: data}, false)
}

// GetBlob implements index.Blobs.
func (d *DB) GetBlob(ctx context.Context, digest string) ([]byte, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.getBody(ctx, blobPrefix+digest)
}
