// Package api is dedupfn's HTTP API (used by the CLI), its dashboard and
// /metrics.
package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/backfill"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
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
	// DefaultDLQScan is how many of the newest activations (of the
	// tenant, function and --since asked for) GET /v1/dlq looks through
	// for dead letters: a dead letter older than that is not listed.
	DefaultDLQScan = 10000
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
}

// Config wires the API.
type Config struct {
	Pipeline *pipeline.Pipeline
	Registry *registry.Registry
	Index    index.Index
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

// errForbidden marks errors answered with 403, errInvalid with 400.
var (
	errForbidden = errors.New("forbidden")
	errInvalid   = errors.New("invalid")
)

// checkBucket refuses a tenant a bucket that is not its own.
func (c caller) checkBucket(what, bucket string) error {
	if c.admin || c.buckets[bucket] {
		return nil
	}
	return fmt.Errorf("%w: %s %q is not one of tenant %s's buckets", errForbidden, what, bucket, c.tenant)
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
		s.handle("GET /metrics", func(w http.ResponseWriter, r *http.Request, c caller) {
			if !c.admin {
				writeError(w, http.StatusForbidden, fmt.Errorf("%w: /metrics is the admin's: it covers every tenant", errForbidden))
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	s.handle("POST /v1/functions", s.deploy)
	s.handle("GET /v1/functions", s.listFunctions)
	s.handle("GET /v1/functions/{name}", s.getFunction)
	s.handle("DELETE /v1/functions/{name}", s.deleteFunction)
	s.handle("POST /v1/invoke", s.invoke)
	s.handle("GET /v1/activations", s.activations)
	s.handle("GET /v1/activations/{id}", s.activation)
	s.handle("GET /v1/dlq", s.deadLetters)
	s.handle("POST /v1/dlq/{id}/retry", s.retry)
	s.handle("GET /v1/stats", s.stats)
	s.handle("POST /v1/purge", s.purge)
	s.handle("GET /v1/explain", s.explain)
	s.routeBackfills()
	s.routeInsights()
	return s, nil
}

// Handler returns the HTTP handler: the mux (sources' endpoints
// included) behind the Host check and cross-origin protection.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.hosts != nil && !s.hosts[hostname(r.Host)] {
			writeError(w, http.StatusForbidden, fmt.Errorf("host %q is not a name of this API (DNS rebinding?): add it to --api-host", r.Host))
			return
		}
		if err := s.csrf.Check(r); err != nil {
			writeError(w, http.StatusForbidden, fmt.Errorf("%w: state changes need the API's own origin", err))
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

type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller)

// handle mounts h behind authentication.
func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dedupfn"`)
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
			return
		}
		h(w, r, c)
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

// DeployRequest is the body of POST /v1/functions.
type DeployRequest struct {
	Function registry.Function `json:"function"`
	// Code is the module, executable or zip (base64 in JSON); empty for
	// remote runtimes.
	Code []byte `json:"code,omitempty"`
}

// DeployResponse says what a deploy did.
type DeployResponse struct {
	Function   registry.Function `json:"function"`
	NewVersion bool              `json:"new_version"`
	Previous   string            `json:"previous_version,omitempty"`
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request, c caller) {
	if !jsonBody(w, r) {
		return
	}
	// base64 of the code plus room for the definition.
	limit := (s.cfg.MaxCodeBytes+2)/3*4 + maxJSONBytes
	tooLarge := fmt.Errorf("deploy too large: code is limited to %s (--max-code)", sizeString(s.cfg.MaxCodeBytes))
	if r.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, tooLarge)
		return
	}
	// The first maxJSONBytes are read before taking a slot, as any JSON
	// body is: a body that trickles in (and is cut by the listener's
	// minimum rate) never holds one. The rest is read holding a slot, into
	// one buffer sized up front and decoded in place: about 1.75 times
	// the body at most, and at most MaxDeploys of them.
	body := http.MaxBytesReader(w, r.Body, limit)
	buf := bytes.NewBuffer(make([]byte, 0, min(max(r.ContentLength, 0), maxJSONBytes)+bytes.MinRead))
	n, readErr := buf.ReadFrom(io.LimitReader(body, maxJSONBytes))
	if readErr == nil {
		select {
		case s.deploys <- struct{}{}:
			defer func() { <-s.deploys }()
		case <-r.Context().Done():
			return
		}
		if n == maxJSONBytes {
			buf.Grow(int(max(min(r.ContentLength, limit)-n, 0)) + bytes.MinRead)
			_, readErr = buf.ReadFrom(body)
		}
	}
	if readErr != nil {
		switch {
		case errors.As(readErr, new(*http.MaxBytesError)):
			writeError(w, http.StatusRequestEntityTooLarge, tooLarge)
		case errors.Is(readErr, os.ErrDeadlineExceeded):
			writeError(w, http.StatusRequestTimeout, fmt.Errorf("read request body: too slow: %w", readErr))
		default:
			writeError(w, http.StatusBadRequest, fmt.Errorf("read request body: %w", readErr))
		}
		return
	}
	var req DeployRequest
	err := json.Unmarshal(buf.Bytes(), &req)
	buf = nil
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode request body: %w", err))
		return
	}
	if int64(len(req.Code)) > s.cfg.MaxCodeBytes {
		writeError(w, http.StatusRequestEntityTooLarge, tooLarge)
		return
	}
	if err := req.Function.CheckParams(s.cfg.MaxParamsBytes); err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, err)
		return
	}
	if c.tenant != "" {
		req.Function.Tenant = c.tenant
	}
	if err := s.authorizeDeploy(c, req.Function); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	if err := s.cfg.Pipeline.Prepare(r.Context(), req.Function, req.Code); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	var prev string
	if old, err := s.cfg.Registry.Get(r.Context(), orDefault(req.Function.Tenant), req.Function.Name); err == nil {
		prev = old.Version
	}
	fn, err := s.cfg.Registry.Deploy(r.Context(), req.Function, req.Code)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, DeployResponse{Function: fn, NewVersion: fn.Version != prev, Previous: prev})
}

