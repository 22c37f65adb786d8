// Package embedded is the durable event queue behind the built-in S3
// endpoint: the endpoint publishes each object-created and object-removed
// event into a bbolt file (<DataDir>/queue.db) before it answers the
// client, and Run delivers the queued events to the pipeline. It registers the events scheme
// "embedded" and implements source.Source and source.Publisher.
//
// An event leaves the queue only when the handler returns nil. A failed
// delivery is retried after a capped, jittered backoff, for as long as it
// keeps failing: deciding when to give up (dead-lettering) is the
// pipeline's job, which records the failure and returns nil. Events in the
// queue when the process stops are delivered again after it restarts.
package embedded

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dedupfn/dedupfn/internal/backoff"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/groupcommit"
	"github.com/dedupfn/dedupfn/internal/source"
)

// Defaults.
const (
	// FileName is the queue file inside the data directory.
	FileName = "queue.db"
	// DefaultConcurrency is how many events are in the handler at once
	// when none is given.
	DefaultConcurrency = 4
	// MinBackoff is the delay before the first redelivery of a failed
	// event; it doubles per attempt up to MaxBackoff, with jitter.
	MinBackoff = 100 * time.Millisecond
	// MaxBackoff caps the redelivery delay.
	MaxBackoff = 30 * time.Second
	// openTimeout bounds the wait for the file lock: a second process on
	// the same data directory fails instead of hanging.
	openTimeout = 5 * time.Second
)

var bucketEvents = []byte("events")

func init() { source.Register("embedded", Open) }

