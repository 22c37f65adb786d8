//go:build faultinject

package main

// A binary built with -tags faultinject reads DEDUPFN_FAULTS and injects
// the faults it names into the index and store, for the chaos tests
// (test/e2e). Release builds carry none of this (faults.go).
//
//	DEDUPFN_FAULTS="renew-fail=0.3,put-delay=400ms"
//
// renew-fail: the fraction of lease renewals that fail with a transient
// error; put-delay: how long every object write is delayed.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
)

func injectFaults(idx index.Index, store objects.Store, logger *slog.Logger) (index.Index, objects.Store, error) {
	spec := os.Getenv("DEDUPFN_FAULTS")
	if spec == "" {
		return idx, store, nil
	}
	var renewFail float64
	var putDelay time.Duration
	for _, kv := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "renew-fail":
			renewFail, err = strconv.ParseFloat(v, 64)
		case "put-delay":
			putDelay, err = time.ParseDuration(v)
		default:
			err = errors.New("unknown fault")
		}
		if err != nil {
			return nil, nil, fmt.Errorf("DEDUPFN_FAULTS: %s: %v", kv, err)
		}
	}
	logger.Warn("fault injection on", "renew_fail", renewFail, "put_delay", putDelay)
	fi := &faultyIndex{Index: idx, renewFail: renewFail}
	var wrapped index.Index = fi
	if w, ok := idx.(index.DocWatcher); ok {
		wrapped = &faultyWatchingIndex{faultyIndex: fi, w: w}
	}
	return wrapped, &slowStore{Store: store, delay: putDelay}, nil
}

type faultyIndex struct {
	index.Index
	renewFail float64
}

func (f *faultyIndex) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	if rand.Float64() < f.renewFail {
		return errors.New("faultinject: renew failed")
	}
	return f.Index.Renew(ctx, key, token, lease)
}

type faultyWatchingIndex struct {
	*faultyIndex
	w index.DocWatcher
}

func (f *faultyWatchingIndex) WatchDocs(ctx context.Context, kind string, fn func()) error {
	return f.w.WatchDocs(ctx, kind, fn)
}

type slowStore struct {
	objects.Store
	delay time.Duration
}

func (s *slowStore) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts objects.PutOptions) (objects.Info, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return objects.Info{}, ctx.Err()
	}
	return s.Store.Put(ctx, bucket, key, r, size, opts)
}
