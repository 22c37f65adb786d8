package index

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Waiter is implemented by backends that can wake a caller as soon as a
// claim it got Wait on changes, so that it claims again at once instead
// of polling. Find it with a type assertion: if w, ok := idx.(Waiter).
type Waiter interface {
	// WaitChange blocks while the record under cur.Key is still the
	// running claim cur (the Record of a Wait outcome: same token and
	// attempt). It returns nil as soon as that claim has ended —
	// completed, failed, released, deleted or taken over, including
	// before the call (nothing between the Claim that returned cur and
	// this call is missed) — and also when cur's lease runs out (the
	// caller may take it over) or after the backend's backstop (a broken
	// change feed). A lease renewal does not wake it. The caller claims
	// again after a nil return, and waits again on Wait.
	// It returns ctx's error when ctx ends, and a wrapped error when it
	// cannot read the record; the caller may then poll instead.
	WaitChange(ctx context.Context, cur Record) error
}

// SameClaim reports whether r is still the running claim cur: the same
// owner's token and attempt. A renewed lease or a recorded external id
// is the same claim.
func SameClaim(r, cur Record) bool {
	return r.State == Running && r.Token == cur.Token && r.Attempt == cur.Attempt && r.Owner == cur.Owner
}

// Changes wakes the waiters of a key when it changes: the backend-neutral
// part of a Waiter. Waiters Subscribe before they read the record;
// whatever writes the key (in process) or reads a change feed calls
// Notify after the change is visible to reads, so a waiter either sees
// the change in its read or is woken. The zero value is ready to use.
type Changes struct {
	mu   sync.Mutex
	subs map[string]*changeSub
}

type changeSub struct {
	ch chan struct{} // closed by Notify
	n  int           // subscribers
}

// Subscribe returns a channel that is closed at the next Notify of key,
// and a func that gives the subscription up (call it when done waiting;
// calling it after the Notify is fine).
func (c *Changes) Subscribe(key string) (<-chan struct{}, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs == nil {
		c.subs = map[string]*changeSub{}
	}
	s := c.subs[key]
	if s == nil {
		s = &changeSub{ch: make(chan struct{})}
		c.subs[key] = s
	}
	s.n++
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if s.n--; s.n == 0 && c.subs[key] == s {
				delete(c.subs, key)
			}
		})
	}
}

// Notify wakes every current subscriber of key.
func (c *Changes) Notify(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.subs[key]; s != nil {
		close(s.ch)
		delete(c.subs, key)
	}
}

// Watched is how many keys have subscribers.
func (c *Changes) Watched() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.subs)
}

// WaitChange implements Waiter.WaitChange for a backend that notifies
// changes: it subscribes to cur.Key, reads the record with get (so a
// change made before the subscription is seen), and waits for a
// notification, ctx, cur's lease deadline or backstop, whichever comes
// first. A notification is checked with another read, so one that is not
// the end of cur (a renewal, a change feed catching up on older changes)
// does not return. get returns ErrNotFound for an absent record.
func WaitChange(ctx context.Context, c *Changes, cur Record, backstop time.Duration, get func(context.Context, string) (Record, error)) error {
	return WaitChangeClock(ctx, c, cur, backstop, get, time.Now)
}

// WaitChangeClock is WaitChange for a backend whose leases are set and
// checked on a clock other than this process's (a database server's):
// now reads that clock, so cur.LeaseUntil is compared with the time it was
// set on. Measured on this process's clock, a replica running ahead would
// wake before the lease ends and claim again in a loop until it did.
func WaitChangeClock(ctx context.Context, c *Changes, cur Record, backstop time.Duration, get func(context.Context, string) (Record, error), now func() time.Time) error {
	start := now()
	deadline := start.Add(backstop)
	if !cur.LeaseUntil.IsZero() && cur.LeaseUntil.Before(deadline) {
		deadline = cur.LeaseUntil
	}
	timer := time.NewTimer(deadline.Sub(start))
	defer timer.Stop()
	for {
		changed, cancel := c.Subscribe(cur.Key)
		r, err := get(ctx, cur.Key)
		switch {
		case errors.Is(err, ErrNotFound):
			cancel()
			return nil
		case err != nil:
			cancel()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		case !SameClaim(r, cur):
			cancel()
			return nil
		}
		select {
		case <-changed:
			cancel()
		case <-timer.C:
			cancel()
			return nil
		case <-ctx.Done():
			cancel()
			return ctx.Err()
		}
	}
}
