package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/s3"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// storeAlone does, with the bench's uploaders and no dedupfn, the store
// work the pipeline must do for each upload of ups, in bucket (untriggered;
// outputs go to bucket+"-out"), through the objects backend the replicas
// use (internal/objects/s3), so it asks of MinIO what their calls do:
//
//	PUT the upload; Get it (one GET: the fingerprint reads the bytes);
//	then, for the first upload of a content (a run's output), a
//	conditional Put of the output (If-None-Match: the overwrite check in
//	the write); for a later one (a hit's delivery), a Stat of the output
//	key (a copy cannot be conditional on MinIO) and a Copy of the first
//	output (its SHA-256 from the answer).
//
// It returns the wall time and, for each upload that is not the first of
// its content, the latency of its work after the PUT: a hit's store
// work. The wall time bounds the e2e phase from below on this machine,
// whatever the pipeline's own overhead: the store must do this much.
func storeAlone(c *harness.Cluster, bucket string, ups []benchPut) (time.Duration, []float64) {
	ctx := c.T.Context()
	st, err := s3.New(c.MinIO.Endpoint, false, c.MinIO.AccessKey, c.MinIO.SecretKey, "", nil)
	if err != nil {
		c.T.Fatal(err)
	}
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
		d, err := storeOne(ctx, st, bucket, out, p, f, !seen)
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
	out  objects.Info // its output, once written
	done chan struct{}
}

// storeOne is storeAlone's work for one upload p, whose content's first
// upload is f (p itself when isFirst). The duration leaves out the wait
// for f's output: that is not store work.
func storeOne(ctx context.Context, st *s3.Client, bucket, out string, p benchPut, f *storeFirst, isFirst bool) (time.Duration, error) {
	if isFirst {
		defer close(f.done) // on every path: later uploads wait for it
	}
	if _, err := st.Minio().PutObject(ctx, bucket, p.key, bytes.NewReader(p.body), int64(len(p.body)), minio.PutObjectOptions{}); err != nil {
		return 0, err
	}
	start := time.Now()
	rc, _, err := st.Get(ctx, bucket, p.key, "", "")
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil {
		return 0, err
	}
	if isFirst {
		f.out, err = st.Put(ctx, out, p.key, bytes.NewReader(p.body), int64(len(p.body)), objects.PutOptions{IfNoneMatch: true})
		return time.Since(start), err
	}
	if _, err := st.Stat(ctx, out, p.key); !errors.Is(err, objects.ErrNotFound) {
		return 0, fmt.Errorf("stat %s/%s: want not found, got %v", out, p.key, err)
	}
	waitStart := time.Now()
	<-f.done
	waited := time.Since(waitStart)
	_, err = st.Copy(ctx, f.out, out, p.key, objects.PutOptions{})
	return time.Since(start) - waited, err
}
