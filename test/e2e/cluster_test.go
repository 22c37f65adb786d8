package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
	_ "github.com/dedupfn/dedupfn/internal/index/couchdb"
	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// TestCluster: 200 uploads, half duplicates of the others, through real
// MinIO → Kafka → 3 replicas sharing CouchDB; one replica is SIGKILLed
// midway. Every upload gets its output and one activation; every content
// runs once, except runs whose owner died mid-function, which are taken
// over exactly once.
func TestCluster(t *testing.T) {
	t.Parallel()
	clusterKillTest(t, harness.StartCluster(t, 3, peers.MinIOOptions{}))
}

// clusterKillTest is TestCluster's workload and checks on a cluster of 3
// replicas, whichever shared index they use.
func clusterKillTest(t *testing.T, c *harness.Cluster) {
	r0 := c.Replicas[0]
	r0.CLI("fn", "deploy", "copy", "--wasm", harness.Slowcopy, "--bucket", "photos", "--output-bucket", "results",
		// The lease is far longer than a renewal takes even on a loaded
		// 2-core machine, so the only takeovers are of the killed replica's
		// runs, which is what this test asserts exactly.
		"--param", "ms=300", "--lease", "8s")

	// A function deployed through one replica is live on all within a second.
	start := time.Now()
	for _, r := range c.Replicas[1:] {
		testutil.Eventually(t, 2*time.Second, "function visible on another replica", func() bool {
			return strings.Contains(r.CLI("fn", "list"), "copy")
		})
	}
	t.Logf("function live on all replicas after %s", time.Since(start))

	const distinct = 100
	var keys []string
	for i := range distinct {
		keys = append(keys, fmt.Sprintf("orig/%03d", i), fmt.Sprintf("dup/%03d", i))
	}
	victim := c.Replicas[2]
	var interrupted map[string]bool // claims the victim held when it died
	c.Uploads(keys, harness.ContentOf, func() {
		// Kill the victim while it is running a function, so that the
		// takeover path is exercised, not just hoped for.
		testutil.Eventually(t, 30*time.Second, "the victim holding a claim", func() bool {
			for _, r := range c.Records() {
				if r.State == index.Running && r.Owner == "r2" {
					return true
				}
			}
			return false
		})
		victim.Kill()
		// A claim the victim sent just before it died may still land in
		// the index (the server finishes a statement whose client is
		// gone): look once it has, well within the 8 s lease, before
		// which nothing can be taken over.
		time.Sleep(time.Second)
		interrupted = map[string]bool{}
		for _, r := range c.Records() {
			if r.State == index.Running && r.Owner == "r2" {
				interrupted[r.Key] = true
			}
		}
	})
	if len(interrupted) == 0 {
		t.Fatal("the victim held no claim when killed")
	}

	r0.WaitEvents(200, 4*time.Minute)
	time.Sleep(2 * time.Second) // let stragglers show any double count
	st := c.Replicas[1].Stats()
	if st.Events != 200 || st.Errors != 0 {
		t.Fatalf("cluster stats %+v: want exactly 200 events and no errors", st)
	}
	acts := r0.Activations()
	perEvent := map[string]int{}
	missesPerKey := map[string]int{}
	for _, a := range acts {
		perEvent[a.Event.Key]++
		if a.Decision == activation.Miss {
			missesPerKey[a.Key]++
		}
	}
	for _, k := range keys {
		if perEvent[k] != 1 {
			t.Errorf("%s has %d activations, want 1", k, perEvent[k])
		}
	}
	for k, n := range missesPerKey {
		if n != 1 {
			t.Errorf("dedup key %s ran to completion %d times", k, n)
		}
	}
	if outs := c.Outputs(); len(outs) != len(keys) {
		t.Errorf("%d outputs for %d uploads", len(outs), len(keys))
	}
	done, takeovers := 0, map[string]bool{}
	for _, r := range c.Records() {
		if r.State == index.Done {
			done++
		}
		switch {
		case r.Attempt == 2:
			takeovers[r.Key] = true
		case r.Attempt != 1:
			t.Errorf("record %s has attempt %d", r.Key, r.Attempt)
		}
	}
	if done != distinct {
		t.Errorf("%d contents done, want exactly %d", done, distinct)
	}
	if fmt.Sprint(takeovers) != fmt.Sprint(interrupted) {
		t.Errorf("taken over %v, want exactly the victim's interrupted runs %v", takeovers, interrupted)
	}
	t.Logf("runs %d, hits %d (waits %d), interrupted and taken over %d", st.Runs, st.Hits, st.Waits, len(interrupted))
}

