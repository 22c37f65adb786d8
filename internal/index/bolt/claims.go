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
// goes away, and Wait is a snapshot either way). A key absent from the
// file is claimed in memory (see running: no write either); an expired
// claim on disk is taken over inside a group-committed write
// transaction, so the write never acts on a stale read.
func (d *DB) Claim(ctx context.Context, key string, parts index.Parts, owner string, lease time.Duration) (index.Claimed, error) {
	if lease <= 0 {
		return index.Claimed{}, fmt.Errorf("bolt: lease must be > 0, got %s", lease)
	}
	for {
		c, err := d.decideOnDisk(key)
		if err != nil {
			return index.Claimed{}, fmt.Errorf("bolt: claim %s: %w", key, err)
		}
		if c.Outcome != index.Miss {
			return c, nil
		}
		if c.Record.State == "" { // absent from the file
			absent := func() (bool, error) {
				c, err := d.decideOnDisk(key)
				return c.Outcome == index.Miss && c.Record.State == "", err
			}
			mc, decided, err := d.running.claim(key, parts, owner, lease, absent)
			if err != nil {
				return index.Claimed{}, fmt.Errorf("bolt: claim %s: %w", key, err)
			}
			if !decided {
				continue // on disk since: decide from there
			}
			if mc.Outcome == index.Miss && mc.Record.Attempt > 1 {
				d.changes.Notify(key) // taken over: its old owner's waiters look again
			}
			return mc, nil
		}
		took, err := d.takeOver(key, owner, lease)
		if err != nil {
			return index.Claimed{}, fmt.Errorf("bolt: claim %s: %w", key, err)
		}
		if took.Outcome == 0 {
			continue // gone from the file since: claim it in memory
		}
		if took.Outcome == index.Miss {
			d.changes.Notify(key)
		}
		return took, nil
	}
}

// decideOnDisk is decide in a read transaction.
func (d *DB) decideOnDisk(key string) (c index.Claimed, err error) {
	err = d.db.View(func(tx *bbolt.Tx) error {
		c, err = decide(tx, key, time.Now().UTC())
		return err
	})
	return c, err
}

// takeOver takes over the expired claim of key on disk, in a write
// transaction that decides again. A zero Outcome: the key is no longer
// in the file.
func (d *DB) takeOver(key, owner string, lease time.Duration) (c index.Claimed, err error) {
	err = d.w.Update(func(tx *bbolt.Tx) error {
		// May run again (group commit): every outcome is set afresh.
		now := time.Now().UTC()
		var err error
		if c, err = decide(tx, key, now); err != nil || c.Outcome != index.Miss {
			return err
		}
		r := c.Record
		if r.State == "" {
			c = index.Claimed{}
			return nil
		}
		r.Attempt++
		r.Owner, r.Token, r.LeaseUntil, r.Updated = owner, newToken(), now.Add(lease), now
		c.Record = r
		return putRecord(tx, r)
	})
	return c, err
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
	c, err := d.running.owned(key, token)
	if err != nil || c != nil {
		if c != nil {
			c.rec.LeaseUntil = time.Now().UTC().Add(lease)
			c.rec.Updated = time.Now().UTC()
			d.running.mu.Unlock()
		}
		return wrap(err, "renew", key)
	}
	return wrap(d.cas(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		r.LeaseUntil = time.Now().UTC().Add(lease)
		r.Updated = time.Now().UTC()
		return putRecord(tx, *r)
	}), "renew", key)
}

// SetExternalID implements index.Claims. A claim in memory moves to disk
// with it (see running).
func (d *DB) SetExternalID(ctx context.Context, key, token, externalID string) error {
	c, err := d.running.owned(key, token)
	if err != nil {
		return wrap(err, "set external id", key)
	}
	if c != nil {
		r := c.rec
		r.ExternalID, r.Updated = externalID, time.Now().UTC()
		return wrap(d.leaveMemory(key, c, func(tx *bbolt.Tx) error { return putRecord(tx, r) }), "set external id", key)
	}
	return wrap(d.cas(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		r.ExternalID = externalID
		r.Updated = time.Now().UTC()
		return putRecord(tx, *r)
	}), "set external id", key)
}

// leaveMemory commits write for the claim c of key, which the caller
// holds under running.mu (owned), and then takes c out of memory. While
// the commit runs the claim counts as live (ending) and the lock is
// free; a claim that then finds the key absent from memory finds what
// write put on disk.
func (d *DB) leaveMemory(key string, c *runningClaim, write func(*bbolt.Tx) error) error {
	if c.ending {
		d.running.mu.Unlock()
		return index.ErrNotOwner
	}
	c.ending = true
	d.running.mu.Unlock()
	if err := d.w.Update(write); err != nil {
		d.running.mu.Lock()
		c.ending = false
		d.running.mu.Unlock()
		return err
	}
	d.running.drop(key, c)
	return nil
}

