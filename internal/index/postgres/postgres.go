// Package postgres is the dedup index on PostgreSQL through pgx and its
// pool. A claim is one statement: INSERT … ON CONFLICT DO NOTHING that,
// when it loses, takes an expired lease over or reads the existing row in
// the same statement; completion, renewal, release and takeover are
// single UPDATE or DELETE statements fenced on the owner's token. Leases
// are compared with the server's clock (now()), never a replica's. Waiters
// and registry watchers are woken by LISTEN/NOTIFY. The schema is created
// and migrated at Open from versioned SQL embedded in the binary; see
// docs/postgres.md.
//
// URL: postgres://[user:pass@]host:port/dbname[?options] (or postgresql://),
// with any option pgx understands, e.g. sslmode=disable|require|verify-full,
// connect_timeout=SECONDS, pool_max_conns=N (default DefaultMaxConns).
// Credentials missing from the URL come from DEDUPFN_POSTGRES_USER and
// DEDUPFN_POSTGRES_PASSWORD.
package postgres

import (
	"cmp"
	"context"
	cryptorand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
)

// Defaults.
const (
	// DefaultTimeout bounds one index call whose context has no deadline.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxConns is the pool size when the URL sets no pool_max_conns.
	DefaultMaxConns = 16
	// statShards is how many rows each tenant's totals are spread over,
	// so that concurrent AddActivation calls rarely queue on one row.
	statShards = 16
	// pruneBatch is how many activations one statement of
	// PruneActivations deletes.
	pruneBatch = 1000
	// maxClaimTries bounds the re-runs of a claim statement that raced
	// another replica's insert, takeover or delete (see Claim).
	maxClaimTries = 50
)

func init() {
	index.Register("postgres", Open)
	index.Register("postgresql", Open)
}

// DB is a PostgreSQL-backed index.
type DB struct {
	pool      *pgxpool.Pool
	log       *slog.Logger
	ln        *listener // LISTEN connection for WaitChange and WatchDocs
	closeOnce sync.Once
	clock     func() time.Time // this replica's clock: time.Now, skewed by tests
	// ahead is how far the server's clock runs ahead of clock (negative:
	// behind), as last read with a claim; see dbNow.
	ahead atomic.Int64
}

// observe records the server's now() read by a statement that has just
// returned. now() is its transaction's start, so the estimate errs by up
// to one round trip towards the server's clock being behind: a waiter
// timed with it wakes that much after a lease ends, never before.
func (d *DB) observe(server time.Time) {
	d.ahead.Store(int64(server.Sub(d.clock())))
}

// dbNow estimates the server's clock, on which leases are set and
// checked, from this replica's clock and the offset last observed.
func (d *DB) dbNow() time.Time {
	return d.clock().Add(time.Duration(d.ahead.Load()))
}

var (
	_ index.Index      = (*DB)(nil)
	_ index.Waiter     = (*DB)(nil)
	_ index.DocWatcher = (*DB)(nil)
)

// Open opens postgres://[user:pass@]host:port/dbname, connecting and
// migrating the schema to this version's (see docs/postgres.md).
func Open(ctx context.Context, u *url.URL, opts index.Options) (index.Index, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return openConfig(ctx, cfg, opts.Logger)
}

// parseURL turns the index URL into a pool configuration, taking missing
// credentials from the environment.
func parseURL(u *url.URL) (*pgxpool.Config, error) {
	c := *u
	c.Scheme = "postgres"
	q := u.Query()
	if (u.Host == "" && q.Get("host") == "") || strings.Trim(u.Path, "/") == "" {
		return nil, fmt.Errorf("postgres: url must be postgres://[user:pass@]host:port/dbname, got %q", u.Redacted())
	}
	user := cmp.Or(u.User.Username(), os.Getenv("DEDUPFN_POSTGRES_USER"))
	pass, _ := u.User.Password()
	pass = cmp.Or(pass, os.Getenv("DEDUPFN_POSTGRES_PASSWORD"))
	switch {
	case user != "" && pass != "":
		c.User = url.UserPassword(user, pass)
	case user != "":
		c.User = url.User(user)
	}
	cfg, err := pgxpool.ParseConfig(c.String())
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url %q: %w", u.Redacted(), err)
	}
	if !q.Has("pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	return cfg, nil
}

