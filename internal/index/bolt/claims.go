package bolt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/dedupfn/dedupfn/internal/index"
)

func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func getRecord(tx *bbolt.Tx, key string) (index.Record, bool, error) {
	var r index.Record
	v := tx.Bucket(bucketClaims).Get([]byte(key))
	if v == nil {
		return r, false, nil
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, false, fmt.Errorf("bolt: decode record %s: %w", key, err)
	}
	return r, true, nil
}

func putRecord(tx *bbolt.Tx, r index.Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketClaims).Put([]byte(r.Key), v)
}

// Claim implements index.Claims. A result or a live owner is answered
// from a read transaction (no write, no fsync: a Done record only ever
// goes away, and Wait is a snapshot either way); an absent key or an
// expired lease is decided again inside a group-committed write
// transaction, so the write never acts on a stale read.
func (d *DB) Claim(ctx context.Context, key string, parts index.Parts, owner string, lease time.Duration) (index.Claimed, error) {
	if lease <= 0 {
		return index.Claimed{}, fmt.Errorf("bolt: lease must be > 0, got %s", lease)
	}
	var c index.Claimed
	err := d.db.View(func(tx *bbolt.Tx) error {
		var err error
		c, err = decide(tx, key, time.Now().UTC())
		return err
	})
	if err != nil {
		return index.Claimed{}, fmt.Errorf("bolt: claim %s: %w", key, err)
	}
	if c.Outcome != index.Miss {
		return c, nil
	}
	err = d.w.Update(func(tx *bbolt.Tx) error {
		// May run again (group commit): every outcome is set afresh.
		now := time.Now().UTC()
		var err error
		if c, err = decide(tx, key, now); err != nil || c.Outcome != index.Miss {
			return err
		}
		r := c.Record
		if r.State == "" { // absent
			r = index.Record{Key: key, State: index.Running, Parts: parts, Attempt: 0, Created: now}
		}
		r.Attempt++
		r.Owner, r.Token, r.LeaseUntil, r.Updated = owner, newToken(), now.Add(lease), now
		c.Record = r
		return putRecord(tx, r)
	})
	if err != nil {
		return index.Claimed{}, fmt.Errorf("bolt: claim %s: %w", key, err)
	}
	if c.Outcome == index.Miss {
		d.changes.Notify(key) // taken over: its old owner's waiters look again
	}
	return c, nil
}

// decide is what a claim of key at now finds: Hit or Wait with the
// record, or Miss with the expired record to take over (zero if absent).
func decide(tx *bbolt.Tx, key string, now time.Time) (index.Claimed, error) {
	r, ok, err := getRecord(tx, key)
	switch {
	case err != nil:
		return index.Claimed{}, err
	case !ok:
		return index.Claimed{Outcome: index.Miss}, nil
	case r.State == index.Done || r.State == index.Failed:
		return index.Claimed{Outcome: index.Hit, Record: r}, nil
	case index.Live(r, now):
		return index.Claimed{Outcome: index.Wait, Record: r}, nil
	}
	return index.Claimed{Outcome: index.Miss, Record: r}, nil // expired lease: take over
}

// WaitChange implements index.Waiter with in-process notifications: every
// write that ends or takes over a claim notifies its key after it commits.
func (d *DB) WaitChange(ctx context.Context, cur index.Record) error {
	err := index.WaitChange(ctx, &d.changes, cur, WaitBackstop, d.Get)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("bolt: wait change %s: %w", cur.Key, err)
	}
	return err
}

// cas applies fn to the running record owned by token, in a
// group-committed transaction. ErrNotOwner is an outcome, not a failed
// transaction: it must not roll back the claims batched with it.
func (d *DB) cas(key, token string, fn func(tx *bbolt.Tx, r *index.Record) error) error {
	var owned bool
	err := d.w.Update(func(tx *bbolt.Tx) error {
		owned = false // may run again (group commit)
		r, ok, err := getRecord(tx, key)
		if err != nil {
			return err
		}
		if !ok || r.State != index.Running || r.Token != token || token == "" {
			return nil
		}
		owned = true
		return fn(tx, &r)
	})
	if err == nil && !owned {
		return index.ErrNotOwner
	}
	return err
}

