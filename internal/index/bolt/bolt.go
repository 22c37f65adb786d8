// Package bolt is the embedded dedup index on a bbolt file: every claim
// and compare-and-swap is one bbolt write transaction, and concurrent
// ones share a commit (group commit: one fsync round for all the claims,
// completions and activation records that arrived during the previous
// one). A claim that finds a result or a live owner only reads.
package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/groupcommit"
	"github.com/dedupfn/dedupfn/internal/index"
)

// Defaults.
const (
	// DefaultOpenTimeout is how long Open waits for another process's lock.
	DefaultOpenTimeout = 2 * time.Second
	// WaitBackstop bounds one WaitChange when the claim's lease is
	// further away: in-process notifications cannot be missed (only this
	// process opens the file), so it is only a safety net.
	WaitBackstop = 30 * time.Second
	// pruneBatch is how many activations one write transaction of
	// PruneActivations deletes, so that claims are not held up behind it.
	pruneBatch = 1000
)

var (
	bucketClaims = []byte("claims")
	bucketDocs   = []byte("docs")
	bucketBlobs  = []byte("blobs")
	bucketActs   = []byte("activations")    // time+id → record
	bucketActIDs = []byte("activation_ids") // id → time+id
	bucketSeen   = []byte("objects_seen")   // bucket\0key\0etag → time of its newest activation (8 bytes of actKey)
	// bucketActIndex lists activations by tenant, function and both:
	// actIndexKeys → {}. Files written before it existed get it on open.
	bucketActIndex = []byte("activation_index")
	bucketStats    = []byte("stats") // tenant → activation.Stats
	// bucketFnStats holds the totals per function: fnStatsKey → the
	// function's activation.Stats. Files written before it existed get
	// it on open, counted from the activations they still keep.
	bucketFnStats = []byte("function_stats")
	// bucketDocRevs counts the writes of each kind of document: kind →
	// 8 bytes, big-endian (see DocsRevision).
	bucketDocRevs = []byte("doc_revisions")
	allBuckets    = [][]byte{bucketClaims, bucketDocs, bucketBlobs, bucketActs, bucketActIDs, bucketSeen, bucketStats, bucketDocRevs}
	allTenantsKey = []byte("*")
)

func init() { index.Register("bolt", Open) }

// activationsRead counts the activation records Activations decodes, for
// tests that check a filtered listing reads only what it returns.
var activationsRead atomic.Int64

// DB is a bbolt-backed index.
type DB struct {
	db      *bbolt.DB
	w       *groupcommit.Committer // the hot writes: claims, CAS, activations
	changes index.Changes          // WaitChange's subscribers
}

var (
	_ index.Index        = (*DB)(nil)
	_ index.Waiter       = (*DB)(nil)
	_ index.DocRevisions = (*DB)(nil)
)

// Open opens bolt:PATH (absolute or relative), creating the file.
// A host (bolt://name/...) is refused rather than silently dropped: it is
// almost always a relative path written with two slashes.
func Open(_ context.Context, u *url.URL, _ index.Options) (index.Index, error) {
	if u.Host != "" {
		return nil, fmt.Errorf("bolt: url must be bolt:PATH or bolt:///abs/path, got host %q in %q", u.Host, u.Redacted())
	}
	path := u.Opaque
	if path == "" {
		path = u.Path
	}
	if path == "" {
		return nil, errors.New("bolt: url must name a file, e.g. bolt:/var/lib/dedupfn/index.db")
	}
	return OpenFile(path)
}

// OpenFile opens the index file at path.
func OpenFile(path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("bolt: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("bolt: create dir: %w", err)
	}
	db, err := bbolt.Open(abs, 0o600, &bbolt.Options{Timeout: DefaultOpenTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("bolt: index file %s is locked by another process (is another dedupfn serve using this --data?)", abs)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", abs, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketActIndex) == nil {
			if err := buildActIndex(tx); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketFnStats) == nil {
			return buildFnStats(tx)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: init %s: %w", abs, err)
	}
	return &DB{db: db, w: groupcommit.New(db)}, nil
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

// wrap prefixes err with the backend and the operation; nil stays nil.
func wrap(err error, op, key string) error {
	if err == nil {
		return nil
	}
	if key == "" {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	return fmt.Errorf("bolt: %s %s: %w", op, key, err)
}

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

// Claim implements index.Index. A result or a live owner is answered
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

// Renew implements index.Index.
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

// SetExternalID implements index.Index.
func (d *DB) SetExternalID(ctx context.Context, key, token, externalID string) error {
	return wrap(d.cas(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		r.ExternalID = externalID
		r.Updated = time.Now().UTC()
		return putRecord(tx, *r)
	}), "set external id", key)
}

// Complete implements index.Index.
func (d *DB) Complete(ctx context.Context, key, token string, c index.Completion) error {
	return wrap(d.end(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		r.State = index.Done
		r.Output, r.Result, r.FunctionMS = c.Output, c.Result, c.FunctionMS
		r.Token, r.LeaseUntil = "", time.Time{} // the owner stays, for operators
		r.Updated = time.Now().UTC()
		return putRecord(tx, *r)
	}), "complete", key)
}

// Fail implements index.Index.
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

// Release implements index.Index.
func (d *DB) Release(ctx context.Context, key, token string) error {
	return wrap(d.end(key, token, func(tx *bbolt.Tx, r *index.Record) error {
		return tx.Bucket(bucketClaims).Delete([]byte(key))
	}), "release", key)
}

// Get implements index.Index.
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

// Delete implements index.Index.
func (d *DB) Delete(ctx context.Context, key string) error {
	err := d.w.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketClaims).Delete([]byte(key)) })
	if err == nil {
		d.changes.Notify(key)
	}
	return wrap(err, "delete", key)
}

