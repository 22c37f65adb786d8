package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/dedupfn/dedupfn/internal/index"
)

func docKey(kind, id string) []byte { return []byte(kind + "\x00" + id) }

// PutDoc implements index.Docs. It goes through the group commit (d.w)
// like the claims: the pipeline notes documents for every output it
// writes, and concurrent events should share one fsync round.
func (d *DB) PutDoc(ctx context.Context, kind, id string, doc []byte) error {
	return wrap(d.w.Update(func(tx *bbolt.Tx) error { return putDoc(tx, kind, id, doc) }), "put doc", kind+"/"+id)
}

// PutDocs implements index.Docs: all of docs in one write transaction,
// shared with other writers by the group commit.
func (d *DB) PutDocs(ctx context.Context, docs []index.Doc) error {
	if len(docs) == 0 {
		return nil
	}
	return wrap(d.w.Update(func(tx *bbolt.Tx) error { return putDocs(tx, docs) }), "put docs", "")
}

// putDocs writes every document of docs into tx.
func putDocs(tx *bbolt.Tx, docs []index.Doc) error {
	for _, doc := range docs {
		if err := putDoc(tx, doc.Kind, doc.ID, doc.Doc); err != nil {
			return fmt.Errorf("%s/%s: %w", doc.Kind, doc.ID, err)
		}
	}
	return nil
}

// putDoc writes one document and counts the write for its kind. It may
// run more than once (see groupcommit.Committer.Update): it only writes
// into tx.
func putDoc(tx *bbolt.Tx, kind, id string, doc []byte) error {
	if err := tx.Bucket(bucketDocs).Put(docKey(kind, id), doc); err != nil {
		return err
	}
	return bumpDocRev(tx, kind)
}

// bumpDocRev counts a write of a document of kind, in the write's own
// transaction, so a revision read never runs ahead of the documents.
func bumpDocRev(tx *bbolt.Tx, kind string) error {
	b := tx.Bucket(bucketDocRevs)
	var rev uint64
	if v := b.Get([]byte(kind)); len(v) == 8 {
		rev = binary.BigEndian.Uint64(v)
	}
	return b.Put([]byte(kind), binary.BigEndian.AppendUint64(nil, rev+1))
}

// DocsRevision implements index.DocRevisions: how many times documents of
// kind were put or deleted in this file.
func (d *DB) DocsRevision(ctx context.Context, kind string) (uint64, error) {
	if err := d.settle(kind); err != nil {
		return 0, wrap(err, "docs revision", kind)
	}
	var rev uint64
	err := d.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketDocRevs).Get([]byte(kind)); len(v) == 8 {
			rev = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return rev, wrap(err, "docs revision", kind)
}

// GetDoc implements index.Docs.
func (d *DB) GetDoc(ctx context.Context, kind, id string) ([]byte, error) {
	if doc, ok := d.queued.get(kind, id); ok {
		return bytes.Clone(doc), nil
	}
	var out []byte
	err := d.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketDocs).Get(docKey(kind, id))
		if v == nil {
			return index.ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, wrap(err, "get doc", kind+"/"+id)
}

// DeleteDoc implements index.Docs.
func (d *DB) DeleteDoc(ctx context.Context, kind, id string) error {
	if err := d.settle(kind); err != nil {
		return wrap(err, "delete doc", kind+"/"+id)
	}
	return wrap(d.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDocs)
		if b.Get(docKey(kind, id)) == nil {
			return index.ErrNotFound
		}
		if err := b.Delete(docKey(kind, id)); err != nil {
			return err
		}
		return bumpDocRev(tx, kind)
	}), "delete doc", kind+"/"+id)
}

// Docs implements index.Docs.
func (d *DB) Docs(ctx context.Context, kind string, fn func(id string, doc []byte) error) error {
	return d.DocsPrefix(ctx, kind, "", fn)
}

// DocsPrefix implements index.Docs: a cursor seeks to the first key with
// the prefix and stops at the first without, so no other document is read.
func (d *DB) DocsPrefix(ctx context.Context, kind, prefix string, fn func(id string, doc []byte) error) error {
	if err := d.settle(kind); err != nil {
		return wrap(err, "list docs", kind)
	}
	start, skip := docKey(kind, prefix), len(docKey(kind, ""))
	return d.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketDocs).Cursor()
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, start); k, v = c.Next() {
			if err := fn(string(k[skip:]), bytes.Clone(v)); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutBlob implements index.Blobs.
func (d *DB) PutBlob(ctx context.Context, digest string, data []byte) error {
	return wrap(d.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		if b.Get([]byte(digest)) != nil {
			return nil
		}
		return b.Put([]byte(digest), data)
	}), "put blob", digest)
}

// GetBlob implements index.Blobs.
func (d *DB) GetBlob(ctx context.Context, digest string) ([]byte, error) {
	var out []byte
	err := d.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketBlobs).Get([]byte(digest))
		if v == nil {
			return index.ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, wrap(err, "get blob", digest)
}
