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
	"encoding/json"
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

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/backoff"
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

// Defaults of WatchDocs.
const (
	// WatchPoll is how long one long-poll of the changes feed waits for a
	// change before the server answers empty; a request that gets no
	// answer for half as long again is treated as a dead connection.
	WatchPoll = 25 * time.Second
	// watchBackoffBase and watchBackoffMax bound the delay between reconnects.
	watchBackoffBase = 100 * time.Millisecond
	watchBackoffMax  = 10 * time.Second
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
	_ index.Index  = (*DB)(nil)
	_ index.Waiter = (*DB)(nil)
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

// designVersion is the version of views: ensureDesign replaces a design
// document of a lower version, or of this version with other content, and
// leaves a higher one (a newer replica's, in a rolling upgrade) alone.
// Bump it with every change to views. 2: the fnstats view.
const designVersion = 2

// statsReduce folds the values emitted by the stats and fnstats views:
// the same fields as activation.Stats.Add.
const statsReduce = `function (keys, values, rereduce) {
  var s = {events: 0, runs: 0, hits: 0, waits: 0, errors: 0, skipped: 0, dead_letters: 0, function_ms: 0, saved_ms: 0};
  for (var i = 0; i < values.length; i++) for (var k in s) s[k] += values[i][k] || 0;
  return s;
}`

// statsValue is the JavaScript expression of one activation's totals
// (activation.Stats.Add of doc alone), emitted by the stats views.
const statsValue = `{
    events: 1, runs: d === "miss" ? 1 : 0, hits: (d === "hit" || d === "wait") ? 1 : 0, waits: d === "wait" ? 1 : 0,
    errors: d === "error" ? 1 : 0, skipped: d === "skipped" ? 1 : 0, dead_letters: doc.dead_letter ? 1 : 0,
    function_ms: d === "miss" ? (doc.function_ms || 0) : 0, saved_ms: doc.saved_ms || 0
  }`

// views index activation documents for listing, stats and the
// reconciler. stats is keyed by tenant, fnstats by [tenant, function];
// both add the tally documents of pruned activations to the activations
// kept (fnstats only the tallies written since it exists).
var views = map[string]any{
	"language": "javascript",
	"dedupfn":  map[string]int{"version": designVersion},
	"views": map[string]any{
		"acts": map[string]string{"map": `function (doc) {
  if (doc.type !== "activation") return;
  var at = doc.sort || doc.start;
  emit(["*", "*", at], null);
  emit(["t:" + doc.tenant, "*", at], null);
  emit(["*", "f:" + doc.function, at], null);
  emit(["t:" + doc.tenant, "f:" + doc.function, at], null);
}`},
		"seen": map[string]string{"map": `function (doc) {
  if (doc.type === "activation" && doc.event && doc.event.bucket) emit([doc.event.bucket, doc.event.key, doc.event.etag || ""], null);
}`},
		"stats": map[string]string{
			"map": `function (doc) {
  if (doc.type === "tally") {
    for (var t in doc.stats) emit(t, doc.stats[t]);
    return;
  }
  if (doc.type !== "activation") return;
  var d = doc.decision;
  emit(doc.tenant, ` + statsValue + `);
}`,
			"reduce": statsReduce,
		},
		"fnstats": map[string]string{
			"map": `function (doc) {
  if (doc.type === "tally") {
    for (var t in doc.functions) for (var f in doc.functions[t]) emit([t, f], doc.functions[t][f]);
    return;
  }
  if (doc.type !== "activation") return;
  var d = doc.decision;
  emit([doc.tenant, doc.function], ` + statsValue + `);
}`,
			"reduce": statsReduce,
		},
	},
	// docs passes the changes of one kind of document to WatchDocs.
	"filters": map[string]string{
		"docs": `function (doc, req) {
  return doc._id.indexOf("` + docPrefix + `" + req.query.kind + ":") === 0;
}`,
	},
}

// ensureDesign writes the design document unless the database has it
// already, or a newer one (see designVersion).
func (d *DB) ensureDesign(ctx context.Context) error {
	doc := map[string]any{}
	for k, v := range views {
		doc[k] = v
	}
	for range maxCASRetries {
		var cur struct {
			Rev     string `json:"_rev"`
			Views   any    `json:"views"`
			Filters any    `json:"filters"`
			Dedupfn struct {
				Version int `json:"version"`
			} `json:"dedupfn"` // absent (0) before version 2
		}
		err := d.db.Get(ctx, designDoc).ScanDoc(&cur)
		switch {
		case kivik.HTTPStatus(err) == http.StatusNotFound:
			delete(doc, "_rev")
		case err != nil:
			return fmt.Errorf("couchdb: read design doc: %w", err)
		case cur.Dedupfn.Version > designVersion:
			d.log.Warn("design document is newer than this version knows", "version", cur.Dedupfn.Version, "known", designVersion)
			return nil
		case cur.Dedupfn.Version == designVersion && equalJSON(cur.Views, views["views"]) && equalJSON(cur.Filters, views["filters"]):
			return nil
		default:
			doc["_rev"] = cur.Rev
		}
		_, err = d.db.Put(ctx, designDoc, doc)
		if kivik.HTTPStatus(err) == http.StatusConflict {
			continue // another replica wrote it first: compare again
		}
		if err != nil {
			return fmt.Errorf("couchdb: write design doc: %w", err)
		}
		return nil
	}
	return errors.New("couchdb: write design doc: too many conflicts")
}

// claimDoc is an index.Record stored as a document.
type claimDoc struct {
	ID   string `json:"_id"`
	Rev  string `json:"_rev,omitempty"`
	Type string `json:"type"`
	index.Record
}

func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *DB) getClaim(ctx context.Context, key string) (claimDoc, error) {
	var c claimDoc
	err := d.db.Get(ctx, claimPrefix+key).ScanDoc(&c)
	if kivik.HTTPStatus(err) == http.StatusNotFound {
		return c, index.ErrNotFound
	}
	return c, err
}

