package couchdb

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	kivik "github.com/go-kivik/kivik/v4"
	"github.com/go-kivik/kivik/v4/couchdb"

	"github.com/dedupfn/dedupfn/internal/activation"
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

// TestHeldClaimWrites: the owner's renewal, external id and completion
// are one request each (a write with the _rev it last wrote), and a stale
// _rev still fences: an owner whose claim another replica took over gets
// ErrNotOwner and leaves the new owner's claim alone.
func TestHeldClaimWrites(t *testing.T) {
	srv := peers.StartCouchDB(t)
	a, reqs, _ := openCounted(t, srv, "held")
	b, _, _ := openCounted(t, srv, "held")
	ctx := t.Context()

	c, err := a.Claim(ctx, "k", index.Parts{}, "a", time.Minute)
	if err != nil || c.Outcome != index.Miss {
		t.Fatalf("claim = %v, %v", c.Outcome, err)
	}
	reqs.take()
	for name, write := range map[string]func() error{
		"renew":       func() error { return a.Renew(ctx, "k", c.Record.Token, time.Minute) },
		"external id": func() error { return a.SetExternalID(ctx, "k", c.Record.Token, "x") },
	} {
		if err := write(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := reqs.take(); len(got) != 1 {
			t.Errorf("%s: %d requests %v, want 1 (a write with the remembered _rev)", name, len(got), got)
		}
	}
	if err := a.Complete(ctx, "k", c.Record.Token, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
		t.Fatal(err)
	}
	if got := reqs.take(); len(got) != 1 {
		t.Errorf("complete: %d requests %v, want 1", len(got), got)
	}

	// Taken over: a holds k with a short lease that b takes over once it
	// has expired; a's completion must not land on b's claim.
	c, err = a.Claim(ctx, "k2", index.Parts{}, "a", 50*time.Millisecond)
	if err != nil || c.Outcome != index.Miss {
		t.Fatalf("claim k2 = %v, %v", c.Outcome, err)
	}
	time.Sleep(100 * time.Millisecond)
	cb, err := b.Claim(ctx, "k2", index.Parts{}, "b", time.Minute)
	if err != nil || cb.Outcome != index.Miss {
		t.Fatalf("takeover = %v, %v", cb.Outcome, err)
	}
	if err := a.Complete(ctx, "k2", c.Record.Token, index.Completion{Output: &index.Output{Key: "stale"}}); !errors.Is(err, index.ErrNotOwner) {
		t.Fatalf("stale owner's complete = %v, want ErrNotOwner", err)
	}
	got, err := b.Get(ctx, "k2")
	if err != nil || got.State != index.Running || got.Token != cb.Record.Token || got.Output != nil {
		t.Fatalf("after the stale complete, k2 = %+v, %v: want b's running claim untouched", got, err)
	}
	if err := b.Complete(ctx, "k2", cb.Record.Token, index.Completion{Output: &index.Output{Key: "o2"}}); err != nil {
		t.Fatalf("new owner's complete: %v", err)
	}
}

// TestAddActivationBatched: activations recorded at the same time share
// _bulk_docs requests, each is stored, and recording one twice (a
// redelivered event) is not an error.
func TestAddActivationBatched(t *testing.T) {
	srv := peers.StartCouchDB(t)
	d, reqs, _ := openCounted(t, srv, "acts")
	ctx := t.Context()
	const n = 64
	start := time.Now().UTC()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = d.AddActivation(ctx, activation.Record{ID: fmt.Sprintf("a%02d", i), Tenant: "t", Function: "f", Start: start})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("activation %d: %v", i, err)
		}
	}
	got := reqs.take()
	t.Logf("%d activations in %d requests", n, len(got))
	if len(got) >= n {
		t.Errorf("%d concurrent activations took %d requests, want fewer (batched)", n, len(got))
	}
	for _, r := range got {
		if r != "POST /acts/_bulk_docs" {
			t.Errorf("request %q, want only bulk writes", r)
		}
	}
	for i := range n {
		if _, err := d.GetActivation(ctx, fmt.Sprintf("a%02d", i)); err != nil {
			t.Errorf("activation %d: %v", i, err)
		}
	}
	if err := d.AddActivation(ctx, activation.Record{ID: "a00", Tenant: "t", Function: "f", Start: start}); err != nil {
		t.Errorf("recording a00 again: %v, want nil", err)
	}
}
