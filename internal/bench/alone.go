package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"runtime/pprof"
	"time"

	"golang.org/x/sync/errgroup"

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
	fn := runtime.Function{Tenant: "bench", Name: fnName, Version: digest[:12], CodeDigest: digest, Code: code}
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
	g := new(errgroup.Group)
	g.SetLimit(goruntime.GOMAXPROCS(0))
	start := time.Now()
	for _, c := range contents {
		g.Go(func() error { return invoke(c) })
	}
	err = g.Wait()
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("bench: the function alone: %w", err)
	}
	return took, nil
}

// profileThisProcess starts a CPU profile of this process into
// path+suffix when path is set, and returns the function that stops it.
func profileThisProcess(path, suffix string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path + suffix)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("profile %s: %w", suffix, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
