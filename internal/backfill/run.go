package backfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/backoff"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// Why a job stops before its end.
var (
	errReleased = errors.New("the replica is stopping")
	errLost     = errors.New("another replica took the job over")
	errCanceled = errors.New("canceled")
)

// goneError is a change of the job's function (deleted, redeployed)
// that fails the job.
type goneError struct{ msg string }

func (e goneError) Error() string { return e.msg }

func isGone(err error) bool { return errors.As(err, new(goneError)) }

// runner is one job running on this replica. Objects are listed in key
// order by one goroutine and sent by Concurrency workers, so they finish
// out of order; the watermark (doc.Cursor) advances only over a run of
// finished objects, and their counters with it, so that what is persisted
// is exact: every object up to the cursor is done and counted once.
type runner struct {
	m          *Manager
	log        *slog.Logger
	job        Job // as adopted: read its settings here, never in d
	fn         registry.Function
	stopIntake context.CancelFunc

	mu      sync.Mutex
	d       doc              // persisted state, up to the watermark
	seq     uint64           // sequence number of the next object listed
	next    uint64           // the oldest object listed and not yet done
	pending map[uint64]*slot // objects listed at or after next
	failure error            // the first error that fails the job
	listed  bool             // the listing reached its end
}

// slot is one listed object until the watermark passes it. Memory is
// bounded by the objects finished while the oldest one in flight runs.
type slot struct {
	key  string
	done bool
	c    Counters
}

type item struct {
	seq uint64
	o   objects.Info
}

// runJob runs job d, just adopted by this replica, until it is done,
// canceled, failed or taken over, or ctx ends (it is then released for
// any replica to resume).
func (m *Manager) runJob(ctx context.Context, d doc, log *slog.Logger) {
	// Persisting outlives ctx: a stopping replica still records where it stopped.
	persist := context.WithoutCancel(ctx)
	r := &runner{m: m, log: log, job: d.Job, d: d, pending: map[uint64]*slot{}}
	fn, err := m.function(ctx, d.Job)
	if err != nil {
		if isGone(err) {
			r.failure = err
		}
		r.end(persist, err) // failed, or released to be tried again
		return
	}
	r.fn = fn
	if yes, err := m.canceled(ctx, d.ID); err != nil || yes {
		if yes {
			err = errCanceled // canceled while nobody ran it
		}
		r.end(persist, err)
		return
	}

	intake, stopIntake := context.WithCancel(ctx) // listing and dispatch
	defer stopIntake()
	r.stopIntake = stopIntake
	work, stopWork := context.WithCancel(persist) // objects in flight: cut after the drain
	defer stopWork()

	var sending, counting sync.WaitGroup
	items := make(chan item)
	sending.Go(func() {
		defer close(items)
		r.list(intake, d.Cursor, items)
	})
	for range max(d.Concurrency, 1) {
		sending.Go(func() { r.work(work, items) })
	}
	if !d.Counted {
		counting.Go(func() { r.count(intake) })
	}
	sent := make(chan struct{})
	go func() { sending.Wait(); close(sent) }()

	tick := time.NewTicker(m.cfg.Heartbeat)
	defer tick.Stop()
	stopping := ctx.Done()
	var drain <-chan time.Time
	var why error // why the job stops early, if it does
	stop := func(err error) {
		why = err
		stopping = nil
		stopIntake()
		drain = time.After(m.cfg.Drain)
	}
loop:
	for {
		select {
		case <-sent:
			break loop
		case <-stopping:
			stop(errReleased)
		case <-drain:
			log.Warn("objects in flight did not finish in time; abandoning them (their claims expire, and they run again when resumed)", "drain", m.cfg.Drain)
			stopWork()
		case <-tick.C:
			if why != nil {
				if !errors.Is(why, errLost) { // never write a job another replica owns
					r.save(persist, Running, m.cfg.Owner) // keep the heartbeat while draining
				}
				continue
			}
			if err := r.beat(persist); err != nil {
				stop(err)
			}
		}
	}
	stopIntake()
	counting.Wait()
	r.end(persist, why)
}

