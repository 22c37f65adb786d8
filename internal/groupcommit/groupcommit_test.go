package groupcommit_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// A Group gives each item its own result, batches items that arrive
// while a commit runs, and turns a panicking or miscounting commit into
// an error for that batch's callers, not a crash.
func TestGroup(t *testing.T) {
	var mu sync.Mutex
	var batches [][]int
	inCommit := make(chan struct{})
	release := make(chan struct{})
	g := groupcommit.NewGroup(func(batch []int) []error {
		mu.Lock()
		batches = append(batches, append([]int(nil), batch...))
		first := len(batches) == 1
		mu.Unlock()
		if first {
			close(inCommit)
			<-release // hold the first commit while the others queue
		}
		errs := make([]error, len(batch))
		for i, v := range batch {
			switch v {
			case 13:
				errs[i] = fmt.Errorf("item %d refused", v)
			case 99:
				panic("boom")
			case 98:
				return errs[:0]
			}
		}
		return errs
	})
	var wg sync.WaitGroup
	errs := make([]error, 20)
	wg.Go(func() { errs[0] = g.Do(0) })
	<-inCommit
	for i := 1; i < 20; i++ {
		wg.Go(func() { errs[i] = g.Do(i) })
	}
	// Let the 19 queue up behind the first commit, then release it.
	for {
		mu.Lock()
		n := len(batches)
		mu.Unlock()
		if n != 1 {
			t.Fatalf("a second commit started while the first was running")
		}
		if groupcommit.Waiting(g) == 19 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if want := i == 13; (err != nil) != want {
			t.Errorf("item %d: err %v", i, err)
		}
	}
	if len(batches) != 2 || len(batches[1]) != 19 {
		t.Errorf("batches %v: want the lone first item, then the 19 that queued in one batch", batches)
	}
	for _, v := range []int{99, 98} {
		if err := g.Do(v); err == nil || !strings.Contains(err.Error(), "groupcommit") {
			t.Errorf("Do(%d) = %v, want the commit's failure as an error", v, err)
		}
	}
	if err := g.Do(1); err != nil {
		t.Errorf("after failed commits, Do(1) = %v", err)
	}
}

// Go returns while a commit is in flight; its items commit in queue
// order with Do's, and a Do queued after a Go returns only once the Go's
// item is committed and its callback has run.
func TestGo(t *testing.T) {
	var mu sync.Mutex
	var committed []int
	inCommit := make(chan struct{})
	release := make(chan struct{})
	g := groupcommit.NewGroup(func(batch []int) []error {
		mu.Lock()
		first := len(committed) == 0
		committed = append(committed, batch...)
		mu.Unlock()
		if first {
			close(inCommit)
			<-release
		}
		errs := make([]error, len(batch))
		for i, v := range batch {
			if v == 3 {
				errs[i] = errors.New("three refused")
			}
		}
		return errs
	})
	results := make(chan string, 10)
	g.Go(1, func(err error) { results <- fmt.Sprint("1 ", err) })
	<-inCommit
	returned := make(chan struct{})
	go func() {
		g.Go(2, func(err error) { results <- fmt.Sprint("2 ", err) })
		g.Go(3, func(err error) { results <- fmt.Sprint("3 ", err) })
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Go waited for the commit in flight")
	}
	var wg sync.WaitGroup
	var doErr error
	wg.Go(func() { doErr = g.Do(4) })
	for groupcommit.Waiting(g) != 3 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if doErr != nil {
		t.Errorf("Do(4) = %v", doErr)
	}
	// Do(4) returned: every item queued before it has been called back.
	if len(results) != 3 {
		t.Fatalf("%d callbacks when Do(4) returned, want 3", len(results))
	}
	for _, want := range []string{"1 <nil>", "2 <nil>", "3 three refused"} {
		if got := <-results; got != want {
			t.Errorf("callback %q, want %q", got, want)
		}
	}
	if fmt.Sprint(committed) != "[1 2 3 4]" {
		t.Errorf("committed in order %v, want [1 2 3 4]", committed)
	}
	// A lone Go with nobody else: still committed and called back.
	done := make(chan error, 1)
	g.Go(5, func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Go(5): %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a lone Go was never committed")
	}
}