// Claim implements index.Index: read, and decide on what is there. A
// result or a live owner is answered by that one GET (the common hit costs
// one round trip); an absent claim is created with _id = key, which is
// atomic (409: someone else created it first, read again); an expired
// lease is taken over by an update with the _rev that was read (409:
// someone else changed it first, read again). The write never acts on a
// stale read.
func (d *DB) Claim(ctx context.Context, key string, parts index.Parts, owner string, lease time.Duration) (index.Claimed, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	if lease <= 0 {
		return index.Claimed{}, fmt.Errorf("couchdb: lease must be > 0, got %s", lease)
	}
	for range maxCASRetries {
		now := time.Now().UTC()
		cur, err := d.getClaim(ctx, key)
		switch {
		case errors.Is(err, index.ErrNotFound):
			cur = claimDoc{ID: claimPrefix + key, Type: "claim", Record: index.Record{
				Key: key, State: index.Running, Parts: parts, Created: now,
			}}
		case err != nil:
			return index.Claimed{}, fmt.Errorf("couchdb: read claim %s: %w", key, err)
		case cur.State == index.Done || cur.State == index.Failed:
			return index.Claimed{Outcome: index.Hit, Record: cur.Record}, nil
		case index.Live(cur.Record, now):
			return index.Claimed{Outcome: index.Wait, Record: cur.Record}, nil
		}
		// Absent (create, no _rev) or expired (take over, with the _rev read).
		cur.Attempt++
		cur.Owner, cur.Token, cur.LeaseUntil, cur.Updated = owner, newToken(), now.Add(lease), now
		rev, err := d.db.Put(ctx, cur.ID, cur)
		if kivik.HTTPStatus(err) == http.StatusConflict {
			continue // another replica created or took it over first: read again
		}
		if err != nil {
			return index.Claimed{}, fmt.Errorf("couchdb: write claim %s: %w", key, err)
		}
		d.held.add(key, cur, rev)
		return index.Claimed{Outcome: index.Miss, Record: cur.Record}, nil
	}
	return index.Claimed{}, fmt.Errorf("couchdb: claim %s: too many conflicts", key)
}

