package groupcommit_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/dedupfn/dedupfn/internal/groupcommit"
)

var bucket = []byte("b")

func open(t *testing.T) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		t.Fatal(err)
	}
	return db
}

func txid(t *testing.T, db *bbolt.DB) int {
	t.Helper()
	var id int
	db.View(func(tx *bbolt.Tx) error { id = int(tx.ID()); return nil })
	return id
}

// Concurrent writers all commit, in fewer transactions than writers; a
// failing writer gets its own error and leaves nothing behind, and a
// panicking one becomes an error; the others are unaffected.
func TestUpdate_Concurrent(t *testing.T) {
	db := open(t)
	c := groupcommit.New(db)
	const n = 200
	errBad := errors.New("bad")
	start := txid(t, db)
	var wg sync.WaitGroup
	errs := make([]error, n)
	release := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-release
			errs[i] = c.Update(func(tx *bbolt.Tx) error {
				if err := tx.Bucket(bucket).Put(fmt.Appendf(nil, "k%03d", i), []byte("v")); err != nil {
					return err
				}
				switch i % 50 {
				case 7:
					return errBad // after writing: the write must be rolled back
				case 8:
					panic("boom")
				}
				return nil
			})
		})
	}
	close(release)
	wg.Wait()
	commits := txid(t, db) - start
	db.View(func(tx *bbolt.Tx) error {
		for i := range n {
			got := tx.Bucket(bucket).Get(fmt.Appendf(nil, "k%03d", i))
			switch i % 50 {
			case 7:
				if !errors.Is(errs[i], errBad) || got != nil {
					t.Errorf("writer %d: err %v, value %q; want errBad and nothing written", i, errs[i], got)
				}
			case 8:
				if errs[i] == nil || !strings.Contains(errs[i].Error(), "panic") || got != nil {
					t.Errorf("writer %d: err %v, value %q; want the panic as an error and nothing written", i, errs[i], got)
				}
			default:
				if errs[i] != nil || string(got) != "v" {
					t.Errorf("writer %d: err %v, value %q; want committed", i, errs[i], got)
				}
			}
		}
		return nil
	})
	if commits >= n {
		t.Errorf("%d writers took %d commits: no group commit", n, commits)
	}
	t.Logf("%d writers, %d commits", n, commits)
}
