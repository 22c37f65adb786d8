package harness

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/dedupfn/dedupfn/internal/index"
	_ "github.com/dedupfn/dedupfn/internal/index/couchdb"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// Topic is the Kafka topic MinIO publishes a Cluster's events to.
const Topic = "minio-events"

// Cluster is the production wiring: real MinIO publishing bucket
// notifications to a Kafka-protocol broker, dedupfn replicas in one
// consumer group, one shared CouchDB-API index.
type Cluster struct {
	T        testing.TB
	Kafka    *peers.Kafka
	MinIO    *peers.MinIO
	Couch    *peers.CouchDB
	MC       *minio.Client
	Replicas []*Server
	IndexURL string
}

// StartCluster starts the peers and replicas servers with the extra flags.
func StartCluster(t *testing.T, replicas int, minioOpts peers.MinIOOptions, extra ...string) *Cluster {
	t.Helper()
	c := StartPeers(t, minioOpts)
	for i := range replicas {
		c.Replicas = append(c.Replicas, StartServer(t, t.TempDir(), append(c.ReplicaArgs(i, c.Kafka.URL(Topic, "dedupfn")), extra...)...))
	}
	return c
}

// ReplicaArgs are replica i's flags for the cluster's peers.
func (c *Cluster) ReplicaArgs(i int, events string) []string {
	return []string{
		"--objects", c.MinIO.URL(), "--events", events, "--index", c.IndexURL,
		"--replica-id", fmt.Sprintf("r%d", i), "--concurrency", "4",
	}
}

// StartPeers starts MinIO publishing the photos bucket's events to a
// Kafka-protocol broker, and a CouchDB-API index; no replicas.
func StartPeers(t testing.TB, minioOpts peers.MinIOOptions) *Cluster {
	t.Helper()
	return StartPeersIndex(t, minioOpts, func(c *Cluster) {
		c.Couch = peers.StartCouchDB(t)
		c.IndexURL = c.Couch.URL("dedupfn")
	})
}

// StartPeersIndex is StartPeers with the shared index started by
// startIndex, which sets c.IndexURL.
func StartPeersIndex(t testing.TB, minioOpts peers.MinIOOptions, startIndex func(c *Cluster)) *Cluster {
	t.Helper()
	c := &Cluster{T: t}
	c.Kafka = peers.StartKafka(t, Topic)
	minioOpts.KafkaBrokers, minioOpts.KafkaTopic = c.Kafka.Addr, Topic
	c.MinIO = peers.StartMinIO(t, minioOpts)
	startIndex(c)
	c.MC = c.MinIO.Client(t)
	for _, b := range []string{"photos", "results"} {
		if err := c.MC.MakeBucket(t.Context(), b, minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.MinIO.Notify(t, "photos", c.MinIO.ARN, notification.ObjectCreatedAll, notification.ObjectRemovedAll)
	return c
}

// Put uploads body under key.
func (c *Cluster) Put(key string, body []byte) {
	if _, err := c.MC.PutObject(c.T.Context(), "photos", key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		c.T.Error(err)
	}
}

// Uploads puts each key's content with 8 uploaders and calls midway once
// half of them are done.
func (c *Cluster) Uploads(keys []string, content func(key string) []byte, midway func()) {
	var wg sync.WaitGroup
	work := make(chan string)
	var mu sync.Mutex
	done := 0
	for range 8 {
		wg.Go(func() {
			for k := range work {
				c.Put(k, content(k))
				mu.Lock()
				done++
				if done == len(keys)/2 && midway != nil {
					midway()
				}
				mu.Unlock()
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
}

// Outputs are the keys in the results bucket.
func (c *Cluster) Outputs() map[string]bool {
	out := map[string]bool{}
	for o := range c.MC.ListObjects(c.T.Context(), "results", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			c.T.Fatal(o.Err)
		}
		out[o.Key] = true
	}
	return out
}

// Records are the shared index's records.
func (c *Cluster) Records() []index.Record {
	c.T.Helper()
	idx, err := index.Open(c.T.Context(), c.IndexURL, index.Options{})
	if err != nil {
		c.T.Fatal(err)
	}
	defer idx.Close()
	var recs []index.Record
	if err := idx.Records(c.T.Context(), func(r index.Record) error { recs = append(recs, r); return nil }); err != nil {
		c.T.Fatal(err)
	}
	return recs
}

// ContentOf is the body uploaded under key: "dup/17" and "orig/17" share
// content 17.
func ContentOf(key string) []byte {
	_, n, _ := strings.Cut(key, "/")
	return []byte(fmt.Sprintf("content %s %s", n, strings.Repeat("x", 1000)))
}
