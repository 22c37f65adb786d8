package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// storeAlone does, with the bench's uploaders and no dedupfn, the store
// work the pipeline must do for each upload of ups, in bucket (untriggered;
// outputs go to bucket+"-out"):
//
//	PUT the upload; GET it (the fingerprint reads the bytes); HEAD the
//	output key (the overwrite check); then PUT the output (the first
//	upload of a content: a run's output) or copy the first output (a
//	later one: a hit's delivery).
//
// It returns the wall time and, for each upload that is not the first of
// its content, the latency of its work after the PUT: a hit's store
// work. The wall time bounds the e2e phase from below on this machine,
// whatever the pipeline's own overhead: the store must do this much.
func storeAlone(c *harness.Cluster, bucket string, ups []benchPut) (time.Duration, []float64) {
	ctx := c.T.Context()
	out := bucket + "-out"
	for _, b := range []string{bucket, out} {
		if err := c.MC.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
			c.T.Fatal(err)
		}
	}
	var mu sync.Mutex
	firsts := map[string]*storeFirst{}
	var lat []float64
	d := eachPut(c, ups, func(p benchPut) error {
		mu.Lock()
		f, seen := firsts[string(p.body)]
		if !seen {
			f = &storeFirst{key: p.key, done: make(chan struct{})}
			firsts[string(p.body)] = f
		}
		mu.Unlock()
		d, err := storeOne(c, ctx, bucket, out, p, f, !seen)
		if seen {
			mu.Lock()
			lat = append(lat, float64(d.Microseconds())/1000)
			mu.Unlock()
		}
		return err
	})
	return d, lat
}

// storeFirst is the first upload of a content: it writes the output that
// later uploads of the content copy once done is closed.
type storeFirst struct {
	key  string
	done chan struct{}
}

// storeOne is storeAlone's work for one upload p, whose content's first
// upload is f (p itself when isFirst). The duration leaves out the wait
// for f's output: that is not store work.
func storeOne(c *harness.Cluster, ctx context.Context, bucket, out string, p benchPut, f *storeFirst, isFirst bool) (time.Duration, error) {
	if isFirst {
		defer close(f.done) // on every path: later uploads wait for it
	}
	if _, err := c.MC.PutObject(ctx, bucket, p.key, bytes.NewReader(p.body), int64(len(p.body)), minio.PutObjectOptions{}); err != nil {
		return 0, err
	}
	start := time.Now()
	obj, err := c.MC.GetObject(ctx, bucket, p.key, minio.GetObjectOptions{})
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, obj)
	obj.Close()
	if err != nil {
		return 0, err
	}
	if _, err := c.MC.StatObject(ctx, out, p.key, minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		return 0, fmt.Errorf("HEAD %s/%s: want NoSuchKey, got %v", out, p.key, err)
	}
	if isFirst {
		_, err = c.MC.PutObject(ctx, out, p.key, bytes.NewReader(p.body), int64(len(p.body)), minio.PutObjectOptions{})
		return time.Since(start), err
	}
	waitStart := time.Now()
	<-f.done
	waited := time.Since(waitStart)
	_, err = c.MC.CopyObject(ctx, minio.CopyDestOptions{Bucket: out, Object: p.key}, minio.CopySrcOptions{Bucket: out, Object: f.key})
	return time.Since(start) - waited, err
}
