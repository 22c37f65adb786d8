package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dedupfn/dedupfn/internal/index"
)

// claimCols are the columns of a record, in scanRecord's order.
const claimCols = `key, state, parts, owner, token, lease_until, attempt, external_id,
	output, result, function_ms, error, error_class, created, updated`

// scanRecord scans claimCols (after any extra destinations) from row.
func scanRecord(row pgx.Row, extra ...any) (index.Record, error) {
	var (
		r      index.Record
		state  string
		lease  *time.Time
		result []byte
	)
	dest := append(extra, &r.Key, &state, &r.Parts, &r.Owner, &r.Token, &lease, &r.Attempt, &r.ExternalID,
		&r.Output, &result, &r.FunctionMS, &r.Error, &r.ErrorClass, &r.Created, &r.Updated)
	if err := row.Scan(dest...); err != nil {
		return r, err
	}
	r.State = index.State(state)
	if lease != nil {
		r.LeaseUntil = lease.UTC()
	}
	if result != nil {
		r.Result = json.RawMessage(result)
	}
	r.Created, r.Updated = r.Created.UTC(), r.Updated.UTC()
	return r, nil
}

// claimSQL is Claim's one statement. ins creates the claim when the key
// is free; took takes over a running claim whose lease the server's clock
// says has expired; otherwise the existing row is read and classified.
// All three share one snapshot: a row another transaction inserted (or
// changed) after it was taken is not visible, and the statement then
// returns no row ('lost' for a takeover lost to another replica); Claim
// runs it again with a fresh snapshot.
const claimSQL = `
WITH ins AS (
	INSERT INTO dedupfn_claims (key, state, parts, owner, token, lease_until, attempt, created, updated)
	VALUES ($1, 'running', $2, $3, $4, now() + $5::bigint * interval '1 microsecond', 1, now(), now())
	ON CONFLICT (key) DO NOTHING
	RETURNING ` + claimCols + `
), took AS (
	UPDATE dedupfn_claims
	SET owner = $3, token = $4, lease_until = now() + $5::bigint * interval '1 microsecond',
		attempt = attempt + 1, updated = now()
	WHERE key = $1 AND state = 'running' AND lease_until <= now() AND NOT EXISTS (SELECT FROM ins)
	RETURNING ` + claimCols + `
)
SELECT 'miss', now(), ` + claimCols + ` FROM ins
UNION ALL
SELECT 'miss', now(), ` + claimCols + ` FROM took
UNION ALL
SELECT CASE WHEN state <> 'running' THEN 'hit'
	WHEN lease_until IS NULL OR lease_until > now() THEN 'wait'
	ELSE 'lost' END, now(), ` + claimCols + `
FROM dedupfn_claims
WHERE key = $1 AND NOT EXISTS (SELECT FROM ins) AND NOT EXISTS (SELECT FROM took)`

// Claim implements index.Claims in one statement, so one round trip: see
// claimSQL. Only a claim racing another replica's write to the same key
// runs it again.
func (d *DB) Claim(ctx context.Context, key string, parts index.Parts, owner string, lease time.Duration) (index.Claimed, error) {
	if lease <= 0 {
		return index.Claimed{}, fmt.Errorf("postgres: lease must be > 0, got %s", lease)
	}
	ctx, cancel := d.call(ctx)
	defer cancel()
	for range maxClaimTries {
		var (
			outcome string
			now     time.Time
		)
		r, err := scanRecord(d.pool.QueryRow(ctx, claimSQL, key, parts, owner, newToken(), micros(lease)), &outcome, &now)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			continue // raced an uncommitted insert or a delete: look again
		case err != nil:
			return index.Claimed{}, fmt.Errorf("postgres: claim %s: %w", key, err)
		}
		d.observe(now)
		switch outcome {
		case "miss":
			return index.Claimed{Outcome: index.Miss, Record: r}, nil
		case "hit":
			return index.Claimed{Outcome: index.Hit, Record: r}, nil
		case "wait":
			return index.Claimed{Outcome: index.Wait, Record: r}, nil
		}
		// "lost": another replica took the expired lease over first.
	}
	return index.Claimed{}, fmt.Errorf("postgres: claim %s: still racing other writers after %d tries", key, maxClaimTries)
}

// fenced runs one UPDATE or DELETE whose WHERE clause holds the token
// check; no row affected means token does not own key.
func (d *DB) fenced(ctx context.Context, op, key, token, sql string, args ...any) error {
	if token == "" {
		return index.ErrNotOwner
	}
	ctx, cancel := d.call(ctx)
	defer cancel()
	tag, err := d.pool.Exec(ctx, sql, append([]any{key, token}, args...)...)
	if err != nil {
		return fmt.Errorf("postgres: %s %s: %w", op, key, err)
	}
	if tag.RowsAffected() == 0 {
		return index.ErrNotOwner
	}
	return nil
}

// owned is the WHERE clause of every fenced statement.
const owned = ` WHERE key = $1 AND token = $2 AND state = 'running'`

