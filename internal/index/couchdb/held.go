package couchdb

import (
	"sync"
	"time"
)

const (
	// maxHeld bounds how many claims a handle remembers; beyond it a
	// claim's later writes read it first, as they would without the
	// memory. Claims whose lease has ended make room first (see put).
	maxHeld = 10_000
	// heldSweepEvery is how often put forgets the claims whose lease has
	// ended: lost to another replica, or abandoned by a caller that never
	// wrote again (a shutdown leaves claims to expire).
	heldSweepEvery = time.Second
)

// heldClaims remembers each claim this handle holds as it last wrote it,
// _rev included. Renewing, completing, failing or releasing it is then
// one write with that _rev instead of a read and a write: CouchDB refuses
// the write (409) if anyone changed the document since, and only then is
// it read again. A write is fenced exactly as after a fresh read, because
// the _rev proves the document is still the one holding our token.
//
// Forgetting is always safe (the next write reads first), so entries go
// at every terminal outcome, at a conflict, and once their lease ends;
// only a new claim adds one, so a write that lands after the claim was
// forgotten (a Renew racing Complete) cannot bring it back.
type heldClaims struct {
	mu    sync.Mutex
	m     map[string]claimDoc
	swept time.Time // last sweep of ended leases
}

// get returns the remembered claim on key if it is held with token and
// its lease has not ended.
func (h *heldClaims) get(key, token string) (claimDoc, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.m[key]
	if ok && !c.LeaseUntil.After(time.Now()) {
		delete(h.m, key)
		return c, false
	}
	return c, ok && c.Token == token
}

// add remembers c, a claim just taken and written with revision rev.
func (h *heldClaims) add(key string, c claimDoc, rev string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]claimDoc{}
	}
	if _, ok := h.m[key]; !ok {
		now := time.Now()
		if len(h.m) >= maxHeld || now.Sub(h.swept) >= heldSweepEvery {
			h.sweep(now)
		}
		if len(h.m) >= maxHeld {
			return
		}
	}
	c.Rev = rev
	h.m[key] = c
}

// update records a later write of a claim still remembered with the same
// token; a claim forgotten meanwhile stays forgotten.
func (h *heldClaims) update(key string, c claimDoc, rev string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.m[key]; ok && old.Token == c.Token {
		c.Rev = rev
		h.m[key] = c
	}
}

// sweep forgets the claims whose lease has ended by now. h.mu must be held.
func (h *heldClaims) sweep(now time.Time) {
	h.swept = now
	for k, c := range h.m {
		if !c.LeaseUntil.After(now) {
			delete(h.m, k)
		}
	}
}

// drop forgets key: the claim is finished, lost or of unknown state.
func (h *heldClaims) drop(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, key)
}
