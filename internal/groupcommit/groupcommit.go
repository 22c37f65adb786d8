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
	done chan error  // Do's: the result, or errLead: become the committer
	then func(error) // Go's: called with the result instead
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
	if g.enqueue(p) {
		g.lead()
	} else if err := <-p.done; err != errLead {
		return err
	} else {
		g.lead()
	}
	return <-p.done
}

// Go queues item and returns at once; then is called with its error once
// its batch is committed. Items commit in the order they were queued,
// Do's and Go's alike: an item queued after item's commits in the same
// batch or a later one. then runs on the committing goroutine: it must
// be quick and must not wait on g.
func (g *Group[T]) Go(item T, then func(error)) {
	if g.enqueue(&pending[T]{item: item, then: then}) {
		go g.lead()
	}
}

// enqueue queues p and reports whether its caller is to lead.
func (g *Group[T]) enqueue(p *pending[T]) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.queue = append(g.queue, p)
	lead := !g.leading
	g.leading = true
	return lead
}

// lead commits everything queued, then hands the role to the first Do
// that queued meanwhile (or gives it up): a leading Do's own result is
// ready and it should not commit for others forever. Go's items queued
// meanwhile get a goroutine of their own to lead.
func (g *Group[T]) lead() {
	g.mu.Lock()
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()
	g.run(batch)
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case len(g.queue) == 0:
		g.leading = false
	case g.queue[0].done != nil:
		g.queue[0].done <- errLead
	default:
		go g.lead()
	}
}

func (g *Group[T]) run(batch []*pending[T]) {
	items := make([]T, len(batch))
	for i, p := range batch {
		items[i] = p.item
	}
	errs, err := safeCommit(g.commit, items)
	for i, p := range batch {
		e := err
		if e == nil {
			e = errs[i]
		}
		if p.then != nil {
			p.then(e)
		} else {
			p.done <- e
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

// UpdateAsync queues fn as Update does and returns at once; then gets
// Update's error (see Group.Go: commits keep their order).
func (c *Committer) UpdateAsync(fn func(*bbolt.Tx) error, then func(error)) { c.g.Go(fn, then) }

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
