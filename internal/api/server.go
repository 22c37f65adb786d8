// Package api is dedupfn's HTTP API (used by the CLI), its dashboard and
// /metrics.
//
// server.go sets the server up and checks every request (Host, origin,
// bearer token); each resource mounts its own routes in its own file:
// functions.go (deploy, list, get, delete, invoke), activations.go
// (records, dead letters, retry), backfills.go, ops.go (stats, purge,
// explain), lineage.go (an object's chain and what was derived from it),
// graph.go (the function graph) and insights.go (the dashboard's totals
// and series). Handlers
// return errors; errors.go maps them to statuses, in statusOf only.
// client.go is the Go client of all of them.
package api

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dedupfn/dedupfn/internal/backfill"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk"
)

// TenantHeader lets the admin act for one tenant. It is ignored on
// requests made with a tenant token: a tenant is never taken from a header.
const TenantHeader = "X-Dedupfn-Tenant"

// Defaults of Config's limits.
const (
	// DefaultMaxCodeBytes bounds the code of one deploy (413 above it).
	DefaultMaxCodeBytes = 64 << 20
	// DefaultMaxDeploys is how many deploys read and store code at once;
	// more wait for a slot, so memory stays bounded.
	DefaultMaxDeploys = 2
	// DefaultMaxMemoryMB is the largest memory limit a function may ask for.
	DefaultMaxMemoryMB = 2048
	// maxJSONBytes bounds every JSON request body but a deploy's.
	maxJSONBytes = 1 << 20
)

// DefaultTenantRuntimes are the runtimes tenants may deploy: sandboxed
// WebAssembly and remote OpenWhisk actions on allow-listed hosts. The
// process runtime runs host code and is the admin's only.
var DefaultTenantRuntimes = []string{"wasm", "openwhisk"}

// Tenant is one tenant's credentials and the buckets it may name.
type Tenant struct {
	Name  string
	Token string
	// Buckets are the only buckets the tenant's functions may trigger on
	// or write to, and its invoke and explain calls may read.
	Buckets []string
	// OpenWhisk is the tenant's own OpenWhisk namespace and key; its
	// OpenWhisk functions' actions must be in that namespace. Zero: the
	// tenant deploys no OpenWhisk function.
	OpenWhisk openwhisk.Tenant
	// OpenWhiskKey is the "UUID:KEY" that reaches the tenant's namespace
	// of the OpenWhisk API served here (Config.OpenWhisk; not used by
	// this package). Empty: none.
	OpenWhiskKey string
}

// Config wires the API.
type Config struct {
	Pipeline *pipeline.Pipeline
	Registry *registry.Registry
	Index    index.Activations
	// AdminToken, when set, is required on every request but /healthz and
	// the dashboard page; the admin may act for any tenant (TenantHeader).
	// Without it (and without tenants) every caller is the admin: serve
	// allows that on loopback only.
	AdminToken string
	// Tenants each act for themselves only, on their own buckets. They
	// require AdminToken.
	Tenants []Tenant
	// TenantRuntimes are the runtimes tenants may deploy; default
	// DefaultTenantRuntimes.
	TenantRuntimes []string
	// OpenWhiskAllow are the OpenWhisk API hosts a function may name
	// (openwhisk.ConfigAPI); functions without one use the runtime's
	// default host. Empty: no function may name a host.
	OpenWhiskAllow []string
	// MaxCodeBytes bounds a deploy's code (default DefaultMaxCodeBytes);
	// MaxDeploys bounds concurrent deploys (default DefaultMaxDeploys);
	// MaxMemoryMB bounds a function's memory limit (default
	// DefaultMaxMemoryMB).
	MaxCodeBytes int64
	MaxDeploys   int
	MaxMemoryMB  int
	// MaxParamsBytes bounds a function's params, and apart its config, as
	// JSON (default registry.DefaultMaxParamsBytes; 413 above it).
	MaxParamsBytes int
	// ListenAddr is the API's listen address. On a loopback address only
	// requests whose Host is localhost, 127.0.0.1, ::1, the listen host or
	// one of ExtraHosts are served, which defeats DNS rebinding.
	ListenAddr string
	ExtraHosts []string
	Gatherer   prometheus.Gatherer
	Logger     *slog.Logger
	// Mux, when set, is the mux to mount on; sources such as webhook: mount
	// their own endpoints on it too.
	Mux *http.ServeMux
	// Backfills runs backfill jobs (/v1/backfills); nil answers 503.
	Backfills *backfill.Manager
	// OpenWhisk, when set, serves OpenWhisk's REST API under /api/v1
	// (internal/owapi). It has its own Basic auth, so it is mounted
	// outside the bearer-token check, behind the Host and cross-origin
	// checks of every request. Nil: /api/v1 answers 404.
	OpenWhisk http.Handler
	// InstanceID names this process; /healthz answers it in the
	// InstanceHeader so a script can tell the server it started from
	// another one already listening on the address.
	InstanceID string
}

