// Package httpserve builds the http.Server of every dedupfn listener (the
// API and the built-in S3 endpoint) with the deadlines that keep a client
// from holding a connection without using it: headers must arrive within
// ReadHeaderTimeout, a keep-alive connection is closed after IdleTimeout,
// and request and response bodies must keep moving at MinRate.
//
// Why a minimum rate, not ReadTimeout/WriteTimeout? Those bound a whole
// request or response: any value short enough to stop a client that
// sends one byte every few seconds would cut a multi-GB PUT or GET. The
// rate rule measures progress instead: every RateWindow at least
// MinRate×RateWindow bytes must pass (or the body end), else the read or
// write fails and the connection is closed. A fast body of any size and
// duration passes; a trickle is cut within one window.
package httpserve

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// Defaults of Limits. With them a body must move 15 KiB every 15 s.
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers, from
	// the first byte of the request.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout is how long a keep-alive connection may wait for
	// its next request.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMinRate is the slowest a request or response body may move,
	// in bytes per second, averaged over each DefaultRateWindow.
	DefaultMinRate = 1 << 10
	// DefaultRateWindow is the period over which MinRate is measured: a
	// body may stall for up to this long.
	DefaultRateWindow = 15 * time.Second
)

// Limits are a listener's connection deadlines. A zero field takes its
// default; a negative one is an error.
type Limits struct {
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// MinRate is in bytes per second.
	MinRate    int64
	RateWindow time.Duration
}

// WithDefaults returns l with its zero fields set to the defaults, or an
// error naming a negative one.
func (l Limits) WithDefaults() (Limits, error) {
	switch {
	case l.ReadHeaderTimeout < 0:
		return l, fmt.Errorf("read header timeout must be >= 0, got %v", l.ReadHeaderTimeout)
	case l.IdleTimeout < 0:
		return l, fmt.Errorf("idle timeout must be >= 0, got %v", l.IdleTimeout)
	case l.MinRate < 0:
		return l, fmt.Errorf("minimum body rate must be >= 0 bytes/s, got %d", l.MinRate)
	case l.RateWindow < 0:
		return l, fmt.Errorf("body rate window must be >= 0, got %v", l.RateWindow)
	}
	if l.ReadHeaderTimeout == 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MinRate == 0 {
		l.MinRate = DefaultMinRate
	}
	if l.RateWindow == 0 {
		l.RateWindow = DefaultRateWindow
	}
	return l, nil
}

// NewServer returns an http.Server for h with l's deadlines (see the
// package doc) and the server's own errors logged to logger (nil:
// discarded). It sets no ReadTimeout or WriteTimeout.
func NewServer(h http.Handler, l Limits, logger *slog.Logger) (*http.Server, error) {
	l, err := l.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("httpserve: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           MinRate(h, l.MinRate, l.RateWindow),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}, nil
}

// MinRate makes h's request and response bodies keep moving: every window
// at least rate×window bytes must be read (or the body end) and, while the
// handler writes, written; a read or write that falls behind fails with a
// timeout (os.ErrDeadlineExceeded) and the connection is closed. Time the
// handler spends not reading (or not writing) is not held against the
// client. Bodiless requests get no read deadline: net/http's background
// read, which detects a client going away, must not time out.
func MinRate(h http.Handler, rate int64, window time.Duration) http.Handler {
	quota := max(rate*int64(window)/int64(time.Second), 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		var done atomic.Bool // the handler has returned: deadlines are the server's again
		defer done.Store(true)
		if r.Body != nil && r.Body != http.NoBody {
			rb := &rateBody{ReadCloser: r.Body, p: progress{quota: quota, window: window, set: rc.SetReadDeadline, done: &done}}
			// Set now, so that the server's discard of a body the handler
			// leaves unread is bounded too.
			rb.p.before()
			r.Body = rb
		}
		h.ServeHTTP(&rateWriter{ResponseWriter: w, p: progress{quota: quota, window: window, set: rc.SetWriteDeadline, done: &done}}, r)
	})
}

// progress tracks one direction of a connection against the rate rule. It
// is used by one goroutine at a time (the body's reader, or the handler).
type progress struct {
	quota    int64 // bytes per window
	window   time.Duration
	set      func(time.Time) error
	done     *atomic.Bool
	moved    int64     // bytes in the current window
	deadline time.Time // end of the current window; zero before the first
}

// before is called before each read or write. A window whose quota is met
// ends early; one that ended while no I/O was blocked (the handler was busy)
// is not the client's fault: either way a new window starts now.
func (p *progress) before() {
	if p.done.Load() {
		return
	}
	now := time.Now()
	if p.deadline.IsZero() || p.moved >= p.quota || !now.Before(p.deadline) {
		p.moved = 0
		p.deadline = now.Add(p.window)
		// An error means the connection is gone (or hijacked): the I/O
		// that follows reports it.
		_ = p.set(p.deadline)
	}
}

func (p *progress) after(n int) { p.moved += int64(n) }

// rateBody is a request body under the rate rule.
type rateBody struct {
	io.ReadCloser
	p progress
}

func (b *rateBody) Read(buf []byte) (int, error) {
	b.p.before()
	n, err := b.ReadCloser.Read(buf)
	b.p.after(n)
	return n, err
}

// rateWriter is a response writer under the rate rule.
type rateWriter struct {
	http.ResponseWriter
	p progress
}

func (w *rateWriter) Write(buf []byte) (int, error) {
	w.p.before()
	n, err := w.ResponseWriter.Write(buf)
	w.p.after(n)
	return n, err
}

// FlushError flushes under the current window (a flush writes to the
// connection); http.ResponseController and httputil.ReverseProxy use it.
func (w *rateWriter) FlushError() error {
	w.p.before()
	err := http.NewResponseController(w.ResponseWriter).Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// Flush is FlushError for callers that assert http.Flusher.
func (w *rateWriter) Flush() { _ = w.FlushError() }

// Unwrap lets http.ResponseController reach the connection.
func (w *rateWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
