package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
)

// addStatsSet adds the row being inserted (excluded) to the existing
// totals row s of dedupfn_stats or dedupfn_function_stats.
const addStatsSet = `
	events = s.events + excluded.events, runs = s.runs + excluded.runs, hits = s.hits + excluded.hits,
	waits = s.waits + excluded.waits, errors = s.errors + excluded.errors, skipped = s.skipped + excluded.skipped,
	deletes = s.deletes + excluded.deletes, dead_letters = s.dead_letters + excluded.dead_letters, function_ms = s.function_ms + excluded.function_ms,
	saved_ms = s.saved_ms + excluded.saved_ms`

// addActivationSQL inserts the activation and, only if that insert won
// (a first add, not a redelivery), adds its totals to one of its tenant's
// stats shards and to the same shard of its function's: one statement,
// so a crash can neither count a record without keeping it nor the
// other way round, nor count it in one total and not the other.
//
// Its first part stores the documents given with the record ($20–$22).
var addActivationSQL = `
WITH docs AS (` + upsertDocsSQL(20, "") + `
), ins AS (
	INSERT INTO dedupfn_activations (id, tenant, function, start, bucket, key, etag, record)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
	ON CONFLICT (id) DO NOTHING
	RETURNING tenant, function
), fn AS (
	INSERT INTO dedupfn_function_stats AS s (tenant, function, shard, events, runs, hits, waits, errors, skipped, deletes, dead_letters, function_ms, saved_ms)
	SELECT tenant, function, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19 FROM ins
	ON CONFLICT (tenant, function, shard) DO UPDATE SET` + addStatsSet + `
)
INSERT INTO dedupfn_stats AS s (tenant, shard, events, runs, hits, waits, errors, skipped, deletes, dead_letters, function_ms, saved_ms)
SELECT tenant, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19 FROM ins
ON CONFLICT (tenant, shard) DO UPDATE SET` + addStatsSet

// AddActivation implements index.Activations in one statement (see
// addActivationSQL).
func (d *DB) AddActivation(ctx context.Context, r activation.Record, docs ...index.Doc) error {
	if r.ID == "" {
		return errors.New("postgres: activation without id")
	}
	doc, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("postgres: encode activation %s: %w", r.ID, err)
	}
	var st activation.Stats
	st.Add(r)
	kinds, ids, bodies := docArrays(docs)
	ctx, cancel := d.call(ctx)
	defer cancel()
	_, err = d.pool.Exec(ctx, addActivationSQL,
		r.ID, r.Tenant, r.Function, r.Start, r.Event.Bucket, r.Event.Key, r.Event.ETag, string(doc),
		rand.IntN(statShards), st.Events, st.Runs, st.Hits, st.Waits, st.Errors, st.Skipped, st.Deletes, st.DeadLetters, st.FunctionMS, st.SavedMS,
		kinds, ids, bodies)
	if err != nil {
		return fmt.Errorf("postgres: add activation %s: %w", r.ID, err)
	}
	return nil
}

// GetActivation implements index.Activations.
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

// ActivationsByPrefix implements index.Activations: a range of the
// primary key (id COLLATE "C", so byte order), id >= prefix and below
// prefix followed by the largest code point, which bounds every id that
// starts with prefix. A range, not LIKE: a parameter in a LIKE pattern
// cannot use the index in a generic plan, and _ and % would match.
func (d *DB) ActivationsByPrefix(ctx context.Context, prefix, tenant string, limit int) ([]activation.Record, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	rows, err := d.pool.Query(ctx, `SELECT record FROM dedupfn_activations
		WHERE id >= $1 AND id < $2 AND starts_with(id, $1) AND ($3 = '' OR tenant = $3) ORDER BY id LIMIT $4`,
		prefix, prefix+string(utf8.MaxRune), tenant, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: activations by prefix %s: %w", prefix, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[activation.Record])
	if err != nil {
		return nil, fmt.Errorf("postgres: activations by prefix %s: %w", prefix, err)
	}
	return out, nil
}

// Activations implements index.Activations, newest first, through the index
// that matches the filter.
func (d *DB) Activations(ctx context.Context, f activation.Filter) ([]activation.Record, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	limit := index.ActivationsLimit(f)
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

// Stats implements index.Activations: the sum of the tenant's (or every
// tenant's) stats shards, which pruning does not touch.
func (d *DB) Stats(ctx context.Context, tenant string) (activation.Stats, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	sql := `SELECT coalesce(sum(events), 0)::bigint, coalesce(sum(runs), 0)::bigint, coalesce(sum(hits), 0)::bigint,
		coalesce(sum(waits), 0)::bigint, coalesce(sum(errors), 0)::bigint, coalesce(sum(skipped), 0)::bigint,
		coalesce(sum(deletes), 0)::bigint, coalesce(sum(dead_letters), 0)::bigint, coalesce(sum(function_ms), 0), coalesce(sum(saved_ms), 0)
		FROM dedupfn_stats`
	var args []any
	if tenant != "" {
		sql += ` WHERE tenant = $1`
		args = append(args, tenant)
	}
	var st activation.Stats
	err := d.pool.QueryRow(ctx, sql, args...).Scan(&st.Events, &st.Runs, &st.Hits, &st.Waits, &st.Errors,
		&st.Skipped, &st.Deletes, &st.DeadLetters, &st.FunctionMS, &st.SavedMS)
	if err != nil {
		return st, fmt.Errorf("postgres: stats %q: %w", tenant, err)
	}
	return st, nil
}

// FunctionStats implements index.Activations: the sums of the functions' stats
// shards, which pruning does not touch.
func (d *DB) FunctionStats(ctx context.Context, tenant string) ([]activation.FunctionStats, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	sql := `SELECT tenant, function, sum(events)::bigint, sum(runs)::bigint, sum(hits)::bigint, sum(waits)::bigint,
		sum(errors)::bigint, sum(skipped)::bigint, sum(deletes)::bigint, sum(dead_letters)::bigint, sum(function_ms), sum(saved_ms)
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
			&st.Skipped, &st.Deletes, &st.DeadLetters, &st.FunctionMS, &st.SavedMS)
		return fs, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: function stats %q: %w", tenant, err)
	}
	index.SortFunctionStats(out) // already in this order (COLLATE "C"): a guarantee, not work
	return out, nil
}

// PruneActivations implements index.Activations in batches of pruneBatch rows.
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
