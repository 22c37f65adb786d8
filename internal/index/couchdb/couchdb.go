// Package couchdb is the dedup index on CouchDB (or any server speaking its
// API) through kivik. A claim is a document create with _id "claim:"+key: a
// 409 conflict means someone else holds it. Every change after that is an
// update with the _rev that was read, so concurrent replicas never both win.
//
// URL: couchdb://[user:pass@]host:port/dbname[?options], with options
//
//	tls=true|false   https instead of http (default false)
//	timeout=DURATION how long one index call may take when the caller's
//	                 context has no deadline of its own, and how long the
//	                 server may take to answer a request (default 30s;
//	                 Go duration syntax, e.g. 500ms, 1m). Connecting is
//	                 bounded by the smaller of it and 10s. The changes feed
//	                 behind WatchDocs is a long poll with its own deadline.
package couchdb

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	kivik "github.com/go-kivik/kivik/v4"
	"github.com/go-kivik/kivik/v4/couchdb" // the "couch" driver

	"github.com/dedupfn/dedupfn/internal/groupcommit"
	"github.com/dedupfn/dedupfn/internal/index"
)

// Document id prefixes: one database holds every kind of record.
const (
	claimPrefix = "claim:"
	docPrefix   = "doc:"
	blobPrefix  = "blob:"
	actPrefix   = "act:"
	tallyPrefix = "tally:"
	designDoc   = "_design/dedupfn"
	// maxCASRetries bounds read-modify-write loops that lose to other writers.
	maxCASRetries = 50
	// pruneBatch is how many activations one bulk request of
	// PruneActivations deletes.
	pruneBatch = 500
)

// Defaults of the HTTP client.
const (
	// DefaultTimeout bounds one index call whose context has no deadline,
	// and the wait for a response's headers; the timeout URL option
	// overrides it.
	DefaultTimeout = 30 * time.Second
	// maxDialTimeout bounds connecting to the server.
	maxDialTimeout = 10 * time.Second
)

func init() { index.Register("couchdb", Open) }

// DB is a CouchDB-backed index.
type DB struct {
	client  *kivik.Client
	db      *kivik.DB
	watchDB *kivik.DB     // on a client without a response timeout, for long polls
	watchC  *kivik.Client // its client
	name    string
	timeout time.Duration
	log     *slog.Logger
	feed    waitFeed   // WaitChange's shared changes feed
	held    heldClaims // the claims this handle holds, as last written
	acts    *groupcommit.Group[actDoc]
}

var (
	_ index.Index      = (*DB)(nil)
	_ index.Waiter     = (*DB)(nil)
	_ index.DocWatcher = (*DB)(nil)
)

// Open opens couchdb://[user:pass@]host:port/dbname, creating the database
// and its design document if missing. Credentials may come from
// DEDUPFN_COUCHDB_USER and DEDUPFN_COUCHDB_PASSWORD instead of the URL.
func Open(ctx context.Context, u *url.URL, opts index.Options) (index.Index, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	client, err := kivik.New("couch", cfg.dsn, couchdb.OptionHTTPClient(httpClient(cfg.timeout, cfg.timeout)))
	if err != nil {
		return nil, fmt.Errorf("couchdb: connect %s: %w", u.Host, err)
	}
	// No response header timeout: a long poll answers only when
	// something changes or its own timeout passes.
	watchC, err := kivik.New("couch", cfg.dsn, couchdb.OptionHTTPClient(httpClient(cfg.timeout, 0)))
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("couchdb: connect %s: %w", u.Host, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DB{
		client: client, db: client.DB(cfg.name), watchC: watchC, watchDB: watchC.DB(cfg.name),
		name: cfg.name, timeout: cfg.timeout, log: log.With("component", "index.couchdb", "db", cfg.name),
	}
	d.feed.d = d
	d.acts = groupcommit.NewGroup(d.writeActivations)
	if err := d.init(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// init creates the database and its design document if missing.
func (d *DB) init(ctx context.Context) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	exists, err := d.client.DBExists(ctx, d.name)
	if err != nil {
		return fmt.Errorf("couchdb: check database %s: %w", d.name, err)
	}
	if !exists {
		if err := d.client.CreateDB(ctx, d.name); err != nil && kivik.HTTPStatus(err) != http.StatusPreconditionFailed {
			return fmt.Errorf("couchdb: create database %s: %w", d.name, err)
		}
	}
	return d.ensureDesign(ctx)
}

// httpClient is the client of one kivik handle: connecting is bounded by
// timeout (at most maxDialTimeout), waiting for a response's headers by
// header (0 = no bound).
func httpClient(timeout, header time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: min(timeout, maxDialTimeout), KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   min(timeout, maxDialTimeout),
		ResponseHeaderTimeout: header,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}}
}

// call bounds one index call by the configured timeout, unless ctx
// carries a deadline already.
func (d *DB) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d.timeout)
}

// dbName is what CouchDB accepts as a database name.
var dbName = regexp.MustCompile(`^[a-z][a-z0-9_$()+/-]*$`)

