// Package api is dedupfn's HTTP API (used by the CLI), its dashboard and
// /metrics.
package api

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// TenantHeader lets an admin token act for one tenant.
const TenantHeader = "X-Dedupfn-Tenant"

// MaxDeployBytes bounds a deploy request (function code included).
const MaxDeployBytes = 256 << 20

// Config wires the API.
type Config struct {
	Pipeline *pipeline.Pipeline
	Registry *registry.Registry
	Index    index.Index
	// AdminToken, when set, is required on every request but /healthz and
	// may act for any tenant (TenantHeader).
	AdminToken string
	// TenantTokens maps a token to the one tenant it acts for.
	TenantTokens map[string]string
	Gatherer     prometheus.Gatherer
	Logger       *slog.Logger
	// Mux, when set, is the mux to mount on; sources such as webhook: mount
	// their own endpoints on it too.
	Mux *http.ServeMux
}

// Server serves the API.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	logger *slog.Logger
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
	if cfg.Mux == nil {
		cfg.Mux = http.NewServeMux()
	}
	s := &Server{cfg: cfg, mux: cfg.Mux, logger: cfg.Logger.With("component", "api")}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	s.handle("GET /{$}", func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(dashboard)
	})
	if cfg.Gatherer != nil {
		h := promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
		s.handle("GET /metrics", func(w http.ResponseWriter, r *http.Request, _ string) { h.ServeHTTP(w, r) })
	}
	s.handle("POST /v1/functions", s.deploy)
	s.handle("GET /v1/functions", s.listFunctions)
	s.handle("GET /v1/functions/{name}", s.getFunction)
	s.handle("DELETE /v1/functions/{name}", s.deleteFunction)
	s.handle("POST /v1/invoke", s.invoke)
	s.handle("GET /v1/activations", s.activations)
	s.handle("GET /v1/activations/{id}", s.activation)
	s.handle("GET /v1/stats", s.stats)
	s.handle("POST /v1/purge", s.purge)
	s.handle("GET /v1/explain", s.explain)
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

type handlerFunc func(w http.ResponseWriter, r *http.Request, tenant string)

// handle mounts h behind authentication; h gets the caller's tenant ("" =
// an admin acting for all tenants).
func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		tenant, ok := s.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dedupfn"`)
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
			return
		}
		h(w, r, tenant)
	})
}

func (s *Server) authenticate(r *http.Request) (tenant string, ok bool) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	for t, tn := range s.cfg.TenantTokens {
		if token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(t)) == 1 {
			return tn, true
		}
	}
	if s.cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminToken)) != 1 {
		return "", false
	}
	return r.Header.Get(TenantHeader), true
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

func (s *Server) deploy(w http.ResponseWriter, r *http.Request, tenant string) {
	var req DeployRequest
	if !decode(w, r, &req, MaxDeployBytes) {
		return
	}
	if tenant != "" {
		req.Function.Tenant = tenant
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

func (s *Server) listFunctions(w http.ResponseWriter, r *http.Request, tenant string) {
	fns := s.cfg.Registry.List(tenant)
	if fns == nil {
		fns = []registry.Function{}
	}
	writeJSON(w, http.StatusOK, fns)
}

func (s *Server) getFunction(w http.ResponseWriter, r *http.Request, tenant string) {
	fn, err := s.cfg.Registry.Get(r.Context(), orDefault(tenant), r.PathValue("name"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, fn)
}

func (s *Server) deleteFunction(w http.ResponseWriter, r *http.Request, tenant string) {
	if err := s.cfg.Registry.Delete(r.Context(), orDefault(tenant), r.PathValue("name")); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request, tenant string) {
	var req pipeline.InvokeRequest
	if !decode(w, r, &req, 1<<20) {
		return
	}
	if tenant != "" {
		req.Tenant = tenant
	}
	rec, err := s.cfg.Pipeline.Invoke(r.Context(), req)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (s *Server) activations(w http.ResponseWriter, r *http.Request, tenant string) {
	f := activation.Filter{Tenant: tenant, Function: r.URL.Query().Get("fn")}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit must be a positive integer, got %q", l))
			return
		}
		f.Limit = n
	}
	recs, err := s.cfg.Index.Activations(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if recs == nil {
		recs = []activation.Record{}
	}
	writeJSON(w, http.StatusOK, recs)
}

func (s *Server) activation(w http.ResponseWriter, r *http.Request, tenant string) {
	rec, err := s.cfg.Index.GetActivation(r.Context(), r.PathValue("id"))
	if err == nil && tenant != "" && rec.Tenant != tenant {
		err = index.ErrNotFound // another tenant's records do not exist for you
	}
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request, tenant string) {
	st, err := s.cfg.Index.Stats(r.Context(), tenant)
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

func (s *Server) purge(w http.ResponseWriter, r *http.Request, tenant string) {
	var req PurgeRequest
	if !decode(w, r, &req, 1<<20) {
		return
	}
	if _, err := s.cfg.Registry.Get(r.Context(), orDefault(tenant), req.Function); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	n, err := s.cfg.Pipeline.Purge(r.Context(), tenant, req.Function, req.Key)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"purged": n})
}

func (s *Server) explain(w http.ResponseWriter, r *http.Request, tenant string) {
	q := r.URL.Query()
	x, err := s.cfg.Pipeline.Explain(r.Context(), tenant, q.Get("fn"), q.Get("bucket"), q.Get("key"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, x)
}

func decode(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode request body: %w", err))
		return false
	}
	return true
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, index.ErrNotFound), errors.Is(err, objects.ErrNotFound):
		return http.StatusNotFound
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
