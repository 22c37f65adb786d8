// Package webhook is the webhook: events source: MinIO's webhook
// notification target (or anything speaking S3/MinIO event JSON or
// CloudEvents) POSTs events to the API server at Path.
//
// A request is answered only after the handler has recorded every event in
// it: 200 means "done, do not send again". Anything else makes MinIO keep
// the event (with a queue dir configured, across restarts) and retry, so the
// source needs no storage of its own:
//
//   - 401 without "Authorization: Bearer <Options.Token>";
//   - 400 for a payload that can never be parsed (with the reason);
//   - 413 for a body over MaxBodyBytes;
//   - 503 when the handler failed or Run is not running.
package webhook

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/source"
)

// Defaults.
const (
	// Path is where the source is mounted on Options.Mux.
	Path = "/v1/events/webhook"
	// MaxBodyBytes caps a request body; MinIO sends one record per request,
	// a few KiB.
	MaxBodyBytes = 1 << 20
)

func init() { source.Register("webhook", Open) }

var _ source.Source = (*Source)(nil)

// Source receives events over HTTP.
type Source struct {
	token []byte
	opts  source.Options
	log   *slog.Logger
	sem   chan struct{}

	life source.Lifecycle

	mu     sync.Mutex
	h      source.Handler
	runCtx context.Context
	reqs   sync.WaitGroup // requests inside the handler
}

// Open validates the options and mounts POST Path on opts.Mux. The URL is
// just "webhook:" (no parameters). Requests are refused with 503 until Run
// is called. A mux can host one webhook source (ServeMux panics on a
// second registration of the same pattern).
func Open(_ context.Context, u *url.URL, opts source.Options) (source.Source, error) {
	if u.Scheme != "webhook" {
		return nil, fmt.Errorf("webhook: scheme %q, expected webhook:", u.Scheme)
	}
	if u.Host != "" || (u.Opaque != "" && u.Opaque != "//") || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("webhook: expected the URL webhook: with nothing after it, got %q", u.Redacted())
	}
	if opts.Mux == nil {
		return nil, errors.New("webhook: needs the API server's mux to mount " + Path + " on (Options.Mux), got nil")
	}
	if opts.Token == "" {
		return nil, errors.New("webhook: a bearer token is required so that only MinIO can post events (Options.Token), got none")
	}
	opts = opts.WithDefaults()
	s := &Source{
		token: []byte(opts.Token),
		opts:  opts,
		log:   opts.Logger.With("component", "source.webhook"),
		sem:   make(chan struct{}, opts.Concurrency),
		life:  source.Lifecycle{Once: true},
	}
	opts.Mux.Handle("POST "+Path, s)
	return s, nil
}

// Run serves events to h until ctx is cancelled or Close is called, then
// waits for requests inside h and returns nil. It may be called once.
func (s *Source) Run(ctx context.Context, h source.Handler) error {
	ctx, end, err := s.life.Start(ctx)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer end()
	s.mu.Lock()
	s.h, s.runCtx = h, ctx
	s.mu.Unlock()

	s.log.Info("accepting events", "path", Path)
	<-ctx.Done()
	s.mu.Lock()
	s.h = nil
	s.mu.Unlock()
	s.reqs.Wait()
	s.log.Info("stopped")
	return nil
}

// Close stops Run (if running) and waits for it; later requests get 503.
// Safe to call twice.
func (s *Source) Close() error {
	s.life.Close()
	return nil
}

// ServeHTTP handles one POST from the notification target.
func (s *Source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dedupfn"`)
		http.Error(w, "webhook: missing or wrong bearer token", http.StatusUnauthorized)
		return
	}
	h, runCtx := s.acquire()
	if h == nil {
		http.Error(w, "webhook: source not running, retry later", http.StatusServiceUnavailable)
		return
	}
	defer s.reqs.Done()

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("webhook: body larger than %d bytes", MaxBodyBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "webhook: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	evs, err := event.Parse(body)
	if err != nil {
		raw := body
		if len(raw) > 200 {
			raw = raw[:200]
		}
		s.log.Error("malformed event rejected", "err", err, "payload", string(raw), "remote", r.RemoteAddr)
		if s.opts.OnMalformed != nil {
			s.opts.OnMalformed(r.Context(), body, fmt.Errorf("webhook: %w", err))
		}
		http.Error(w, "webhook: "+err.Error(), http.StatusBadRequest)
		return
	}

	// The handler stops when either the client gives up or Run stops.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(runCtx, cancel)
	defer stop()

	for _, ev := range evs {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			http.Error(w, "webhook: shutting down, retry later", http.StatusServiceUnavailable)
			return
		}
		ev.Source = "webhook"
		err := h(ctx, ev)
		<-s.sem
		if err != nil {
			s.log.Warn("handler failed; the sender will retry", "bucket", ev.Bucket, "key", ev.Key, "err", err)
			http.Error(w, "webhook: event not recorded, retry later: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

// acquire returns the running handler and counts the request in, or nil
// when Run is not running.
func (s *Source) acquire() (source.Handler, context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return nil, nil
	}
	s.reqs.Add(1)
	return s.h, s.runCtx
}

func (s *Source) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), s.token) == 1
}
