package index

import "context"

// Docs are opaque JSON documents by kind and id: the function registry's
// definitions, backfill jobs, output marks. All methods are safe for
// concurrent use, from any number of goroutines and replicas.
type Docs interface {
	// PutDoc stores an opaque JSON document of a kind ("function", ...)
	// under id, replacing any previous one. Idempotent.
	PutDoc(ctx context.Context, kind, id string, doc []byte) error
	// PutDocs stores every document of docs, of any kinds, replacing any
	// previous ones, as PutDoc would one after the other (of two with
	// the same kind and id the last wins), in one write where the
	// backend can: bolt and PostgreSQL store all or none in one
	// transaction; CouchDB in one _bulk_docs request, which is not
	// atomic (after an error some may be stored). An empty docs writes
	// nothing. Idempotent.
	PutDocs(ctx context.Context, docs []Doc) error
	// GetDoc returns the document, or ErrNotFound.
	GetDoc(ctx context.Context, kind, id string) ([]byte, error)
	// DeleteDoc removes a document. ErrNotFound if absent.
	DeleteDoc(ctx context.Context, kind, id string) error
	// Docs calls fn for every document of kind, ordered by id.
	Docs(ctx context.Context, kind string, fn func(id string, doc []byte) error) error
	// DocsPrefix calls fn for every document of kind whose id starts with
	// prefix (byte for byte; "" is every document of kind), ordered by id,
	// reading only those: the pipeline keeps lineage and output marks
	// under ids that share a prefix per object. fn's error stops the walk
	// and is returned as it is.
	DocsPrefix(ctx context.Context, kind, prefix string, fn func(id string, doc []byte) error) error
}

// Doc is one document of PutDocs.
type Doc struct {
	Kind, ID string
	Doc      []byte
}

// LastDocs returns docs without any document that a later one of the
// same kind and id replaces, in their order otherwise: what a backend
// writing them in one statement or request (where a key may appear only
// once) stores. docs itself is returned when no key repeats.
func LastDocs(docs []Doc) []Doc {
	type key struct{ kind, id string }
	last := make(map[key]int, len(docs))
	for i, d := range docs {
		last[key{d.Kind, d.ID}] = i
	}
	if len(last) == len(docs) {
		return docs
	}
	out := make([]Doc, 0, len(last))
	for i, d := range docs {
		if last[key{d.Kind, d.ID}] == i {
			out = append(out, d)
		}
	}
	return out
}

// Blobs are content-addressed bytes: function code, by digest.
type Blobs interface {
	// PutBlob stores content-addressed bytes (function code) under its
	// SHA-256 hex digest. Idempotent.
	PutBlob(ctx context.Context, digest string, data []byte) error
	// GetBlob returns the bytes stored under digest, or ErrNotFound.
	GetBlob(ctx context.Context, digest string) ([]byte, error)
}

// DocStore is the documents and the blobs they name: what the function
// registry keeps in the index (definitions and their code).
type DocStore interface {
	Docs
	Blobs
}

// DocWatcher is implemented by backends that can push document changes
// (CouchDB's _changes feed, PostgreSQL's LISTEN/NOTIFY): WatchDocs calls fn once when it starts and
// after every batch of changes to documents of kind, until ctx ends.
type DocWatcher interface {
	WatchDocs(ctx context.Context, kind string, fn func()) error
}

// DocRevisions is implemented by backends that can say cheaply whether
// documents changed, where they cannot push changes (bolt): DocsRevision
// returns a number that changes whenever a document of kind is put or
// deleted, so that a reader polls it instead of re-reading every document.
type DocRevisions interface {
	DocsRevision(ctx context.Context, kind string) (uint64, error)
}