// end is cas for the writes that end a claim (complete, fail, release):
// its waiters are woken once the change is committed.
func (d *DB) end(key, token string, fn func(tx *bbolt.Tx, r *index.Record) error) error {
	err := d.cas(key, token, fn)
	if err == nil {
		d.changes.Notify(key)
	}
	return err
}

// Renew implements index.Claims.
func (d *DB) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("bolt: lease must be > 0, got %s", lease)
	}
	return wrap(d.cas(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		r.LeaseUntil = time.Now().UTC().Add(lease)
		r.Updated = time.Now().UTC()
		return putRecord(tx, *r)
	}), "renew", key)
}

// SetExternalID implements index.Claims.
func (d *DB) SetExternalID(ctx context.Context, key, token, externalID string) error {
	return wrap(d.cas(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		r.ExternalID = externalID
		r.Updated = time.Now().UTC()
		return putRecord(tx, *r)
	}), "set external id", key)
}

// Complete implements index.Claims.
func (d *DB) Complete(ctx context.Context, key, token string, c index.Completion) error {
	return wrap(d.end(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		r.State = index.Done
		r.Output, r.Result, r.FunctionMS = c.Output, c.Result, c.FunctionMS
		r.Token, r.LeaseUntil = "", time.Time{} // the owner stays, for operators
		r.Updated = time.Now().UTC()
		if err := putDocs(tx, c.Docs); err != nil {
			return err
		}
		return putRecord(tx, *r)
	}), "complete", key)
}

// Fail implements index.Claims.
func (d *DB) Fail(ctx context.Context, key, token, msg, class string, cache bool) error {
	return wrap(d.end(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		if !cache {
			return tx.Bucket(bucketClaims).Delete([]byte(key))
		}
		r.State = index.Failed
		r.Error, r.ErrorClass = msg, class
		r.Token, r.LeaseUntil = "", time.Time{} // the owner stays, for operators
		r.Updated = time.Now().UTC()
		return putRecord(tx, *r)
	}), "fail", key)
}

// Release implements index.Claims.
func (d *DB) Release(ctx context.Context, key, token string) error {
	return wrap(d.end(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		return tx.Bucket(bucketClaims).Delete([]byte(key))
	}), "release", key)
}

// Get implements index.Claims.
func (d *DB) Get(ctx context.Context, key string) (index.Record, error) {
	var r index.Record
	var ok bool
	err := d.db.View(func(tx *bbolt.Tx) error {
		var err error
		r, ok, err = getRecord(tx, key)
		return err
	})
	if err == nil && !ok {
		err = index.ErrNotFound
	}
	return r, wrap(err, "get", key)
}

// Delete implements index.Claims.
func (d *DB) Delete(ctx context.Context, key string) error {
	err := d.w.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketClaims).Delete([]byte(key)) })
	if err == nil {
		d.changes.Notify(key)
	}
	return wrap(err, "delete", key)
}

// DeleteResult implements index.Claims.
func (d *DB) DeleteResult(ctx context.Context, key string, updated time.Time) error {
	err := d.w.Update(func(tx *bbolt.Tx) error {
		r, ok, err := getRecord(tx, key)
		if err != nil || !ok || r.State == index.Running || !r.Updated.Equal(updated) {
			return err
		}
		return tx.Bucket(bucketClaims).Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("bolt: delete result %s: %w", key, err)
	}
	return nil
}

// RepointOutput implements index.Claims, under DeleteResult's check, in
// a group-committed transaction. As in cas, a record that fails the check
// is an outcome, not an error that would roll back the batch.
func (d *DB) RepointOutput(ctx context.Context, key string, updated time.Time, out index.Output) error {
	var found bool
	err := d.w.Update(func(tx *bbolt.Tx) error {
		found = false // may run again (group commit)
		r, ok, err := getRecord(tx, key)
		if err != nil || !ok || r.State != index.Done || !r.Updated.Equal(updated) {
			return err
		}
		found = true
		r.Output, r.Updated = &out, time.Now().UTC()
		return putRecord(tx, r)
	})
	if err == nil && !found {
		err = index.ErrNotFound
	}
	return wrap(err, "repoint output", key)
}

// Records implements index.Claims.
func (d *DB) Records(ctx context.Context, fn func(index.Record) error) error {
	return d.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketClaims).ForEach(func(k, v []byte) error {
			var r index.Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("bolt: decode record %s: %w", k, err)
			}
			return fn(r) // fn's own error, unwrapped
		})
	})
}
