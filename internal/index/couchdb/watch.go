package couchdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	kivik "github.com/go-kivik/kivik/v4"

	"github.com/dedupfn/dedupfn/internal/backoff"
)

// Defaults of WatchDocs.
const (
	// WatchPoll is how long one long-poll of the changes feed waits for a
	// change before the server answers empty; a request that gets no
	// answer for half as long again is treated as a dead connection.
	WatchPoll = 25 * time.Second
	// watchBackoffBase and watchBackoffMax bound the delay between reconnects.
	watchBackoffBase = 100 * time.Millisecond
	watchBackoffMax  = 10 * time.Second
)

// WatchDocs calls fn whenever documents of kind are put or deleted
// through any handle on the database (any replica), so that, for example,
// a function deployed on one replica goes live on the others within a
// second instead of at the next poll.
//
// It long-polls the database's _changes feed, filtered on the server by
// the design document's "docs" filter, and blocks until ctx is done, then
// returns nil. fn is called once each time the watch (re)connects, after
// the feed position is taken, so nothing written before the watch started
// or while it was disconnected is missed; after that, once per batch of
// changes. fn runs on WatchDocs' goroutine. A broken feed (server restart,
// network) is reconnected with capped backoff and logged; only an invalid
// kind is returned as an error.
//
// WatchDocs implements index.DocWatcher, which is not part of
// index.Index; callers find it with a type assertion.
func (d *DB) WatchDocs(ctx context.Context, kind string, fn func()) error {
	if kind == "" || strings.Contains(kind, ":") {
		return fmt.Errorf("couchdb: watch docs: kind must be non-empty without ':', got %q", kind)
	}
	var lastLog time.Time
	for failures := 0; ; {
		err := d.watch(ctx, kind, fn, func() { failures = 0 })
		if ctx.Err() != nil {
			return nil
		}
		failures++
		if time.Since(lastLog) > time.Minute {
			lastLog = time.Now()
			d.log.Warn("changes feed broken, reconnecting", "kind", kind, "failures", failures, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff.Delay(failures, watchBackoffBase, watchBackoffMax)):
		}
	}
}

// watch runs WatchDocs from the current update sequence until a request
// fails; healthy is called after each successful poll.
func (d *DB) watch(ctx context.Context, kind string, fn, healthy func()) error {
	sctx, cancel := d.call(ctx)
	st, err := d.db.Stats(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("couchdb: watch docs: read update seq: %w", err)
	}
	fn()
	seq := cmp.Or(st.UpdateSeq, "now")
	prefix := docID(kind, "")
	for {
		changed, last, err := d.pollChanges(ctx, kind, prefix, seq)
		if err != nil {
			return err
		}
		healthy()
		if last != "" {
			seq = last
		}
		if changed {
			fn()
		}
	}
}

// pollChanges makes one long-poll request for changes after since and
// reports whether any was to a document under prefix, and the new position.
func (d *DB) pollChanges(parent context.Context, kind, prefix, since string) (changed bool, last string, err error) {
	// Some servers (pouchdb-server) hold an idle long-poll past its
	// timeout, and a dead connection never answers: either way, end the
	// request ourselves and poll again from the same position.
	ctx, cancel := context.WithTimeout(parent, WatchPoll+WatchPoll/2)
	defer cancel()
	defer func() {
		if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
			changed, last, err = false, "", nil
		}
	}()
	feed := d.watchDB.Changes(ctx, kivik.Params(map[string]any{
		"feed":    "longpoll",
		"since":   since,
		"timeout": int(WatchPoll / time.Millisecond),
		"filter":  strings.TrimPrefix(designDoc, "_design/") + "/docs",
		"kind":    kind,
	}))
	defer feed.Close()
	for feed.Next() {
		changed = changed || strings.HasPrefix(feed.ID(), prefix)
	}
	if err := feed.Err(); err != nil {
		return false, "", fmt.Errorf("couchdb: watch docs: changes since %s: %w", since, err)
	}
	meta, err := feed.Metadata()
	if err != nil {
		return false, "", fmt.Errorf("couchdb: watch docs: changes since %s: %w", since, err)
	}
	return changed, meta.LastSeq, nil
}