// beat persists the job's progress, unless it must stop: canceled,
// function redeployed or deleted, or taken over by another replica. An
// index error skips the beat; the next one tries again.
func (r *runner) beat(ctx context.Context) error {
	cur, err := r.m.get(ctx, "", r.job.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return errLost
	case err != nil:
		r.log.Warn("backfill heartbeat: read job", "err", err)
		return nil
	case cur.Owner != r.m.cfg.Owner:
		return errLost
	}
	if yes, err := r.m.canceled(ctx, r.job.ID); err != nil {
		r.log.Warn("backfill heartbeat: read cancel request", "err", err)
	} else if yes {
		return errCanceled
	}
	if _, err := r.m.function(ctx, r.job); isGone(err) {
		r.setFailure(err)
		return err
	}
	r.save(ctx, Running, r.m.cfg.Owner)
	return nil
}

// end persists the job's last state: done, canceled, failed, or running
// and released (Owner "") for any replica to resume now.
func (r *runner) end(ctx context.Context, why error) {
	if errors.Is(why, errLost) {
		r.log.Warn("backfill taken over by another replica; stopping here")
		return
	}
	r.mu.Lock()
	failure := r.failure
	complete := r.listed && len(r.pending) == 0 // every object listed is done
	r.mu.Unlock()
	state := Running
	switch {
	case failure != nil:
		state = Failed
	case complete:
		state = Done
	case errors.Is(why, errCanceled):
		state = Canceled
	}
	owner := r.m.cfg.Owner
	if state == Running {
		owner = ""
	}
	d := r.save(ctx, state, owner)
	switch state {
	case Running:
		r.log.Info("backfill released: it resumes from its watermark", "why", why, "after", d.Cursor, "objects", d.Objects)
	case Failed:
		r.log.Error("backfill failed", "err", failure, "objects", d.Objects)
	default:
		r.log.Info("backfill "+string(state), "objects", d.Objects, "bytes", d.Bytes, "runs", d.Runs, "hits", d.Hits,
			"waits", d.Waits, "skipped", d.Skipped, "errors", d.Errors)
	}
	if state != Running { // a cancel request, if any, has served
		cctx, cancel := r.m.callCtx(ctx)
		defer cancel()
		if err := r.m.cfg.Index.DeleteDoc(cctx, cancelKind, d.ID); err != nil && !errors.Is(err, index.ErrNotFound) {
			r.log.Warn("delete backfill cancel request", "err", err)
		}
	}
}

// save writes the job's progress with state and owner ("" releases a
// running job to any replica), and returns what it wrote.
func (r *runner) save(ctx context.Context, state State, owner string) doc {
	r.mu.Lock()
	d, failure := r.d, r.failure
	r.mu.Unlock()
	now := time.Now().UTC()
	d.State, d.Updated, d.Heartbeat, d.Owner = state, now, now, owner
	switch {
	case state == Done:
		// What was sent is the total now; the count may have been made
		// before objects were added or deleted.
		d.TotalObjects, d.TotalBytes, d.Counted = d.Objects, d.Bytes, true
	case state == Failed:
		d.Error = failure.Error()
	}
	if state != Running {
		d.Finished = now
	}
	if err := r.m.put(ctx, d); err != nil {
		r.log.Warn("persist backfill progress", "state", state, "err", err)
	}
	return d
}