// authorizeDeploy applies the trust model to a definition: tenants deploy
// their runtimes on their buckets only, nobody names an OpenWhisk host
// outside the allow-list, and memory is capped.
func (s *Server) authorizeDeploy(c caller, fn registry.Function) error {
	if !c.admin && !slices.Contains(s.cfg.TenantRuntimes, fn.Runtime) {
		why := ""
		if fn.Runtime == "process" {
			why = " runs host code as the server:"
		}
		return fmt.Errorf("%w: runtime %q%s only the admin may deploy it; tenants deploy %s",
			errForbidden, fn.Runtime, why, strings.Join(s.cfg.TenantRuntimes, " or "))
	}
	if err := c.checkBucket("trigger bucket", fn.Trigger.Bucket); err != nil {
		return err
	}
	if err := c.checkBucket("output bucket", fn.Output.Bucket); err != nil {
		return err
	}
	if fn.Runtime == "openwhisk" {
		if api := fn.Config[openwhisk.ConfigAPI]; api != "" {
			if err := openwhisk.CheckAPI(s.cfg.OpenWhiskAllow, api); err != nil {
				return fmt.Errorf("%w: %w", errForbidden, err)
			}
		}
		a, err := openwhisk.ParseAction(fn.Config[openwhisk.ConfigAction])
		if err != nil {
			return fmt.Errorf("%w: function %s: %w", errInvalid, fn.Name, err)
		}
		// The runtime checks this again at every call (defence in depth);
		// here a deploy that could never run is refused.
		if tenant := orDefault(fn.Tenant); tenant != registry.DefaultTenant {
			if err := openwhisk.CheckNamespace(s.owNS[tenant], a); err != nil {
				return fmt.Errorf("%w: tenant %s: %w", errForbidden, tenant, err)
			}
		}
	}
	if fn.Limits.MemoryMB > s.cfg.MaxMemoryMB {
		return fmt.Errorf("function %s: memory must be at most %d MB (--max-memory), got %d", fn.Name, s.cfg.MaxMemoryMB, fn.Limits.MemoryMB)
	}
	return nil
}

