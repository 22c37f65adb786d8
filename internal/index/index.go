// Package index defines the dedup index: atomic claims on dedup keys, the
// results of completed runs, the function registry's documents and the
// activation records. Backends live in subpackages and register a URL
// scheme (bolt:, couchdb:); indextest is the conformance suite all of them pass.
package index

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/plugin"
)

// Errors every backend translates into; check them with errors.Is.
var (
	// ErrNotFound: no record, document or activation under that id.
	ErrNotFound = errors.New("index: not found")
	// ErrNotOwner: a compare-and-swap on a claim failed because the caller's
	// token is not the current owner's (the claim was taken over, completed,
	// released or purged).
	ErrNotOwner = errors.New("index: not the claim owner")
)

// State of a dedup record.
type State string

// States.
const (
	Running State = "running"
	Done    State = "done"
	Failed  State = "failed" // a cached deterministic failure
)

// Parts are the inputs of a dedup key, stored in the record and
// re-checked on every hit.
type Parts struct {
	Tenant         string `json:"tenant"`
	Function       string `json:"function"`
	CodeDigest     string `json:"code_digest"`
	Params         string `json:"params"` // canonical JSON
	RuntimeVersion string `json:"runtime_version"`
	Fingerprint    string `json:"fingerprint"`
}

// Output is where a completed run's output object lives.
type Output struct {
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	ETag        string `json:"etag"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type,omitempty"`
	// SHA256 is the hex SHA-256 of the output's bytes, taken when it was
	// written: a hit delivers the output only if what it delivered has
	// this SHA-256 (an ETag, an MD5, can be made to collide).
	SHA256 string `json:"sha256,omitempty"`
	// ResultObject is whether the object is the function's JSON result
	// (stored as KEY.json), not an object the function wrote: a hit
	// delivers it under the same rule.
	ResultObject bool `json:"result_object,omitempty"`
}