// record is one queued event as stored.
type record struct {
	Event    event.Event `json:"event"`
	Attempts int         `json:"attempts"`
	// NotBefore is when the event may be delivered again (unix nanos).
	NotBefore int64  `json:"not_before,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// Queue is a durable event queue in one bbolt file.
type Queue struct {
	db          *bolt.DB
	w           *groupcommit.Committer // publishes and acks share commits
	concurrency int
	logger      *slog.Logger
	notify      chan struct{} // one pending wake-up for the dispatcher

	life source.Lifecycle
}

var (
	_ source.Source    = (*Queue)(nil)
	_ source.Publisher = (*Queue)(nil)
)

// Open opens the queue in <opts.DataDir>/queue.db (the events URL is
// "embedded:" with no further parts).
func Open(_ context.Context, _ *url.URL, opts source.Options) (source.Source, error) {
	if opts.DataDir == "" {
		return nil, errors.New("embedded: data dir must be set")
	}
	return OpenQueue(filepath.Join(opts.DataDir, FileName), opts.Concurrency, opts.Logger)
}

// OpenQueue opens (creating if needed) the queue file at path. Run hands
// at most concurrency events to the handler at once (DefaultConcurrency
// if <= 0).
func OpenQueue(path string, concurrency int, logger *slog.Logger) (*Queue, error) {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("embedded: create queue dir: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("embedded: open queue %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketEvents)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("embedded: init queue %s: %w", path, err)
	}
	return &Queue{
		db:          db,
		w:           groupcommit.New(db),
		concurrency: concurrency,
		logger:      logger.With("component", "source.embedded"),
		notify:      make(chan struct{}, 1),
	}, nil
}

// Publish durably enqueues ev: it is on disk (fsynced) when Publish
// returns nil. It sets ev.Sequencer to the queue's next sequence number,
// zero-padded so that sequencers sort like numbers. Concurrent publishes
// (and acks) share one commit.
func (q *Queue) Publish(ctx context.Context, ev event.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: publish: %w", err)
	}
	err := q.w.Update(func(tx *bolt.Tx) error {
		// May run again (group commit): the sequence is taken afresh.
		b := tx.Bucket(bucketEvents)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		ev.Sequencer = fmt.Sprintf("%020d", seq)
		v, err := json.Marshal(record{Event: ev})
		if err != nil {
			return err
		}
		return b.Put(seqKey(seq), v)
	})
	if err != nil {
		return fmt.Errorf("embedded: publish %s/%s: %w", ev.Bucket, ev.Key, err)
	}
	q.wake()
	return nil
}

// Len returns how many events are queued (including those in delivery).
func (q *Queue) Len() (int, error) {
	var n int
	err := q.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketEvents).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("embedded: count queue: %w", err)
	}
	return n, nil
}

// Run delivers queued events, oldest first, to h with up to the
// configured number in flight, until ctx is cancelled or Close is called;
// then it waits for the handlers in flight and returns nil. Events
// published meanwhile are picked up at once. Only one Run at a time.
func (q *Queue) Run(ctx context.Context, h source.Handler) error {
	ctx, end, err := q.life.Start(ctx)
	if err != nil {
		return fmt.Errorf("embedded: %w", err)
	}
	defer end()

	d := &dispatcher{q: q, h: h, inflight: map[uint64]bool{}, sem: make(chan struct{}, q.concurrency)}
	err = d.loop(ctx)
	d.wg.Wait()
	return err
}

type dispatcher struct {
	q        *Queue
	h        source.Handler
	sem      chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	inflight map[uint64]bool
	errLog   time.Time // last logged store error, to rate-limit
}

func (d *dispatcher) loop(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait, err := d.dispatch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// A read failure of the local file: log (rate-limited) and retry.
			if time.Since(d.errLog) > time.Minute {
				d.q.logger.Error("read queue", "err", err)
				d.errLog = time.Now()
			}
			wait = time.Second
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-d.q.notify:
		case <-timer.C:
		}
	}
}

// dispatch starts handlers for every event that is due and not in flight,
// as slots allow, and returns how long until the next deferred event is
// due (MaxBackoff if none).
func (d *dispatcher) dispatch(ctx context.Context) (time.Duration, error) {
	free := cap(d.sem) - len(d.sem)
	if free == 0 {
		return MaxBackoff, nil // a finishing handler wakes us
	}
	now := time.Now().UnixNano()
	next := now + int64(MaxBackoff)
	type due struct {
		seq uint64
		rec record
	}
	var ready []due
	err := d.q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.First(); k != nil && len(ready) < free; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			d.mu.Lock()
			busy := d.inflight[seq]
			d.mu.Unlock()
			if busy {
				continue
			}
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode event %d: %w", seq, err)
			}
			if r.NotBefore > now {
				next = min(next, r.NotBefore)
				continue
			}
			ready = append(ready, due{seq, r})
		}
		return nil
	})
	for _, r := range ready {
		select {
		case d.sem <- struct{}{}:
		case <-ctx.Done():
			return 0, nil
		}
		d.mu.Lock()
		d.inflight[r.seq] = true
		d.mu.Unlock()
		d.wg.Add(1)
		go d.deliver(ctx, r.seq, r.rec)
	}
	return time.Duration(max(next-now, 0)), err
}

// deliver runs the handler for one event and then removes it (success) or
// schedules its redelivery (failure).
func (d *dispatcher) deliver(ctx context.Context, seq uint64, r record) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		delete(d.inflight, seq)
		d.mu.Unlock()
		<-d.sem
		d.q.wake()
	}()
	herr := d.h(ctx, r.Event)
	if herr != nil && ctx.Err() != nil {
		// Stopping: the handler was cut short, not failing. Leave the
		// event as it was; it is delivered again on the next Run.
		return
	}
	var retry []byte // the event with its next attempt scheduled
	if herr != nil {
		r.Attempts++
		r.LastError = herr.Error()
		r.NotBefore = time.Now().Add(Backoff(r.Attempts)).UnixNano()
		var err error
		if retry, err = json.Marshal(r); err != nil {
			d.q.logger.Error("encode queued event", "sequencer", r.Event.Sequencer, "err", err)
			return
		}
	}
	// Group-committed with other acks and publishes; the function may
	// run again, so it only writes what was decided above.
	err := d.q.w.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if retry == nil {
			return b.Delete(seqKey(seq))
		}
		return b.Put(seqKey(seq), retry)
	})
	if herr != nil {
		d.q.logger.Warn("event delivery failed, will retry", "bucket", r.Event.Bucket, "key", r.Event.Key,
			"sequencer", r.Event.Sequencer, "attempts", r.Attempts, "err", herr)
	}
	if err != nil {
		// The event stays queued as it was and is delivered again: at
		// least once, never lost.
		d.q.logger.Error("update queued event", "sequencer", r.Event.Sequencer, "err", err)
	}
}

// Backoff is the delay before redelivery after the given number of failed
// attempts.
func Backoff(attempts int) time.Duration { return backoff.Delay(attempts, MinBackoff, MaxBackoff) }

func (q *Queue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// Close stops Run (waiting for handlers in flight) and closes the file.
// Queued events stay on disk. Safe to call twice.
func (q *Queue) Close() error {
	if !q.life.Close() {
		return nil
	}
	if err := q.db.Close(); err != nil {
		return fmt.Errorf("embedded: close queue: %w", err)
	}
	return nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}