// openConfig connects with cfg and migrates the schema.
func openConfig(ctx context.Context, cfg *pgxpool.Config, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "index.postgres", "db", cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect %s: %w", cfg.ConnConfig.Host, err)
	}
	d := &DB{pool: pool, log: log, clock: time.Now}
	d.ln = newListener(cfg.ConnConfig, log)
	cctx, cancel := d.call(ctx)
	defer cancel()
	applied, had, err := migrate(cctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	switch want := schemaVersion(); {
	case len(applied) > 0:
		log.Info("migrated schema", "from", had, "to", applied[len(applied)-1])
	case had > want:
		// A newer replica migrated it; migrations only add, so this
		// one keeps working (as during a rolling upgrade).
		log.Warn("schema is newer than this version knows", "schema", had, "known", want)
	}
	return d, nil
}

// Close stops the listener and closes the pool. Safe to call twice.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		d.ln.stop()
		d.pool.Close()
	})
	return nil
}

// call bounds one index call by DefaultTimeout, unless ctx carries a
// deadline already.
func (d *DB) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// newToken is a fresh fencing token (128 random bits).
func newToken() string { return cryptorand.Text() }

// micros is d in whole microseconds, the server's interval resolution.
func micros(d time.Duration) int64 { return d.Microseconds() }

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

// Claim implements index.Index in one statement, so one round trip: see
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

// Renew implements index.Index.
func (d *DB) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("postgres: lease must be > 0, got %s", lease)
	}
	return d.fenced(ctx, "renew", key, token, `UPDATE dedupfn_claims
		SET lease_until = now() + $3::bigint * interval '1 microsecond', updated = now()`+owned, micros(lease))
}

// SetExternalID implements index.Index.
func (d *DB) SetExternalID(ctx context.Context, key, token, externalID string) error {
	return d.fenced(ctx, "set external id", key, token,
		`UPDATE dedupfn_claims SET external_id = $3, updated = now()`+owned, externalID)
}

// Complete implements index.Index. The completing owner stays on the
// record, for operators; its token and lease are cleared.
func (d *DB) Complete(ctx context.Context, key, token string, c index.Completion) error {
	var result []byte
	if c.Result != nil {
		result = []byte(c.Result)
	}
	return d.fenced(ctx, "complete", key, token, `UPDATE dedupfn_claims
		SET state = 'done', output = $3, result = $4, function_ms = $5, token = '', lease_until = NULL, updated = now()`+owned,
		c.Output, result, c.FunctionMS)
}

// Fail implements index.Index.
func (d *DB) Fail(ctx context.Context, key, token, msg, class string, cache bool) error {
	if !cache {
		return d.fenced(ctx, "fail", key, token, `DELETE FROM dedupfn_claims`+owned)
	}
	return d.fenced(ctx, "fail", key, token, `UPDATE dedupfn_claims
		SET state = 'failed', error = $3, error_class = $4, token = '', lease_until = NULL, updated = now()`+owned,
		msg, class)
}

// Release implements index.Index.
func (d *DB) Release(ctx context.Context, key, token string) error {
	return d.fenced(ctx, "release", key, token, `DELETE FROM dedupfn_claims`+owned)
}

// Get implements index.Index.
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

// Delete implements index.Index.
func (d *DB) Delete(ctx context.Context, key string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	if _, err := d.pool.Exec(ctx, `DELETE FROM dedupfn_claims WHERE key = $1`, key); err != nil {
		return fmt.Errorf("postgres: delete claim %s: %w", key, err)
	}
	return nil
}

// DeleteResult implements index.Index: one DELETE conditioned on the
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

// Records implements index.Index, streaming the rows.
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

// PutDoc implements index.Index.
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

// GetDoc implements index.Index.
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

// DeleteDoc implements index.Index.
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

// Docs implements index.Index.
func (d *DB) Docs(ctx context.Context, kind string, fn func(id string, doc []byte) error) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	rows, err := d.pool.Query(ctx, `SELECT id, body FROM dedupfn_docs WHERE kind = $1 ORDER BY id`, kind)
	if err != nil {
		return fmt.Errorf("postgres: list docs %s: %w", kind, err)
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
		return fmt.Errorf("postgres: list docs %s: %w", kind, err)
	}
	return nil
}