// list sends the job's objects after cursor to items, in key order, at
// most Rate a second. A listing error is retried from the last key seen.
func (r *runner) list(ctx context.Context, cursor string, items chan<- item) {
	lim := rate.NewLimiter(rate.Inf, 1)
	if r.job.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(r.job.Rate), 1)
	}
	for attempt := 1; ; attempt++ {
		err := r.m.cfg.Objects.List(ctx, r.job.Bucket, r.job.Prefix, cursor, func(o objects.Info) error {
			cursor = o.Key
			if !r.fn.Matches(o.Bucket, o.Key) {
				return nil
			}
			if err := lim.Wait(ctx); err != nil {
				return err
			}
			select {
			case items <- item{seq: r.add(o.Key), o: o}:
				attempt = 1
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			r.mu.Lock()
			r.listed = true
			r.mu.Unlock()
			return
		case attempt >= r.m.cfg.Attempts:
			r.setFailure(fmt.Errorf("list %s/%s after %q: %w", r.job.Bucket, r.job.Prefix, cursor, err))
			return
		}
		r.log.Warn("list objects; retrying", "after", cursor, "attempt", attempt, "err", err)
		if backoff.Sleep(ctx, backoff.Delay(attempt, r.m.cfg.RetryBase, r.m.cfg.RetryMax)) != nil {
			return
		}
	}
}

// count lists the job's scope once, apart from the sending, for the
// totals (progress and ETA): listing is cheap next to sending.
func (r *runner) count(ctx context.Context) {
	var n, size int64
	err := r.m.cfg.Objects.List(ctx, r.job.Bucket, r.job.Prefix, "", func(o objects.Info) error {
		if r.fn.Matches(o.Bucket, o.Key) {
			n++
			size += o.Size
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("count the objects to backfill; the total stays unknown", "err", err)
		}
		return
	}
	r.mu.Lock()
	r.d.TotalObjects, r.d.TotalBytes, r.d.Counted = n, size, true
	r.mu.Unlock()
	r.log.Info("backfill counted its objects", "total_objects", n, "total_bytes", size)
}

// work sends items until there are no more.
func (r *runner) work(ctx context.Context, items <-chan item) {
	for it := range items {
		c, err := r.send(ctx, it.o)
		if err != nil {
			if ctx.Err() == nil {
				r.setFailure(fmt.Errorf("send %s/%s: %w", it.o.Bucket, it.o.Key, err))
			}
			continue // not done: the watermark stays before it
		}
		r.done(it.seq, c)
	}
}

// send sends one object, retrying index and store errors with backoff.
func (r *runner) send(ctx context.Context, o objects.Info) (Counters, error) {
	for attempt := 1; ; attempt++ {
		rec, err := r.sendOnce(ctx, o)
		if err == nil {
			return outcome(o, rec), nil
		}
		if ctx.Err() != nil || attempt >= r.m.cfg.Attempts {
			return Counters{}, err
		}
		r.log.Warn("send object; retrying", "key", o.Key, "attempt", attempt, "err", err)
		if err := backoff.Sleep(ctx, backoff.Delay(attempt, r.m.cfg.RetryBase, r.m.cfg.RetryMax)); err != nil {
			return Counters{}, err
		}
	}
}

// sendOnce is Pipeline.Backfill, with a panic turned into an error: a
// bug on one object must not take the server down with the job.
func (r *runner) sendOnce(ctx context.Context, o objects.Info) (rec *activation.Record, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("panic while sending an object", "key", o.Key, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return r.m.cfg.Pipeline.Backfill(ctx, r.fn, o)
}

// add registers a listed object and returns its sequence number.
func (r *runner) add(key string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seq
	r.seq++
	r.pending[s] = &slot{key: key}
	return s
}

// done records an object's outcome and advances the watermark over every
// finished object from the oldest one listed.
func (r *runner) done(seq uint64, c Counters) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.pending[seq]
	s.done, s.c = true, c
	for s, ok := r.pending[r.next]; ok && s.done; s, ok = r.pending[r.next] {
		r.d.Cursor = s.key
		r.d.Counters.add(s.c)
		delete(r.pending, r.next)
		r.next++
	}
}

// setFailure fails the job with err (the first one wins) and stops
// taking objects.
func (r *runner) setFailure(err error) {
	r.mu.Lock()
	if r.failure == nil {
		r.failure = err
	}
	r.mu.Unlock()
	if r.stopIntake != nil {
		r.stopIntake()
	}
}

// function returns the job's function as deployed now. A deleted or
// redeployed one is a goneError: the job fails, since its objects are
// to go to the version it started with.
func (m *Manager) function(ctx context.Context, j Job) (registry.Function, error) {
	cctx, cancel := m.callCtx(ctx)
	defer cancel()
	fn, err := m.cfg.Registry.Get(cctx, j.Tenant, j.Function)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return fn, goneError{fmt.Sprintf("function %s was deleted during the backfill", j.Function)}
	case err != nil:
		return fn, err
	case fn.Version != j.Version:
		return fn, goneError{fmt.Sprintf("function %s was redeployed during the backfill (version %s, now %s): start a new backfill for the new version",
			j.Function, j.Version, fn.Version)}
	}
	return fn, nil
}