// TestClusterBrokerRestart: the broker restarts mid-stream; nothing is lost
// and nothing runs twice.
func TestClusterBrokerRestart(t *testing.T) {
	t.Parallel()
	c := harness.StartCluster(t, 2, peers.MinIOOptions{})
	r0 := c.Replicas[0]
	r0.CLI("fn", "deploy", "copy", "--wasm", harness.Slowcopy, "--bucket", "photos", "--output-bucket", "results", "--param", "ms=20")
	for _, r := range c.Replicas[1:] {
		testutil.Eventually(t, 2*time.Second, "function visible", func() bool { return strings.Contains(r.CLI("fn", "list"), "copy") })
	}
	const distinct = 40
	var keys []string
	for i := range distinct {
		keys = append(keys, fmt.Sprintf("orig/%03d", i), fmt.Sprintf("dup/%03d", i))
	}
	c.Uploads(keys, harness.ContentOf, func() { c.Kafka.Restart(t) })
	r0.WaitEvents(int64(len(keys)), 3*time.Minute)
	time.Sleep(time.Second)
	st := c.Replicas[1].Stats()
	if st.Events != int64(len(keys)) || st.Runs != distinct || st.Hits != distinct || st.Errors != 0 {
		t.Fatalf("stats %+v: want %d events, exactly %d runs and %d hits", st, len(keys), distinct, distinct)
	}
	if outs := c.Outputs(); len(outs) != len(keys) {
		t.Fatalf("%d outputs for %d uploads", len(outs), len(keys))
	}
}