// PutBlob implements index.Index.
func (d *DB) PutBlob(ctx context.Context, digest string, data []byte) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	_, err := d.pool.Exec(ctx, `INSERT INTO dedupfn_blobs (digest, data) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING`, digest, data)
	if err != nil {
		return fmt.Errorf("postgres: put blob %s: %w", digest, err)
	}
	return nil
}

// GetBlob implements index.Index.
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

// addStatsSet adds the row being inserted (excluded) to the existing
// totals row s of dedupfn_stats or dedupfn_function_stats.
const addStatsSet = `
	events = s.events + excluded.events, runs = s.runs + excluded.runs, hits = s.hits + excluded.hits,
	waits = s.waits + excluded.waits, errors = s.errors + excluded.errors, skipped = s.skipped + excluded.skipped,
	dead_letters = s.dead_letters + excluded.dead_letters, function_ms = s.function_ms + excluded.function_ms,
	saved_ms = s.saved_ms + excluded.saved_ms`

// addActivationSQL inserts the activation and, only if that insert won
// (a first add, not a redelivery), adds its totals to one of its tenant's
// stats shards and to the same shard of its function's: one statement,
// so a crash can neither count a record without keeping it nor the
// other way round, nor count it in one total and not the other.
const addActivationSQL = `
WITH ins AS (
	INSERT INTO dedupfn_activations (id, tenant, function, start, bucket, key, etag, record)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
	ON CONFLICT (id) DO NOTHING
	RETURNING tenant, function
), fn AS (
	INSERT INTO dedupfn_function_stats AS s (tenant, function, shard, events, runs, hits, waits, errors, skipped, dead_letters, function_ms, saved_ms)
	SELECT tenant, function, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 FROM ins
	ON CONFLICT (tenant, function, shard) DO UPDATE SET` + addStatsSet + `
)
INSERT INTO dedupfn_stats AS s (tenant, shard, events, runs, hits, waits, errors, skipped, dead_letters, function_ms, saved_ms)
SELECT tenant, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 FROM ins
ON CONFLICT (tenant, shard) DO UPDATE SET` + addStatsSet

// AddActivation implements index.Index in one statement (see
// addActivationSQL).
func (d *DB) AddActivation(ctx context.Context, r activation.Record) error {
	if r.ID == "" {
		return errors.New("postgres: activation without id")
	}
	doc, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("postgres: encode activation %s: %w", r.ID, err)
	}
	var st activation.Stats
	st.Add(r)
	ctx, cancel := d.call(ctx)
	defer cancel()
	_, err = d.pool.Exec(ctx, addActivationSQL,
		r.ID, r.Tenant, r.Function, r.Start, r.Event.Bucket, r.Event.Key, r.Event.ETag, string(doc),
		rand.IntN(statShards), st.Events, st.Runs, st.Hits, st.Waits, st.Errors, st.Skipped, st.DeadLetters, st.FunctionMS, st.SavedMS)
	if err != nil {
		return fmt.Errorf("postgres: add activation %s: %w", r.ID, err)
	}
	return nil
}

// GetActivation implements index.Index.
func (d *DB) GetActivation(ctx context.Context, id string) (activation.Record, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	var r activation.Record
	err := d.pool.QueryRow(ctx, `SELECT record FROM dedupfn_activations WHERE id = $1`, id).Scan(&r)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return r, index.ErrNotFound
	case err != nil:
		return r, fmt.Errorf("postgres: get activation %s: %w", id, err)
	}
	return r, nil
}

// Activations implements index.Index, newest first, through the index
// that matches the filter.
func (d *DB) Activations(ctx context.Context, f activation.Filter) ([]activation.Record, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var (
		where []string
		args  []any
	)
	if f.Tenant != "" {
		args = append(args, f.Tenant)
		where = append(where, fmt.Sprintf("tenant = $%d", len(args)))
	}
	if f.Function != "" {
		args = append(args, f.Function)
		where = append(where, fmt.Sprintf("function = $%d", len(args)))
	}
	if !f.Since.IsZero() {
		args = append(args, f.Since)
		where = append(where, fmt.Sprintf("start >= $%d", len(args)))
	}
	sql := `SELECT record FROM dedupfn_activations`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	sql += fmt.Sprintf(` ORDER BY start DESC, id DESC LIMIT $%d`, len(args))
	rows, err := d.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list activations: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[activation.Record])
	if err != nil {
		return nil, fmt.Errorf("postgres: list activations: %w", err)
	}
	return out, nil
}

