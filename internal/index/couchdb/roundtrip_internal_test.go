package couchdb

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	kivik "github.com/go-kivik/kivik/v4"
	"github.com/go-kivik/kivik/v4/couchdb"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// counter counts the HTTP requests of a kivik client, by method and path.
type counter struct {
	mu   sync.Mutex
	reqs []string
	next http.RoundTripper
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, r.Method+" "+r.URL.Path)
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

// take returns the requests counted since the last take.
func (c *counter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	return r
}

// openCounted opens the database name and routes its requests (and, if
// watch, its change feed's) through counters.
func openCounted(t *testing.T, srv *peers.CouchDB, name string) (d *DB, reqs, feed *counter) {
	t.Helper()
	idx, err := index.Open(t.Context(), srv.URL(name), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d = idx.(*DB)
	t.Cleanup(func() { d.Close() })
	reqs = &counter{next: http.DefaultTransport}
	feed = &counter{next: http.DefaultTransport}
	for _, h := range []struct {
		c  *counter
		cl **kivik.Client
		db **kivik.DB
	}{{reqs, &d.client, &d.db}, {feed, &d.watchC, &d.watchDB}} {
		cl, err := kivik.New("couch", "http://"+srv.Addr+"/", couchdb.OptionHTTPClient(&http.Client{Transport: h.c}))
		if err != nil {
			t.Fatal(err)
		}
		(*h.cl).Close() // d.Close closes the replacement
		*h.cl, *h.db = cl, cl.DB(name)
	}
	return d, reqs, feed
}

// TestClaimRoundTrips: a hit (and a wait) is one request, a miss two
// (the read that finds nothing, then the create).
func TestClaimRoundTrips(t *testing.T) {
	srv := peers.StartCouchDB(t)
	d, reqs, _ := openCounted(t, srv, "roundtrips")
	ctx := t.Context()
	c, err := d.Claim(ctx, "k", index.Parts{}, "a", time.Minute)
	if err != nil || c.Outcome != index.Miss {
		t.Fatalf("first claim = %v, %v", c.Outcome, err)
	}
	miss := reqs.take()
	if got, err := d.Claim(ctx, "k", index.Parts{}, "b", time.Minute); err != nil || got.Outcome != index.Wait {
		t.Fatalf("second claim = %v, %v", got.Outcome, err)
	}
	wait := reqs.take()
	if err := d.Complete(ctx, "k", c.Record.Token, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
		t.Fatal(err)
	}
	reqs.take()
	if got, err := d.Claim(ctx, "k", index.Parts{}, "b", time.Minute); err != nil || got.Outcome != index.Hit {
		t.Fatalf("claim after complete = %v, %v", got.Outcome, err)
	}
	hit := reqs.take()
	t.Logf("requests: miss %v, wait %v, hit %v", miss, wait, hit)
	if len(hit) != 1 || len(wait) != 1 || len(miss) != 2 {
		t.Fatalf("requests per claim: miss %d %v, wait %d %v, hit %d %v; want 2, 1, 1", len(miss), miss, len(wait), wait, len(hit), hit)
	}
}

// TestWaitFeedShared: waiters on many keys share one changes feed: while
// they wait, the feed has one request open, not one per waiter; each
// waiter's own requests are its reads of its claim.
func TestWaitFeedShared(t *testing.T) {
	srv := peers.StartCouchDB(t)
	owner, _, _ := openCounted(t, srv, "shared-feed")
	w, reqs, feed := openCounted(t, srv, "shared-feed")
	const n = 20
	tokens := make([]string, n)
	curs := make([]index.Record, n)
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		c, err := owner.Claim(t.Context(), key, index.Parts{}, "a", time.Minute)
		if err != nil || c.Outcome != index.Miss {
			t.Fatalf("claim %s = %v, %v", key, c.Outcome, err)
		}
		tokens[i] = c.Record.Token
		if c, err = w.Claim(t.Context(), key, index.Parts{}, "b", time.Minute); err != nil || c.Outcome != index.Wait {
			t.Fatalf("claim %s on the waiter = %v, %v", key, c.Outcome, err)
		}
		curs[i] = c.Record
	}
	reqs.take()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = w.WaitChange(t.Context(), curs[i]) })
	}
	time.Sleep(300 * time.Millisecond) // all waiting
	var quiet int
	for _, r := range feed.take() {
		if strings.HasSuffix(r, "/_changes") {
			quiet++
		}
	}
	if quiet == 0 || quiet > 2 {
		t.Fatalf("%d waiters made %d _changes requests while nothing changed, want 1 shared", n, quiet)
	}
	for i := range n {
		if err := owner.Complete(t.Context(), fmt.Sprintf("k%d", i), tokens[i], index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("waiter %d: %v", i, err)
		}
	}
	var changes, reads int
	for _, r := range feed.take() {
		if strings.HasSuffix(r, "/_changes") {
			changes++
		}
	}
	for _, r := range reqs.take() {
		if strings.Contains(r, "/claim:") {
			reads++
		}
	}
	t.Logf("%d waiters: %d _changes requests while waiting, %d for %d changes (one per batch); %d claim reads", n, quiet, changes, n, reads)
	if changes > n+2 {
		t.Fatalf("%d _changes requests for %d changes, want at most one per change", changes, n)
	}
	if reads > 3*n {
		t.Fatalf("%d waiters read their claims %d times", n, reads)
	}
}
