// Package groupcommit lets concurrent writes share one commit (one fsync
// round, one request) without delaying a lone writer: Group batches any
// kind of write; Committer is a Group of bbolt write transactions.
//
// Why not bbolt's own DB.Batch? It starts a batch on a timer
// (MaxBatchDelay, 10ms by default): a lone write waits the whole delay,
// which alone is ten times the hit latency dedupfn aims for. Here the
// first writer commits at once; writers that arrive while a commit is in
// flight queue up, and the next of them commits everything queued in one
// batch as soon as the previous commit ends. An idle writer pays nothing,
// and under load a commit carries every write that arrived during the
// previous one.
package groupcommit

import (
	"errors"
	"fmt"
	"sync"

	bbolt "go.etcd.io/bbolt"
)

// Group runs items through commit, batching those that arrive while a
// commit is in flight. The zero value is not usable; use NewGroup. Safe
// for concurrent use.
type Group[T any] struct {
	// commit writes batch and returns one error per item, in order.
	commit func(batch []T) []error

	mu      sync.Mutex
	queue   []*pending[T]
	leading bool // a goroutine is committing (or about to commit) the queue
}

type pending[T any] struct {
	item T
	done chan error // the result, or errLead: become the committer
}

// errLead hands the committing role to a queued caller.
var errLead = errors.New("groupcommit: lead")

// NewGroup returns a Group committing through commit, which must return
// one error per item of its batch, in order.
func NewGroup[T any](commit func(batch []T) []error) *Group[T] {
	return &Group[T]{commit: commit}
}

// Do commits item, possibly in one batch with other callers' items, and
// returns its error once that batch is committed.
func (g *Group[T]) Do(item T) error {
	p := &pending[T]{item: item, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if !lead {
		if err := <-p.done; err != errLead {
			return err
		}
	}
	// Commit everything queued, ours included, then hand the role to the
	// first caller that queued meanwhile (or give it up): the leader's
	// own result is ready and it should not commit for others forever.
	g.mu.Lock()
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()
	g.run(batch)
	g.mu.Lock()
	if len(g.queue) > 0 {
		g.queue[0].done <- errLead
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	return <-p.done
}

// run commits batch and reports to each caller; a commit that panics or
// miscounts its errors fails the whole batch rather than the leader.
func (g *Group[T]) run(batch []*pending[T]) {
	items := make([]T, len(batch))
	for i, p := range batch {
		items[i] = p.item
	}
	errs, err := safeCommit(g.commit, items)
	for i, p := range batch {
		if err == nil {
			p.done <- errs[i]
		} else {
			p.done <- err
		}
	}
}

func safeCommit[T any](commit func([]T) []error, items []T) (errs []error, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("groupcommit: panic in commit: %v", p)
		}
	}()
	errs = commit(items)
	if len(errs) != len(items) {
		return nil, fmt.Errorf("groupcommit: commit returned %d results for %d items", len(errs), len(items))
	}
	return errs, nil
}

// Committer runs write functions in shared bbolt transactions. The zero
// value is not usable; use New. Safe for concurrent use.
type Committer struct {
	db *bbolt.DB
	g  *Group[func(*bbolt.Tx) error]
}

// New returns a Committer for db. Writes through db.Update still work
// alongside it (bbolt serializes them).
func New(db *bbolt.DB) *Committer {
	c := &Committer{db: db}
	c.g = NewGroup(c.commit)
	return c
}

// Update runs fn in a write transaction, possibly together with other
// callers' functions, and returns when that transaction has committed
// (fsynced), with fn's error or the commit's.
//
// As with bbolt's DB.Batch, fn may run more than once: if another
// function in the same transaction fails, the transaction is rolled back
// and fn runs again. fn must therefore set its outcome afresh on every
// run (assign, never append to or increment state from outside) and do
// nothing outside the transaction that cannot be redone. A function that
// returns an error is rolled back and run alone, so its error is its own.
func (c *Committer) Update(fn func(*bbolt.Tx) error) error { return c.g.Do(fn) }

// commit runs batch in one transaction; a function that fails is taken
// out and run alone, and the rest run again.
func (c *Committer) commit(batch []func(*bbolt.Tx) error) []error {
	errs := make([]error, len(batch))
	idx := make([]int, len(batch)) // batch position → position in errs
	for i := range idx {
		idx[i] = i
	}
	for len(batch) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bbolt.Tx) error {
			for i, fn := range batch {
				if err := safeCall(fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, j := range idx {
				errs[j] = err
			}
			return errs
		}
		fn, j := batch[failed], idx[failed]
		batch = append(batch[:failed:failed], batch[failed+1:]...)
		idx = append(idx[:failed:failed], idx[failed+1:]...)
		errs[j] = c.db.Update(func(tx *bbolt.Tx) error { return safeCall(fn, tx) })
	}
	return errs
}

// safeCall turns a panic in fn into an error, so that one caller's bug
// does not crash the goroutine committing for others.
func safeCall(fn func(*bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("groupcommit: panic in transaction: %v", p)
		}
	}()
	return fn(tx)
}