// endInMemory ends key's claim held with token if it is in memory:
// inMemory says whether it was (else the caller looks on disk). With a
// record (Complete, a cached Fail), the record and docs are committed
// first (leaveMemory); without (Release, an uncached Fail), the claim
// just leaves memory.
func (d *DB) endInMemory(key, token string, record func(r index.Record) *index.Record, docs []index.Doc) (inMemory bool, err error) {
	c, err := d.running.owned(key, token)
	if err != nil || c == nil {
		return err != nil, err
	}
	if end := record(c.rec); end != nil {
		err = d.leaveMemory(key, c, func(tx *bbolt.Tx) error { return putEnd(tx, *end, docs) })
	} else if c.ending {
		d.running.mu.Unlock()
		err = index.ErrNotOwner
	} else {
		delete(d.running.m, key)
		d.running.mu.Unlock()
	}
	if err == nil {
		d.changes.Notify(key)
	}
	return true, err
}

// completeInMemory is Complete of key's claim held with token if it is
// in memory: inMemory says whether it was (else the caller looks on
// disk).
func (d *DB) completeInMemory(key, token string, done func(index.Record) *index.Record, docs []index.Doc) (inMemory bool, err error) {
	c, err := d.running.owned(key, token)
	if err != nil || c == nil {
		return err != nil, err
	}
	if c.ending {
		d.running.mu.Unlock()
		return true, index.ErrNotOwner
	}
	claimed := c.rec
	end := *done(c.rec)
	c.rec, c.ending = end, true
	d.running.mu.Unlock()
	gen := d.queued.add(docs)
	d.changes.Notify(key)
	d.w.UpdateAsync(func(tx *bbolt.Tx) error { return putEnd(tx, end, docs) }, func(err error) {
		d.queued.done(docs, gen)
		if err == nil {
			d.running.drop(key, c) // on disk now
			return
		}
		d.logger.Error("commit a completed claim; the key will run again", "dedup_key", key, "err", err)
		d.running.mu.Lock()
		// Over, so the next claim takes it over (a zero lease never ends).
		claimed.Token, claimed.LeaseUntil = "", time.Unix(0, 0).UTC()
		c.rec, c.ending = claimed, false
		d.running.mu.Unlock()
		d.changes.Notify(key)
	})
	return true, nil
}

// putEnd writes a claim's end record r and the documents that come with
// it (Completion.Docs) into tx.
func putEnd(tx *bbolt.Tx, r index.Record, docs []index.Doc) error {
	if err := putDocs(tx, docs); err != nil {
		return err
	}
	return putRecord(tx, r)
}

// ended is r as its owner's end leaves it: the owner stays, for
// operators; its token and lease go.
func ended(r index.Record) *index.Record {
	r.Token, r.LeaseUntil = "", time.Time{}
	r.Updated = time.Now().UTC()
	return &r
}

// Complete implements index.Claims. A claim in memory is done at once
// (early lock release): its result is what every Get, Claim and waiter
// of this process (the only one the file serves) finds from then on, and
// its commit is queued without a wait. It is durable with the group
// commit it joins: a write queued after it, such as the activation record
// every event writes before it is acknowledged, commits in the same batch
// or a later one, so nothing acknowledged rests on a result not on disk.
// Should that commit fail, the claim is running again with its lease
// over, and the key's next claim runs it again. A miss thus waits for one
// commit round (its activation's), not two.
func (d *DB) Complete(ctx context.Context, key, token string, c index.Completion) error {
	done := func(r index.Record) *index.Record {
		r.State = index.Done
		r.Output, r.Result, r.FunctionMS = c.Output, c.Result, c.FunctionMS
		return ended(r)
	}
	if inMemory, err := d.completeInMemory(key, token, done, c.Docs); inMemory {
		return wrap(err, "complete", key)
	}
	return wrap(d.end(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		return putEnd(tx, *done(*r), c.Docs)
	}), "complete", key)
}

// Fail implements index.Claims.
func (d *DB) Fail(ctx context.Context, key, token, msg, class string, cache bool) error {
	failed := func(r index.Record) *index.Record {
		if !cache {
			return nil
		}
		r.State = index.Failed
		r.Error, r.ErrorClass = msg, class
		return ended(r)
	}
	if inMemory, err := d.endInMemory(key, token, failed, nil); inMemory {
		return wrap(err, "fail", key)
	}
	return wrap(d.end(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		f := failed(*r)
		if f == nil {
			return tx.Bucket(bucketClaims).Delete([]byte(key))
		}
		return putEnd(tx, *f, nil)
	}), "fail", key)
}

// Release implements index.Claims.
func (d *DB) Release(ctx context.Context, key, token string) error {
	if inMemory, err := d.endInMemory(key, token, func(index.Record) *index.Record { return nil }, nil); inMemory {
		return wrap(err, "release", key)
	}
	return wrap(d.end(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		return tx.Bucket(bucketClaims).Delete([]byte(key))
	}), "release", key)
}

// Get implements index.Claims.
func (d *DB) Get(ctx context.Context, key string) (index.Record, error) {
	if r, ok := d.running.get(key); ok {
		return r, nil
	}
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
	d.running.forget(key)
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

// Records implements index.Claims: the running claims in memory, then
// the file's records but those listed already (a claim that ended or
// moved to disk in between).
func (d *DB) Records(ctx context.Context, fn func(index.Record) error) error {
	listed := map[string]bool{}
	for _, r := range d.running.list() {
		listed[r.Key] = true
		if err := fn(r); err != nil {
			return err
		}
	}
	return d.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketClaims).ForEach(func(k, v []byte) error {
			if listed[string(k)] {
				return nil
			}
			var r index.Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("bolt: decode record %s: %w", k, err)
			}
			return fn(r) // fn's own error, unwrapped
		})
	})
}
