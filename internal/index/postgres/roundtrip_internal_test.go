package postgres

import (
	"context"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// turns counts request/response turns on the connections it dialled: a
// write after a read (or the first write) starts a round trip.
type turns struct {
	mu      sync.Mutex
	n       int
	writing bool
}

func (c *turns) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = 0
	return n
}

type countedConn struct {
	net.Conn
	t *turns
}

func (c countedConn) Write(b []byte) (int, error) {
	c.t.mu.Lock()
	if !c.t.writing {
		c.t.n++
		c.t.writing = true
	}
	c.t.mu.Unlock()
	return c.Conn.Write(b)
}

func (c countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.t.mu.Lock()
	c.t.writing = false
	c.t.mu.Unlock()
	return n, err
}

// openCounted opens the index at raw with one pooled connection whose
// round trips are counted.
func openCounted(t testing.TB, raw string) (*DB, *turns) {
	t.Helper()
	cfg, err := parseURL(mustURL(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	ct := &turns{}
	var d net.Dialer
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countedConn{Conn: c, t: ct}, nil
	}
	db, err := openConfig(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, ct
}

// TestRoundTrips: every claim outcome, the fenced writes and an
// activation record are one round trip each, once the connection has
// prepared its statements.
func TestRoundTrips(t *testing.T) {
	pg := peers.StartPostgres(t)
	d, ct := openCounted(t, pg.CreateDB(t, "roundtrips"))
	ctx := t.Context()
	// Warm up: the first use of a statement on a connection prepares it.
	w, err := d.Claim(ctx, "warm", index.Parts{}, "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d.Renew(ctx, "warm", w.Record.Token, time.Minute)
	d.Complete(ctx, "warm", w.Record.Token, index.Completion{})
	d.AddActivation(ctx, activation.Record{ID: "warm", Start: time.Now()})
	ct.take()

	step := func(name string, fn func() error) {
		t.Helper()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := ct.take(); n != 1 {
			t.Errorf("%s: %d round trips, want 1", name, n)
		} else {
			t.Logf("%s: 1 round trip", name)
		}
	}
	var miss index.Claimed
	claim := func(owner string, want index.Outcome) func() error {
		return func() error {
			c, err := d.Claim(ctx, "k", index.Parts{Function: "f"}, owner, time.Minute)
			if err == nil && c.Outcome != want {
				t.Errorf("claim by %s = %v, want %v", owner, c.Outcome, want)
			}
			if c.Outcome == index.Miss {
				miss = c
			}
			return err
		}
	}
	step("claim (miss)", claim("a", index.Miss))
	step("claim (wait)", claim("b", index.Wait))
	step("renew", func() error { return d.Renew(ctx, "k", miss.Record.Token, time.Minute) })
	step("complete", func() error {
		return d.Complete(ctx, "k", miss.Record.Token, index.Completion{Output: &index.Output{Key: "o"}})
	})
	step("claim (hit)", claim("b", index.Hit))
	step("add activation", func() error {
		return d.AddActivation(ctx, activation.Record{ID: "a1", Decision: activation.Hit, Start: time.Now()})
	})
}

func mustURL(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
