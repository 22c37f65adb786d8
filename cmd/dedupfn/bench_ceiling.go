package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm"
)

// functionAlone runs the bench function once on each distinct content in
// this process, as many at once as serve runs by default (GOMAXPROCS),
// and returns the wall time. It is what the runs alone cost this machine,
// with no store, queue or index around them: added to the raw phase's
// time, it bounds how fast any pipeline could process the e2e phase here
// (every upload stored, every distinct content run), whatever its overhead.
func functionAlone(ctx context.Context, code []byte, contents [][]byte) (time.Duration, error) {
	r, err := wasm.New(wasm.Options{})
	if err != nil {
		return 0, err
	}
	defer r.Close(context.Background())
	sum := sha256.Sum256(code)
	digest := hex.EncodeToString(sum[:])
	fn := runtime.Function{Tenant: "bench", Name: benchFn, Version: digest[:12], CodeDigest: digest, Code: code}
	invoke := func(in []byte) error {
		_, err := r.Invoke(ctx, &runtime.Invocation{
			Function: fn, Input: bytes.NewReader(in), Output: io.Discard,
			Limits: runtime.Limits{Timeout: time.Minute, MemoryBytes: 256 << 20, MaxOutputBytes: int64(len(in)) + 1<<20},
		})
		return err
	}
	// The compile, and a first run's memory, are not in the figure: the
	// e2e phase follows a warm-up run too.
	if err := invoke([]byte("warm-up")); err != nil {
		return 0, fmt.Errorf("bench: the function alone: %w", err)
	}
	work := make(chan []byte)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	start := time.Now()
	for range goruntime.GOMAXPROCS(0) {
		wg.Go(func() {
			for in := range work {
				if err := invoke(in); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, c := range contents {
		work <- c
	}
	close(work)
	wg.Wait()
	took := time.Since(start)
	select {
	case err := <-errs:
		return 0, fmt.Errorf("bench: the function alone: %w", err)
	default:
	}
	return took, nil
}