// DeleteResult implements index.Index.
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

// Records implements index.Index.
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

func docKey(kind, id string) []byte { return []byte(kind + "\x00" + id) }

// PutDoc implements index.Index.
func (d *DB) PutDoc(ctx context.Context, kind, id string, doc []byte) error {
	return wrap(d.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketDocs).Put(docKey(kind, id), doc); err != nil {
			return err
		}
		return bumpDocRev(tx, kind)
	}), "put doc", kind+"/"+id)
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
	var rev uint64
	err := d.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketDocRevs).Get([]byte(kind)); len(v) == 8 {
			rev = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return rev, wrap(err, "docs revision", kind)
}

// GetDoc implements index.Index.
func (d *DB) GetDoc(ctx context.Context, kind, id string) ([]byte, error) {
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

// DeleteDoc implements index.Index.
func (d *DB) DeleteDoc(ctx context.Context, kind, id string) error {
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

// Docs implements index.Index.
func (d *DB) Docs(ctx context.Context, kind string, fn func(id string, doc []byte) error) error {
	prefix := docKey(kind, "")
	return d.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketDocs).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if err := fn(string(k[len(prefix):]), bytes.Clone(v)); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutBlob implements index.Index.
func (d *DB) PutBlob(ctx context.Context, digest string, data []byte) error {
	return wrap(d.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		if b.Get([]byte(digest)) != nil {
			return nil
		}
		return b.Put([]byte(digest), data)
	}), "put blob", digest)
}

// GetBlob implements index.Index.
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

func seenKey(bucket, key, etag string) []byte { return []byte(bucket + "\x00" + key + "\x00" + etag) }

// AddActivation implements index.Index: the record, its id, the
// object-seen mark and the totals (of all tenants, of its tenant and of
// its function) change in one transaction.
func (d *DB) AddActivation(ctx context.Context, r activation.Record) error {
	if r.ID == "" {
		return errors.New("bolt: activation without id")
	}
	v, err := json.Marshal(r)
	if err != nil {
		return wrap(err, "encode activation", r.ID)
	}
	err = d.w.Update(func(tx *bbolt.Tx) error {
		ids := tx.Bucket(bucketActIDs)
		if ids.Get([]byte(r.ID)) != nil {
			return nil
		}
		k := actKey(r)
		if err := tx.Bucket(bucketActs).Put(k, v); err != nil {
			return err
		}
		if err := ids.Put([]byte(r.ID), k); err != nil {
			return err
		}
		if err := indexActivation(tx, r, k); err != nil {
			return err
		}
		for _, t := range [][]byte{allTenantsKey, []byte("t:" + r.Tenant)} {
			if err := addStats(tx.Bucket(bucketStats), t, r); err != nil {
				return err
			}
		}
		return addStats(tx.Bucket(bucketFnStats), fnStatsKey(r.Tenant, r.Function), r)
	})
	return wrap(err, "add activation", r.ID)
}

// indexActivation adds the listing entries and the object-seen mark of r,
// stored under k.
func indexActivation(tx *bbolt.Tx, r activation.Record, k []byte) error {
	ix := tx.Bucket(bucketActIndex)
	for _, p := range actIndexPrefixes(r.Tenant, r.Function) {
		if err := ix.Put(append(p, k...), []byte{}); err != nil {
			return err
		}
	}
	if r.Event.Bucket == "" {
		return nil
	}
	seen := tx.Bucket(bucketSeen)
	sk := seenKey(r.Event.Bucket, r.Event.Key, r.Event.ETag)
	if v := seen.Get(sk); len(v) == 8 && bytes.Compare(v, k[:8]) >= 0 {
		return nil // a later activation of this object is recorded already
	}
	return seen.Put(sk, bytes.Clone(k[:8]))
}