// cas applies change to the running claim held with token, retrying on
// conflicts; change returns false to delete the document instead. A
// claim this handle remembers writing (d.held) is not read first: the
// write carries its _rev and fails if the document changed since.
func (d *DB) cas(ctx context.Context, key, token string, change func(*index.Record) (keep bool)) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	if token == "" {
		return index.ErrNotOwner
	}
	for range maxCASRetries {
		cur, ok := d.held.get(key, token)
		if !ok {
			var err error
			cur, err = d.getClaim(ctx, key)
			if errors.Is(err, index.ErrNotFound) {
				return index.ErrNotOwner
			}
			if err != nil {
				return fmt.Errorf("couchdb: read claim %s: %w", key, err)
			}
			if cur.State != index.Running || cur.Token != token {
				return index.ErrNotOwner
			}
		}
		var rev string
		var err error
		keep := change(&cur.Record)
		if keep {
			cur.Updated = time.Now().UTC()
			rev, err = d.db.Put(ctx, cur.ID, cur)
		} else {
			_, err = d.db.Delete(ctx, cur.ID, cur.Rev)
		}
		if err != nil || !keep || cur.State != index.Running {
			d.held.drop(key)
		}
		if st := kivik.HTTPStatus(err); st == http.StatusConflict || st == http.StatusNotFound {
			continue // changed or deleted under us: re-read and re-check the token
		}
		if err != nil {
			return fmt.Errorf("couchdb: update claim %s: %w", key, err)
		}
		if keep && cur.State == index.Running {
			d.held.update(key, cur, rev)
		}
		return nil
	}
	return fmt.Errorf("couchdb: update claim %s: too many conflicts", key)
}

// Renew implements index.Index.
func (d *DB) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("couchdb: lease must be > 0, got %s", lease)
	}
	return d.cas(ctx, key, token, func(r *index.Record) bool {
		r.LeaseUntil = time.Now().UTC().Add(lease)
		return true
	})
}

// SetExternalID implements index.Index.
func (d *DB) SetExternalID(ctx context.Context, key, token, externalID string) error {
	return d.cas(ctx, key, token, func(r *index.Record) bool { r.ExternalID = externalID; return true })
}

// Complete implements index.Index. The completing owner stays on the
// record, for operators; its token and lease are cleared.
func (d *DB) Complete(ctx context.Context, key, token string, c index.Completion) error {
	return d.cas(ctx, key, token, func(r *index.Record) bool {
		r.State = index.Done
		r.Output, r.Result, r.FunctionMS = c.Output, c.Result, c.FunctionMS
		r.Token, r.LeaseUntil = "", time.Time{}
		return true
	})
}

// Fail implements index.Index.
func (d *DB) Fail(ctx context.Context, key, token, msg, class string, cache bool) error {
	return d.cas(ctx, key, token, func(r *index.Record) bool {
		r.State = index.Failed
		r.Error, r.ErrorClass = msg, class
		r.Token, r.LeaseUntil = "", time.Time{}
		return cache
	})
}

// Release implements index.Index.
func (d *DB) Release(ctx context.Context, key, token string) error {
	return d.cas(ctx, key, token, func(*index.Record) bool { return false })
}

// Get implements index.Index.
func (d *DB) Get(ctx context.Context, key string) (index.Record, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	c, err := d.getClaim(ctx, key)
	if err != nil && !errors.Is(err, index.ErrNotFound) {
		err = fmt.Errorf("couchdb: get claim %s: %w", key, err)
	}
	return c.Record, err
}

// Delete implements index.Index.
func (d *DB) Delete(ctx context.Context, key string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	d.held.drop(key)
	return d.deleteDoc(ctx, claimPrefix+key)
}

