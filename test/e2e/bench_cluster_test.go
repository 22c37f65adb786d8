package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/bench"
	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

const (
	clusterBenchSize      = 4 << 10 // bytes per object
	clusterBenchUploaders = 16
	clusterBenchWarmup    = 6 // distinct warm-up uploads, so every replica has likely compiled the module
)

// BenchmarkClusterIndexes measures the production wiring on this machine —
// real MinIO → Kafka-protocol broker → 3 `dedupfn serve` replicas → a
// shared index — once with PostgreSQL and once with CouchDB
// (pouchdb-server), each side by side with MinIO's raw PUT rate in the
// same cluster:
//
//  1. raw: N PUTs of 4 KiB to an untriggered bucket, 16 uploaders;
//  2. store alone: the e2e uploads to an untriggered bucket, each uploader
//     also doing the store work the pipeline must make MinIO do for it
//     (storeAlone): the ceiling of the next phase on this machine;
//  3. e2e: N PUTs of 4 KiB to the triggered bucket photos (N/2 distinct
//     contents, each uploaded twice, shuffled), 16 uploaders, timed from
//     the first upload until the stats count N events;
//  4. from the activations: p50/p99 of timings.total_ms of hits and waits.
//
// N is DEDUPFN_BENCH_OBJECTS (default 1000). The work is done once per
// sub-benchmark whatever b.N is (run it with -benchtime 1x).
func BenchmarkClusterIndexes(b *testing.B) {
	n := 1000
	if v := os.Getenv("DEDUPFN_BENCH_OBJECTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2 || n%2 != 0 {
			b.Fatalf("DEDUPFN_BENCH_OBJECTS=%q: want an even number ≥ 2", v)
		}
	}
	b.Run("postgres", func(b *testing.B) {
		benchCluster(b, n, func(c *harness.Cluster) {
			pg := peers.StartPostgres(b)
			c.IndexURL = pg.CreateDB(b, "dedupfn")
		})
	})
	b.Run("couchdb", func(b *testing.B) {
		benchCluster(b, n, func(c *harness.Cluster) {
			c.Couch = peers.StartCouchDB(b)
			c.IndexURL = c.Couch.URL("dedupfn")
		})
	})
}