// InstanceHeader carries Config.InstanceID on /healthz.
const InstanceHeader = "X-Dedupfn-Instance"

// Server serves the API.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	logger  *slog.Logger
	tenants map[string]caller // by token
	owNS    map[string]string // tenants' OpenWhisk namespaces, by tenant name
	hosts   map[string]bool   // allowed Host names; nil = any
	deploys chan struct{}     // deploy slots
	csrf    *http.CrossOriginProtection
}

// caller is who makes a request.
type caller struct {
	admin   bool
	tenant  string          // "" = the admin acting for all tenants
	buckets map[string]bool // a tenant's buckets
}

// checkBucket refuses a tenant a bucket that is not its own.
func (c caller) checkBucket(what, bucket string) error {
	if c.admin || c.buckets[bucket] {
		return nil
	}
	return fmt.Errorf("%w: %s %q is not one of tenant %s's buckets", errForbidden, what, bucket, c.tenant)
}

// checkRun refuses a tenant a run of function on an object of bucket
// unless both bucket and the function's output bucket are its own: its
// buckets may have changed since the deploy.
func (s *Server) checkRun(ctx context.Context, c caller, function, bucket string) error {
	if err := c.checkBucket("bucket", bucket); err != nil {
		return err
	}
	if c.admin {
		return nil
	}
	fn, err := s.cfg.Registry.Get(ctx, registry.TenantOr(c.tenant), function)
	if err != nil {
		return err
	}
	return c.checkBucket("output bucket", fn.Output.Bucket)
}

//go:embed dashboard.html
var dashboard []byte

// New returns the API server; mount its Handler on a listener.
func New(cfg Config) (*Server, error) {
	if cfg.Pipeline == nil || cfg.Registry == nil || cfg.Index == nil {
		return nil, errors.New("api: pipeline, registry and index are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Tenants) > 0 && cfg.AdminToken == "" {
		return nil, errors.New("api: tenant tokens need an admin token: without one every caller would be the admin")
	}
	if cfg.Mux == nil {
		cfg.Mux = http.NewServeMux()
	}
	if cfg.TenantRuntimes == nil {
		cfg.TenantRuntimes = DefaultTenantRuntimes
	}
	if cfg.MaxCodeBytes <= 0 {
		cfg.MaxCodeBytes = DefaultMaxCodeBytes
	}
	if cfg.MaxDeploys <= 0 {
		cfg.MaxDeploys = DefaultMaxDeploys
	}
	if cfg.MaxMemoryMB <= 0 {
		cfg.MaxMemoryMB = DefaultMaxMemoryMB
	}
	if cfg.MaxParamsBytes <= 0 {
		cfg.MaxParamsBytes = registry.DefaultMaxParamsBytes
	}
	for _, a := range cfg.OpenWhiskAllow {
		if err := openwhisk.CheckAPI(nil, a); err != nil && !errors.Is(err, openwhisk.ErrNotAllowed) {
			return nil, fmt.Errorf("api: openwhisk allow-list: %w", err)
		}
	}
	s := &Server{cfg: cfg, mux: cfg.Mux, logger: cfg.Logger.With("component", "api"),
		tenants: map[string]caller{}, owNS: map[string]string{}, deploys: make(chan struct{}, cfg.MaxDeploys), csrf: http.NewCrossOriginProtection()}
	for _, t := range cfg.Tenants {
		if t.Name == "" || len(t.Token) == 0 {
			return nil, errors.New("api: a tenant must have a name and a token")
		}
		if _, dup := s.tenants[t.Token]; dup || t.Token == cfg.AdminToken {
			return nil, fmt.Errorf("api: tenant %s: its token is also another tenant's or the admin's", t.Name)
		}
		c := caller{tenant: t.Name, buckets: map[string]bool{}}
		for _, b := range t.Buckets {
			c.buckets[b] = true
		}
		s.tenants[t.Token] = c
		if t.OpenWhisk.Namespace != "" {
			s.owNS[t.Name] = t.OpenWhisk.Namespace
		}
	}
	if host, _, err := net.SplitHostPort(cfg.ListenAddr); err == nil && isLoopbackHost(host) {
		s.hosts = map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, strings.ToLower(host): true}
		for _, h := range cfg.ExtraHosts {
			s.hosts[strings.ToLower(h)] = true
		}
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if cfg.InstanceID != "" {
			w.Header().Set(InstanceHeader, cfg.InstanceID)
		}
		w.Write([]byte("ok\n"))
	})
	// The page holds no data: it asks for the token and calls the API.
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Write(dashboard)
	})
	if cfg.Gatherer != nil {
		h := promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
		// Metrics name every tenant's functions: they are the admin's.
		s.handle("GET /metrics", func(w http.ResponseWriter, r *http.Request, c caller) error {
			if !c.admin {
				return fmt.Errorf("%w: /metrics is the admin's: it covers every tenant", errForbidden)
			}
			h.ServeHTTP(w, r)
			return nil
		})
	}
	if cfg.OpenWhisk != nil {
		s.mux.Handle("/api/v1/", cfg.OpenWhisk)
	}
	s.routeFunctions()
	s.routeActivations()
	s.routeBackfills()
	s.routeOps()
	s.routeLineage()
	s.routeInsights()
	return s, nil
}

