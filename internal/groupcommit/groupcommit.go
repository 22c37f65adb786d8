// Package groupcommit lets concurrent bbolt write transactions share one
// commit (one fsync round) without delaying a lone writer.
//
// Why not bbolt's own DB.Batch? It starts a batch on a timer
// (MaxBatchDelay, 10ms by default): a lone write waits the whole delay,
// which alone is ten times the hit latency dedupfn aims for. Here the
// first writer commits at once; writers that arrive while a commit is in
// flight queue up, and the next of them commits everything queued in one
// transaction as soon as the previous commit ends. An idle writer pays
// nothing, and under load a commit carries every write that arrived
// during the previous fsync.
package groupcommit

import (
	"errors"
	"fmt"
	"sync"

	bbolt "go.etcd.io/bbolt"
)

// Committer runs write functions in shared bbolt transactions. The zero
// value is not usable; use New. Safe for concurrent use.
type Committer struct {
	db *bbolt.DB

	mu      sync.Mutex
	queue   []*call
	leading bool // a goroutine is committing (or about to commit) the queue
}

type call struct {
	fn   func(*bbolt.Tx) error
	done chan error // the result, or errLead: become the committer
}

// errLead hands the committing role to a queued caller.
var errLead = errors.New("groupcommit: lead")

// New returns a Committer for db. Writes through db.Update still work
// alongside it (bbolt serializes them).
func New(db *bbolt.DB) *Committer { return &Committer{db: db} }

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
func (c *Committer) Update(fn func(*bbolt.Tx) error) error {
	cl := &call{fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, cl)
	lead := !c.leading
	c.leading = true
	c.mu.Unlock()
	if !lead {
		if err := <-cl.done; err != errLead {
			return err
		}
	}
	// Commit everything queued, ours included, then hand the role to the
	// first caller that queued meanwhile (or give it up): the leader's
	// own result is ready and it should not commit for others forever.
	c.mu.Lock()
	batch := c.queue
	c.queue = nil
	c.mu.Unlock()
	c.commit(batch)
	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].done <- errLead
	} else {
		c.leading = false
	}
	c.mu.Unlock()
	return <-cl.done
}

// commit runs batch in one transaction and reports to each call; a call
// whose fn fails is taken out and run alone, and the rest run again.
func (c *Committer) commit(batch []*call) {
	for len(batch) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bbolt.Tx) error {
			for i, cl := range batch {
				if err := safeCall(cl.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, cl := range batch {
				cl.done <- err
			}
			return
		}
		cl := batch[failed]
		batch = append(batch[:failed:failed], batch[failed+1:]...)
		cl.done <- c.db.Update(func(tx *bbolt.Tx) error { return safeCall(cl.fn, tx) })
	}
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
