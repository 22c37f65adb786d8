package bolt

import (
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// ClearLeaseForTest removes a record's lease deadline, to build a state
// that the API cannot (see indextest.ZeroLeaseIsLocked).
func (d *DB) ClearLeaseForTest(t testing.TB, key string) {
	t.Helper()
	d.running.mu.Lock()
	c, ok := d.running.m[key]
	if ok {
		c.rec.LeaseUntil = time.Time{}
	}
	d.running.mu.Unlock()
	if ok {
		return
	}
	err := d.db.Update(func(tx *bbolt.Tx) error {
		r, _, err := getRecord(tx, key)
		if err != nil {
			return err
		}
		r.LeaseUntil = time.Time{}
		return putRecord(tx, r)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ActivationsReadForTest is how many activation records Activations has
// decoded so far, in this process.
func ActivationsReadForTest() int64 { return activationsRead.Load() }

// DropActivationIndexesForTest makes the file look like one written before
// the per-function and per-tenant activation indexes existed.
func (d *DB) DropActivationIndexesForTest(t testing.TB) {
	t.Helper()
	err := d.db.Update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketActIndex) == nil {
			return nil
		}
		return tx.DeleteBucket(bucketActIndex)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// CommitsForTest is the id of the last committed write transaction: the
// difference between two calls is how many write transactions (each one
// fsync round: data pages, then meta page) committed in between.
func (d *DB) CommitsForTest(t testing.TB) int {
	t.Helper()
	var id int
	if err := d.db.View(func(tx *bbolt.Tx) error { id = int(tx.ID()); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// NoSyncForTest turns off fsync on commit, so that a benchmark measures
// the CPU cost of a write transaction rather than the disk's.
func (d *DB) NoSyncForTest(t testing.TB) {
	t.Helper()
	d.db.NoSync = true
}

// DropFunctionStatsForTest makes the file look like one written before
// the per-function totals existed.
func (d *DB) DropFunctionStatsForTest(t testing.TB) {
	t.Helper()
	err := d.db.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket(bucketFnStats) })
	if err != nil {
		t.Fatal(err)
	}
}

// PageWritesForTest is how many page writes (runs of contiguous dirty
// pages written with one pwrite) the file's commits have made so far.
func (d *DB) PageWritesForTest() int64 {
	st := d.db.Stats()
	return st.TxStats.GetWrite()
}

// WaitQueuedForTest returns once every completion queued has committed.
func (d *DB) WaitQueuedForTest() { d.queued.wait() }