// TestReconcilerFindsDroppedEvents: MinIO drops the events of uploads made
// while the broker is down; the reconciler finds and processes them, and
// says how many the source missed.
func TestReconcilerFindsDroppedEvents(t *testing.T) {
	t.Parallel()
	c := harness.StartCluster(t, 1, peers.MinIOOptions{NoQueueDir: true}, "--reconcile", "1s", "--reconcile-grace", "5s")
	r0 := c.Replicas[0]
	r0.CLI("fn", "deploy", "copy", "--wasm", harness.Slowcopy, "--bucket", "photos", "--output-bucket", "results", "--param", "ms=0")
	c.Put("before/1", []byte("one"))
	r0.WaitEvents(1, time.Minute)

	// Events MinIO cannot deliver wait in its memory without a queue dir;
	// a MinIO restart then loses them, as in production.
	c.Kafka.Stop()
	for i := range 5 {
		c.Put(fmt.Sprintf("while-down/%d", i), []byte(fmt.Sprintf("dropped %d", i)))
	}
	c.MinIO.Restart(t)
	c.Kafka.Start(t)
	r0.WaitEvents(6, 2*time.Minute)
	time.Sleep(3 * time.Second) // a late MinIO delivery would show as a 7th activation
	st := r0.Stats()
	if st.Events != 6 || st.Runs != 6 {
		t.Fatalf("stats %+v: want 6 events, 6 runs", st)
	}
	reconciled := 0
	for _, a := range r0.Activations() {
		if a.EventSource == "reconcile" {
			reconciled++
		}
	}
	if reconciled == 0 {
		t.Fatal("no activation came from the reconciler: MinIO did not drop the events, so this test proves nothing")
	}
	resp, err := http.Get("http://" + r0.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf("dedupfn_reconcile_missed_events_total %d", reconciled)
	if !strings.Contains(string(body), want) {
		t.Fatalf("/metrics lacks %q", want)
	}
	t.Logf("reconciler found %d of 5 dropped events", reconciled)
}

// TestWebhookSource: MinIO's webhook target posts to `dedupfn serve
// --events webhook:` on the API listener, authenticated with the API token.
func TestWebhookSource(t *testing.T) {
	t.Parallel()
	const token = "webhook-token-0123456789"
	api := testutil.FreeAddr(t)
	m := peers.StartMinIO(t, peers.MinIOOptions{WebhookEndpoint: "http://" + api + "/v1/events/webhook", WebhookToken: token})
	mc := m.Client(t)
	for _, b := range []string{"photos", "results"} {
		if err := mc.MakeBucket(t.Context(), b, minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s := harness.NewServer(t, t.TempDir())
	s.API, s.Env = api, []string{"DEDUPFN_API_TOKEN=" + token}
	s.Start("--objects", m.URL(), "--events", "webhook:")
	s.CLI("fn", "deploy", "copy", "--token", token, "--wasm", harness.Slowcopy, "--bucket", "photos", "--output-bucket", "results", "--param", "ms=0")

	m.Notify(t, "photos", m.WebhookARN, notification.ObjectCreatedAll, notification.ObjectRemovedAll)
	for i, body := range []string{"one", "two", "one"} {
		if _, err := mc.PutObject(t.Context(), "photos", fmt.Sprintf("k%d", i), strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	st := s.WaitEvents(3, time.Minute)
	if st.Events != 3 || st.Runs != 2 || st.Hits != 1 {
		t.Fatalf("stats %+v: want 3 events, 2 runs, 1 hit", st)
	}
	// Without the token the endpoint refuses events.
	resp, err := http.Post("http://"+api+"/v1/events/webhook", "application/json", strings.NewReader(`{"Records":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated webhook post: %d, want 401", resp.StatusCode)
	}
}

// TestReadmeProductionCommands follows the README's production section
// with the mc CLI, word for word where it can: target id DEDUPFN, `mc mb`,
// `mc event add ... --event put,delete`, then a replica as documented.
func TestReadmeProductionCommands(t *testing.T) {
	t.Parallel()
	mcBin := testutil.Tool(t, "DEDUPFN_MC", "bin/mc")
	k := peers.StartKafka(t, harness.Topic)
	m := peers.StartMinIO(t, peers.MinIOOptions{KafkaBrokers: k.Addr, KafkaTopic: harness.Topic, ID: "DEDUPFN"})
	home := t.TempDir()
	mc := func(args ...string) string {
		cmd := exec.Command(mcBin, append([]string{"--config-dir", home, "--no-color"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mc %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	mc("alias", "set", "prod", "http://"+m.Endpoint, m.AccessKey, m.SecretKey)
	mc("mb", "prod/photos", "prod/thumbnails")
	mc("event", "add", "prod/photos", "arn:minio:sqs::DEDUPFN:kafka", "--event", "put,delete")

	couch := peers.StartCouchDB(t)
	s := harness.NewServer(t, t.TempDir())
	s.Env = []string{"DEDUPFN_S3_ACCESS_KEY=" + m.AccessKey, "DEDUPFN_S3_SECRET_KEY=" + m.SecretKey}
	s.Start(
		"--objects", "s3://"+m.Endpoint+"?tls=false",
		"--events", k.URL(harness.Topic, "dedupfn"),
		"--index", couch.URL("dedupfn"),
		"--reconcile", "10m")
	s.CLI("fn", "deploy", "thumbnail", "--wasm", harness.Thumbnail, "--bucket", "photos", "--suffix", ".jpg", "--output-bucket", "thumbnails")
	cat, _ := filepath.Abs("../../examples/thumbnail/testdata/cat.jpg")
	mc("cp", cat, "prod/photos/a/cat.jpg")
	mc("cp", cat, "prod/photos/b/cat.jpg")
	st := s.WaitEvents(2, time.Minute)
	if st.Events != 2 || st.Runs != 1 || st.Hits != 1 {
		t.Fatalf("stats %+v: want 2 events, 1 run, 1 hit", st)
	}
	if ls := mc("ls", "--recursive", "prod/thumbnails"); !strings.Contains(ls, "a/cat.jpg") || !strings.Contains(ls, "b/cat.jpg") {
		t.Fatalf("thumbnails:\n%s", ls)
	}
}
