package couchdb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	kivik "github.com/go-kivik/kivik/v4"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
)

// actDoc is an activation record stored as a document.
type actDoc struct {
	ID   string `json:"_id"`
	Rev  string `json:"_rev,omitempty"`
	Type string `json:"type"`
	// Sort is Start in UTC with a fixed number of digits: the views sort
	// on it, because Start's own encoding (any zone, trailing zeros
	// trimmed) does not sort as text in time order.
	Sort string `json:"sort"`
	activation.Record
}

// sortTime is the fixed-width UTC form of t, ordered as text like t in time.
const sortTime = "2006-01-02T15:04:05.000000000Z"

// AddActivation implements index.Activations: a create, so a second add of the
// same id is a 409 and changes nothing. Concurrent calls share one
// _bulk_docs request (d.acts): under load the server takes one request
// for many activations instead of one each. That request is bounded by
// the index's timeout, not by ctx, since it carries other callers' too.
// docs are put first (CouchDB has no transactions): a record is never
// there without them.
func (d *DB) AddActivation(ctx context.Context, r activation.Record, docs ...index.Doc) error {
	if r.ID == "" {
		return errors.New("couchdb: activation without id")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.PutDocs(ctx, docs); err != nil {
		return err
	}
	doc := actDoc{ID: actPrefix + r.ID, Type: "activation", Sort: r.Start.UTC().Format(sortTime), Record: r}
	if err := d.acts.Do(doc); err != nil {
		return fmt.Errorf("couchdb: add activation %s: %w", r.ID, err)
	}
	return nil
}

// writeActivations writes a batch of activations in one _bulk_docs
// request. One already there (a redelivered event) is not an error.
func (d *DB) writeActivations(batch []actDoc) []error {
	ctx, cancel := d.call(context.Background())
	defer cancel()
	docs := make([]any, len(batch))
	for i := range batch {
		docs[i] = &batch[i]
	}
	errs := make([]error, len(batch))
	results, err := d.db.BulkDocs(ctx, docs)
	if err == nil && len(results) != len(batch) {
		err = fmt.Errorf("bulk write answered %d results for %d activations", len(results), len(batch))
	}
	for i := range errs {
		switch {
		case err != nil:
			errs[i] = err
		case results[i].Error != nil && kivik.HTTPStatus(results[i].Error) != http.StatusConflict:
			errs[i] = results[i].Error
		}
	}
	return errs
}

// GetActivation implements index.Activations.
func (d *DB) GetActivation(ctx context.Context, id string) (activation.Record, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	var a actDoc
	err := d.db.Get(ctx, actPrefix+id).ScanDoc(&a)
	if kivik.HTTPStatus(err) == http.StatusNotFound {
		return a.Record, index.ErrNotFound
	}
	if err != nil {
		return a.Record, fmt.Errorf("couchdb: get activation %s: %w", id, err)
	}
	return a.Record, nil
}

// ActivationsByPrefix implements index.Activations: _all_docs from
// act:prefix to act:prefix followed by the largest code point (every id
// with the prefix; CouchDB collates document ids as raw strings), in
// pages, since another tenant's records are skipped here and must not
// use up the limit.
func (d *DB) ActivationsByPrefix(ctx context.Context, prefix, tenant string, limit int) ([]activation.Record, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	start, end := actPrefix+prefix, actPrefix+prefix+string(utf8.MaxRune)
	var out []activation.Record
	for skip := 0; len(out) < limit; {
		rs := d.db.AllDocs(ctx, kivik.IncludeDocs(), kivik.Params(map[string]any{
			"startkey": start, "endkey": end, "limit": limit, "skip": skip,
		}))
		n := 0
		for rs.Next() {
			n++
			var a actDoc
			if err := rs.ScanDoc(&a); err != nil {
				rs.Close()
				return nil, fmt.Errorf("couchdb: decode activation: %w", err)
			}
			start = a.ID // the next page starts after the last id read
			if (tenant == "" || a.Tenant == tenant) && len(out) < limit {
				out = append(out, a.Record)
			}
		}
		err := rs.Err()
		rs.Close()
		if err != nil {
			return nil, fmt.Errorf("couchdb: activations by prefix %s: %w", prefix, err)
		}
		if n < limit {
			break
		}
		skip = 1
	}
	return out, nil
}

// Activations implements index.Activations through the "acts" view, newest first.
func (d *DB) Activations(ctx context.Context, f activation.Filter) ([]activation.Record, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	limit := index.ActivationsLimit(f)
	t, fn := "*", "*"
	if f.Tenant != "" {
		t = "t:" + f.Tenant
	}
	if f.Function != "" {
		fn = "f:" + f.Function
	}
	end := []any{t, fn} // descending: the lower bound, inclusive
	if !f.Since.IsZero() {
		end = append(end, f.Since.UTC().Format(sortTime))
	}
	rs := d.db.Query(ctx, designDoc, "acts", kivik.IncludeDocs(), kivik.Params(map[string]any{
		"startkey": []any{t, fn, map[string]any{}}, "endkey": end, "descending": true, "limit": limit,
	}))
	defer rs.Close()
	var out []activation.Record
	for rs.Next() {
		var a actDoc
		if err := rs.ScanDoc(&a); err != nil {
			return nil, fmt.Errorf("couchdb: decode activation: %w", err)
		}
		out = append(out, a.Record)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("couchdb: list activations: %w", err)
	}
	return out, nil
}

// Stats implements index.Activations through the "stats" view's reduce, so every
// replica sharing the database reports the same cluster-wide totals.
func (d *DB) Stats(ctx context.Context, tenant string) (activation.Stats, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	params := map[string]any{"reduce": true}
	if tenant != "" {
		params["key"] = tenant
	}
	rs := d.db.Query(ctx, designDoc, "stats", kivik.Params(params))
	defer rs.Close()
	var st activation.Stats
	if rs.Next() {
		if err := rs.ScanValue(&st); err != nil {
			return st, fmt.Errorf("couchdb: decode stats: %w", err)
		}
	}
	if err := rs.Err(); err != nil {
		return st, fmt.Errorf("couchdb: stats: %w", err)
	}
	return st, nil
}

// FunctionStats implements index.Activations through the "fnstats" view's
// reduce, grouped by [tenant, function]: cluster-wide, like Stats.
func (d *DB) FunctionStats(ctx context.Context, tenant string) ([]activation.FunctionStats, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	out, err := d.functionStats(ctx, tenant)
	if kivik.HTTPStatus(err) == http.StatusNotFound {
		// A replica of an older version rewrote the design document
		// without the view (a rolling upgrade): put it back, once.
		if err = d.ensureDesign(ctx); err == nil {
			out, err = d.functionStats(ctx, tenant)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("couchdb: function stats %q: %w", tenant, err)
	}
	index.SortFunctionStats(out) // the view collates keys, not Go's byte order
	return out, nil
}

func (d *DB) functionStats(ctx context.Context, tenant string) ([]activation.FunctionStats, error) {
	params := map[string]any{"reduce": true, "group": true}
	if tenant != "" {
		params["startkey"] = []any{tenant}
		params["endkey"] = []any{tenant, map[string]any{}}
	}
	rs := d.db.Query(ctx, designDoc, "fnstats", kivik.Params(params))
	defer rs.Close()
	out := []activation.FunctionStats{}
	for rs.Next() {
		var key []string
		if err := rs.ScanKey(&key); err != nil {
			return nil, fmt.Errorf("decode function stats key: %w", err)
		}
		if len(key) != 2 {
			return nil, fmt.Errorf("function stats key must be [tenant, function], got %q", key)
		}
		fs := activation.FunctionStats{Tenant: key[0], Function: key[1]}
		if err := rs.ScanValue(&fs.Stats); err != nil {
			return nil, fmt.Errorf("decode function stats %s/%s: %w", key[0], key[1], err)
		}
		out = append(out, fs)
	}
	return out, rs.Err()
}

// tallyDoc holds the totals of pruned activations, per tenant and per
// tenant and function; the stats and fnstats views add them to those of
// the activations still kept.
type tallyDoc struct {
	ID    string                      `json:"_id"`
	Rev   string                      `json:"_rev,omitempty"`
	Type  string                      `json:"type"`
	Stats map[string]activation.Stats `json:"stats"`
	// Functions: tenant → function → totals. Tallies written before it
	// existed have none.
	Functions map[string]map[string]activation.Stats `json:"functions"`
}

// add counts r in the tally.
func (t *tallyDoc) add(r activation.Record) {
	st := t.Stats[r.Tenant]
	st.Add(r)
	t.Stats[r.Tenant] = st
	fns := t.Functions[r.Tenant]
	if fns == nil {
		fns = map[string]activation.Stats{}
		t.Functions[r.Tenant] = fns
	}
	fst := fns[r.Function]
	fst.Add(r)
	fns[r.Function] = fst
}

// reset empties the tally's totals.
func (t *tallyDoc) reset() {
	t.Stats, t.Functions = map[string]activation.Stats{}, map[string]map[string]activation.Stats{}
}

// PruneActivations implements index.Activations. Each batch is one bulk request
// that creates a tally document with the batch's totals and deletes the
// batch's activations by their _rev; activations another replica deleted
// first (409) are then taken out of the tally again. A crash between the
// two requests of a race can count a record twice, never lose one.
func (d *DB) PruneActivations(ctx context.Context, before time.Time) (int, error) {
	cutoff := before.UTC().Format(sortTime)
	total := 0
	for {
		n, more, err := d.pruneBatch(ctx, cutoff)
		total += n
		if err != nil {
			return total, fmt.Errorf("couchdb: prune activations: %w", err)
		}
		if !more {
			return total, nil
		}
	}
}

// pruneBatch prunes up to pruneBatch activations sorted before cutoff and
// reports how many it deleted and whether to go on.
func (d *DB) pruneBatch(ctx context.Context, cutoff string) (deleted int, more bool, err error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	rs := d.db.Query(ctx, designDoc, "acts", kivik.IncludeDocs(), kivik.Params(map[string]any{
		"startkey": []any{"*", "*"}, "endkey": []any{"*", "*", cutoff}, "inclusive_end": false, "limit": pruneBatch,
	}))
	var acts []actDoc
	for rs.Next() {
		var a actDoc
		if err := rs.ScanDoc(&a); err != nil {
			rs.Close()
			return 0, false, fmt.Errorf("decode activation: %w", err)
		}
		acts = append(acts, a)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return 0, false, fmt.Errorf("list activations: %w", err)
	}
	if len(acts) == 0 {
		return 0, false, nil
	}
	tally := tallyDoc{ID: tallyPrefix + newToken(), Type: "tally"}
	tally.reset()
	docs := []any{&tally}
	for _, a := range acts {
		tally.add(a.Record)
		docs = append(docs, map[string]any{"_id": a.ID, "_rev": a.Rev, "_deleted": true})
	}
	results, err := d.db.BulkDocs(ctx, docs)
	if err != nil {
		return 0, false, fmt.Errorf("bulk delete: %w", err)
	}
	if len(results) != len(docs) || results[0].Error != nil {
		err := errors.New("no result")
		if len(results) > 0 && results[0].Error != nil {
			err = results[0].Error
		}
		// Without the tally the deletions would lower the totals: give
		// up on this batch (deleted ones are lost from Stats) loudly.
		return 0, false, fmt.Errorf("write tally %s: %w", tally.ID, err)
	}
	tally.Rev = results[0].Rev
	recount := tallyDoc{ID: tally.ID, Rev: tally.Rev, Type: tally.Type}
	recount.reset()
	for i, r := range results[1:] {
		if r.Error != nil {
			continue // deleted (or changed) by someone else: theirs to count
		}
		deleted++
		recount.add(acts[i].Record)
	}
	switch {
	case deleted == 0:
		_, err = d.db.Delete(ctx, tally.ID, tally.Rev)
	case deleted < len(acts):
		_, err = d.db.Put(ctx, recount.ID, recount)
	}
	if err != nil {
		return deleted, false, fmt.Errorf("correct tally %s: %w", tally.ID, err)
	}
	// Go on while whole batches are deleted; a batch nobody could delete
	// would come back forever.
	return deleted, len(acts) == pruneBatch && deleted > 0, nil
}
