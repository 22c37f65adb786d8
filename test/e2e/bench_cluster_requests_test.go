package e2e

import (
	"bufio"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// minioRequests is MinIO's count of the S3 requests it has served, by
// API name (GetObject, HeadObject, PutObject, CopyObject, ...), from its
// Prometheus metrics (v3, read fresh on every scrape; the bench starts
// MinIO with MINIO_PROMETHEUS_AUTH_TYPE=public).
type minioRequests map[string]float64

func minioRequestsOf(c *harness.Cluster) minioRequests {
	c.T.Helper()
	resp, err := http.Get("http://" + c.MinIO.Endpoint + "/minio/metrics/v3/api/requests")
	if err != nil {
		c.T.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.T.Fatalf("MinIO metrics: %s", resp.Status)
	}
	got := minioRequests{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		// minio_api_requests_total{name="GetObject",server="…",type="s3"} 12
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "minio_api_requests_total{")
		if !ok {
			continue
		}
		_, name, ok := strings.Cut(rest, `name="`)
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, `"`)
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			c.T.Fatalf("MinIO metrics line %q: %v", line, err)
		}
		got[name] += v
	}
	if err := sc.Err(); err != nil {
		c.T.Fatal(err)
	}
	return got
}

// since is the requests served between before and r, each divided by per
// (how many events they were for), without the APIs in drop.
func (r minioRequests) since(before minioRequests, per int, drop ...string) minioRequests {
	d := minioRequests{}
	for name, v := range r {
		if n := v - before[name]; n != 0 && !slices.Contains(drop, name) {
			d[name] = n / float64(per)
		}
	}
	return d
}

// total is the sum over every API.
func (r minioRequests) total() float64 {
	var sum float64
	for _, v := range r {
		sum += v
	}
	return sum
}

func (r minioRequests) String() string {
	var b strings.Builder
	for i, name := range slices.Sorted(maps.Keys(r)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.2f", name, r[name])
	}
	fmt.Fprintf(&b, " (total %.2f)", r.total())
	return b.String()
}

// listAPIs are requests no event makes (the reconciler's listings): left
// out of the per-kind counts, which the reconciler may run during.
var listAPIs = []string{"ListObjectsV2", "ListObjectsV1", "ListObjectVersions", "ListBuckets", "GetBucketLocation"}

// requestsPerKind measures what one miss and one hit ask of MinIO,
// quiesced: k new distinct uploads one at a time, each awaited in the
// stats, then k duplicates of them the same way. It returns the S3
// requests per miss and per hit, besides the upload's own PutObject and
// any listing.
func requestsPerKind(c *harness.Cluster, k int) (miss, hit minioRequests) {
	r0 := c.Replicas[0]
	one := func(key string, body []byte) {
		before := statsHTTP(c, r0).Events
		if _, err := c.MC.PutObject(c.T.Context(), "photos", key, strings.NewReader(string(body)), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			c.T.Fatal(err)
		}
		testutil.Eventually(c.T, 30*time.Second, "activation of "+key, func() bool { return statsHTTP(c, r0).Events > before })
	}
	phase := func(prefix string) minioRequests {
		start := minioRequestsOf(c)
		for i := range k {
			one(fmt.Sprintf("%s/%03d", prefix, i), benchBody("kind", i))
		}
		d := minioRequestsOf(c).since(start, k, listAPIs...)
		d["PutObject"] -= 1 // the upload itself
		if d["PutObject"] == 0 {
			delete(d, "PutObject")
		}
		return d
	}
	return phase("kind/miss"), phase("kind/hit")
}