// buildActIndex creates the activation index of a file written without
// it, and sets every object-seen mark to its newest activation's time.
func buildActIndex(tx *bbolt.Tx) error {
	if _, err := tx.CreateBucket(bucketActIndex); err != nil {
		return err
	}
	return tx.Bucket(bucketActs).ForEach(func(k, v []byte) error {
		var r activation.Record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode activation %x: %w", k, err)
		}
		return indexActivation(tx, r, k)
	})
}

// actIndexPrefixes are the prefixes under which an activation of tenant
// and function is listed: by tenant, by function, by both. Each part is
// length-prefixed so no name can run into the next.
func actIndexPrefixes(tenant, function string) [][]byte {
	part := func(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	return [][]byte{
		part([]byte("t"), tenant),
		part([]byte("f"), function),
		part(part([]byte("b"), tenant), function),
	}
}

// actIndexPrefix is the index prefix that answers f, or nil when f has no
// tenant or function (list the activations bucket itself).
func actIndexPrefix(f activation.Filter) []byte {
	p := actIndexPrefixes(f.Tenant, f.Function)
	switch {
	case f.Tenant != "" && f.Function != "":
		return p[2]
	case f.Tenant != "":
		return p[0]
	case f.Function != "":
		return p[1]
	}
	return nil
}

// actKey orders activations by start time, then id: the start as
// big-endian nanoseconds with the sign bit flipped, so that times before
// 1970 (and the zero time) sort before later ones as bytes.
func actKey(r activation.Record) []byte {
	k := make([]byte, 8, 8+len(r.ID))
	binary.BigEndian.PutUint64(k, uint64(r.Start.UnixNano())^(1<<63))
	return append(k, r.ID...)
}

// buildFnStats creates the per-function totals of a file written without
// them, from the activations it keeps (pruned ones are gone).
func buildFnStats(tx *bbolt.Tx) error {
	b, err := tx.CreateBucket(bucketFnStats)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketActs).ForEach(func(k, v []byte) error {
		var r activation.Record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode activation %x: %w", k, err)
		}
		return addStats(b, fnStatsKey(r.Tenant, r.Function), r)
	})
}

// fnStatsKey is the key of a function's totals: the tenant
// length-prefixed (so that a tenant's functions share a prefix no other
// tenant's name can extend), then the function.
func fnStatsKey(tenant, function string) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(tenant)+len(function))
	k = binary.AppendUvarint(k, uint64(len(tenant)))
	return append(append(k, tenant...), function...)
}

// parseFnStatsKey splits a fnStatsKey into tenant and function.
func parseFnStatsKey(k []byte) (tenant, function string, ok bool) {
	n, w := binary.Uvarint(k)
	if w <= 0 || uint64(len(k)-w) < n {
		return "", "", false
	}
	return string(k[w : w+int(n)]), string(k[w+int(n):]), true
}

// addStats folds r into the totals under key in b.
func addStats(b *bbolt.Bucket, key []byte, r activation.Record) error {
	var st activation.Stats
	if v := b.Get(key); v != nil {
		if err := json.Unmarshal(v, &st); err != nil {
			return err
		}
	}
	st.Add(r)
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return b.Put(key, v)
}

// GetActivation implements index.Index.
func (d *DB) GetActivation(ctx context.Context, id string) (activation.Record, error) {
	var r activation.Record
	err := d.db.View(func(tx *bbolt.Tx) error {
		k := tx.Bucket(bucketActIDs).Get([]byte(id))
		if k == nil {
			return index.ErrNotFound
		}
		return json.Unmarshal(tx.Bucket(bucketActs).Get(k), &r)
	})
	return r, wrap(err, "get activation", id)
}

// Activations implements index.Index.
func (d *DB) Activations(ctx context.Context, f activation.Filter) ([]activation.Record, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []activation.Record
	err := d.db.View(func(tx *bbolt.Tx) error {
		acts := tx.Bucket(bucketActs)
		decode := func(v []byte) error {
			var r activation.Record
			activationsRead.Add(1)
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		}
		// Keys start with the start time, so the listing stops at the
		// first key before Since.
		var since []byte
		if !f.Since.IsZero() {
			since = actKey(activation.Record{Start: f.Since})
		}
		before := func(k []byte) bool { return since != nil && bytes.Compare(k, since) < 0 }
		prefix := actIndexPrefix(f)
		if prefix == nil {
			c := acts.Cursor()
			for k, v := c.Last(); k != nil && !before(k) && len(out) < limit; k, v = c.Prev() {
				if err := decode(v); err != nil {
					return err
				}
			}
			return nil
		}
		// Newest first within the prefix: from its last key backwards.
		c := tx.Bucket(bucketActIndex).Cursor()
		for k := lastWithPrefix(c, prefix); k != nil && bytes.HasPrefix(k, prefix) && !before(k[len(prefix):]) && len(out) < limit; k, _ = c.Prev() {
			v := acts.Get(k[len(prefix):])
			if v == nil {
				continue // not expected: index and records change together
			}
			if err := decode(v); err != nil {
				return err
			}
		}
		return nil
	})
	return out, wrap(err, "list activations", "")
}

