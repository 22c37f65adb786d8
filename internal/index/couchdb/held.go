package couchdb

import "sync"

// maxHeld bounds how many claims a handle remembers; beyond it a claim's
// later writes read it first, as they would without the memory.
const maxHeld = 10_000

// heldClaims remembers each claim this handle holds as it last wrote it,
// _rev included. Renewing, completing, failing or releasing it is then
// one write with that _rev instead of a read and a write: CouchDB refuses
// the write (409) if anyone changed the document since, and only then is
// it read again. A write is fenced exactly as after a fresh read, because
// the _rev proves the document is still the one holding our token.
type heldClaims struct {
	mu sync.Mutex
	m  map[string]claimDoc
}

// get returns the remembered claim on key if it is held with token.
func (h *heldClaims) get(key, token string) (claimDoc, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.m[key]
	return c, ok && c.Token == token
}

// put remembers c, written with revision rev, as held.
func (h *heldClaims) put(key string, c claimDoc, rev string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]claimDoc{}
	}
	if _, ok := h.m[key]; !ok && len(h.m) >= maxHeld {
		return
	}
	c.Rev = rev
	h.m[key] = c
}

// drop forgets key: the claim is finished, lost or of unknown state.
func (h *heldClaims) drop(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, key)
}
