package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A freed slot goes to a live waiter before any background waiter, even
// one that has waited longer.
func TestRunSlots_LiveBeforeBackground(t *testing.T) {
	s := newRunSlots(1)
	ctx := t.Context()
	if err := s.acquire(ctx, true); err != nil { // a backfill run holds the one slot
		t.Fatal(err)
	}
	order := make(chan string, 2)
	bgQueued := make(chan struct{})
	go func() {
		close(bgQueued)
		s.acquire(ctx, true)
		order <- "background"
		s.release()
	}()
	<-bgQueued
	waitQueued(t, s, 0, 1)
	go func() {
		s.acquire(ctx, false)
		order <- "live"
		s.release()
	}()
	waitQueued(t, s, 1, 1)
	s.release()
	if first := <-order; first != "live" {
		t.Fatalf("first slot went to %s, want live", first)
	}
	if second := <-order; second != "background" {
		t.Fatalf("second slot went to %s, want background", second)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.freeSlots() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("free slots = %d after all released, want 1", s.freeSlots())
		}
		time.Sleep(time.Millisecond)
	}
}

// A background acquire does not take a free slot while a live event waits;
// a live one does not jump ahead of older live waiters.
func TestRunSlots_BackgroundYieldsToWaitingLive(t *testing.T) {
	s := newRunSlots(2)
	ctx := t.Context()
	s.acquire(ctx, false)
	s.acquire(ctx, false)
	got := make(chan struct{})
	go func() { s.acquire(ctx, false); close(got) }()
	waitQueued(t, s, 1, 0)
	s.release() // handed to the live waiter, not freed
	<-got
	if n := s.freeSlots(); n != 0 {
		t.Fatalf("free = %d, want 0: the slot should have been handed over", n)
	}
}

// A waiter whose context ends leaves the queue holding no slot, and a slot
// handed to it as it gave up is passed on.
func TestRunSlots_CancelledWaiterHoldsNothing(t *testing.T) {
	s := newRunSlots(1)
	s.acquire(t.Context(), false)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error)
	go func() { errc <- s.acquire(ctx, true) }()
	waitQueued(t, s, 0, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire = %v, want context.Canceled", err)
	}
	s.release()
	waitQueued(t, s, 0, 0)
	if n := s.freeSlots(); n != 1 {
		t.Fatalf("free = %d, want 1", n)
	}
}

func waitQueued(t *testing.T, s *runSlots, live, deferred int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		l, d := len(s.live), len(s.deferred)
		s.mu.Unlock()
		if l == live && d == deferred {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiters live=%d deferred=%d, want %d and %d", l, d, live, deferred)
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *runSlots) freeSlots() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.free
}
