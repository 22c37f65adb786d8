// Package backoff computes retry delays: exponential, capped, with jitter
// so that many failing items do not retry in lockstep. Every retry loop in
// dedupfn (queue redelivery, Kafka record retries, function retries) uses it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is the delay before retry attempt n (1-based): base doubling per
// attempt, capped at max, then jittered uniformly into [d/2, d].
func Delay(n int, base, max time.Duration) time.Duration {
	if base <= 0 || max <= 0 {
		return 0
	}
	d := max
	if n < 1 {
		n = 1
	}
	if n <= 32 {
		d = min(base<<(n-1), max)
		if d <= 0 { // shifted past the int64 range
			d = max
		}
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d, or until ctx ends and then returns its error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
