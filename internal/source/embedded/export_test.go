package embedded

import (
	"testing"

	bolt "go.etcd.io/bbolt"
)

// CommitsForTest is the id of the queue file's last committed write
// transaction: the difference between two calls is how many write
// transactions (each one fsync round) committed in between.
func (q *Queue) CommitsForTest(t testing.TB) int {
	t.Helper()
	var id int
	if err := q.db.View(func(tx *bolt.Tx) error { id = int(tx.ID()); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}
