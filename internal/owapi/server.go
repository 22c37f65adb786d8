// Package owapi serves a subset of Apache OpenWhisk's REST API under
// /api/v1, so that OpenWhisk clients (the openwhisk npm package, tools
// built on it, anything speaking the controller's API) work against
// dedupfn unchanged, and every invocation of an action is deduplicated.
//
// server.go authenticates (HTTP Basic UUID:KEY per namespace), resolves
// namespaces and maps errors to OpenWhisk's {"error", "code"} body, in
// statusOf only. Each resource has its own file: namespaces.go,
// actions.go, activations.go, packages.go, triggers.go, rules.go,
// feeds.go (/whisk.system/dedupfn/objects), sequences.go and utils.go
// (/whisk.system/utils, run by builtin.go's runtime). store.go keeps the
// OpenWhisk entities as index documents; names.go maps them to registry
// function names. Invocations go through pipeline.InvokeDirect.
package owapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// Defaults and limits of the API.
const (
	// Prefix is where the API is mounted.
	Prefix = "/api/v1"
	// SystemNamespace holds the built-in packages every namespace may read
	// and invoke (utils, dedupfn).
	SystemNamespace = "whisk.system"
	// WellKnownGuestKey is the key OpenWhisk's own distribution ships for
	// its guest namespace: anyone knows it, so it is refused.
	WellKnownGuestKey = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
	// DefaultWait is how long a blocking invocation waits for its result
	// before answering 202 with the activation id (OpenWhisk's 60 s).
	DefaultWait = 60_000 // ms
	// maxListLimit bounds list's limit (OpenWhisk's 200).
	maxListLimit = 200
	// defaultListLimit is list's limit when none is given (OpenWhisk's 30).
	defaultListLimit = 30
	// maxJSONBytes bounds every JSON body but an action's.
	maxJSONBytes = 1 << 20
	// defaultMaxCodeBytes and defaultMaxMemoryMB are the API's defaults
	// (api.DefaultMaxCodeBytes, api.DefaultMaxMemoryMB).
	defaultMaxCodeBytes = 64 << 20
	defaultMaxMemoryMB  = 2048
	// DefaultMaxInFlight bounds each namespace's invocations in flight
	// (blocking or not, rule firings included); beyond it an invocation is
	// answered 429, as OpenWhisk's concurrency limit.
	DefaultMaxInFlight = 256
	// maxTimeoutMS bounds an action's timeout limit (OpenWhisk's 300 s).
	maxTimeoutMS = 300_000
	// minKeyLen is the shortest UUID:KEY accepted.
	minKeyLen = 16
)

// Namespace is one OpenWhisk namespace and the key that reaches it.
type Namespace struct {
	// Name is the namespace (guest, or a tenant's name).
	Name string
	// Key is "UUID:KEY", the whole of the Basic credentials.
	Key string
	// Admin: the namespace acts as the admin (registry.DefaultTenant, any
	// bucket, host-code kinds).
	Admin bool
	// Tenant is the dedupfn tenant the namespace acts as; "" for the admin.
	Tenant string
	// Buckets are the tenant's buckets (ignored for the admin).
	Buckets []string
}

// tenant is the registry tenant of the namespace.
func (n *Namespace) tenant() string {
	if n.Admin {
		return registry.DefaultTenant
	}
	return n.Tenant
}

// checkBucket refuses a tenant a bucket that is not its own (as the
// API's own check does for fn deploy).
func (n *Namespace) checkBucket(what, bucket string) error {
	if n.Admin {
		return nil
	}
	for _, b := range n.Buckets {
		if b == bucket {
			return nil
		}
	}
	return withStatus(http.StatusForbidden, fmt.Errorf("%s %q is not one of namespace %s's buckets", what, bucket, n.Name))
}

// Invoker runs actions: deduplicated, and recorded as activations
// (*pipeline.Pipeline).
type Invoker interface {
	InvokeDirect(ctx context.Context, req pipeline.DirectRequest) (activation.Record, error)
}

// Deployer checks bucket functions before a rule deploys them (the
// pipeline's Prepare and CheckBuckets).
type Deployer interface {
	Prepare(ctx context.Context, fn registry.Function, code []byte) error
	CheckBuckets(ctx context.Context, fn registry.Function) error
}

// Store is what the API keeps in the index: its entities as documents,
// their code as blobs, and the activation records it reads.
type Store interface {
	index.DocStore
	index.Activations
}

// ActionCodeFunc turns an action's code of a host-code kind
// (process.HostKind) into a process-runtime function (process.ActionCode).
type ActionCodeFunc func(kind string, code []byte, binary bool, main string) (exe []byte, config map[string]string, err error)

