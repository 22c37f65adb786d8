package couchdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	kivik "github.com/go-kivik/kivik/v4"

	"github.com/dedupfn/dedupfn/internal/backoff"
	"github.com/dedupfn/dedupfn/internal/index"
)

// Defaults of WaitChange.
const (
	// WaitBackstop bounds one WaitChange: if the changes feed is broken
	// (or a change is lost), a waiter claims again after at most this.
	WaitBackstop = 2 * time.Second
	// feedLinger is how long the wait feed keeps running after its last
	// waiter left, so that a steady trickle of waits does not restart it
	// (one extra request) each time.
	feedLinger = 30 * time.Second
)

// WaitChange implements index.Waiter. All waiters of one DB share one
// long-polled _changes feed (not a request per waiter), which runs while
// anyone waits (and feedLinger after) and wakes the waiters of every
// claim document that changes, through any replica. The feed takes its
// position before the waiter reads the claim, so a change made after the
// waiter's Claim is either seen by that read or delivered by the feed.
// If the feed cannot start, or breaks, waiters return after at most
// WaitBackstop and the caller claims again.
func (d *DB) WaitChange(ctx context.Context, cur index.Record) error {
	ready, leave := d.feed.join()
	defer leave()
	backstop := time.NewTimer(WaitBackstop)
	defer backstop.Stop()
	select {
	case <-ready:
	case <-backstop.C:
		return nil // no feed: let the caller claim again
	case <-ctx.Done():
		return ctx.Err()
	}
	err := index.WaitChange(ctx, &d.feed.changes, cur, WaitBackstop, d.Get)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("couchdb: wait change %s: %w", cur.Key, err)
	}
	return err
}

// waitFeed is the _changes feed shared by a DB's waiters.
type waitFeed struct {
	d       *DB
	changes index.Changes

	mu      sync.Mutex
	waiters int
	left    time.Time          // when the last waiter left
	ready   chan struct{}      // closed once the running feed has its position
	cancel  context.CancelFunc // stops the running feed; nil when none runs
	closed  bool
	wg      sync.WaitGroup
}

// join registers a waiter, starting the feed if none runs, and returns a
// channel closed once the feed has its position, and the func to leave.
func (f *waitFeed) join() (ready <-chan struct{}, leave func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waiters++
	if f.cancel == nil && !f.closed {
		ctx, cancel := context.WithCancel(context.Background())
		f.cancel, f.ready = cancel, make(chan struct{})
		f.wg.Add(1)
		go f.run(ctx, f.ready)
	}
	var once sync.Once
	return f.ready, func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.waiters--; f.waiters == 0 {
				f.left = time.Now()
			}
		})
	}
}

// idle reports (and records, by forgetting the feed) that the feed may
// stop: nobody has waited for feedLinger.
func (f *waitFeed) idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.waiters > 0 || time.Since(f.left) < feedLinger {
		return false
	}
	f.cancel()
	f.cancel = nil
	return true
}

// stop ends the feed and waits for it. Safe to call twice.
func (f *waitFeed) stop() {
	f.mu.Lock()
	f.closed = true
	if f.cancel != nil {
		f.cancel()
		f.cancel = nil
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// run follows the changes feed from the database's current update
// sequence, notifying the key of each changed claim document, until ctx
// ends or the feed is idle. ready is closed once the position is known.
// Failures are retried from the last position with capped backoff (a
// change in between is still delivered), logged at most once a minute.
func (f *waitFeed) run(ctx context.Context, ready chan struct{}) {
	defer f.wg.Done()
	var (
		seq     string
		lastLog time.Time
	)
	for failures := 0; ; {
		err := f.poll(ctx, &seq, ready)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			if f.idle() {
				return
			}
			continue
		}
		failures++
		if time.Since(lastLog) > time.Minute {
			lastLog = time.Now()
			f.d.log.Warn("wait feed broken, reconnecting", "failures", failures, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff.Delay(failures, watchBackoffBase, watchBackoffMax)):
		}
	}
}

// poll takes the feed's position if it has none yet (closing ready), then
// makes one long-poll request for the changes after it, notifies their
// claim keys and moves the position on.
func (f *waitFeed) poll(parent context.Context, seq *string, ready chan struct{}) (err error) {
	if *seq == "" {
		sctx, cancel := f.d.call(parent)
		st, err := f.d.db.Stats(sctx)
		cancel()
		if err != nil {
			return fmt.Errorf("couchdb: wait feed: read update seq: %w", err)
		}
		*seq = cmp.Or(st.UpdateSeq, "now")
		close(ready)
	}
	// As in pollChanges: end an idle or dead long-poll ourselves.
	ctx, cancel := context.WithTimeout(parent, WatchPoll+WatchPoll/2)
	defer cancel()
	defer func() {
		if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
			err = nil
		}
	}()
	feed := f.d.watchDB.Changes(ctx, kivik.Params(map[string]any{
		"feed":    "longpoll",
		"since":   *seq,
		"timeout": int(WatchPoll / time.Millisecond),
	}))
	defer feed.Close()
	for feed.Next() {
		if key, ok := strings.CutPrefix(feed.ID(), claimPrefix); ok {
			f.changes.Notify(key)
		}
	}
	if err := feed.Err(); err != nil {
		return fmt.Errorf("couchdb: wait feed: changes since %s: %w", *seq, err)
	}
	meta, err := feed.Metadata()
	if err != nil {
		return fmt.Errorf("couchdb: wait feed: changes since %s: %w", *seq, err)
	}
	*seq = cmp.Or(meta.LastSeq, *seq)
	return nil
}
