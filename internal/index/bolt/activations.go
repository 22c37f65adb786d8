package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
)

// AddActivation implements index.Activations: docs, the record, its id,
// its listing entries and the totals (of all tenants, of its tenant and
// of its function) change in one transaction.
func (d *DB) AddActivation(ctx context.Context, r activation.Record, docs ...index.Doc) error {
	if r.ID == "" {
		return errors.New("bolt: activation without id")
	}
	v, err := json.Marshal(r)
	if err != nil {
		return wrap(err, "encode activation", r.ID)
	}
	err = d.w.Update(func(tx *bbolt.Tx) error {
		if err := putDocs(tx, docs); err != nil {
			return err
		}
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

// indexActivation adds the listing entries of r, stored under k.
func indexActivation(tx *bbolt.Tx, r activation.Record, k []byte) error {
	ix := tx.Bucket(bucketActIndex)
	for _, p := range actIndexPrefixes(r.Tenant, r.Function) {
		if err := ix.Put(append(p, k...), []byte{}); err != nil {
			return err
		}
	}
	return nil
}

// buildActIndex creates the activation index of a file written without it.
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

// GetActivation implements index.Activations.
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

// ActivationsByPrefix implements index.Activations: a cursor from the
// prefix in the id bucket (keyed by id), reading the records under it
// only.
func (d *DB) ActivationsByPrefix(ctx context.Context, prefix, tenant string, limit int) ([]activation.Record, error) {
	var out []activation.Record
	err := d.db.View(func(tx *bbolt.Tx) error {
		acts := tx.Bucket(bucketActs)
		c := tx.Bucket(bucketActIDs).Cursor()
		p := []byte(prefix)
		for id, k := c.Seek(p); id != nil && bytes.HasPrefix(id, p) && len(out) < limit; id, k = c.Next() {
			var r activation.Record
			if err := json.Unmarshal(acts.Get(k), &r); err != nil {
				return fmt.Errorf("decode activation %s: %w", id, err)
			}
			if tenant == "" || r.Tenant == tenant {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, wrap(err, "activations by prefix", prefix)
}

// Activations implements index.Activations.
func (d *DB) Activations(ctx context.Context, f activation.Filter) ([]activation.Record, error) {
	limit := index.ActivationsLimit(f)
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

// Stats implements index.Activations.
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

// FunctionStats implements index.Activations: one prefix scan of the
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

// PruneActivations implements index.Activations, in write transactions of up to
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

// unindexActivation removes what indexActivation added for r, and its id.
func unindexActivation(tx *bbolt.Tx, r activation.Record, k []byte) error {
	ix := tx.Bucket(bucketActIndex)
	for _, p := range actIndexPrefixes(r.Tenant, r.Function) {
		if err := ix.Delete(append(p, k...)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketActIDs).Delete([]byte(r.ID))
}
