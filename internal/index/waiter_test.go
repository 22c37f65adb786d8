package index_test

import (
	"testing"

	"github.com/dedupfn/dedupfn/internal/index"
)

// Notify wakes every subscriber of its key and no other; subscriptions
// given up (woken or not) leave nothing behind.
func TestChanges(t *testing.T) {
	var c index.Changes
	a1, cancelA1 := c.Subscribe("a")
	a2, cancelA2 := c.Subscribe("a")
	b, cancelB := c.Subscribe("b")
	if n := c.Watched(); n != 2 {
		t.Fatalf("Watched = %d, want 2", n)
	}
	c.Notify("a")
	for i, ch := range []<-chan struct{}{a1, a2} {
		select {
		case <-ch:
		default:
			t.Fatalf("subscriber %d of a not woken", i)
		}
	}
	select {
	case <-b:
		t.Fatal("subscriber of b woken by a change to a")
	default:
	}
	a3, cancelA3 := c.Subscribe("a") // after the notify: a fresh channel
	select {
	case <-a3:
		t.Fatal("a new subscription saw an old notification")
	default:
	}
	cancelA1()
	cancelA2()
	cancelA2() // twice is fine
	cancelA3()
	cancelB()
	if n := c.Watched(); n != 0 {
		t.Fatalf("Watched = %d after every subscription was given up, want 0", n)
	}
}