// Renew implements index.Claims.
func (d *DB) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("postgres: lease must be > 0, got %s", lease)
	}
	return d.fenced(ctx, "renew", key, token, `UPDATE dedupfn_claims
		SET lease_until = now() + $3::bigint * interval '1 microsecond', updated = now()`+owned, micros(lease))
}

// SetExternalID implements index.Claims.
func (d *DB) SetExternalID(ctx context.Context, key, token, externalID string) error {
	return d.fenced(ctx, "set external id", key, token,
		`UPDATE dedupfn_claims SET external_id = $3, updated = now()`+owned, externalID)
}

// completeSQL completes the claim and, only if it was the caller's,
// stores the completion's documents: one statement, one transaction.
var completeSQL = `
WITH c AS (
	UPDATE dedupfn_claims
	SET state = 'done', output = $3, result = $4, function_ms = $5, token = '', lease_until = NULL, updated = now()` + owned + `
	RETURNING key
), docs AS (` + upsertDocsSQL(6, "WHERE EXISTS (SELECT 1 FROM c)") + `
)
SELECT count(*) FROM c`

// Complete implements index.Claims. The completing owner stays on the
// record, for operators; its token and lease are cleared.
func (d *DB) Complete(ctx context.Context, key, token string, c index.Completion) error {
	if token == "" {
		return index.ErrNotOwner
	}
	var result []byte
	if c.Result != nil {
		result = []byte(c.Result)
	}
	kinds, ids, bodies := docArrays(c.Docs)
	ctx, cancel := d.call(ctx)
	defer cancel()
	var n int
	if err := d.pool.QueryRow(ctx, completeSQL, key, token, c.Output, result, c.FunctionMS, kinds, ids, bodies).Scan(&n); err != nil {
		return fmt.Errorf("postgres: complete %s: %w", key, err)
	}
	if n == 0 {
		return index.ErrNotOwner
	}
	return nil
}

// Fail implements index.Claims.
func (d *DB) Fail(ctx context.Context, key, token, msg, class string, cache bool) error {
	if !cache {
		return d.fenced(ctx, "fail", key, token, `DELETE FROM dedupfn_claims`+owned)
	}
	return d.fenced(ctx, "fail", key, token, `UPDATE dedupfn_claims
		SET state = 'failed', error = $3, error_class = $4, token = '', lease_until = NULL, updated = now()`+owned,
		msg, class)
}

// Release implements index.Claims.
func (d *DB) Release(ctx context.Context, key, token string) error {
	return d.fenced(ctx, "release", key, token, `DELETE FROM dedupfn_claims`+owned)
}

// Get implements index.Claims.
func (d *DB) Get(ctx context.Context, key string) (index.Record, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	var now time.Time
	r, err := scanRecord(d.pool.QueryRow(ctx, `SELECT now(), `+claimCols+` FROM dedupfn_claims WHERE key = $1`, key), &now)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return r, index.ErrNotFound
	case err != nil:
		return r, fmt.Errorf("postgres: get claim %s: %w", key, err)
	}
	d.observe(now)
	return r, nil
}

// Delete implements index.Claims.
func (d *DB) Delete(ctx context.Context, key string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	if _, err := d.pool.Exec(ctx, `DELETE FROM dedupfn_claims WHERE key = $1`, key); err != nil {
		return fmt.Errorf("postgres: delete claim %s: %w", key, err)
	}
	return nil
}

// DeleteResult implements index.Claims: one DELETE conditioned on the
// state and update time that were checked.
func (d *DB) DeleteResult(ctx context.Context, key string, updated time.Time) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	_, err := d.pool.Exec(ctx, `DELETE FROM dedupfn_claims WHERE key = $1 AND state <> 'running' AND updated = $2`, key, updated)
	if err != nil {
		return fmt.Errorf("postgres: delete result %s: %w", key, err)
	}
	return nil
}

// RepointOutput implements index.Claims: one UPDATE conditioned on the
// state and update time that were checked, as DeleteResult's DELETE.
func (d *DB) RepointOutput(ctx context.Context, key string, updated time.Time, out index.Output) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	tag, err := d.pool.Exec(ctx, `UPDATE dedupfn_claims SET output = $3, updated = now()
		WHERE key = $1 AND state = 'done' AND updated = $2`, key, updated, out)
	if err != nil {
		return fmt.Errorf("postgres: repoint output %s: %w", key, err)
	}
	if tag.RowsAffected() == 0 {
		return index.ErrNotFound
	}
	return nil
}

// Records implements index.Claims, streaming the rows.
func (d *DB) Records(ctx context.Context, fn func(index.Record) error) error {
	rows, err := d.pool.Query(ctx, `SELECT `+claimCols+` FROM dedupfn_claims`)
	if err != nil {
		return fmt.Errorf("postgres: list claims: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return fmt.Errorf("postgres: decode claim: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: list claims: %w", err)
	}
	return nil
}