// lastWithPrefix positions c on the last key with prefix and returns it
// (or a key before the prefix, or nil, when there is none).
func lastWithPrefix(c *bbolt.Cursor, prefix []byte) []byte {
	// The first key after every key with prefix: prefix with its last
	// byte below 0xff incremented and the rest dropped.
	end := bytes.Clone(prefix)
	for len(end) > 0 && end[len(end)-1] == 0xff {
		end = end[:len(end)-1]
	}
	if len(end) == 0 {
		k, _ := c.Last()
		return k
	}
	end[len(end)-1]++
	if k, _ := c.Seek(end); k == nil {
		k, _ = c.Last()
		return k
	}
	k, _ := c.Prev()
	return k
}

// ObjectSeen implements index.Index.
func (d *DB) ObjectSeen(ctx context.Context, bucket, key, etag string) (bool, error) {
	var seen bool
	err := d.db.View(func(tx *bbolt.Tx) error {
		seen = tx.Bucket(bucketSeen).Get(seenKey(bucket, key, etag)) != nil
		return nil
	})
	return seen, err
}

// Stats implements index.Index.
func (d *DB) Stats(ctx context.Context, tenant string) (activation.Stats, error) {
	key := allTenantsKey
	if tenant != "" {
		key = []byte("t:" + tenant)
	}
	var st activation.Stats
	err := d.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketStats).Get(key); v != nil {
			return json.Unmarshal(v, &st)
		}
		return nil
	})
	return st, wrap(err, "stats", tenant)
}

// FunctionStats implements index.Index: one prefix scan of the
// per-function totals.
func (d *DB) FunctionStats(ctx context.Context, tenant string) ([]activation.FunctionStats, error) {
	var prefix []byte
	if tenant != "" {
		prefix = fnStatsKey(tenant, "")
	}
	out := []activation.FunctionStats{}
	err := d.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketFnStats).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			t, fn, ok := parseFnStatsKey(k)
			if !ok {
				return fmt.Errorf("bad function totals key %x", k)
			}
			fs := activation.FunctionStats{Tenant: t, Function: fn}
			if err := json.Unmarshal(v, &fs.Stats); err != nil {
				return fmt.Errorf("decode function totals %s/%s: %w", t, fn, err)
			}
			out = append(out, fs)
		}
		return nil
	})
	if err != nil {
		return nil, wrap(err, "function stats", tenant)
	}
	index.SortFunctionStats(out) // keys order by tenant length first
	return out, nil
}

// PruneActivations implements index.Index, in write transactions of up to
// pruneBatch activations. The stats counters are not touched.
func (d *DB) PruneActivations(ctx context.Context, before time.Time) (int, error) {
	cutoff := actKey(activation.Record{Start: before}) // the time part: every key below it is older
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("bolt: prune activations: %w", err)
		}
		n := 0
		err := d.db.Update(func(tx *bbolt.Tx) error {
			acts := tx.Bucket(bucketActs)
			var keys [][]byte // deleted after the scan: a cursor may skip keys deleted under it
			c := acts.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k, cutoff) < 0 && len(keys) < pruneBatch; k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				var r activation.Record
				if err := json.Unmarshal(acts.Get(k), &r); err != nil {
					return fmt.Errorf("decode activation %x: %w", k, err)
				}
				if err := unindexActivation(tx, r, k); err != nil {
					return err
				}
				if err := acts.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("bolt: prune activations: %w", err)
		}
		if n < pruneBatch {
			return total, nil
		}
	}
}

// unindexActivation removes what indexActivation added for r, and its id;
// the object-seen mark only if no later activation set it.
func unindexActivation(tx *bbolt.Tx, r activation.Record, k []byte) error {
	ix := tx.Bucket(bucketActIndex)
	for _, p := range actIndexPrefixes(r.Tenant, r.Function) {
		if err := ix.Delete(append(p, k...)); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketActIDs).Delete([]byte(r.ID)); err != nil {
		return err
	}
	if r.Event.Bucket == "" {
		return nil
	}
	seen := tx.Bucket(bucketSeen)
	sk := seenKey(r.Event.Bucket, r.Event.Key, r.Event.ETag)
	if v := seen.Get(sk); v != nil && bytes.Compare(v, k[:8]) <= 0 {
		return seen.Delete(sk)
	}
	return nil
}
