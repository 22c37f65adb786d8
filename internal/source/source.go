// Package source defines where object events (created and removed) come
// from. Backends register a URL scheme: embedded: (the built-in endpoint's
// durable queue), kafka: (MinIO notifications through a Kafka topic),
// webhook: (MinIO's webhook target posting to the API).
package source

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/plugin"
)

// Handler processes one event. It returns nil once the event's activation
// is recorded (whatever its decision): only then may the source ack or
// commit the event. A non-nil error means "not recorded": the source must
// deliver the event again later (at-least-once).
type Handler func(ctx context.Context, ev event.Event) error

// Source delivers object-created and object-removed events (see
// event.Event.Removed) to a Handler.
type Source interface {
	// Run delivers events to h, possibly concurrently, until ctx is
	// cancelled or a fatal error occurs. It returns nil on cancellation.
	Run(ctx context.Context, h Handler) error
	// Close releases the source's resources. Safe to call twice.
	Close() error
}

// Options are passed to every backend constructor.
type Options struct {
	Logger *slog.Logger
	// DataDir is where embedded backends keep their files.
	DataDir string
	// Concurrency is how many events may be in the handler at once.
	Concurrency int
	// Mux, when set, lets HTTP-based sources (webhook:) mount handlers on
	// the API server.
	Mux *http.ServeMux
	// Token is the bearer token HTTP-based sources require.
	Token string
	// OnMalformed, when set, is called with each payload a source could
	// not parse (err wraps event.ErrMalformed) and will not deliver again,
	// so the caller can record it, e.g. as a dead-lettered activation.
	OnMalformed func(ctx context.Context, payload []byte, err error)
}

// DefaultConcurrency is how many events a source hands to its handler at
// once when Options.Concurrency is not set.
const DefaultConcurrency = 4

// WithDefaults fills the unset options: a discarding logger and
// DefaultConcurrency. Backends opened directly (not through Open) call it.
func (o Options) WithDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	return o
}

// Publisher is implemented by sources that accept events pushed from
// inside the process (the embedded queue, fed by the built-in endpoint).
type Publisher interface {
	// Publish durably enqueues ev; once it returns nil the event survives a crash.
	Publish(ctx context.Context, ev event.Event) error
}

// OpenFunc opens a backend from its URL.
type OpenFunc func(ctx context.Context, u *url.URL, opts Options) (Source, error)

var backends = plugin.New[OpenFunc]("events")

// Register makes a backend available under a URL scheme. Call from init.
func Register(scheme string, open OpenFunc) { backends.Register(scheme, open) }

// Open opens the source named by rawURL.
func Open(ctx context.Context, rawURL string, opts Options) (Source, error) {
	open, u, err := backends.Lookup(rawURL)
	if err != nil {
		return nil, err
	}
	return open(ctx, u, opts.WithDefaults())
}
