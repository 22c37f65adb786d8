package couchdb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	kivik "github.com/go-kivik/kivik/v4"

	"github.com/dedupfn/dedupfn/internal/index"
)

// claimDoc is an index.Record stored as a document.
type claimDoc struct {
	ID   string `json:"_id"`
	Rev  string `json:"_rev,omitempty"`
	Type string `json:"type"`
	index.Record
}

func (d *DB) getClaim(ctx context.Context, key string) (claimDoc, error) {
	var c claimDoc
	err := d.db.Get(ctx, claimPrefix+key).ScanDoc(&c)
	if kivik.HTTPStatus(err) == http.StatusNotFound {
		return c, index.ErrNotFound
	}
	return c, err
}

// Claim implements index.Claims: read, and decide on what is there. A
// result or a live owner is answered by that one GET (the common hit costs
// one round trip); an absent claim is created with _id = key, which is
// atomic (409: someone else created it first, read again); an expired
// lease is taken over by an update with the _rev that was read (409:
// someone else changed it first, read again). The write never acts on a
// stale read.
func (d *DB) Claim(ctx context.Context, key string, parts index.Parts, owner string, lease time.Duration) (index.Claimed, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	if lease <= 0 {
		return index.Claimed{}, fmt.Errorf("couchdb: lease must be > 0, got %s", lease)
	}
	for range maxCASRetries {
		now := time.Now().UTC()
		cur, err := d.getClaim(ctx, key)
		switch {
		case errors.Is(err, index.ErrNotFound):
			cur = claimDoc{ID: claimPrefix + key, Type: "claim", Record: index.Record{
				Key: key, State: index.Running, Parts: parts, Created: now,
			}}
		case err != nil:
			return index.Claimed{}, fmt.Errorf("couchdb: read claim %s: %w", key, err)
		case cur.State == index.Done || cur.State == index.Failed:
			return index.Claimed{Outcome: index.Hit, Record: cur.Record}, nil
		case index.Live(cur.Record, now):
			return index.Claimed{Outcome: index.Wait, Record: cur.Record}, nil
		}
		// Absent (create, no _rev) or expired (take over, with the _rev read).
		cur.Attempt++
		cur.Owner, cur.Token, cur.LeaseUntil, cur.Updated = owner, newToken(), now.Add(lease), now
		rev, err := d.db.Put(ctx, cur.ID, cur)
		if kivik.HTTPStatus(err) == http.StatusConflict {
			continue // another replica created or took it over first: read again
		}
		if err != nil {
			return index.Claimed{}, fmt.Errorf("couchdb: write claim %s: %w", key, err)
		}
		d.held.add(key, cur, rev)
		return index.Claimed{Outcome: index.Miss, Record: cur.Record}, nil
	}
	return index.Claimed{}, fmt.Errorf("couchdb: claim %s: too many conflicts", key)
}

// cas applies change to the running claim held with token, retrying on
// conflicts; change returns false to delete the document instead. A
// claim this handle remembers writing (d.held) is not read first: the
// write carries its _rev and fails if the document changed since.
func (d *DB) cas(ctx context.Context, key, token string, change func(*index.Record) (keep bool)) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	if token == "" {
		return index.ErrNotOwner
	}
	for range maxCASRetries {
		cur, ok := d.held.get(key, token)
		if !ok {
			var err error
			cur, err = d.getClaim(ctx, key)
			if errors.Is(err, index.ErrNotFound) {
				return index.ErrNotOwner
			}
			if err != nil {
				return fmt.Errorf("couchdb: read claim %s: %w", key, err)
			}
			if cur.State != index.Running || cur.Token != token {
				return index.ErrNotOwner
			}
		}
		var rev string
		var err error
		keep := change(&cur.Record)
		if keep {
			cur.Updated = time.Now().UTC()
			rev, err = d.db.Put(ctx, cur.ID, cur)
		} else {
			_, err = d.db.Delete(ctx, cur.ID, cur.Rev)
		}
		if err != nil || !keep || cur.State != index.Running {
			d.held.drop(key)
		}
		if st := kivik.HTTPStatus(err); st == http.StatusConflict || st == http.StatusNotFound {
			continue // changed or deleted under us: re-read and re-check the token
		}
		if err != nil {
			return fmt.Errorf("couchdb: update claim %s: %w", key, err)
		}
		if keep && cur.State == index.Running {
			d.held.update(key, cur, rev)
		}
		return nil
	}
	return fmt.Errorf("couchdb: update claim %s: too many conflicts", key)
}