// Record is the index entry under one dedup key.
type Record struct {
	Key        string    `json:"key"`
	State      State     `json:"state"`
	Parts      Parts     `json:"parts"`
	Owner      string    `json:"owner,omitempty"` // replica id of the running owner
	Token      string    `json:"token,omitempty"` // fencing token of the running owner
	LeaseUntil time.Time `json:"lease_until,omitempty"`
	Attempt    int       `json:"attempt"`
	ExternalID string    `json:"external_id,omitempty"` // remote activation id, recorded as soon as known

	Output     *Output         `json:"output,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	FunctionMS float64         `json:"function_ms,omitempty"` // cost of the run, for "time saved"
	Error      string          `json:"error,omitempty"`
	ErrorClass string          `json:"error_class,omitempty"`

	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Outcome of a Claim.
type Outcome int

// Outcomes.
const (
	// Miss: the caller now owns the key (new, or taken over from an expired
	// lease; see Claimed.Record.Attempt) and must run, then Complete, Fail or Release.
	Miss Outcome = iota + 1
	// Hit: the key is Done (or Failed and cached); Record holds the result.
	Hit
	// Wait: another owner holds a live lease (or a lease with no deadline,
	// which counts as locked); poll and claim again later.
	Wait
)

func (o Outcome) String() string {
	switch o {
	case Miss:
		return "miss"
	case Hit:
		return "hit"
	case Wait:
		return "wait"
	}
	return "unknown"
}

// Claimed is the result of a Claim.
type Claimed struct {
	Outcome Outcome
	// Record is the record after the claim: on Miss it carries the caller's
	// Token, on Hit the result, on Wait the current owner and lease.
	Record Record
}

// Completion is what Complete stores on a Done record.
type Completion struct {
	Output     *Output
	Result     json.RawMessage
	FunctionMS float64
}

// Index is the dedup index. All methods are safe for concurrent use, from
// any number of goroutines and replicas sharing the same backend.
type Index interface {
	// Claim atomically claims key for owner with a lease of the given
	// length (which must be > 0). It is one atomic operation, never a
	// read followed by a write:
	//   absent                     → create Running, return Miss (Attempt 1)
	//   Done / Failed              → Hit
	//   Running, lease live or zero → Wait
	//   Running, lease expired     → take over with a new token, Attempt+1, Miss
	// parts are stored on a new record.
	Claim(ctx context.Context, key string, parts Parts, owner string, lease time.Duration) (Claimed, error)
	// Renew extends the lease of the claim held with token. ErrNotOwner if
	// token no longer owns key.
	Renew(ctx context.Context, key, token string, lease time.Duration) error
	// SetExternalID records a remote activation id on a running claim held
	// with token. ErrNotOwner otherwise.
	SetExternalID(ctx context.Context, key, token, externalID string) error
	// Complete turns the claim held with token into Done with c.
	// ErrNotOwner if token no longer owns key (a stale owner can never
	// overwrite its successor's claim or result).
	Complete(ctx context.Context, key, token string, c Completion) error
	// Fail ends the claim held with token. With cache, the record becomes
	// Failed (later claims Hit it); without, it is deleted so the next claim
	// runs again. ErrNotOwner if token does not own key.
	Fail(ctx context.Context, key, token, msg, class string, cache bool) error
	// Release deletes the claim held with token without a result.
	// ErrNotOwner if token does not own key.
	Release(ctx context.Context, key, token string) error
	// Get returns the record under key, or ErrNotFound.
	Get(ctx context.Context, key string) (Record, error)
	// Delete removes the record under key whatever its state (operator
	// purge, or a hit whose output object is gone). Idempotent.
	Delete(ctx context.Context, key string) error
	// DeleteResult removes the Done or Failed record under key only if it
	// is still the one last updated at updated: a replica that found a
	// result unusable (output gone, past retention) never deletes a claim
	// another replica has made since. Absent or changed: nothing, nil.
	DeleteResult(ctx context.Context, key string, updated time.Time) error
	// Records calls fn for each record, in no particular order, until fn
	// returns an error.
	Records(ctx context.Context, fn func(Record) error) error

	// PutDoc stores an opaque JSON document of a kind ("function", ...)
	// under id, replacing any previous one. Idempotent.
	PutDoc(ctx context.Context, kind, id string, doc []byte) error
	// GetDoc returns the document, or ErrNotFound.
	GetDoc(ctx context.Context, kind, id string) ([]byte, error)
	// DeleteDoc removes a document. ErrNotFound if absent.
	DeleteDoc(ctx context.Context, kind, id string) error
	// Docs calls fn for every document of kind, ordered by id.
	Docs(ctx context.Context, kind string, fn func(id string, doc []byte) error) error

	// PutBlob stores content-addressed bytes (function code) under its
	// SHA-256 hex digest. Idempotent.
	PutBlob(ctx context.Context, digest string, data []byte) error
	// GetBlob returns the bytes stored under digest, or ErrNotFound.
	GetBlob(ctx context.Context, digest string) ([]byte, error)

	// AddActivation stores an activation record. Idempotent on r.ID: a
	// second add with the same ID changes nothing and does not count twice
	// (as long as the first is kept: see PruneActivations).
	AddActivation(ctx context.Context, r activation.Record) error
	// GetActivation returns the record with id, or ErrNotFound.
	GetActivation(ctx context.Context, id string) (activation.Record, error)
	// Activations returns records matching f, newest first.
	Activations(ctx context.Context, f activation.Filter) ([]activation.Record, error)
	// ObjectSeen reports whether any activation was recorded for this
	// object version (bucket, key, etag): the reconciler's question.
	ObjectSeen(ctx context.Context, bucket, key, etag string) (bool, error)
	// Stats returns totals over all activations of tenant ("" = all) ever
	// added: pruning activations does not lower them.
	Stats(ctx context.Context, tenant string) (activation.Stats, error)
	// FunctionStats returns the totals of each function of tenant ("" =
	// of every tenant), sorted by tenant, then function (see
	// SortFunctionStats), counted exactly like Stats: each activation id
	// once, and pruning does not lower them, so a tenant's functions add
	// up to its Stats. A function without activations is not listed.
	// In a store written before these totals existed they start from the
	// activations still kept when it was first opened by a version that
	// has them: pruned ones count in Stats only.
	FunctionStats(ctx context.Context, tenant string) ([]activation.FunctionStats, error)
	// PruneActivations deletes the activation records that started before
	// before, with their object-seen marks (an object stays seen while a
	// later activation of it is kept) and listing entries, and returns how
	// many it deleted. Stats keep counting them. Idempotent; safe to run
	// on several replicas at once (each record is counted once).
	PruneActivations(ctx context.Context, before time.Time) (int, error)

	io.Closer
}

// DocWatcher is implemented by backends that can push document changes
// (CouchDB's _changes feed): WatchDocs calls fn once when it starts and
// after every batch of changes to documents of kind, until ctx ends.
type DocWatcher interface {
	WatchDocs(ctx context.Context, kind string, fn func()) error
}

// DocRevisions is implemented by backends that can say cheaply whether
// documents changed, where they cannot push changes (bolt): DocsRevision
// returns a number that changes whenever a document of kind is put or
// deleted, so that a reader polls it instead of re-reading every document.
type DocRevisions interface {
	DocsRevision(ctx context.Context, kind string) (uint64, error)
}

// Options are passed to every backend constructor.
type Options struct {
	Logger *slog.Logger
}

// OpenFunc opens a backend from its URL. It validates everything and
// starts nothing that outlives a failed call.
type OpenFunc func(ctx context.Context, u *url.URL, opts Options) (Index, error)

var backends = plugin.New[OpenFunc]("index")

// Register makes a backend available under a URL scheme. Call from init.
func Register(scheme string, open OpenFunc) { backends.Register(scheme, open) }

// Open opens the index named by rawURL, e.g. "bolt:/var/lib/dedupfn/index.db".
func Open(ctx context.Context, rawURL string, opts Options) (Index, error) {
	open, u, err := backends.Lookup(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return open(ctx, u, opts)
}

// Live reports whether a running record's lease still holds at now.
// A record without a lease deadline is locked, never free.
func Live(r Record, now time.Time) bool {
	return r.LeaseUntil.IsZero() || now.Before(r.LeaseUntil)
}

// SortFunctionStats sorts per-function totals as FunctionStats returns
// them: by tenant, then function.
func SortFunctionStats(fs []activation.FunctionStats) {
	slices.SortFunc(fs, func(a, b activation.FunctionStats) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Function, b.Function))
	})
}