// DeleteResult implements index.Index: a delete with the _rev of the
// record that was checked, so a claim made since is never removed.
func (d *DB) DeleteResult(ctx context.Context, key string, updated time.Time) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	for range maxCASRetries {
		cur, err := d.getClaim(ctx, key)
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("couchdb: read claim %s: %w", key, err)
		}
		if cur.State == index.Running || !cur.Updated.Equal(updated) {
			return nil
		}
		_, err = d.db.Delete(ctx, cur.ID, cur.Rev)
		if kivik.HTTPStatus(err) == http.StatusConflict {
			continue // changed under us: look again
		}
		if err != nil && kivik.HTTPStatus(err) != http.StatusNotFound {
			return fmt.Errorf("couchdb: delete result %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("couchdb: delete result %s: too many conflicts", key)
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

// prefixRange iterates the documents whose id starts with prefix, in id order.
func (d *DB) prefixRange(ctx context.Context, prefix string, fn func(id string, rs *kivik.ResultSet) error) error {
	rs := d.db.AllDocs(ctx, kivik.IncludeDocs(), kivik.Params(map[string]any{
		"startkey": prefix, "endkey": prefix + "\ufff0",
	}))
	defer rs.Close()
	for rs.Next() {
		id, err := rs.ID()
		if err != nil {
			return err
		}
		if err := fn(id, rs); err != nil {
			return err
		}
	}
	return rs.Err()
}

// Records implements index.Index.
func (d *DB) Records(ctx context.Context, fn func(index.Record) error) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.prefixRange(ctx, claimPrefix, func(_ string, rs *kivik.ResultSet) error {
		var c claimDoc
		if err := rs.ScanDoc(&c); err != nil {
			return fmt.Errorf("couchdb: decode claim: %w", err)
		}
		return fn(c.Record)
	})
}

// genericDoc holds an opaque document (functions) or a blob.
type genericDoc struct {
	ID   string `json:"_id"`
	Rev  string `json:"_rev,omitempty"`
	Type string `json:"type"`
	Body []byte `json:"body"` // base64 in JSON
}

func docID(kind, id string) string { return docPrefix + kind + ":" + id }

// PutDoc implements index.Index.
func (d *DB) PutDoc(ctx context.Context, kind, id string, doc []byte) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.put(ctx, genericDoc{ID: docID(kind, id), Type: "doc", Body: doc}, true)
}

// put writes g; with replace it overwrites whatever revision is there,
// else an existing document is left alone.
func (d *DB) put(ctx context.Context, g genericDoc, replace bool) error {
	for range maxCASRetries {
		_, err := d.db.Put(ctx, g.ID, g)
		if err == nil {
			return nil
		}
		if kivik.HTTPStatus(err) != http.StatusConflict {
			return fmt.Errorf("couchdb: put %s: %w", g.ID, err)
		}
		if !replace {
			return nil
		}
		rev, err := d.rev(ctx, g.ID)
		if err != nil && kivik.HTTPStatus(err) != http.StatusNotFound {
			return fmt.Errorf("couchdb: put %s: %w", g.ID, err)
		}
		g.Rev = rev
	}
	return fmt.Errorf("couchdb: put %s: too many conflicts", g.ID)
}

func (d *DB) getBody(ctx context.Context, id string) ([]byte, error) {
	var g genericDoc
	err := d.db.Get(ctx, id).ScanDoc(&g)
	if kivik.HTTPStatus(err) == http.StatusNotFound {
		return nil, index.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("couchdb: get %s: %w", id, err)
	}
	return g.Body, nil
}

// GetDoc implements index.Index.
func (d *DB) GetDoc(ctx context.Context, kind, id string) ([]byte, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.getBody(ctx, docID(kind, id))
}

// DeleteDoc implements index.Index.
func (d *DB) DeleteDoc(ctx context.Context, kind, id string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	if _, err := d.GetDoc(ctx, kind, id); err != nil {
		return err
	}
	return d.deleteDoc(ctx, docID(kind, id))
}