// config is what a couchdb URL says.
type config struct {
	dsn     string // server address for kivik
	name    string // database
	timeout time.Duration
}

// parseURL turns couchdb://[user:pass@]host:port/dbname[?tls=true&timeout=D]
// into the server address for kivik, the database name and the timeout.
// Credentials missing from the URL come from DEDUPFN_COUCHDB_USER and
// DEDUPFN_COUCHDB_PASSWORD.
func parseURL(u *url.URL) (config, error) {
	name := strings.Trim(u.Path, "/")
	if u.Host == "" || name == "" {
		return config{}, fmt.Errorf("couchdb: url must be couchdb://[user:pass@]host:port/dbname, got %q", u.Redacted())
	}
	if !dbName.MatchString(name) {
		return config{}, fmt.Errorf("couchdb: database name must match %s, got %q", dbName, name)
	}
	q := u.Query()
	scheme := "http"
	switch tls := q.Get("tls"); tls {
	case "", "false":
	case "true":
		scheme = "https"
	default:
		return config{}, fmt.Errorf("couchdb: tls must be true or false, got %q", tls)
	}
	timeout := DefaultTimeout
	if v := q.Get("timeout"); v != "" {
		var err error
		if timeout, err = time.ParseDuration(v); err != nil || timeout <= 0 {
			return config{}, fmt.Errorf("couchdb: timeout must be a duration > 0 such as 30s, got %q", v)
		}
	}
	for k := range q {
		if k != "tls" && k != "timeout" {
			return config{}, fmt.Errorf("couchdb: unknown url parameter %q (known: tls, timeout)", k)
		}
	}
	d := &url.URL{Scheme: scheme, Host: u.Host, Path: "/"}
	user := cmp.Or(u.User.Username(), os.Getenv("DEDUPFN_COUCHDB_USER"))
	pass, _ := u.User.Password()
	pass = cmp.Or(pass, os.Getenv("DEDUPFN_COUCHDB_PASSWORD"))
	if user != "" {
		d.User = url.UserPassword(user, pass)
	}
	return config{dsn: d.String(), name: name, timeout: timeout}, nil
}

// Close stops the wait feed and releases the clients. Safe to call twice.
func (d *DB) Close() error {
	d.feed.stop()
	return errors.Join(d.client.Close(), d.watchC.Close())
}

func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// deleteDoc deletes a document whatever its revision; absent is fine.
func (d *DB) deleteDoc(ctx context.Context, id string) error {
	for range maxCASRetries {
		rev, err := d.rev(ctx, id)
		if kivik.HTTPStatus(err) == http.StatusNotFound {
			return nil
		}
		if err != nil {
			return fmt.Errorf("couchdb: delete %s: %w", id, err)
		}
		_, err = d.db.Delete(ctx, id, rev)
		if kivik.HTTPStatus(err) == http.StatusConflict {
			continue
		}
		if err != nil && kivik.HTTPStatus(err) != http.StatusNotFound {
			return fmt.Errorf("couchdb: delete %s: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("couchdb: delete %s: too many conflicts", id)
}

// rev reads a document's current revision with a GET: pouchdb-server's
// HEAD answers (which kivik's GetRev uses) carry no usable ETag.
func (d *DB) rev(ctx context.Context, id string) (string, error) {
	var doc struct {
		Rev string `json:"_rev"`
	}
	err := d.db.Get(ctx, id).ScanDoc(&doc)
	return doc.Rev, err
}

// listPage is how many documents one _all_docs request of prefixRange
// returns (a variable so that tests can cross page boundaries cheaply).
var listPage = 1000

// prefixRange iterates the documents whose id starts with prefix, in id
// order, a page at a time. Each request asks for one row more than it
// hands to fn, and the next page starts at that row's id: a document
// deleted between pages can neither shift nor end the walk (as a skip
// past the last id read could).
func (d *DB) prefixRange(ctx context.Context, prefix string, fn func(id string, rs *kivik.ResultSet) error) error {
	start, end := prefix, prefix+"\ufff0"
	for {
		next, err := d.rangePage(ctx, start, end, fn)
		if err != nil || next == "" {
			return err
		}
		start = next
	}
}

// rangePage hands fn up to listPage documents from start to end, and
// returns the id the next page starts at, "" after the last.
func (d *DB) rangePage(ctx context.Context, start, end string, fn func(id string, rs *kivik.ResultSet) error) (next string, err error) {
	rs := d.db.AllDocs(ctx, kivik.IncludeDocs(), kivik.Params(map[string]any{
		"startkey": start, "endkey": end, "limit": listPage + 1,
	}))
	defer rs.Close()
	for n := 0; rs.Next(); n++ {
		id, err := rs.ID()
		if err != nil {
			return "", err
		}
		if n == listPage {
			return id, nil
		}
		if err := fn(id, rs); err != nil {
			return "", err
		}
	}
	return "", rs.Err()
}
