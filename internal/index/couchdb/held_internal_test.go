package couchdb

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// holdPut holds the response of the first PUT made once armed until
// release is closed; the PUT itself has reached the server by then.
type holdPut struct {
	next    http.RoundTripper
	mu      sync.Mutex
	armed   bool
	written chan struct{} // closed when the held PUT's response arrived
	release chan struct{}
}

func (h *holdPut) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	hold := h.armed && r.Method == http.MethodPut
	if hold {
		h.armed = false
	}
	h.mu.Unlock()
	resp, err := h.next.RoundTrip(r)
	if hold {
		close(h.written)
		<-h.release
	}
	return resp, err
}

// heldKeys is the keys d remembers holding.
func heldKeys(d *DB) []string {
	d.held.mu.Lock()
	defer d.held.mu.Unlock()
	var keys []string
	for k := range d.held.m {
		keys = append(keys, k)
	}
	return keys
}

// TestHeldClaims_RenewRacingComplete (issue 17 item 9): a Renew whose
// write lands just before a Complete (which then conflicts, re-reads and
// completes) must not leave the finished claim remembered as held: on
// f13dda0 the Renew put it back after the Complete had dropped it, and
// nothing removed it again.
func TestHeldClaims_RenewRacingComplete(t *testing.T) {
	srv := peers.StartCouchDB(t)
	d, reqs, _ := openCounted(t, srv, "heldrace")
	gate := &holdPut{next: reqs.next, written: make(chan struct{}), release: make(chan struct{})}
	reqs.next = gate
	ctx := t.Context()
	c, err := d.Claim(ctx, "k", index.Parts{}, "a", time.Minute)
	if err != nil || c.Outcome != index.Miss {
		t.Fatalf("claim = %v, %v", c.Outcome, err)
	}
	gate.mu.Lock()
	gate.armed = true
	gate.mu.Unlock()
	renewed := make(chan error, 1)
	go func() { renewed <- d.Renew(ctx, "k", c.Record.Token, time.Minute) }()
	<-gate.written // the renewal is stored; its caller has not seen the answer yet
	if err := d.Complete(ctx, "k", c.Record.Token, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	close(gate.release)
	if err := <-renewed; err != nil {
		t.Fatalf("renew: %v", err)
	}
	if r, err := d.Get(ctx, "k"); err != nil || r.State != index.Done {
		t.Fatalf("record = %v, %v; want done", r.State, err)
	}
	if keys := heldKeys(d); len(keys) != 0 {
		t.Fatalf("after the claim completed the handle still remembers holding %v", keys)
	}
}

// TestHeldClaims_LostLeaseForgotten (issue 17 item 9): a claim whose lease
// ran out (here taken over by another replica) while its owner made no
// further write is forgotten by age: on f13dda0 it stayed remembered for
// the life of the handle.
func TestHeldClaims_LostLeaseForgotten(t *testing.T) {
	srv := peers.StartCouchDB(t)
	a, _, _ := openCounted(t, srv, "heldlost")
	b, _, _ := openCounted(t, srv, "heldlost")
	ctx := t.Context()
	if c, err := a.Claim(ctx, "lost", index.Parts{}, "a", 200*time.Millisecond); err != nil || c.Outcome != index.Miss {
		t.Fatalf("a's claim = %v, %v", c.Outcome, err)
	}
	time.Sleep(heldSweepEvery + 100*time.Millisecond)
	if c, err := b.Claim(ctx, "lost", index.Parts{}, "b", time.Minute); err != nil || c.Outcome != index.Miss {
		t.Fatalf("b's takeover = %v, %v", c.Outcome, err)
	}
	if c, err := a.Claim(ctx, "next", index.Parts{}, "a", time.Minute); err != nil || c.Outcome != index.Miss {
		t.Fatalf("a's next claim = %v, %v", c.Outcome, err)
	}
	if keys := heldKeys(a); len(keys) != 1 || keys[0] != "next" {
		t.Fatalf("a remembers holding %v, want only [next] (the lost lease forgotten)", keys)
	}
}

// TestHeldClaims_FullOfExpiredStillRemembers (issue 17 item 9): once
// maxHeld claims were remembered, f13dda0 silently stopped remembering
// new keys, so each of their writes cost a read again. Claims whose
// lease has ended make room: a new claim is remembered and completed
// with one request.
func TestHeldClaims_FullOfExpiredStillRemembers(t *testing.T) {
	srv := peers.StartCouchDB(t)
	d, reqs, _ := openCounted(t, srv, "heldfull")
	ctx := t.Context()
	d.held.mu.Lock()
	d.held.m = map[string]claimDoc{}
	past := time.Now().Add(-time.Minute)
	for i := range maxHeld {
		k := fmt.Sprint("old", i)
		d.held.m[k] = claimDoc{ID: claimPrefix + k, Rev: "1-x", Record: index.Record{Key: k, State: index.Running, Token: "t", LeaseUntil: past}}
	}
	d.held.mu.Unlock()
	c, err := d.Claim(ctx, "new", index.Parts{}, "a", time.Minute)
	if err != nil || c.Outcome != index.Miss {
		t.Fatalf("claim = %v, %v", c.Outcome, err)
	}
	reqs.take()
	if err := d.Complete(ctx, "new", c.Record.Token, index.Completion{}); err != nil {
		t.Fatal(err)
	}
	if got := reqs.take(); len(got) != 1 {
		t.Fatalf("complete made %d requests %v, want 1 (the write with the remembered _rev)", len(got), got)
	}
	if n := len(heldKeys(d)); n != 0 {
		t.Fatalf("%d claims remembered after the only live one completed, want 0", n)
	}
}