// Docs implements index.Index.
func (d *DB) Docs(ctx context.Context, kind string, fn func(id string, doc []byte) error) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	prefix := docID(kind, "")
	return d.prefixRange(ctx, prefix, func(id string, rs *kivik.ResultSet) error {
		var g genericDoc
		if err := rs.ScanDoc(&g); err != nil {
			return fmt.Errorf("couchdb: decode %s: %w", id, err)
		}
		return fn(strings.TrimPrefix(id, prefix), g.Body)
	})
}

// PutBlob implements index.Index.
func (d *DB) PutBlob(ctx context.Context, digest string, data []byte) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.put(ctx, genericDoc{ID: blobPrefix + digest, Type: "blob", Body: data}, false)
}

// GetBlob implements index.Index.
func (d *DB) GetBlob(ctx context.Context, digest string) ([]byte, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.getBody(ctx, blobPrefix+digest)
}

// actDoc is an activation record stored as a document.
type actDoc struct {
	ID   string `json:"_id"`
	Rev  string `json:"_rev,omitempty"`
	Type string `json:"type"`
	// Sort is Start in UTC with a fixed number of digits: the views sort
	// on it, because Start's own encoding (any zone, trailing zeros
	// trimmed) does not sort as text in time order.
	Sort string `json:"sort"`
	activation.Record
}

// sortTime is the fixed-width UTC form of t, ordered as text like t in time.
const sortTime = "2006-01-02T15:04:05.000000000Z"

