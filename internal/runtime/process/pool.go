package process

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
)

// pool holds the processes of one function version: at most cap(sem) of
// them exist, each serving one activation at a time.
type pool struct {
	r   *Runtime
	sem chan struct{} // one token per process allowed
	// The function and unpacked code it runs, for Forget.
	tenant, name, digest string

	mu        sync.Mutex
	idle      []*proc // most recently used last
	forgotten bool    // set by drain (Forget, Close): processes are not kept
}

// acquire returns an idle process (the most recently used, so a warm one
// serves consecutive activations) or starts one with start, waiting for a
// free slot while all processes are busy.
func (pl *pool) acquire(ctx context.Context, start func() (*proc, error)) (*proc, error) {
	select {
	case pl.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, &runtime.Error{Class: runtime.ClassOf(ctx.Err()),
			Err: fmt.Errorf("process: wait for a free process: %w", ctx.Err())}
	}
	for {
		pl.mu.Lock()
		n := len(pl.idle)
		if n == 0 {
			pl.mu.Unlock()
			break
		}
		p := pl.idle[n-1]
		pl.idle = pl.idle[:n-1]
		if p.idle != nil {
			p.idle.Stop()
		}
		pl.mu.Unlock()
		if !p.dead() {
			return p, nil
		}
		pl.r.discard(p)
	}
	p, err := start()
	if err != nil {
		<-pl.sem
		return nil, err
	}
	return p, nil
}

// release returns p to the idle list (healthy) or kills it, and frees its
// slot.
func (pl *pool) release(p *proc, healthy bool) {
	defer func() { <-pl.sem }()
	pl.r.mu.Lock()
	closed := pl.r.closed
	pl.r.mu.Unlock()
	if !healthy || closed || p.dead() {
		pl.r.discard(p)
		return
	}
	pl.mu.Lock()
	if pl.forgotten {
		pl.mu.Unlock()
		pl.r.discard(p)
		return
	}
	p.idle = time.AfterFunc(pl.r.opts.IdleTimeout, func() { pl.reap(p) })
	pl.idle = append(pl.idle, p)
	pl.mu.Unlock()
}

// drain empties the idle list, stopping its reap timers, and returns the
// processes it held. The pool is then forgotten: a process released
// later is killed, not kept.
func (pl *pool) drain() []*proc {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.forgotten = true
	idle := pl.idle
	for _, p := range idle {
		if p.idle != nil {
			p.idle.Stop()
		}
	}
	pl.idle = nil
	return idle
}

// reap stops p if it is still idle.
func (pl *pool) reap(p *proc) {
	pl.mu.Lock()
	found := false
	for i, q := range pl.idle {
		if q == p {
			pl.idle = append(pl.idle[:i], pl.idle[i+1:]...)
			found = true
			break
		}
	}
	pl.mu.Unlock()
	if found {
		pl.r.log.Debug("idle process stopped", "pid", p.pid)
		pl.r.discard(p)
	}
}
