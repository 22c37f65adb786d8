// Package inputurl serves each running activation's input at a URL only
// that activation is given: the get_url of functions outside the sandbox
// (--exec actions, OpenWhisk actions).
//
// What it serves is dedupfn's own spooled copy of the input, the bytes it
// fingerprinted, never the object's key in the store: the key may be
// overwritten between the fingerprint and the action's fetch, and the
// built-in store keeps no versions to pin. The URL is a capability (32
// random bytes; no API token), valid only until the activation's deadline
// and revoked as soon as the invocation ends. Why this and not a
// presigned GET: docs/openwhisk.md.
package inputurl

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Route is the pattern the Server is mounted on (GET answers HEAD too).
const Route = "GET /v1/inputs/{token}"

// errGone is a read of an input whose activation ended or whose deadline
// passed: the stream in progress is cut.
var errGone = errors.New("inputurl: the activation has ended")

// Server publishes inputs and serves them. It is safe for concurrent use.
type Server struct {
	base   string // public URL prefix, without trailing slash
	local  bool   // base names a loopback or unspecified host
	mu     sync.Mutex
	inputs map[[sha256.Size]byte]*input // by SHA-256 of the token
}

// New returns a Server whose URLs start with publicURL, the API's base
// URL as the functions' hosts reach it (serve --public-url).
func New(publicURL string) (*Server, error) {
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("public url %q: expected an http(s) base URL such as https://dedupfn.example:8080", publicURL)
	}
	return &Server{
		base:   strings.TrimSuffix(u.String(), "/"),
		local:  LocalHost(u.Hostname()),
		inputs: map[[sha256.Size]byte]*input{},
	}, nil
}

// LocalHost reports whether host can only be reached from this machine:
// a loopback name or address, or an unspecified one (0.0.0.0, ::, "").
func LocalHost(host string) bool {
	if host == "" || strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// Local reports whether the URLs name a host only this machine reaches,
// so that a function running elsewhere cannot fetch them.
func (s *Server) Local() bool { return s.local }

// Base is the public URL the input URLs start with.
func (s *Server) Base() string { return s.base }

// Publish makes the first size bytes of r readable at the returned URL
// until expires or until revoke is called, whichever comes first. r must
// stay readable until revoke returns; a read in progress after that is
// cut. revoke is idempotent.
func (s *Server) Publish(r io.ReaderAt, size int64, contentType string, expires time.Time) (inputURL string, revoke func()) {
	var tok [32]byte
	rand.Read(tok[:]) // never fails (crypto/rand)
	token := base64.RawURLEncoding.EncodeToString(tok[:])
	id := sha256.Sum256([]byte(token))
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	in := &input{r: r, size: size, contentType: contentType, expires: expires, done: make(chan struct{})}
	s.mu.Lock()
	s.inputs[id] = in
	s.mu.Unlock()
	var once sync.Once
	return s.base + "/v1/inputs/" + token, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.inputs, id)
			s.mu.Unlock()
			close(in.done)
		})
	}
}

// ServeHTTP streams a published input with its length, answering Range
// requests; an unknown, expired or revoked token is a 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := sha256.Sum256([]byte(r.PathValue("token")))
	s.mu.Lock()
	in := s.inputs[id]
	s.mu.Unlock()
	if in == nil || in.gone() {
		http.Error(w, "no such input: unknown, expired, or its activation has ended", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", in.contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(in, 0, in.size))
}

// input is one published input.
type input struct {
	r           io.ReaderAt
	size        int64
	contentType string
	expires     time.Time
	done        chan struct{} // closed by revoke
}

func (in *input) gone() bool {
	select {
	case <-in.done:
		return true
	default:
		return time.Now().After(in.expires)
	}
}

// ReadAt reads the input while it is published: a stream outlives
// neither the activation nor its deadline.
func (in *input) ReadAt(p []byte, off int64) (int, error) {
	if in.gone() {
		return 0, errGone
	}
	return in.r.ReadAt(p, off)
}
