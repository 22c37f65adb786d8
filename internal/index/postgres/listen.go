package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dedupfn/dedupfn/internal/backoff"
	"github.com/dedupfn/dedupfn/internal/index"
)

// Defaults of WaitChange and WatchDocs.
const (
	// WaitBackstop bounds one WaitChange when the claim's lease runs
	// longer: notifications are not lost while the listener is connected
	// (a broken connection wakes every waiter at once), so it is only a
	// safety net.
	WaitBackstop = 10 * time.Second
	// listenBackoffBase and listenBackoffMax bound the delay between
	// reconnects of the listener.
	listenBackoffBase = 100 * time.Millisecond
	listenBackoffMax  = 10 * time.Second
)

// Notification channels, written by the schema's triggers.
const (
	claimsChannel = "dedupfn_claims" // payload: the key of a running claim that ended
	docsChannel   = "dedupfn_docs"   // payload: the kind of a document that changed
)

// listener holds one connection that LISTENs on both channels, for all
// of a DB's waiters and watchers. It starts at the first WaitChange or
// WatchDocs and runs until Close, reconnecting with capped backoff.
type listener struct {
	cfg *pgx.ConnConfig
	log *slog.Logger

	changes index.Changes // claim keys → waiters

	mu      sync.Mutex
	conn    context.Context // live while the current connection listens; nil between connections
	up      chan struct{}   // closed (and replaced) when a connection starts listening
	watches map[string]map[chan struct{}]bool
	cancel  context.CancelFunc // stops run; nil until started
	closed  bool
	wg      sync.WaitGroup
}

func newListener(cfg *pgx.ConnConfig, log *slog.Logger) *listener {
	return &listener{cfg: cfg, log: log, up: make(chan struct{}), watches: map[string]map[chan struct{}]bool{}}
}

// connected starts the listener if needed and waits until it listens. It
// returns a context that ends when that connection is lost: whatever it
// guarded must be read again.
func (l *listener) connected(ctx context.Context) (context.Context, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, errors.New("postgres: index closed")
		}
		if l.cancel == nil {
			rctx, cancel := context.WithCancel(context.Background())
			l.cancel = cancel
			l.wg.Add(1)
			go l.run(rctx)
		}
		conn, up := l.conn, l.up
		l.mu.Unlock()
		if conn != nil && conn.Err() == nil {
			return conn, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// stop ends the listener and waits for it. Safe to call twice.
func (l *listener) stop() {
	l.mu.Lock()
	l.closed = true
	if l.cancel != nil {
		l.cancel()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// run keeps a listening connection until ctx ends.
func (l *listener) run(ctx context.Context) {
	defer l.wg.Done()
	var lastLog time.Time
	for failures := 0; ; {
		err := l.session(ctx, func() { failures = 0 })
		if ctx.Err() != nil {
			return
		}
		failures++
		if time.Since(lastLog) > time.Minute {
			lastLog = time.Now()
			l.log.Warn("listener connection broken, reconnecting", "failures", failures, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff.Delay(failures, listenBackoffBase, listenBackoffMax)):
		}
	}
}

// session connects, listens and dispatches notifications until the
// connection fails or ctx ends.
func (l *listener) session(ctx context.Context, healthy func()) error {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return fmt.Errorf("postgres: listener: connect: %w", err)
	}
	defer conn.Close(context.Background())
	for _, ch := range []string{claimsChannel, docsChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return fmt.Errorf("postgres: listener: listen %s: %w", ch, err)
		}
	}
	live, lost := context.WithCancel(ctx)
	l.mu.Lock()
	l.conn = live
	close(l.up)
	l.up = make(chan struct{})
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.conn = nil
		l.mu.Unlock()
		lost() // waiters and watchers read again
	}()
	healthy()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("postgres: listener: %w", err)
		}
		switch n.Channel {
		case claimsChannel:
			l.changes.Notify(n.Payload)
		case docsChannel:
			l.mu.Lock()
			for ch := range l.watches[n.Payload] {
				select {
				case ch <- struct{}{}:
				default: // a call of fn is pending already
				}
			}
			l.mu.Unlock()
		}
	}
}

// watch registers ch for the changes of documents of kind and returns
// the func that gives it up.
func (l *listener) watch(kind string, ch chan struct{}) func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.watches[kind] == nil {
		l.watches[kind] = map[chan struct{}]bool{}
	}
	l.watches[kind][ch] = true
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.watches[kind], ch)
		if len(l.watches[kind]) == 0 {
			delete(l.watches, kind)
		}
	}
}

// WaitChange implements index.Waiter. It waits until the DB's listener
// listens, so that a change committed after the waiter's read of the
// claim is delivered, then waits for a notification of the key (sent by
// the trigger when a running claim ends), its lease's end or
// WaitBackstop. If the listener's connection breaks, it returns nil and
// the caller claims again; if it cannot connect within WaitBackstop, the
// same.
func (d *DB) WaitChange(ctx context.Context, cur index.Record) error {
	bctx, cancel := context.WithTimeout(ctx, WaitBackstop)
	conn, err := d.ln.connected(bctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil // no listener: let the caller claim again
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(conn, cancel)()
	// cur's lease is on the server's clock: time it on that clock.
	err = index.WaitChangeClock(wctx, &d.ln.changes, cur, WaitBackstop, d.Get, d.dbNow)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case conn.Err() != nil:
		return nil // notifications may have been lost: claim again
	}
	return fmt.Errorf("postgres: wait change %s: %w", cur.Key, err)
}

// WatchDocs implements index.DocWatcher: fn is called each time the
// listener (re)connects, after it listens, so nothing written before or
// while it was disconnected is missed; after that, once per batch of
// changes to documents of kind written through any replica. It blocks
// until ctx ends and returns nil; only an invalid kind is an error.
func (d *DB) WatchDocs(ctx context.Context, kind string, fn func()) error {
	if kind == "" || strings.ContainsAny(kind, "\x00") {
		return fmt.Errorf("postgres: watch docs: kind must be non-empty, got %q", kind)
	}
	changed := make(chan struct{}, 1)
	defer d.ln.watch(kind, changed)()
	var seen context.Context
	for {
		conn, err := d.ln.connected(ctx)
		if err != nil {
			return nil // ctx ended or the index closed
		}
		if conn != seen {
			seen = conn
			select {
			case <-changed: // covered by the call below
			default:
			}
			fn()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-conn.Done():
		case <-changed:
			fn()
		}
	}
}