// Config wires the API.
type Config struct {
	Namespaces []Namespace
	Registry   *registry.Registry
	Index      Store
	Invoker    Invoker
	Deployer   Deployer
	// ActionCode builds host-code kinds (nodejs, python, blackbox); nil:
	// those kinds are refused as unsupported.
	ActionCode ActionCodeFunc
	// TenantRuntimes are the runtimes tenants may deploy (the API's
	// DefaultTenantRuntimes); sequences are always allowed.
	TenantRuntimes []string
	// MaxCodeBytes bounds an action's code (default the API's 64 MiB);
	// MaxMemoryMB its memory limit (default 2048, fn deploy's
	// --max-memory); MaxParamsBytes its parameters as JSON (default
	// registry.DefaultMaxParamsBytes, --max-params).
	MaxCodeBytes   int64
	MaxMemoryMB    int
	MaxParamsBytes int
	// MaxInFlight bounds each namespace's invocations in flight (default
	// DefaultMaxInFlight).
	MaxInFlight int
	Logger      *slog.Logger
}

// Server serves the API.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	logger *slog.Logger
	byName map[string]*Namespace

	// mu serialises this replica's entity writes, so that a create
	// without overwrite and a version bump are not lost to a concurrent
	// one (docs/openwhisk.md: replicas sharing an index may still race).
	mu sync.Mutex

	// bg are invocations that outlive their request (non-blocking ones,
	// rule firings); Close waits for them.
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
	// inFlight holds a slot per invocation in flight, by namespace.
	inFlight map[string]chan struct{}
}

// New checks the namespaces and returns the server. A namespace without
// a name or key, a key shorter than 16 characters or without a ':', the
// well-known guest key, or one key for two namespaces is refused.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil || cfg.Index == nil || cfg.Invoker == nil {
		return nil, errors.New("owapi: registry, index and invoker are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxCodeBytes <= 0 {
		cfg.MaxCodeBytes = defaultMaxCodeBytes
	}
	if cfg.MaxMemoryMB <= 0 {
		cfg.MaxMemoryMB = defaultMaxMemoryMB
	}
	if cfg.MaxParamsBytes <= 0 {
		cfg.MaxParamsBytes = registry.DefaultMaxParamsBytes
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), logger: cfg.Logger.With("component", "owapi"), byName: map[string]*Namespace{}}
	if err := CheckNamespaces(cfg.Namespaces); err != nil {
		return nil, err
	}
	s.inFlight = map[string]chan struct{}{}
	for i := range cfg.Namespaces {
		s.byName[cfg.Namespaces[i].Name] = &cfg.Namespaces[i]
		s.inFlight[cfg.Namespaces[i].Name] = make(chan struct{}, cfg.MaxInFlight)
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.routeNamespaces()
	s.routeActions()
	s.routeActivations()
	s.routePackages()
	s.routeTriggers()
	s.routeRules()
	s.mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, withStatus(http.StatusNotFound, errors.New(msgNotFound)))
	})
	return s, nil
}

// CheckNamespaces refuses a namespace without a name or key, a key
// shorter than 16 characters or without a ':', OpenWhisk's well-known
// guest key, one key for two namespaces, a name given twice, and a
// namespace that is neither the admin's nor a tenant's. Its errors never
// quote a key.
func CheckNamespaces(namespaces []Namespace) error {
	keys, names := map[string]bool{}, map[string]bool{}
	for _, n := range namespaces {
		uuid, _, ok := strings.Cut(n.Key, ":")
		switch {
		case n.Name == "" || n.Name == "_" || n.Name == SystemNamespace || !entityNameRE.MatchString(n.Name):
			return fmt.Errorf("owapi: namespace name %q is not allowed", n.Name)
		case !ok || uuid == "" || len(n.Key) < minKeyLen:
			return fmt.Errorf("owapi: namespace %s: key must be UUID:KEY with %d+ characters", n.Name, minKeyLen)
		case n.Key == WellKnownGuestKey:
			return fmt.Errorf("owapi: namespace %s: the key is OpenWhisk's well-known guest key, which anyone knows: choose another", n.Name)
		case keys[n.Key]:
			return fmt.Errorf("owapi: namespace %s: its key is also another namespace's", n.Name)
		case names[n.Name]:
			return fmt.Errorf("owapi: namespace %s is defined twice", n.Name)
		case !n.Admin && n.Tenant == "":
			return fmt.Errorf("owapi: namespace %s: neither the admin's nor a tenant's", n.Name)
		}
		keys[n.Key], names[n.Name] = true, true
	}
	return nil
}

// Handler returns the API's handler, to mount at Prefix.
func (s *Server) Handler() http.Handler { return s.mux }

