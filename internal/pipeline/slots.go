package pipeline

import (
	"context"
	"slices"
	"sync"
)

// runSlots bounds the function executions in flight (Config.MaxRuns) and
// gives live events priority: a background execution (a backfill's or an
// audit's) takes a free slot only while no live event waits for one, and
// a freed slot goes to the oldest live waiter first. So a backfill never
// makes production uploads queue behind it for more than the runs
// already started.
type runSlots struct {
	mu       sync.Mutex
	free     int
	live     []chan struct{} // waiters, oldest first; a slot is handed over by closing
	deferred []chan struct{}
}

func newRunSlots(n int) *runSlots { return &runSlots{free: n} }

// acquire waits for a slot; background waits behind every live waiter.
// On an error (ctx done) no slot is held.
func (s *runSlots) acquire(ctx context.Context, background bool) error {
	s.mu.Lock()
	if s.free > 0 && len(s.live) == 0 && (!background || len(s.deferred) == 0) {
		s.free--
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if background {
		s.deferred = append(s.deferred, ch)
	} else {
		s.live = append(s.live, ch)
	}
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-ch: // handed a slot just now: give it on
			s.releaseLocked()
		default:
			s.live = slices.DeleteFunc(s.live, func(c chan struct{}) bool { return c == ch })
			s.deferred = slices.DeleteFunc(s.deferred, func(c chan struct{}) bool { return c == ch })
		}
		return context.Cause(ctx)
	}
}

// tryAcquire takes a slot if acquire would not wait for one.
func (s *runSlots) tryAcquire(background bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free > 0 && len(s.live) == 0 && (!background || len(s.deferred) == 0) {
		s.free--
		return true
	}
	return false
}

// release frees a slot taken by acquire.
func (s *runSlots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *runSlots) releaseLocked() {
	switch {
	case len(s.live) > 0:
		close(s.live[0])
		s.live = s.live[1:]
	case len(s.deferred) > 0:
		close(s.deferred[0])
		s.deferred = s.deferred[1:]
	default:
		s.free++
	}
}
