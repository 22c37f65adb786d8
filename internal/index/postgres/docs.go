package postgres

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/dedupfn/dedupfn/internal/index"
)

// PutDoc implements index.Docs.
func (d *DB) PutDoc(ctx context.Context, kind, id string, doc []byte) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	_, err := d.pool.Exec(ctx, `INSERT INTO dedupfn_docs (kind, id, body) VALUES ($1, $2, $3)
		ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body`, kind, id, doc)
	if err != nil {
		return fmt.Errorf("postgres: put doc %s/%s: %w", kind, id, err)
	}
	return nil
}

// putDocsSQL upserts the documents given as three arrays of one length
// (kinds, ids, bodies): one statement, so one round trip and one
// transaction for any number of them. The docs trigger notifies each
// kind's watchers as PutDoc's insert does, once per kind and transaction
// (PostgreSQL folds identical notifications of a transaction).
// upsertDocsSQL stores the documents of three parallel arrays (kinds,
// ids, bodies: docArrays) at parameters $first and on, where where holds
// (a WHERE clause, or ""): PutDocs' statement, and a part of Complete's
// and AddActivation's. ON CONFLICT DO UPDATE may not touch a row twice,
// so a document replaced later in docs is left out (index.LastDocs).
func upsertDocsSQL(first int, where string) string {
	return fmt.Sprintf(`INSERT INTO dedupfn_docs (kind, id, body)
	SELECT * FROM unnest($%d::text[], $%d::text[], $%d::bytea[]) %s
	ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body`, first, first+1, first+2, where)
}

var putDocsSQL = upsertDocsSQL(1, "")

// docArrays are docs as upsertDocsSQL's parameters.
func docArrays(docs []index.Doc) (kinds, ids []string, bodies [][]byte) {
	docs = index.LastDocs(docs)
	kinds, ids, bodies = make([]string, len(docs)), make([]string, len(docs)), make([][]byte, len(docs))
	for i, doc := range docs {
		kinds[i], ids[i], bodies[i] = doc.Kind, doc.ID, doc.Doc
	}
	return kinds, ids, bodies
}

// PutDocs implements index.Docs in one statement.
func (d *DB) PutDocs(ctx context.Context, docs []index.Doc) error {
	if len(docs) == 0 {
		return nil
	}
	kinds, ids, bodies := docArrays(docs)
	ctx, cancel := d.call(ctx)
	defer cancel()
	if _, err := d.pool.Exec(ctx, putDocsSQL, kinds, ids, bodies); err != nil {
		return fmt.Errorf("postgres: put %d docs (%s/%s, ...): %w", len(docs), docs[0].Kind, docs[0].ID, err)
	}
	return nil
}

// GetDoc implements index.Docs.
func (d *DB) GetDoc(ctx context.Context, kind, id string) ([]byte, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	var body []byte
	err := d.pool.QueryRow(ctx, `SELECT body FROM dedupfn_docs WHERE kind = $1 AND id = $2`, kind, id).Scan(&body)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, index.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("postgres: get doc %s/%s: %w", kind, id, err)
	}
	return body, nil
}

// DeleteDoc implements index.Docs.
func (d *DB) DeleteDoc(ctx context.Context, kind, id string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	tag, err := d.pool.Exec(ctx, `DELETE FROM dedupfn_docs WHERE kind = $1 AND id = $2`, kind, id)
	if err != nil {
		return fmt.Errorf("postgres: delete doc %s/%s: %w", kind, id, err)
	}
	if tag.RowsAffected() == 0 {
		return index.ErrNotFound
	}
	return nil
}

// Docs implements index.Docs.
func (d *DB) Docs(ctx context.Context, kind string, fn func(id string, doc []byte) error) error {
	return d.DocsPrefix(ctx, kind, "", fn)
}

// docsPrefixSQL lists the documents of kind $1 from id $2 (the prefix)
// to $3 (the prefix followed by the largest code point).
const docsPrefixSQL = `SELECT id, body FROM dedupfn_docs
	WHERE kind = $1 AND id >= $2 AND id < $3 AND starts_with(id, $2) ORDER BY id`

// DocsPrefix implements index.Docs with a range of the primary key (kind,
// id COLLATE "C", so byte order), as ActivationsByPrefix does: id >= prefix
// and below prefix followed by the largest code point. A range, not LIKE:
// a parameter in a LIKE pattern cannot use the index in a generic plan,
// and _ and % would match.
func (d *DB) DocsPrefix(ctx context.Context, kind, prefix string, fn func(id string, doc []byte) error) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	sql, args := `SELECT id, body FROM dedupfn_docs WHERE kind = $1 ORDER BY id`, []any{kind}
	if prefix != "" {
		sql = docsPrefixSQL
		args = append(args, prefix, prefix+string(utf8.MaxRune))
	}
	rows, err := d.pool.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("postgres: list docs %s/%s: %w", kind, prefix, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   string
			body []byte
		)
		if err := rows.Scan(&id, &body); err != nil {
			return fmt.Errorf("postgres: decode doc %s: %w", kind, err)
		}
		if err := fn(id, body); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: list docs %s/%s: %w", kind, prefix, err)
	}
	return nil
}

// PutBlob implements index.Blobs.
func (d *DB) PutBlob(ctx context.Context, digest string, data []byte) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	_, err := d.pool.Exec(ctx, `INSERT INTO dedupfn_blobs (digest, data) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING`, digest, data)
	if err != nil {
		return fmt.Errorf("postgres: put blob %s: %w", digest, err)
	}
	return nil
}

// GetBlob implements index.Blobs.
func (d *DB) GetBlob(ctx context.Context, digest string) ([]byte, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	var data []byte
	err := d.pool.QueryRow(ctx, `SELECT data FROM dedupfn_blobs WHERE digest = $1`, digest).Scan(&data)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, index.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("postgres: get blob %s: %w", digest, err)
	}
	return data, nil
}