// AddActivation implements index.Index: a create, so a second add of the
// same id is a 409 and changes nothing. Concurrent calls share one
// _bulk_docs request (d.acts): under load the server takes one request
// for many activations instead of one each. That request is bounded by
// the index's timeout, not by ctx, since it carries other callers' too.
func (d *DB) AddActivation(ctx context.Context, r activation.Record) error {
	if r.ID == "" {
		return errors.New("couchdb: activation without id")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	doc := actDoc{ID: actPrefix + r.ID, Type: "activation", Sort: r.Start.UTC().Format(sortTime), Record: r}
	if err := d.acts.Do(doc); err != nil {
		return fmt.Errorf("couchdb: add activation %s: %w", r.ID, err)
	}
	return nil
}

// writeActivations writes a batch of activations in one _bulk_docs
// request. One already there (a redelivered event) is not an error.
func (d *DB) writeActivations(batch []actDoc) []error {
	ctx, cancel := d.call(context.Background())
	defer cancel()
	docs := make([]any, len(batch))
	for i := range batch {
		docs[i] = &batch[i]
	}
	errs := make([]error, len(batch))
	results, err := d.db.BulkDocs(ctx, docs)
	if err == nil && len(results) != len(batch) {
		err = fmt.Errorf("bulk write answered %d results for %d activations", len(results), len(batch))
	}
	for i := range errs {
		switch {
		case err != nil:
			errs[i] = err
		case results[i].Error != nil && kivik.HTTPStatus(results[i].Error) != http.StatusConflict:
			errs[i] = results[i].Error
		}
	}
	return errs
}

// GetActivation implements index.Index.
func (d *DB) GetActivation(ctx context.Context, id string) (activation.Record, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	var a actDoc
	err := d.db.Get(ctx, actPrefix+id).ScanDoc(&a)
	if kivik.HTTPStatus(err) == http.StatusNotFound {
		return a.Record, index.ErrNotFound
	}
	if err != nil {
		return a.Record, fmt.Errorf("couchdb: get activation %s: %w", id, err)
	}
	return a.Record, nil
}

// Activations implements index.Index through the "acts" view, newest first.
func (d *DB) Activations(ctx context.Context, f activation.Filter) ([]activation.Record, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	t, fn := "*", "*"
	if f.Tenant != "" {
		t = "t:" + f.Tenant
	}
	if f.Function != "" {
		fn = "f:" + f.Function
	}
	end := []any{t, fn} // descending: the lower bound, inclusive
	if !f.Since.IsZero() {
		end = append(end, f.Since.UTC().Format(sortTime))
	}
	rs := d.db.Query(ctx, designDoc, "acts", kivik.IncludeDocs(), kivik.Params(map[string]any{
		"startkey": []any{t, fn, map[string]any{}}, "endkey": end, "descending": true, "limit": limit,
	}))
	defer rs.Close()
	var out []activation.Record
	for rs.Next() {
		var a actDoc
		if err := rs.ScanDoc(&a); err != nil {
			return nil, fmt.Errorf("couchdb: decode activation: %w", err)
		}
		out = append(out, a.Record)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("couchdb: list activations: %w", err)
	}
	return out, nil
}

// ObjectSeen implements index.Index through the "seen" view.
func (d *DB) ObjectSeen(ctx context.Context, bucket, key, etag string) (bool, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	rs := d.db.Query(ctx, designDoc, "seen", kivik.Params(map[string]any{"key": []any{bucket, key, etag}, "limit": 1}))
	defer rs.Close()
	seen := rs.Next()
	if err := rs.Err(); err != nil {
		return false, fmt.Errorf("couchdb: object seen: %w", err)
	}
	return seen, nil
}

// Stats implements index.Index through the "stats" view's reduce, so every
// replica sharing the database reports the same cluster-wide totals.
func (d *DB) Stats(ctx context.Context, tenant string) (activation.Stats, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	params := map[string]any{"reduce": true}
	if tenant != "" {
		params["key"] = tenant
	}
	rs := d.db.Query(ctx, designDoc, "stats", kivik.Params(params))
	defer rs.Close()
	var st activation.Stats
	if rs.Next() {
		if err := rs.ScanValue(&st); err != nil {
			return st, fmt.Errorf("couchdb: decode stats: %w", err)
		}
	}
	if err := rs.Err(); err != nil {
		return st, fmt.Errorf("couchdb: stats: %w", err)
	}
	return st, nil
}

// FunctionStats implements index.Index through the "fnstats" view's
// reduce, grouped by [tenant, function]: cluster-wide, like Stats.
func (d *DB) FunctionStats(ctx context.Context, tenant string) ([]activation.FunctionStats, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	out, err := d.functionStats(ctx, tenant)
	if kivik.HTTPStatus(err) == http.StatusNotFound {
		// A replica of an older version rewrote the design document
		// without the view (a rolling upgrade): put it back, once.
		if err = d.ensureDesign(ctx); err == nil {
			out, err = d.functionStats(ctx, tenant)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("couchdb: function stats %q: %w", tenant, err)
	}
	index.SortFunctionStats(out) // the view collates keys, not Go's byte order
	return out, nil
}

func (d *DB) functionStats(ctx context.Context, tenant string) ([]activation.FunctionStats, error) {
	params := map[string]any{"reduce": true, "group": true}
	if tenant != "" {
		params["startkey"] = []any{tenant}
		params["endkey"] = []any{tenant, map[string]any{}}
	}
	rs := d.db.Query(ctx, designDoc, "fnstats", kivik.Params(params))
	defer rs.Close()
	out := []activation.FunctionStats{}
	for rs.Next() {
		var key []string
		if err := rs.ScanKey(&key); err != nil {
			return nil, fmt.Errorf("decode function stats key: %w", err)
		}
		if len(key) != 2 {
			return nil, fmt.Errorf("function stats key must be [tenant, function], got %q", key)
		}
		fs := activation.FunctionStats{Tenant: key[0], Function: key[1]}
		if err := rs.ScanValue(&fs.Stats); err != nil {
			return nil, fmt.Errorf("decode function stats %s/%s: %w", key[0], key[1], err)
		}
		out = append(out, fs)
	}
	return out, rs.Err()
}

// equalJSON compares two values by their JSON encoding.
func equalJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// WatchDocs calls fn whenever documents of kind are put or deleted
// through any handle on the database (any replica), so that, for example,
// a function deployed on one replica goes live on the others within a
// second instead of at the next poll.
//
// It long-polls the database's _changes feed, filtered on the server by
// the design document's "docs" filter, and blocks until ctx is done, then
// returns nil. fn is called once each time the watch (re)connects, after
// the feed position is taken, so nothing written before the watch started
// or while it was disconnected is missed; after that, once per batch of
// changes. fn runs on WatchDocs' goroutine. A broken feed (server restart,
// network) is reconnected with capped backoff and logged; only an invalid
// kind is returned as an error.
//
// WatchDocs is not part of index.Index; callers find it with a type
// assertion on interface{ WatchDocs(context.Context, string, func()) error }.
func (d *DB) WatchDocs(ctx context.Context, kind string, fn func()) error {
	if kind == "" || strings.Contains(kind, ":") {
		return fmt.Errorf("couchdb: watch docs: kind must be non-empty without ':', got %q", kind)
	}
	var lastLog time.Time
	for failures := 0; ; {
		err := d.watch(ctx, kind, fn, func() { failures = 0 })
		if ctx.Err() != nil {
			return nil
		}
		failures++
		if time.Since(lastLog) > time.Minute {
			lastLog = time.Now()
			d.log.Warn("changes feed broken, reconnecting", "kind", kind, "failures", failures, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff.Delay(failures, watchBackoffBase, watchBackoffMax)):
		}
	}
}

// watch runs WatchDocs from the current update sequence until a request
// fails; healthy is called after each successful poll.
func (d *DB) watch(ctx context.Context, kind string, fn, healthy func()) error {
	sctx, cancel := d.call(ctx)
	st, err := d.db.Stats(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("couchdb: watch docs: read update seq: %w", err)
	}
	fn()
	seq := cmp.Or(st.UpdateSeq, "now")
	prefix := docID(kind, "")
	for {
		changed, last, err := d.pollChanges(ctx, kind, prefix, seq)
		if err != nil {
			return err
		}
		healthy()
		if last != "" {
			seq = last
		}
		if changed {
			fn()
		}
	}
}

// pollChanges makes one long-poll request for changes after since and
// reports whether any was to a document under prefix, and the new position.
func (d *DB) pollChanges(parent context.Context, kind, prefix, since string) (changed bool, last string, err error) {
	// Some servers (pouchdb-server) hold an idle long-poll past its
	// timeout, and a dead connection never answers: either way, end the
	// request ourselves and poll again from the same position.
	ctx, cancel := context.WithTimeout(parent, WatchPoll+WatchPoll/2)
	defer cancel()
	defer func() {
		if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
			changed, last, err = false, "", nil
		}
	}()
	feed := d.watchDB.Changes(ctx, kivik.Params(map[string]any{
		"feed":    "longpoll",
		"since":   since,
		"timeout": int(WatchPoll / time.Millisecond),
		"filter":  strings.TrimPrefix(designDoc, "_design/") + "/docs",
		"kind":    kind,
	}))
	defer feed.Close()
	for feed.Next() {
		changed = changed || strings.HasPrefix(feed.ID(), prefix)
	}
	if err := feed.Err(); err != nil {
		return false, "", fmt.Errorf("couchdb: watch docs: changes since %s: %w", since, err)
	}
	meta, err := feed.Metadata()
	if err != nil {
		return false, "", fmt.Errorf("couchdb: watch docs: changes since %s: %w", since, err)
	}
	return changed, meta.LastSeq, nil
}

// tallyDoc holds the totals of pruned activations, per tenant and per
// tenant and function; the stats and fnstats views add them to those of
// the activations still kept.
type tallyDoc struct {
	ID    string                      `json:"_id"`
	Rev   string                      `json:"_rev,omitempty"`
	Type  string                      `json:"type"`
	Stats map[string]activation.Stats `json:"stats"`
	// Functions: tenant → function → totals. Tallies written before it
	// existed have none.
	Functions map[string]map[string]activation.Stats `json:"functions"`
}

// add counts r in the tally.
func (t *tallyDoc) add(r activation.Record) {
	st := t.Stats[r.Tenant]
	st.Add(r)
	t.Stats[r.Tenant] = st
	fns := t.Functions[r.Tenant]
	if fns == nil {
		fns = map[string]activation.Stats{}
		t.Functions[r.Tenant] = fns
	}
	fst := fns[r.Function]
	fst.Add(r)
	fns[r.Function] = fst
}

// reset empties the tally's totals.
func (t *tallyDoc) reset() {
	t.Stats, t.Functions = map[string]activation.Stats{}, map[string]map[string]activation.Stats{}
}

// PruneActivations implements index.Index. Each batch is one bulk request
// that creates a tally document with the batch's totals and deletes the
// batch's activations by their _rev; activations another replica deleted
// first (409) are then taken out of the tally again. A crash between the
// two requests of a race can count a record twice, never lose one.
func (d *DB) PruneActivations(ctx context.Context, before time.Time) (int, error) {
	cutoff := before.UTC().Format(sortTime)
	total := 0
	for {
		n, more, err := d.pruneBatch(ctx, cutoff)
		total += n
		if err != nil {
			return total, fmt.Errorf("couchdb: prune activations: %w", err)
		}
		if !more {
			return total, nil
		}
	}
}

// pruneBatch prunes up to pruneBatch activations sorted before cutoff and
// reports how many it deleted and whether to go on.
func (d *DB) pruneBatch(ctx context.Context, cutoff string) (deleted int, more bool, err error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	rs := d.db.Query(ctx, designDoc, "acts", kivik.IncludeDocs(), kivik.Params(map[string]any{
		"startkey": []any{"*", "*"}, "endkey": []any{"*", "*", cutoff}, "inclusive_end": false, "limit": pruneBatch,
	}))
	var acts []actDoc
	for rs.Next() {
		var a actDoc
		if err := rs.ScanDoc(&a); err != nil {
			rs.Close()
			return 0, false, fmt.Errorf("decode activation: %w", err)
		}
		acts = append(acts, a)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return 0, false, fmt.Errorf("list activations: %w", err)
	}
	if len(acts) == 0 {
		return 0, false, nil
	}
	tally := tallyDoc{ID: tallyPrefix + newToken(), Type: "tally"}
	tally.reset()
	docs := []any{&tally}
	for _, a := range acts {
		tally.add(a.Record)
		docs = append(docs, map[string]any{"_id": a.ID, "_rev": a.Rev, "_deleted": true})
	}
	results, err := d.db.BulkDocs(ctx, docs)
	if err != nil {
		return 0, false, fmt.Errorf("bulk delete: %w", err)
	}
	if len(results) != len(docs) || results[0].Error != nil {
		err := errors.New("no result")
		if len(results) > 0 && results[0].Error != nil {
			err = results[0].Error
		}
		// Without the tally the deletions would lower the totals: give
		// up on this batch (deleted ones are lost from Stats) loudly.
		return 0, false, fmt.Errorf("write tally %s: %w", tally.ID, err)
	}
	tally.Rev = results[0].Rev
	recount := tallyDoc{ID: tally.ID, Rev: tally.Rev, Type: tally.Type}
	recount.reset()
	for i, r := range results[1:] {
		if r.Error != nil {
			continue // deleted (or changed) by someone else: theirs to count
		}
		deleted++
		recount.add(acts[i].Record)
	}
	switch {
	case deleted == 0:
		_, err = d.db.Delete(ctx, tally.ID, tally.Rev)
	case deleted < len(acts):
		_, err = d.db.Put(ctx, recount.ID, recount)
	}
	if err != nil {
		return deleted, false, fmt.Errorf("correct tally %s: %w", tally.ID, err)
	}
	// Go on while whole batches are deleted; a batch nobody could delete
	// would come back forever.
	return deleted, len(acts) == pruneBatch && deleted > 0, nil
}