// ObjectSeen implements index.Index.
func (d *DB) ObjectSeen(ctx context.Context, bucket, key, etag string) (bool, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	var seen bool
	err := d.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM dedupfn_activations WHERE bucket = $1 AND key = $2 AND etag = $3)`,
		bucket, key, etag).Scan(&seen)
	if err != nil {
		return false, fmt.Errorf("postgres: object seen %s/%s: %w", bucket, key, err)
	}
	return seen, nil
}

// Stats implements index.Index: the sum of the tenant's (or every
// tenant's) stats shards, which pruning does not touch.
func (d *DB) Stats(ctx context.Context, tenant string) (activation.Stats, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	sql := `SELECT coalesce(sum(events), 0)::bigint, coalesce(sum(runs), 0)::bigint, coalesce(sum(hits), 0)::bigint,
		coalesce(sum(waits), 0)::bigint, coalesce(sum(errors), 0)::bigint, coalesce(sum(skipped), 0)::bigint,
		coalesce(sum(dead_letters), 0)::bigint, coalesce(sum(function_ms), 0), coalesce(sum(saved_ms), 0)
		FROM dedupfn_stats`
	var args []any
	if tenant != "" {
		sql += ` WHERE tenant = $1`
		args = append(args, tenant)
	}
	var st activation.Stats
	err := d.pool.QueryRow(ctx, sql, args...).Scan(&st.Events, &st.Runs, &st.Hits, &st.Waits, &st.Errors,
		&st.Skipped, &st.DeadLetters, &st.FunctionMS, &st.SavedMS)
	if err != nil {
		return st, fmt.Errorf("postgres: stats %q: %w", tenant, err)
	}
	return st, nil
}

// FunctionStats implements index.Index: the sums of the functions' stats
// shards, which pruning does not touch.
func (d *DB) FunctionStats(ctx context.Context, tenant string) ([]activation.FunctionStats, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	sql := `SELECT tenant, function, sum(events)::bigint, sum(runs)::bigint, sum(hits)::bigint, sum(waits)::bigint,
		sum(errors)::bigint, sum(skipped)::bigint, sum(dead_letters)::bigint, sum(function_ms), sum(saved_ms)
		FROM dedupfn_function_stats`
	var args []any
	if tenant != "" {
		sql += ` WHERE tenant = $1`
		args = append(args, tenant)
	}
	sql += ` GROUP BY tenant, function ORDER BY tenant, function`
	rows, err := d.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: function stats %q: %w", tenant, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (activation.FunctionStats, error) {
		var fs activation.FunctionStats
		st := &fs.Stats
		err := row.Scan(&fs.Tenant, &fs.Function, &st.Events, &st.Runs, &st.Hits, &st.Waits, &st.Errors,
			&st.Skipped, &st.DeadLetters, &st.FunctionMS, &st.SavedMS)
		return fs, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: function stats %q: %w", tenant, err)
	}
	index.SortFunctionStats(out) // already in this order (COLLATE "C"): a guarantee, not work
	return out, nil
}

// PruneActivations implements index.Index in batches of pruneBatch rows.
// Replicas pruning at once skip the rows another has locked, so each row
// is deleted, and counted, once. Totals live in dedupfn_stats and
// dedupfn_function_stats, which this does not touch.
func (d *DB) PruneActivations(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		n, err := d.pruneBatch(ctx, before)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

func (d *DB) pruneBatch(ctx context.Context, before time.Time) (int, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	tag, err := d.pool.Exec(ctx, `DELETE FROM dedupfn_activations WHERE id IN (
		SELECT id FROM dedupfn_activations WHERE start < $1 ORDER BY start LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		before, pruneBatch)
	if err != nil {
		return 0, fmt.Errorf("postgres: prune activations: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
