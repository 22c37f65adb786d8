package s3_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/s3"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// countingProxy forwards requests to MinIO and counts them by kind
// (GET, HEAD, PUT, COPY, DELETE). With ignoreIfNoneMatch it plays a store
// that ignores If-None-Match: it answers a second conditional PUT of a
// key as if it had overwritten it (without forwarding it: the header is
// signed and cannot be dropped).
type countingProxy struct {
	mu                sync.Mutex
	counts            map[string]int
	seen              map[string]bool
	ignoreIfNoneMatch bool
}

// countedClient is a client of a fresh MinIO through a counting proxy,
// with a bucket "bkt".
func countedClient(t *testing.T, ignoreIfNoneMatch bool) (*countingProxy, *s3.Client) {
	t.Helper()
	m := peers.StartMinIO(t, peers.MinIOOptions{})
	proxy, addr := startCountingProxy(t, m, ignoreIfNoneMatch)
	c, err := s3.New(addr, false, m.AccessKey, m.SecretKey, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MakeBucket(t.Context(), "bkt"); err != nil {
		t.Fatal(err)
	}
	return proxy, c
}

func startCountingProxy(t *testing.T, m *peers.MinIO, ignoreIfNoneMatch bool) (*countingProxy, string) {
	t.Helper()
	target, err := url.Parse("http://" + m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{counts: map[string]int{}, seen: map[string]bool{}, ignoreIfNoneMatch: ignoreIfNoneMatch}
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the signed Host header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := r.Method
		if r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "" {
			kind = "COPY"
		}
		p.mu.Lock()
		p.counts[kind]++
		fake := p.ignoreIfNoneMatch && r.Method == http.MethodPut && r.Header.Get("If-None-Match") == "*" && p.seen[r.URL.Path]
		p.seen[r.URL.Path] = true
		p.mu.Unlock()
		if fake {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("ETag", `"d41d8cd98f00b204e9800998ecf8427e"`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return p, strings.TrimPrefix(srv.URL, "http://")
}

// take returns the counts since the last take and resets them.
func (p *countingProxy) take() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counts
	p.counts = map[string]int{}
	return c
}

func wantRequests(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: requests %v, want %v", what, got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: requests %v, want %v", what, got, want)
			return
		}
	}
}

// TestRequestsPerCall_MinIO counts what each call the pipeline makes per
// event asks of MinIO: a Get is one GET (not a HEAD and a GET), a
// conditional Put one PUT (after a probe of the bucket, once), a Copy of
// a known version one PUT (its SHA-256 from the answer, without a HEAD).
func TestRequestsPerCall_MinIO(t *testing.T) {
	proxy, c := countedClient(t, false)
	ctx := t.Context()
	body := "four kilobytes, or so"
	in, err := c.Put(ctx, "bkt", "in", strings.NewReader(body), int64(len(body)), objects.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	proxy.take()

	rc, _, err := c.Get(ctx, "bkt", "in", "", "")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	wantRequests(t, "Get", proxy.take(), map[string]int{"GET": 1})

	cond := objects.PutOptions{IfNoneMatch: true}
	if _, err := c.Put(ctx, "bkt", "out/1", strings.NewReader(body), int64(len(body)), cond); err != nil {
		t.Fatal(err)
	}
	wantRequests(t, "first conditional Put (probe: 2 PUTs and a DELETE)", proxy.take(), map[string]int{"PUT": 3, "DELETE": 1})
	if _, err := c.Put(ctx, "bkt", "out/2", strings.NewReader(body), int64(len(body)), cond); err != nil {
		t.Fatal(err)
	}
	wantRequests(t, "conditional Put", proxy.take(), map[string]int{"PUT": 1})
	if _, err := c.Put(ctx, "bkt", "out/2", strings.NewReader(body), int64(len(body)), cond); !errors.Is(err, objects.ErrExists) {
		t.Fatalf("conditional Put over an object: %v, want ErrExists", err)
	}
	wantRequests(t, "refused conditional Put", proxy.take(), map[string]int{"PUT": 1})

	info, err := c.Copy(ctx, in, "bkt", "out/copy", objects.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(body))
	if info.SHA256 != hex.EncodeToString(want[:]) {
		t.Errorf("Copy: SHA256 %q, want %x", info.SHA256, want)
	}
	wantRequests(t, "Copy", proxy.take(), map[string]int{"COPY": 1})
}

// TestConditionalPut_StoreIgnoresIfNoneMatch: against a store that
// ignores If-None-Match, a conditional Put never replaces an object: the
// probe finds out, and each conditional Put Stats the key first.
func TestConditionalPut_StoreIgnoresIfNoneMatch(t *testing.T) {
	proxy, c := countedClient(t, true)
	ctx := t.Context()
	if _, err := c.Put(ctx, "bkt", "users", strings.NewReader("mine"), 4, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	proxy.take()
	cond := objects.PutOptions{IfNoneMatch: true}
	if _, err := c.Put(ctx, "bkt", "users", strings.NewReader("theirs"), 6, cond); !errors.Is(err, objects.ErrExists) {
		t.Fatalf("conditional Put over an object: %v, want ErrExists", err)
	}
	wantRequests(t, "probe, then a Stat that finds the object", proxy.take(), map[string]int{"PUT": 2, "DELETE": 1, "HEAD": 1})
	if _, err := c.Put(ctx, "bkt", "new", strings.NewReader("fresh"), 5, cond); err != nil {
		t.Fatal(err)
	}
	wantRequests(t, "a Stat, then the PUT", proxy.take(), map[string]int{"HEAD": 1, "PUT": 1})
	rc, _, err := c.Get(ctx, "bkt", "users", "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, _ := io.ReadAll(rc); !bytes.Equal(got, []byte("mine")) {
		t.Errorf("the user's object holds %q, want %q", got, "mine")
	}
}
