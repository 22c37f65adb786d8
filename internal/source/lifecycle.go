package source

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by a Run after Close.
var ErrClosed = errors.New("source closed")

// ErrRunTwice is returned by a Run while another Run is running, or, for
// a source that runs once, after the first.
var ErrRunTwice = errors.New("Run called twice")

// Lifecycle is the Run and Close bookkeeping that every Source shares: a
// Run starts only while no other Run is running (with Once, never after
// the first) and never after Close; Close is safe to call twice, and it
// stops the running Run and waits for it to return. Its zero value is
// ready to use.
type Lifecycle struct {
	// Once refuses every Run after the first, even one that returned.
	Once bool

	mu      sync.Mutex
	ran     bool // a Run started (it may have returned)
	running bool
	closed  bool
	cancel  context.CancelFunc // of the last Run's context
	done    chan struct{}      // closed when the last Run returned
}

// Start begins a Run. It returns a context derived from ctx that Close
// cancels, and end, which the Run calls (deferred) as it returns. It
// fails with ErrClosed after Close and with ErrRunTwice while another
// Run is running (with Once: after the first).
func (l *Lifecycle) Start(ctx context.Context) (context.Context, func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return nil, nil, ErrClosed
	case l.running || (l.Once && l.ran):
		return nil, nil, ErrRunTwice
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	l.ran, l.running, l.cancel, l.done = true, true, cancel, done
	end := func() {
		cancel()
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
		close(done)
	}
	return ctx, end, nil
}

// Close marks the source closed, cancels the running Run's context and
// waits for that Run to return. It reports whether this call closed the
// source; a second call returns false at once.
func (l *Lifecycle) Close() bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.closed = true
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return true
}