func benchCluster(b *testing.B, n int, startIndex func(c *harness.Cluster)) {
	// MinIO's Kafka target with a queue dir sends what its disk queue
	// holds one event at a time, then sleeps 3 s before listing the queue
	// again (internal/store in MinIO): events reach the broker in 3 s
	// waves, and the run measures that rhythm, not the pipeline. Without
	// one it publishes as events happen (GOMAXPROCS sending workers). The
	// bench runs without unless DEDUPFN_BENCH_MINIO_QUEUE_DIR=1; the
	// cluster tests run with one.
	queueDir := os.Getenv("DEDUPFN_BENCH_MINIO_QUEUE_DIR") == "1"
	b.Setenv("MINIO_PROMETHEUS_AUTH_TYPE", "public") // for minioRequests
	c := harness.StartPeersIndex(b, peers.MinIOOptions{NoQueueDir: !queueDir}, startIndex)
	// DEDUPFN_BENCH_REPLICA_BINARY: the replicas run that dedupfn binary
	// instead of this tree's, for an A/B of two commits in one session
	// with the same bench.
	replicaBin := os.Getenv("DEDUPFN_BENCH_REPLICA_BINARY")
	// DEDUPFN_BENCH_PROFILE_DIR: each replica writes a CPU profile of the
	// e2e phase there (replica-N-INDEX.pprof; see bench.ProfileOnSignals).
	profDir := os.Getenv("DEDUPFN_BENCH_PROFILE_DIR")
	var profiles []string
	for i := range 3 {
		args := append(c.ReplicaArgs(i, c.Kafka.URL(harness.Topic, "dedupfn")), "--concurrency", "64")
		s := harness.NewServer(b, b.TempDir())
		s.Bin = replicaBin
		if profDir != "" {
			path := filepath.Join(profDir, fmt.Sprintf("replica-%d-%s.pprof", i, strings.TrimPrefix(b.Name(), "BenchmarkClusterIndexes/")))
			args = append(args, "--"+bench.ProfileSignalsFlag+"="+path)
			profiles = append(profiles, path)
		}
		s.Start(args...)
		c.Replicas = append(c.Replicas, s)
	}
	signalReplicas := func(sig os.Signal) {
		for _, r := range c.Replicas {
			if profDir != "" {
				r.Cmd.Process.Signal(sig)
			}
		}
	}
	r0 := c.Replicas[0]
	r0.CLI("fn", "deploy", "copy", "--wasm", harness.Slowcopy, "--bucket", "photos", "--output-bucket", "results", "--param", "ms=0")
	for _, r := range c.Replicas[1:] {
		testutil.Eventually(b, 10*time.Second, "function visible on every replica", func() bool {
			return strings.Contains(r.CLI("fn", "list"), "copy")
		})
	}
	const raw = "bench-raw"
	if err := c.MC.MakeBucket(b.Context(), raw, minio.MakeBucketOptions{}); err != nil {
		b.Fatal(err)
	}

	// Warm-up: a few distinct events, so that module compiles and first
	// connections are not in the figures.
	var warm []benchPut
	for i := range clusterBenchWarmup {
		warm = append(warm, benchPut{"photos", fmt.Sprintf("warmup/%d", i), benchBody("warmup", i)})
	}
	putAll(c, warm)
	testutil.Eventually(b, 2*time.Minute, "warm-up activations", func() bool { return statsHTTP(c, r0).Events >= clusterBenchWarmup })
	st0 := statsHTTP(c, r0)

	b.ResetTimer()

	// 1. MinIO's raw PUT rate, untriggered bucket.
	var raws []benchPut
	for i := range n {
		raws = append(raws, benchPut{raw, fmt.Sprintf("raw/%05d", i), benchBody("raw", i)})
	}
	rawDur := putAll(c, raws)
	rawRate := float64(n) / rawDur.Seconds()

	// 2. End to end: N/2 distinct contents, each uploaded twice, shuffled.
	var ups []benchPut
	for i := range n / 2 {
		body := benchBody("e2e", i)
		ups = append(ups, benchPut{"photos", fmt.Sprintf("e2e/a/%05d", i), body}, benchPut{"photos", fmt.Sprintf("e2e/b/%05d", i), body})
	}
	rand.Shuffle(len(ups), func(i, j int) { ups[i], ups[j] = ups[j], ups[i] })

	// 2a. The store alone doing each event's store work (the ceiling).
	ceilReq0 := minioRequestsOf(c)
	ceilDur, ceilHit := storeAlone(c, "bench-ceil", ups)
	ceilRate := float64(n) / ceilDur.Seconds()
	// Besides its two buckets and the uploads:
	ceilReqs := minioRequestsOf(c).since(ceilReq0, n, "PutBucket")
	ceilReqs["PutObject"] -= 1
	// How fast MinIO publishes the events to the broker, watched apart
	// from how fast the replicas handle them.
	kc, err := kgo.NewClient(kgo.SeedBrokers(c.Kafka.Addr))
	if err != nil {
		b.Fatal(err)
	}
	defer kc.Close()
	published0, err := topicEnd(b.Context(), kc, harness.Topic)
	if err != nil {
		b.Fatal(err)
	}
	publishedIn := make(chan time.Duration, 1)
	signalReplicas(syscall.SIGUSR1)
	e2eReq0 := minioRequestsOf(c)
	start := time.Now()
	go func() {
		for time.Since(start) < 10*time.Minute {
			if end, err := topicEnd(b.Context(), kc, harness.Topic); err == nil && end-published0 >= int64(n) {
				publishedIn <- time.Since(start)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	putDur := putAll(c, ups)
	var st activation.Stats
	deadline := start.Add(10 * time.Minute)
	for {
		st = statsHTTP(c, r0)
		if st.Events-st0.Events >= int64(n) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("after %s: %d of %d events", time.Since(start), st.Events-st0.Events, n)
		}
		// Every stats query is a view query on CouchDB, which makes
		// pouchdb-server update its views first: polled every 20 ms, the
		// poll itself loads the index the phase waits for. Every 2% of
		// the time so far keeps the end's error at 2%.
		time.Sleep(max(20*time.Millisecond, time.Since(start)/50))
	}
	e2eDur := time.Since(start)
	e2eReqs := minioRequestsOf(c).since(e2eReq0, n)
	e2eReqs["PutObject"] -= 1 // the uploads
	b.StopTimer()
	var pubDur time.Duration
	select {
	case pubDur = <-publishedIn:
	case <-time.After(5 * time.Second):
	}
	signalReplicas(syscall.SIGUSR2)
	for _, p := range profiles {
		testutil.Eventually(b, 30*time.Second, "CPU profile "+p, func() bool { _, err := os.Stat(p); return err == nil })
	}
	events := st.Events - st0.Events
	eventsRate := float64(n) / e2eDur.Seconds()
	ratio := eventsRate / rawRate

	// 3. Hit latency from the activations.
	var hits, fetch, lookup, store, queue []float64
	var decisions = map[activation.Decision]int{}
	for _, a := range activationsN(r0, n+clusterBenchWarmup+100) {
		if !strings.HasPrefix(a.Event.Key, "e2e/") {
			continue
		}
		decisions[a.Decision]++
		if a.Decision == activation.Hit || a.Decision == activation.Wait {
			hits = append(hits, a.Timings.TotalMS)
			fetch, lookup = append(fetch, a.Timings.FetchMS), append(lookup, a.Timings.LookupMS)
			store, queue = append(store, a.Timings.StoreMS), append(queue, a.Timings.QueueMS)
		}
	}
	p50, p99 := bench.Percentile(hits, 50), bench.Percentile(hits, 99)
	runs := st.Runs - st0.Runs

	// 4. What one miss and one hit ask of MinIO, quiesced.
	const kindSamples = 5
	missReqs, hitReqs := requestsPerKind(c, kindSamples)

	// The lower of the two bounds measured in this run: the store alone
	// doing the events' store work, and MinIO's publishing while it serves
	// the e2e phase's.
	bound, boundName := ceilRate, "store alone"
	if pubDur > 0 && float64(n)/pubDur.Seconds() < bound {
		bound, boundName = float64(n)/pubDur.Seconds(), "MinIO's publish rate"
	}

	b.ReportMetric(eventsRate, "events/s")
	b.ReportMetric(rawRate, "raw_puts/s")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(ceilRate/rawRate, "ceiling_ratio")
	b.ReportMetric(eventsRate/bound, "bound_ratio")
	b.ReportMetric(e2eReqs.total(), "s3_requests/event")
	b.ReportMetric(p50, "hit_p50_ms")
	b.ReportMetric(p99, "hit_p99_ms")
	b.Logf("%d objects of %d B, %d uploaders, 3 replicas, index %s, MinIO Kafka queue dir %v", n, clusterBenchSize, clusterBenchUploaders, strings.SplitN(c.IndexURL, ":", 2)[0], queueDir)
	b.Logf("raw: %d PUTs in %s → %.0f PUT/s", n, rawDur.Round(time.Millisecond), rawRate)
	// (A benchmark's log keeps 10 lines without -test.v: one line each.)
	b.Logf("store alone (each event's PUT, GET, then conditional output PUT, or HEAD and copy; no dedupfn): %d in %s → %.0f events/s, ceiling ratio %.2f×; a hit's store work p50 %.2f ms, p99 %.2f ms; S3 requests per event besides its upload: %s",
		n, ceilDur.Round(time.Millisecond), ceilRate, ceilRate/rawRate, bench.Percentile(ceilHit, 50), bench.Percentile(ceilHit, 99), ceilReqs)
	b.Logf("e2e: %d PUTs in %s, %d events in %s → %.0f events/s, ratio %.2f×", n, putDur.Round(time.Millisecond),
		events, e2eDur.Round(time.Millisecond), eventsRate, ratio)
	if pubDur > 0 {
		b.Logf("MinIO published the %d events to the broker in %s → %.0f events/s (dedupfn handled them in %s)",
			n, pubDur.Round(time.Millisecond), float64(n)/pubDur.Seconds(), e2eDur.Round(time.Millisecond))
	} else {
		b.Logf("MinIO had not published all %d events to the broker 5 s after dedupfn handled them (end offsets)", n)
	}
	b.Logf("bound: %s, %.0f events/s; e2e %.2f× of it; hit p50 %.2f× the store alone's hit store work p50",
		boundName, bound, eventsRate/bound, p50/bench.Percentile(ceilHit, 50))
	b.Logf("S3 requests per event besides its upload: e2e (all kinds, listings included) %s; per miss %s; per hit %s (quiesced, %d samples each, listings left out)",
		e2eReqs, missReqs, hitReqs, kindSamples)
	b.Logf("runs %d (want %d), hits %d (waits %d of them), errors %d; activations %v; hit+wait total_ms p50 %.2f, p99 %.2f (%d samples)",
		runs, n/2, st.Hits-st0.Hits, st.Waits-st0.Waits, st.Errors-st0.Errors, decisions, p50, p99, len(hits))
	b.Logf("hit+wait stage p50 ms: fetch+hash %.2f, lookup %.2f, store %.2f (queue, not in total_ms: p50 %.0f, p99 %.0f)",
		bench.Percentile(fetch, 50), bench.Percentile(lookup, 50), bench.Percentile(store, 50), bench.Percentile(queue, 50), bench.Percentile(queue, 99))
	if runs != int64(n/2) {
		b.Fatalf("runs %d, want exactly %d (the distinct contents)", runs, n/2)
	}
	if events != int64(n) || st.Errors != st0.Errors {
		b.Fatalf("stats %+v (before: %+v): want exactly %d new events and no errors", st, st0, n)
	}
}

type benchPut struct {
	bucket, key string
	body        []byte
}

// benchBody is a 4 KiB body, distinct for each (kind, i).
func benchBody(kind string, i int) []byte {
	head := fmt.Sprintf("%s %d ", kind, i)
	return append([]byte(head), bytes.Repeat([]byte{'x'}, clusterBenchSize-len(head))...)
}

// putAll uploads every put with the cluster's minio-go client and
// clusterBenchUploaders uploaders, and returns the wall time.
func putAll(c *harness.Cluster, puts []benchPut) time.Duration {
	return eachPut(c, puts, func(p benchPut) error {
		_, err := c.MC.PutObject(c.T.Context(), p.bucket, p.key, bytes.NewReader(p.body), int64(len(p.body)), minio.PutObjectOptions{})
		return err
	})
}

// eachPut calls do for every put, clusterBenchUploaders at once, and
// returns the wall time; the benchmark fails if any call did.
func eachPut(c *harness.Cluster, puts []benchPut, do func(benchPut) error) time.Duration {
	work := make(chan benchPut)
	var wg sync.WaitGroup
	start := time.Now()
	for range clusterBenchUploaders {
		wg.Go(func() {
			for p := range work {
				if err := do(p); err != nil {
					c.T.Error(err)
				}
			}
		})
	}
	for _, p := range puts {
		work <- p
	}
	close(work)
	wg.Wait()
	d := time.Since(start)
	if c.T.Failed() {
		c.T.FailNow()
	}
	return d
}

// statsHTTP reads a replica's /v1/stats (cluster-wide totals) over HTTP:
// cheaper than running the CLI while polling during a measurement.
func statsHTTP(c *harness.Cluster, s *harness.Server) activation.Stats {
	c.T.Helper()
	resp, err := http.Get("http://" + s.API + "/v1/stats")
	if err != nil {
		c.T.Fatal(err)
	}
	defer resp.Body.Close()
	var st activation.Stats
	if resp.StatusCode != http.StatusOK {
		c.T.Fatalf("GET /v1/stats: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		c.T.Fatal(err)
	}
	return st
}

// activationsN is activations with --limit n.
func activationsN(s *harness.Server, n int) []activation.Record {
	s.T.Helper()
	var recs []activation.Record
	if err := json.Unmarshal([]byte(s.CLI("activations", "--json", "--limit", strconv.Itoa(n))), &recs); err != nil {
		s.T.Fatal(err)
	}
	return recs
}

// topicEnd is the sum of topic's partitions' end offsets: how many
// events have been published to it.
func topicEnd(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = topic
	for p := range int32(peers.KafkaPartitions) {
		part := kmsg.NewListOffsetsRequestTopicPartition()
		part.Partition = p
		part.Timestamp = -1 // the end
		t.Partitions = append(t.Partitions, part)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return 0, err
			}
			sum += rp.Offset
		}
	}
	return sum, nil
}
