package indextest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
)

// Bounds on index.Waiter wake-ups. The target is a few milliseconds from
// the owner's commit; the suite asserts generously, so a loaded machine
// does not fail it, yet a backend that only polls or waits for its
// backstop does.
const (
	wakeMedian = 50 * time.Millisecond  // median over the suite's wake-ups
	wakeMax    = 500 * time.Millisecond // any single one
	// quiet is how long a waiter must stay blocked when nothing changes.
	quiet = 100 * time.Millisecond
)

func waiter(t *testing.T, idx index.Index) index.Waiter {
	t.Helper()
	w, ok := idx.(index.Waiter)
	if !ok {
		t.Skip("backend does not implement index.Waiter")
	}
	return w
}

// waitOn claims key for "b" (expecting Wait on a's claim) and starts
// WaitChange on it; the channel gets its error and the time it returned.
func waitOn(t *testing.T, idx index.Index, key string) (<-chan error, *time.Time) {
	t.Helper()
	c := claim(t, idx, key, "b", lease)
	if c.Outcome != index.Wait {
		t.Fatalf("Claim(%s, b) = %v, want wait", key, c.Outcome)
	}
	done := make(chan error, 1)
	var at time.Time
	go func() {
		err := waiter(t, idx).WaitChange(t.Context(), c.Record)
		at = time.Now()
		done <- err
	}()
	return done, &at
}

// testWaitChangeWakes: a waiter on another owner's claim stays blocked
// while nothing changes, and wakes promptly however the claim ends;
// claiming again then finds the end.
func testWaitChangeWakes(t *testing.T, idx index.Index) {
	waiter(t, idx)
	var lat []time.Duration
	for _, tc := range []struct {
		name string
		end  func(key, token string) error
		want index.Outcome // of the waiter's next claim
	}{
		{"Complete", func(k, tok string) error {
			return idx.Complete(t.Context(), k, tok, index.Completion{Output: &index.Output{Key: "o"}})
		}, index.Hit},
		{"FailCached", func(k, tok string) error { return idx.Fail(t.Context(), k, tok, "boom", "function", true) }, index.Hit},
		{"FailNotCached", func(k, tok string) error { return idx.Fail(t.Context(), k, tok, "boom", "platform", false) }, index.Miss},
		{"Release", func(k, tok string) error { return idx.Release(t.Context(), k, tok) }, index.Miss},
		{"Delete", func(k, _ string) error { return idx.Delete(t.Context(), k) }, index.Miss},
	} {
		key := "wake-" + tc.name
		r := mustMiss(t, idx, key, "a", lease)
		done, at := waitOn(t, idx, key)
		select {
		case err := <-done:
			t.Fatalf("%s: WaitChange returned %v while the claim was unchanged", tc.name, err)
		case <-time.After(quiet):
		}
		if err := tc.end(key, r.Token); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		committed := time.Now()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: WaitChange = %v, want nil", tc.name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the waiter was not woken", tc.name)
		}
		d := max(at.Sub(committed), 0)
		if d > wakeMax {
			t.Errorf("%s: waiter woke %s after the commit, want < %s", tc.name, d, wakeMax)
		}
		lat = append(lat, d)
		if c := claim(t, idx, key, "b", lease); c.Outcome != tc.want {
			t.Errorf("%s: claim after the wake-up = %v, want %v", tc.name, c.Outcome, tc.want)
		}
	}
	slices.Sort(lat)
	if m := lat[len(lat)/2]; m > wakeMedian {
		t.Errorf("median wake-up %s after the commit, want < %s (all: %v)", m, wakeMedian, lat)
	}
	t.Logf("wake-up after the commit: %v", lat)
}

// testWaitChangeAlreadyChanged: a change between the waiter's Claim and
// its WaitChange is not missed: WaitChange returns at once.
func testWaitChangeAlreadyChanged(t *testing.T, idx index.Index) {
	w := waiter(t, idx)
	r := mustMiss(t, idx, "k", "a", lease)
	c := claim(t, idx, "k", "b", lease)
	if c.Outcome != index.Wait {
		t.Fatalf("second claim = %v, want wait", c.Outcome)
	}
	if err := idx.Complete(t.Context(), "k", r.Token, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := w.WaitChange(t.Context(), c.Record); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > wakeMax {
		t.Fatalf("WaitChange on a claim completed before the call took %s, want at once", d)
	}
}

// testWaitChangeLeaseExpiry: an owner that dies writes nothing, so its
// lease running out must wake the waiter, which then takes the claim over.
func testWaitChangeLeaseExpiry(t *testing.T, idx index.Index) {
	w := waiter(t, idx)
	const short = 300 * time.Millisecond
	mustMiss(t, idx, "k", "a", short)
	c := claim(t, idx, "k", "b", lease)
	if c.Outcome != index.Wait {
		t.Fatalf("second claim = %v, want wait", c.Outcome)
	}
	start := time.Now()
	if err := w.WaitChange(t.Context(), c.Record); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > short+wakeMax {
		t.Fatalf("WaitChange on a claim whose lease ran out returned after %s, want about %s", d, short)
	}
	time.Sleep(time.Until(c.Record.LeaseUntil.Add(10 * time.Millisecond)))
	if got := claim(t, idx, "k", "b", lease); got.Outcome != index.Miss || got.Record.Attempt != 2 {
		t.Fatalf("claim after the lease ran out = %v attempt %d, want a takeover", got.Outcome, got.Record.Attempt)
	}
}

// testWaitChangeMany: many waiters on many keys at once all wake when
// their keys complete, and not before.
func testWaitChangeMany(t *testing.T, idx index.Index) {
	waiter(t, idx)
	const keys, perKey = 8, 3
	tokens := map[string]string{}
	var dones []<-chan error
	for i := range keys {
		key := fmt.Sprintf("many-%d", i)
		tokens[key] = mustMiss(t, idx, key, "a", lease).Token
		for range perKey {
			done, _ := waitOn(t, idx, key)
			dones = append(dones, done)
		}
	}
	time.Sleep(quiet)
	for i, done := range dones {
		select {
		case err := <-done:
			t.Fatalf("waiter %d returned %v before any change", i, err)
		default:
		}
	}
	for key, tok := range tokens {
		if err := idx.Complete(t.Context(), key, tok, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(5 * time.Second)
	for i, done := range dones {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("waiter %d: %v", i, err)
			}
		case <-deadline:
			t.Fatalf("waiter %d was not woken", i)
		}
	}
}

// testWaitChangeContext: WaitChange returns ctx's error when it ends.
func testWaitChangeContext(t *testing.T, idx index.Index) {
	w := waiter(t, idx)
	mustMiss(t, idx, "k", "a", lease)
	c := claim(t, idx, "k", "b", lease)
	ctx, cancel := context.WithTimeout(t.Context(), quiet)
	defer cancel()
	start := time.Now()
	if err := w.WaitChange(ctx, c.Record); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitChange with an ending ctx = %v, want its deadline error", err)
	}
	if d := time.Since(start); d > quiet+wakeMax {
		t.Fatalf("WaitChange returned %s after a %s ctx ended", d, quiet)
	}
}