func sizeString(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func (s *Server) listFunctions(w http.ResponseWriter, r *http.Request, c caller) {
	fns := s.cfg.Registry.List(c.tenant)
	if fns == nil {
		fns = []registry.Function{}
	}
	writeJSON(w, http.StatusOK, fns)
}

func (s *Server) getFunction(w http.ResponseWriter, r *http.Request, c caller) {
	fn, err := s.cfg.Registry.Get(r.Context(), orDefault(c.tenant), r.PathValue("name"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, fn)
}

func (s *Server) deleteFunction(w http.ResponseWriter, r *http.Request, c caller) {
	if err := s.cfg.Registry.Delete(r.Context(), orDefault(c.tenant), r.PathValue("name")); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request, c caller) {
	var req pipeline.InvokeRequest
	if !decode(w, r, &req) {
		return
	}
	if c.tenant != "" {
		req.Tenant = c.tenant
	}
	req.ReplaceShared = c.admin // only the admin replaces results other tenants reuse
	if err := s.checkRun(r.Context(), c, req.Function, req.Bucket); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	rec, err := s.cfg.Pipeline.Invoke(r.Context(), req)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// activationFilter reads the fn, since (RFC 3339) and limit parameters
// of an activation listing for caller c.
func activationFilter(r *http.Request, c caller) (activation.Filter, error) {
	q := r.URL.Query()
	f := activation.Filter{Tenant: c.tenant, Function: q.Get("fn")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return f, fmt.Errorf("limit must be a positive integer, got %q", l)
		}
		f.Limit = n
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return f, fmt.Errorf("since must be an RFC 3339 time, got %q", v)
		}
		f.Since = t
	}
	return f, nil
}

// activations lists activation records, newest first; decision= and
// errors=1 filter a bounded scan (see listActivations).
func (s *Server) activations(w http.ResponseWriter, r *http.Request, c caller) {
	f, err := activationFilter(r, c)
	var keep func(activation.Record) bool
	if err == nil {
		keep, err = recordFilter(r.URL.Query())
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	recs, err := s.listActivations(r.Context(), f, keep)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if recs == nil {
		recs = []activation.Record{}
	}
	writeJSON(w, http.StatusOK, recs)
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
	fn, err := s.cfg.Registry.Get(ctx, orDefault(c.tenant), function)
	if err != nil {
		return err
	}
	return c.checkBucket("output bucket", fn.Output.Bucket)
}

func (s *Server) activation(w http.ResponseWriter, r *http.Request, c caller) {
	rec, err := s.cfg.Index.GetActivation(r.Context(), r.PathValue("id"))
	if err == nil && c.tenant != "" && rec.Tenant != c.tenant {
		err = index.ErrNotFound // another tenant's records do not exist for you
	}
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// deadLetters lists the dead letters not retried yet, newest first,
// among the DefaultDLQScan newest activations matching the filter. A dead
// letter counts as retried once a newer activation names it in RetryOf
// (a retry that failed again is listed in its place).
func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request, c caller) {
	f, err := activationFilter(r, c)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	limit := f.Limit
	if limit == 0 {
		limit = 100
	}
	f.Limit = DefaultDLQScan
	recs, err := s.cfg.Index.Activations(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	retried := map[string]bool{}
	out := []activation.Record{}
	for _, rec := range recs { // newest first: a retry comes before what it retried
		if rec.RetryOf != "" {
			retried[rec.RetryOf] = true
		}
		if rec.DeadLetter && !retried[rec.ID] && len(out) < limit {
			out = append(out, rec)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// retry runs a dead letter's event again (pipeline.Retry); the new
// activation is the answer. Tenants retry their own dead letters only,
// on buckets that are still theirs.
func (s *Server) retry(w http.ResponseWriter, r *http.Request, c caller) {
	if !jsonBody(w, r) {
		return
	}
	rec, err := s.cfg.Index.GetActivation(r.Context(), r.PathValue("id"))
	if err == nil && c.tenant != "" && rec.Tenant != c.tenant {
		err = index.ErrNotFound // another tenant's records do not exist for you
	}
	if err == nil {
		err = pipeline.CheckRetry(rec)
	}
	if err == nil {
		err = s.checkRun(r.Context(), c, rec.Function, rec.Event.Bucket)
	}
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	out, err := s.cfg.Pipeline.Retry(r.Context(), rec)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request, c caller) {
	st, err := s.cfg.Index.Stats(r.Context(), c.tenant)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// PurgeRequest is the body of POST /v1/purge.
type PurgeRequest struct {
	Function string `json:"function"`
	Key      string `json:"key,omitempty"` // one dedup key (see explain); empty = all of the function's
}

func (s *Server) purge(w http.ResponseWriter, r *http.Request, c caller) {
	var req PurgeRequest
	if !decode(w, r, &req) {
		return
	}
	fn, err := s.cfg.Registry.Get(r.Context(), orDefault(c.tenant), req.Function)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	var n int
	switch {
	case fn.Shared && !c.admin:
		err = fmt.Errorf("%w: function %s is shared: its results are purged by the admin only", errForbidden, fn.Name)
	default:
		n, err = s.cfg.Pipeline.Purge(r.Context(), c.tenant, req.Function, req.Key, c.admin)
	}
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"purged": n})
}

func (s *Server) explain(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	if err := c.checkBucket("bucket", q.Get("bucket")); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	x, err := s.cfg.Pipeline.Explain(r.Context(), c.tenant, q.Get("fn"), q.Get("bucket"), q.Get("key"), c.admin)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, x)
}

// jsonBody refuses (415) a body that is not declared application/json: a
// browser sends text/plain and form bodies cross-site without asking.
func jsonBody(w http.ResponseWriter, r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type must be application/json, got %q", r.Header.Get("Content-Type")))
		return false
	}
	return true
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if !jsonBody(w, r) {
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		status := http.StatusBadRequest
		if errors.As(err, new(*http.MaxBytesError)) {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, fmt.Errorf("decode request body: %w", err))
		return false
	}
	return true
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	case errors.Is(err, errInvalid):
		return http.StatusBadRequest
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, index.ErrNotFound), errors.Is(err, objects.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, pipeline.ErrNotRetryable):
		return http.StatusConflict
	case errors.Is(err, context.Canceled):
		return 499
	case strings.Contains(err.Error(), "must"):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func orDefault(tenant string) string {
	if tenant == "" {
		return registry.DefaultTenant
	}
	return tenant
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, Error{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
