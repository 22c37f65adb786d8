package couchdb

import (
	"context"
	"errors"
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

// PutDocs implements index.Docs.
func (d *DB) PutDocs(ctx context.Context, docs []index.Doc) error {
	return errors.ErrUnsupported
}