// Close cancels invocations still running for requests that have gone
// (non-blocking ones, rule firings) and waits for them. Safe twice.
func (s *Server) Close(ctx context.Context) error {
	s.bgCancel()
	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// OpenWhisk's messages.
const (
	msgNotFound      = "The requested resource does not exist."
	msgUnauthorized  = "The supplied authentication is invalid."
	msgNoAuth        = "The resource requires authentication, which was not supplied with the request."
	msgForbidden     = "The supplied authentication is not authorized to access this resource."
	msgExists        = "The requested resource already exists."
	msgConformance   = "Resource by this name exists but is not in this collection."
	msgSeqNoComp     = "No component specified for the sequence."
	msgSeqNotFound   = "Sequence component does not exist."
	msgSeqCyclic     = "Sequence may not refer to itself."
	msgSeqFailure    = "Sequence failed."
	msgBadTimeout    = "Timeout must be number of milliseconds up to 300000."
	msgEntityIllegal = "The name of the entity contains illegal characters."
)

// statusError is an error answered with its own status.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// withStatus returns err, answered with status.
func withStatus(status int, err error) error { return &statusError{status: status, err: err} }

// notFound is OpenWhisk's 404.
func notFound() error { return withStatus(http.StatusNotFound, errors.New(msgNotFound)) }

// forbidden is OpenWhisk's 403.
func forbidden() error { return withStatus(http.StatusForbidden, errors.New(msgForbidden)) }

// badRequest is a 400 with text.
func badRequest(format string, args ...any) error {
	return withStatus(http.StatusBadRequest, fmt.Errorf(format, args...))
}

// statusOf is the one mapping from errors to statuses: a statusError's
// own, else its sentinel's, else 500.
func statusOf(err error) int {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.status
	case errors.Is(err, registry.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, registry.ErrParamsTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, index.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, context.Canceled):
		return 499
	}
	return http.StatusInternalServerError
}

// errorBody is OpenWhisk's error body: the message and a transaction id.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// writeError answers err in OpenWhisk's body. A 404 of the index or the
// registry says OpenWhisk's words, not which document was missing.
func writeError(w http.ResponseWriter, err error) {
	status := statusOf(err)
	msg := err.Error()
	var se *statusError
	if status == http.StatusNotFound && !errors.As(err, &se) {
		msg = msgNotFound
	}
	writeJSON(w, status, errorBody{Error: msg, Code: newID()})
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// newID is a fresh activation (or transaction) id: 32 lower-case hex
// characters, OpenWhisk's form.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// request is one authenticated request: its caller and the namespace
// its path names (the caller's own, or whisk.system for reads).
type request struct {
	r      *http.Request
	caller *Namespace
	ns     string // the path's namespace, resolved: caller.Name or SystemNamespace
}

// handlerFunc serves an authenticated request.
type handlerFunc func(w http.ResponseWriter, q *request) error

// handle mounts h for pattern (below Prefix/namespaces/{ns}/) behind
// Basic auth. System marks routes that may name whisk.system (reads and
// invocations of the built-ins); every other route serves the caller's
// own namespace only.
func (s *Server) handle(pattern string, system bool, h handlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	s.mux.HandleFunc(method+" "+Prefix+path, func(w http.ResponseWriter, r *http.Request) {
		caller, err := s.authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="dedupfn openwhisk"`)
			writeError(w, err)
			return
		}
		q := &request{r: r, caller: caller, ns: caller.Name}
		if ns := r.PathValue("ns"); ns != "" && ns != "_" && ns != caller.Name {
			if !system || ns != SystemNamespace {
				writeError(w, forbidden())
				return
			}
			q.ns = SystemNamespace
		}
		if err := h(w, q); err != nil {
			writeError(w, err)
		}
	})
}

// authenticate finds the namespace whose key the request's Basic
// credentials are. Every key is compared, in constant time.
func (s *Server) authenticate(r *http.Request) (*Namespace, error) {
	h := r.Header.Get("Authorization")
	enc, ok := strings.CutPrefix(h, "Basic ")
	if !ok {
		return nil, withStatus(http.StatusUnauthorized, errors.New(msgNoAuth))
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return nil, withStatus(http.StatusUnauthorized, errors.New(msgUnauthorized))
	}
	var found *Namespace
	for _, n := range s.byName { // no early exit
		if subtle.ConstantTimeCompare(raw, []byte(n.Key)) == 1 {
			found = n
		}
	}
	if found == nil {
		return nil, withStatus(http.StatusUnauthorized, errors.New(msgUnauthorized))
	}
	return found, nil
}

// decode reads a JSON body of at most limit bytes into v; an empty body
// leaves v as it is.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		if errors.As(err, new(*http.MaxBytesError)) {
			return withStatus(http.StatusRequestEntityTooLarge, fmt.Errorf("request larger than allowed: %d bytes", limit))
		}
		return badRequest("The request content was malformed: %v", err)
	}
	return nil
}
