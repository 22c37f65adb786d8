package s3server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strings"
	"sync"
)

// Why a front? versitygw serves through fiber/fasthttp on a listener it
// binds itself, and exposes no read-header, idle or body deadline: each
// connection, even one that never sends a byte, takes one of its
// maxConnections until the client leaves, and beyond them every client
// gets 503. So the gateway listens on a unix socket in a private
// directory, and the endpoint's address is served by a net/http server
// of ours (httpserve: header, idle and minimum-rate deadlines) that
// forwards each request to it. Idle and half-sent connections then stay
// with the front and never reach the gateway; the gateway still verifies
// SigV4 on every request, which the front passes on byte for byte.

const (
	// gatewaySocket is the name of the gateway's socket in its directory.
	gatewaySocket = "gw.sock"
	// copyBufferSize is the size of the front's buffers to and from the
	// gateway.
	copyBufferSize = 256 << 10
)

// bufferPool recycles the proxy's copy buffers.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { return make([]byte, copyBufferSize) }}

func (bufferPool) Get() []byte  { return copyBuffers.Get().([]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(b) } //nolint:staticcheck // a slice header, as httputil's own pool

// newFront returns the handler that forwards requests to the gateway on
// the unix socket sock, over at most maxConnections connections (more
// would get the gateway's 503).
func newFront(sock string, logger *slog.Logger) http.Handler {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxConnsPerHost:     maxConnections,
		MaxIdleConnsPerHost: maxRequests,
		IdleConnTimeout:     gatewayIdleTimeout,
		// The client's Accept-Encoding, or none: never one of ours, and
		// bodies pass through as the gateway sent them.
		DisableCompression: true,
		// Large buffers: every byte of a GET or PUT crosses the front.
		ReadBufferSize:  copyBufferSize,
		WriteBufferSize: copyBufferSize,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "gateway"
			// The signature covers the Host, the path as the client
			// encoded it and the query: send them unchanged (Out.Host is
			// In.Host; ReverseProxy drops query parameters it cannot
			// parse, and net/http re-encodes some paths).
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			if path, _, _ := strings.Cut(pr.In.RequestURI, "?"); strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "//") {
				pr.Out.URL.Opaque = path
			}
		},
		Transport:  tr,
		BufferPool: bufferPool{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// The client's body fell below the minimum rate.
				w.WriteHeader(http.StatusRequestTimeout)
				return
			}
			if r.Context().Err() != nil {
				return // the client went away
			}
			logger.Warn("forward request to the gateway", "method", r.Method, "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
}
