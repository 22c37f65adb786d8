// Package index defines the dedup index by its roles, one file each:
// atomic claims on dedup keys and the results of completed runs
// (claims.go), documents and blobs such as the function registry's
// (docs.go), and the activation records (activations.go); waiter.go holds
// the optional Waiter. Backends live in subpackages and register a URL
// scheme (bolt:, couchdb:, postgres:); indextest is the conformance suite
// all of them pass.
package index

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"

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

// Index is the dedup index: every role a backend implements. Consumers
// take the smallest role they need (the registry a DocStore, the API
// Activations); Waiter, DocWatcher and DocRevisions are optional, found
// with a type assertion.
type Index interface {
	Claims
	Docs
	Blobs
	Activations
	io.Closer
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
