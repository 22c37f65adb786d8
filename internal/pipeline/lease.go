package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/runtime"
)

// errLeaseLost ends a run whose claim is no longer provably ours: another
// replica took it over, or renewals failed until the lease could have
// passed. The run is abandoned and its result never committed as owned.
var errLeaseLost = errors.New("claim lease lost")

// leaseLostError wraps errLeaseLost as a platform failure with its reason.
func leaseLostError(reason string) error {
	return &runtime.Error{Class: runtime.ClassPlatform, Err: fmt.Errorf("%w: %s", errLeaseLost, reason)}
}

// heldLease keeps a claim alive while its owner works on it (running the
// function, storing the output, committing the result) and cancels the
// work as soon as the claim can no longer be proven held.
//
// The proof is local: a renewal sent at t that succeeds holds the claim
// until t+ttl by the index's rule, so the owner stops a margin before
// that. Another replica takes over only after the index's lease_until, so
// (clock skew aside) the stale owner has stopped before its successor starts.
type heldLease struct {
	p          *Pipeline
	key, token string
	ttl        time.Duration
	cancel     context.CancelCauseFunc

	mu        sync.Mutex
	heldUntil time.Time

	stopc chan struct{}
	done  chan struct{}
}

// holdLease starts renewing the claim (key, token), whose lease of ttl was
// granted by a Claim sent at claimedAt. It cancels ctx (via cancel) with
// errLeaseLost when the claim is lost. The caller must call stop.
func (p *Pipeline) holdLease(ctx context.Context, cancel context.CancelCauseFunc, key, token string, ttl time.Duration, claimedAt time.Time) *heldLease {
	l := &heldLease{
		p: p, key: key, token: token, ttl: ttl, cancel: cancel,
		heldUntil: claimedAt.Add(ttl),
		stopc:     make(chan struct{}), done: make(chan struct{}),
	}
	go l.run(ctx)
	return l
}

// leaseMargin is how long before a lease's end its owner gives up: time
// for the cancelled function to be stopped before a successor may start.
func leaseMargin(ttl time.Duration) time.Duration { return min(ttl/5, 2*time.Second) }

func (l *heldLease) run(ctx context.Context) {
	defer close(l.done)
	every := max(l.ttl/3, 5*time.Millisecond)
	// A failed renewal is retried sooner: one transient index error
	// should not cost the lease.
	retry := max(l.ttl/12, 5*time.Millisecond)
	renew := time.NewTimer(every)
	defer renew.Stop()
	expiry := time.NewTimer(time.Until(l.deadline()))
	defer expiry.Stop()
	for {
		select {
		case <-l.stopc:
			return
		case <-ctx.Done():
			return
		case <-expiry.C:
			if time.Now().Before(l.deadline()) { // renewed since the timer was set
				expiry.Reset(time.Until(l.deadline()))
				continue
			}
			l.cancel(leaseLostError(fmt.Sprintf("renewals failed; the lease could not be proven held past %s", l.deadline().Format(time.RFC3339Nano))))
			return
		case <-renew.C:
			sent := time.Now()
			// A slow renewal is still worth its answer until the lease
			// could have passed; past that the expiry below decides.
			rctx, cancel := context.WithDeadline(ctx, l.deadline())
			err := l.p.cfg.Index.Renew(rctx, l.key, l.token, l.ttl)
			cancel()
			switch {
			case err == nil:
				l.mu.Lock()
				l.heldUntil = sent.Add(l.ttl)
				l.mu.Unlock()
				expiry.Reset(time.Until(l.deadline()))
				renew.Reset(every)
			case errors.Is(err, index.ErrNotOwner):
				l.cancel(leaseLostError("another owner took the claim over"))
				return
			default:
				if ctx.Err() == nil {
					l.p.metrics.renewFailures.Inc()
					l.p.log(ctx).Warn("renew lease", "dedup_key", l.key, "err", err)
				}
				renew.Reset(retry)
			}
		}
	}
}

// deadline is when the owner must have stopped working on the claim.
func (l *heldLease) deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heldUntil.Add(-leaseMargin(l.ttl))
}

// stop ends renewal and waits for the renewing goroutine; a renewal in
// flight is bounded by its own timeout.
func (l *heldLease) stop() {
	close(l.stopc)
	<-l.done
}

// lost returns the lease-lost error that cancelled ctx, or nil.
func lost(ctx context.Context) error {
	if cause := context.Cause(ctx); errors.Is(cause, errLeaseLost) {
		return cause
	}
	return nil
}
