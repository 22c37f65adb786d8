package backoff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/backoff"
)

func TestDelay(t *testing.T) {
	base, max := 100*time.Millisecond, 5*time.Second
	for _, tc := range []struct {
		n      int
		lo, hi time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{3, 200 * time.Millisecond, 400 * time.Millisecond},
		{7, 2500 * time.Millisecond, 5 * time.Second},
		{40, 2500 * time.Millisecond, 5 * time.Second},
		{1000, 2500 * time.Millisecond, 5 * time.Second},
	} {
		for range 50 {
			if d := backoff.Delay(tc.n, base, max); d < tc.lo || d > tc.hi {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", tc.n, d, tc.lo, tc.hi)
			}
		}
	}
	if d := backoff.Delay(3, 0, max); d != 0 {
		t.Fatalf("Delay with zero base = %s, want 0", d)
	}
}

func TestSleep(t *testing.T) {
	if err := backoff.Sleep(t.Context(), time.Millisecond); err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	if err := backoff.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Fatalf("Sleep on a cancelled context: %v after %s", err, time.Since(start))
	}
}