// Handler returns the HTTP handler: the mux (sources' endpoints
// included) behind the Host check and cross-origin protection.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.hosts != nil && !s.hosts[hostname(r.Host)] {
			writeError(w, withStatus(http.StatusForbidden, fmt.Errorf("host %q is not a name of this API (DNS rebinding?): add it to --api-host", r.Host)))
			return
		}
		if err := s.csrf.Check(r); err != nil {
			writeError(w, withStatus(http.StatusForbidden, fmt.Errorf("%w: state changes need the API's own origin", err)))
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// hostname is a Host header's lowercased name without port or brackets.
func hostname(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.Trim(h, "[]"))
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// handlerFunc serves a request of caller c. It writes its answer, or
// returns an error for handle to answer (writeError); nil and no answer
// leaves the request unanswered (its client has gone).
type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller) error

// handle mounts h behind authentication.
func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dedupfn"`)
			writeError(w, withStatus(http.StatusUnauthorized, errors.New("missing or wrong bearer token")))
			return
		}
		if err := h(w, r, c); err != nil {
			writeError(w, err)
		}
	})
}

// authenticate finds the caller. A tenant token acts for its tenant
// whatever the headers say; only the admin (or every caller, when no
// token is configured) may pick a tenant with TenantHeader.
func (s *Server) authenticate(r *http.Request) (caller, bool) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s.cfg.AdminToken == "" {
		return caller{admin: true, tenant: r.Header.Get(TenantHeader)}, true
	}
	if token == "" {
		return caller{}, false
	}
	var found caller
	ok := false
	for t, c := range s.tenants { // compare with every token: no early exit
		if subtle.ConstantTimeCompare([]byte(token), []byte(t)) == 1 {
			found, ok = c, true
		}
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminToken)) == 1 {
		return caller{admin: true, tenant: r.Header.Get(TenantHeader)}, true
	}
	return found, ok
}

// jsonBody refuses (415) a body that is not declared application/json: a
// browser sends text/plain and form bodies cross-site without asking.
func jsonBody(r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return withStatus(http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type must be application/json, got %q", r.Header.Get("Content-Type")))
	}
	return nil
}

// decode reads a JSON body of at most maxJSONBytes (413 above) into v;
// unknown fields are refused (400).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if err := jsonBody(r); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		status := http.StatusBadRequest
		if errors.As(err, new(*http.MaxBytesError)) {
			status = http.StatusRequestEntityTooLarge
		}
		return withStatus(status, fmt.Errorf("decode request body: %w", err))
	}
	return nil
}

// writeJSON answers v as indented JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
