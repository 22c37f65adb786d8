package bolt

import (
	"sync"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
)

// running holds the running claims of a bolt index in memory. A bolt
// file is locked to one process, so every claimant of its keys is in
// this process, and a running claim on disk would protect nothing a
// crash has not already ended: it would only make the claims after a
// restart wait for the dead owner's lease. So a miss's claim costs no
// write (no fsync round); only its end does (Complete, a cached Fail).
//
// A claim whose remote activation id is known (SetExternalID) moves to
// disk and stays there until it ends, so that a successor after a crash
// polls that activation instead of invoking the function again. A key's
// running claim is in memory or on disk, never both.
type running struct {
	mu sync.Mutex
	m  map[string]*runningClaim
}

type runningClaim struct {
	rec index.Record
	// ending: the claim's end (Complete, a cached Fail) or its move to
	// disk (SetExternalID) is committing. It counts as live, whatever its
	// lease: nobody takes over a claim whose result is being written. A
	// completed claim's rec is already its Done record.
	ending bool
}

func (r *running) get(key string) (index.Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.m[key]
	if !ok {
		return index.Record{}, false
	}
	return c.rec, true
}

// claim decides a claim of key that found nothing on disk, under r.mu:
// free asks the disk again (under the lock, so that a claim ended since
// the caller looked is found there: an end leaves memory only after its
// commit). It returns the outcome, and whether it decided (false: the
// disk holds the key now; decide from it).
func (r *running) claim(key string, parts index.Parts, owner string, lease time.Duration, free func() (bool, error)) (index.Claimed, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now().UTC()
	c, ok := r.m[key]
	switch {
	case ok && c.rec.State == index.Done: // completed, its commit queued (Complete)
		return index.Claimed{Outcome: index.Hit, Record: c.rec}, true, nil
	case ok && (c.ending || index.Live(c.rec, now)):
		return index.Claimed{Outcome: index.Wait, Record: c.rec}, true, nil
	case ok:
		// Taken over: a claim of its own, so that the old owner's late
		// end (drop) cannot remove it.
		c = &runningClaim{rec: c.rec}
		r.m[key] = c
	default:
		absent, err := free()
		if err != nil || !absent {
			return index.Claimed{}, false, err
		}
		c = &runningClaim{rec: index.Record{Key: key, State: index.Running, Parts: parts, Created: now}}
		if r.m == nil {
			r.m = map[string]*runningClaim{}
		}
		r.m[key] = c
	}
	// New, or taken over from an expired lease.
	c.rec.Attempt++
	c.rec.Owner, c.rec.Token, c.rec.LeaseUntil, c.rec.Updated = owner, newToken(), now.Add(lease), now
	return index.Claimed{Outcome: index.Miss, Record: c.rec}, true, nil
}

// owned returns the running claim of key held with token, under r.mu
// (the caller unlocks): nil with r.mu unlocked when key's claim is not in
// memory (it may be on disk), ErrNotOwner when it is, with another token.
func (r *running) owned(key, token string) (*runningClaim, error) {
	r.mu.Lock()
	c, ok := r.m[key]
	if !ok {
		r.mu.Unlock()
		return nil, nil
	}
	if c.rec.Token != token || token == "" {
		r.mu.Unlock()
		return nil, index.ErrNotOwner
	}
	return c, nil
}

// drop forgets key's claim if it is still c.
func (r *running) drop(key string, c *runningClaim) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[key] == c {
		delete(r.m, key)
	}
}

// forget forgets key's claim, whoever holds it (an operator's Delete).
func (r *running) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, key)
}

// list returns a copy of every running claim in memory.
func (r *running) list() []index.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]index.Record, 0, len(r.m))
	for _, c := range r.m {
		out = append(out, c.rec)
	}
	return out
}
