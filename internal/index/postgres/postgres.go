// Package postgres is the dedup index on PostgreSQL through pgx and its
// pool. A claim is one statement: INSERT … ON CONFLICT DO NOTHING that,
// when it loses, takes an expired lease over or reads the existing row in
// the same statement; completion, renewal, release and takeover are
// single UPDATE or DELETE statements fenced on the owner's token. Leases
// are compared with the server's clock (now()), never a replica's. Waiters
// and registry watchers are woken by LISTEN/NOTIFY. The schema is created
// and migrated at Open from versioned SQL embedded in the binary; see
// docs/postgres.md.
//
// URL: postgres://[user:pass@]host:port/dbname[?options] (or postgresql://),
// with any option pgx understands, e.g. sslmode=disable|require|verify-full,
// connect_timeout=SECONDS, pool_max_conns=N (default DefaultMaxConns).
// Credentials missing from the URL come from DEDUPFN_POSTGRES_USER and
// DEDUPFN_POSTGRES_PASSWORD.
package postgres

import (
	"cmp"
	"context"
	cryptorand "crypto/rand"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dedupfn/dedupfn/internal/index"
)

// Defaults.
const (
	// DefaultTimeout bounds one index call whose context has no deadline.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxConns is the pool size when the URL sets no pool_max_conns.
	DefaultMaxConns = 16
	// statShards is how many rows each tenant's totals are spread over,
	// so that concurrent AddActivation calls rarely queue on one row.
	statShards = 16
	// pruneBatch is how many activations one statement of
	// PruneActivations deletes.
	pruneBatch = 1000
	// maxClaimTries bounds the re-runs of a claim statement that raced
	// another replica's insert, takeover or delete (see Claim).
	maxClaimTries = 50
)

func init() {
	index.Register("postgres", Open)
	index.Register("postgresql", Open)
}

// DB is a PostgreSQL-backed index.
type DB struct {
	pool      *pgxpool.Pool
	log       *slog.Logger
	ln        *listener // LISTEN connection for WaitChange and WatchDocs
	closeOnce sync.Once
	clock     func() time.Time // this replica's clock: time.Now, skewed by tests
	// ahead is how far the server's clock runs ahead of clock (negative:
	// behind), as last read with a claim; see dbNow.
	ahead atomic.Int64
}

// observe records the server's now() read by a statement that has just
// returned. now() is its transaction's start, so the estimate errs by up
// to one round trip towards the server's clock being behind: a waiter
// timed with it wakes that much after a lease ends, never before.
func (d *DB) observe(server time.Time) {
	d.ahead.Store(int64(server.Sub(d.clock())))
}

// dbNow estimates the server's clock, on which leases are set and
// checked, from this replica's clock and the offset last observed.
func (d *DB) dbNow() time.Time {
	return d.clock().Add(time.Duration(d.ahead.Load()))
}

var (
	_ index.Index      = (*DB)(nil)
	_ index.Waiter     = (*DB)(nil)
	_ index.DocWatcher = (*DB)(nil)
)

// Open opens postgres://[user:pass@]host:port/dbname, connecting and
// migrating the schema to this version's (see docs/postgres.md).
func Open(ctx context.Context, u *url.URL, opts index.Options) (index.Index, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return openConfig(ctx, cfg, opts.Logger)
}

// parseURL turns the index URL into a pool configuration, taking missing
// credentials from the environment.
func parseURL(u *url.URL) (*pgxpool.Config, error) {
	c := *u
	c.Scheme = "postgres"
	q := u.Query()
	if (u.Host == "" && q.Get("host") == "") || strings.Trim(u.Path, "/") == "" {
		return nil, fmt.Errorf("postgres: url must be postgres://[user:pass@]host:port/dbname, got %q", u.Redacted())
	}
	user := cmp.Or(u.User.Username(), os.Getenv("DEDUPFN_POSTGRES_USER"))
	pass, _ := u.User.Password()
	pass = cmp.Or(pass, os.Getenv("DEDUPFN_POSTGRES_PASSWORD"))
	switch {
	case user != "" && pass != "":
		c.User = url.UserPassword(user, pass)
	case user != "":
		c.User = url.User(user)
	}
	cfg, err := pgxpool.ParseConfig(c.String())
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url %q: %w", u.Redacted(), err)
	}
	if !q.Has("pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	return cfg, nil
}

// openConfig connects with cfg and migrates the schema.
func openConfig(ctx context.Context, cfg *pgxpool.Config, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "index.postgres", "db", cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect %s: %w", cfg.ConnConfig.Host, err)
	}
	d := &DB{pool: pool, log: log, clock: time.Now}
	d.ln = newListener(cfg.ConnConfig, log)
	cctx, cancel := d.call(ctx)
	defer cancel()
	applied, had, err := migrate(cctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	switch want := schemaVersion(); {
	case len(applied) > 0:
		log.Info("migrated schema", "from", had, "to", applied[len(applied)-1])
	case had > want:
		// A newer replica migrated it; migrations only add, so this
		// one keeps working (as during a rolling upgrade).
		log.Warn("schema is newer than this version knows", "schema", had, "known", want)
	}
	return d, nil
}

// Close stops the listener and closes the pool. Safe to call twice.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		d.ln.stop()
		d.pool.Close()
	})
	return nil
}

// call bounds one index call by DefaultTimeout, unless ctx carries a
// deadline already.
func (d *DB) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// newToken is a fresh fencing token (128 random bits).
func newToken() string { return cryptorand.Text() }

// micros is d in whole microseconds, the server's interval resolution.
func micros(d time.Duration) int64 { return d.Microseconds() }