// Renew implements index.Claims.
func (d *DB) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("couchdb: lease must be > 0, got %s", lease)
	}
	return d.cas(ctx, key, token, func(r *index.Record) bool {
		r.LeaseUntil = time.Now().UTC().Add(lease)
		return true
	})
}

// SetExternalID implements index.Claims.
func (d *DB) SetExternalID(ctx context.Context, key, token, externalID string) error {
	return d.cas(ctx, key, token, func(r *index.Record) bool { r.ExternalID = externalID; return true })
}

// Complete implements index.Claims. The completing owner stays on the
// record, for operators; its token and lease are cleared.
// Its documents are put first (CouchDB has no transactions), so that a
// failure between the two is retried whole; they describe the output
// the caller wrote, which is there whether or not the claim is still
// the caller's.
func (d *DB) Complete(ctx context.Context, key, token string, c index.Completion) error {
	if err := d.PutDocs(ctx, c.Docs); err != nil {
		return err
	}
	return d.cas(ctx, key, token, func(r *index.Record) bool {
		r.State = index.Done
		r.Output, r.Result, r.FunctionMS = c.Output, c.Result, c.FunctionMS
		r.Token, r.LeaseUntil = "", time.Time{}
		return true
	})
}

// Fail implements index.Claims.
func (d *DB) Fail(ctx context.Context, key, token, msg, class string, cache bool) error {
	return d.cas(ctx, key, token, func(r *index.Record) bool {
		r.State = index.Failed
		r.Error, r.ErrorClass = msg, class
		r.Token, r.LeaseUntil = "", time.Time{}
		return cache
	})
}

// Release implements index.Claims.
func (d *DB) Release(ctx context.Context, key, token string) error {
	return d.cas(ctx, key, token, func(*index.Record) bool { return false })
}

// Get implements index.Claims.
func (d *DB) Get(ctx context.Context, key string) (index.Record, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	c, err := d.getClaim(ctx, key)
	if err != nil && !errors.Is(err, index.ErrNotFound) {
		err = fmt.Errorf("couchdb: get claim %s: %w", key, err)
	}
	return c.Record, err
}

// Delete implements index.Claims.
func (d *DB) Delete(ctx context.Context, key string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	d.held.drop(key)
	return d.deleteDoc(ctx, claimPrefix+key)
}

// DeleteResult implements index.Claims: a delete with the _rev of the
// record that was checked, so a claim made since is never removed.
func (d *DB) DeleteResult(ctx context.Context, key string, updated time.Time) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	for range maxCASRetries {
		cur, err := d.getClaim(ctx, key)
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("couchdb: read claim %s: %w", key, err)
		}
		if cur.State == index.Running || !cur.Updated.Equal(updated) {
			return nil
		}
		_, err = d.db.Delete(ctx, cur.ID, cur.Rev)
		if kivik.HTTPStatus(err) == http.StatusConflict {
			continue // changed under us: look again
		}
		if err != nil && kivik.HTTPStatus(err) != http.StatusNotFound {
			return fmt.Errorf("couchdb: delete result %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("couchdb: delete result %s: too many conflicts", key)
}

// RepointOutput implements index.Claims: an update with the _rev of the
// record that was checked, as DeleteResult's delete; a conflict reads
// again (and then finds it changed, unless only its _rev did).
func (d *DB) RepointOutput(ctx context.Context, key string, updated time.Time, out index.Output) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	for range maxCASRetries {
		cur, err := d.getClaim(ctx, key)
		if errors.Is(err, index.ErrNotFound) {
			return index.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("couchdb: read claim %s: %w", key, err)
		}
		if cur.State != index.Done || !cur.Updated.Equal(updated) {
			return index.ErrNotFound
		}
		cur.Output, cur.Updated = &out, time.Now().UTC()
		_, err = d.db.Put(ctx, cur.ID, cur)
		switch st := kivik.HTTPStatus(err); {
		case st == http.StatusConflict || st == http.StatusNotFound:
			continue // changed or deleted under us: look again
		case err != nil:
			return fmt.Errorf("couchdb: repoint output %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("couchdb: repoint output %s: too many conflicts", key)
}

// Records implements index.Claims.
func (d *DB) Records(ctx context.Context, fn func(index.Record) error) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.prefixRange(ctx, claimPrefix, func(_ string, rs *kivik.ResultSet) error {
		var c claimDoc
		if err := rs.ScanDoc(&c); err != nil {
			return fmt.Errorf("couchdb: decode claim: %w", err)
		}
		return fn(c.Record)
	})
}
