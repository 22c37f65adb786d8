package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sync/errgroup"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/s3server"
	"github.com/dedupfn/dedupfn/internal/source"
	_ "github.com/dedupfn/dedupfn/internal/source/embedded" // the queue serve publishes to
)

// storeAlone is the result of the store-alone phase.
type storeAlone struct {
	wall time.Duration
	// hitWrite and missWrite are the output writes' durations (ms): a
	// hit's server-side Copy, a miss's Put.
	hitWrite, missWrite []float64
}

// runStoreAlone measures the store work of the e2e phase without dedupfn:
// per upload, the PUT over HTTP and then the output write the pipeline
// makes for it: a Put of the content for its first upload (a miss; copy
// writes its input), a Copy of that output for its second (a hit). The
// writes go through the embedded store's in-process objects.Store, as
// the pipeline's do, and every write is published to an embedded queue
// (fsynced, consumed by nobody), as serve's are.
//
// The phase runs the embedded store in this process, on serve's data dir
// layout (<dir>/objects, <dir>/queue.db) in a fresh directory, rather than
// in the serve: the in-process calls need the store's process, and serve
// has no way to make them on request short of a debug endpoint in the
// pipeline's process. The code is the same; only the (idle) serve runs
// beside it. Nothing dedupfn adds is in it: no fetch and hash, no
// claim, no HEAD before the output write, no index or provenance write.
func runStoreAlone(ctx context.Context, o Options, dir string, uploads []upload, contents [][]byte, prog *reporter) (_ storeAlone, err error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return storeAlone{}, err
	}
	logger := slog.New(slog.DiscardHandler)
	q, err := source.Open(ctx, "embedded:", source.Options{Logger: logger, DataDir: dir})
	if err != nil {
		return storeAlone{}, fmt.Errorf("store alone: %w", err)
	}
	defer q.Close()
	pub, ok := q.(source.Publisher)
	if !ok {
		return storeAlone{}, errors.New("store alone: the embedded queue takes no publishes")
	}
	st, err := s3server.Open(ctx, &url.URL{Scheme: "embedded"}, objects.Options{
		Logger: logger, DataDir: dir, Addr: addr, AccessKey: o.AccessKey, SecretKey: o.SecretKey,
		Publish: pub.Publish,
	})
	if err != nil {
		return storeAlone{}, fmt.Errorf("store alone: %w", err)
	}
	// The endpoint moved this process's working directory: Close moves
	// it back.
	defer st.Close()
	for _, b := range []string{inBucket, outBucket} {
		if err := st.MakeBucket(ctx, b); err != nil {
			return storeAlone{}, fmt.Errorf("store alone: %w", err)
		}
	}
	mc, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""), Region: "us-east-1"})
	if err != nil {
		return storeAlone{}, err
	}

	// firsts[c] is closed when content c's first output is written: its
	// second upload copies it, as a hit copies the recorded output (one
	// that came earlier would be a wait in the pipeline).
	type first struct {
		once  sync.Once
		done  chan struct{}
		info  objects.Info
		taken atomic.Bool
	}
	firsts := make([]*first, len(contents))
	for i := range firsts {
		firsts[i] = &first{done: make(chan struct{})}
	}
	var mu sync.Mutex
	var res storeAlone
	stage := "store alone: PUT + output"
	total := int64(len(uploads))
	prog.report(Step{Stage: stage, Total: total})
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Uploaders)
	start := time.Now()
	for _, u := range uploads {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			body := contents[u.content]
			if _, err := mc.PutObject(gctx, inBucket, u.key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
				return fmt.Errorf("store alone: put %s: %w", u.key, err)
			}
			opts := objects.PutOptions{ContentType: "application/octet-stream", Metadata: map[string]string{
				event.MetaOutputOf: fnName + "@bench",
				event.MetaInput:    url.PathEscape(inBucket + "/" + u.key),
			}}
			f := firsts[u.content]
			miss := f.taken.CompareAndSwap(false, true)
			t := time.Now()
			if miss {
				info, err := st.Put(gctx, outBucket, u.key, bytes.NewReader(body), int64(len(body)), opts)
				if err != nil {
					return fmt.Errorf("store alone: output %s: %w", u.key, err)
				}
				f.info = info
				close(f.done)
			} else {
				select {
				case <-f.done:
				case <-gctx.Done():
					return gctx.Err()
				}
				t = time.Now() // the wait is not store work
				if _, err := st.Copy(gctx, f.info, outBucket, u.key, opts); err != nil {
					return fmt.Errorf("store alone: copy to %s: %w", u.key, err)
				}
			}
			took := float64(time.Since(t).Microseconds()) / 1000
			mu.Lock()
			if miss {
				res.missWrite = append(res.missWrite, took)
			} else {
				res.hitWrite = append(res.hitWrite, took)
			}
			mu.Unlock()
			prog.report(Step{Stage: stage, Done: done.Add(1), Total: total})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return storeAlone{}, err
	}
	if err := ctx.Err(); err != nil {
		return storeAlone{}, err
	}
	res.wall = time.Since(start)
	return res, nil
}

// storeAloneDir is the phase's data dir in the bench's temporary dir.
func storeAloneDir(benchDir string) (string, error) {
	d := filepath.Join(benchDir, "store-alone")
	return d, os.MkdirAll(d, 0o700)
}
