package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/dedupfn/dedupfn/internal/bytesize"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk"
)

// routeFunctions mounts the function endpoints: deploy, list, get and
// delete (/v1/functions), and invoke (POST /v1/invoke: a run on demand).
func (s *Server) routeFunctions() {
	s.handle("POST /v1/functions", s.deploy)
	s.handle("GET /v1/functions", s.listFunctions)
	s.handle("GET /v1/functions/{name}", s.getFunction)
	s.handle("DELETE /v1/functions/{name}", s.deleteFunction)
	s.handle("POST /v1/invoke", s.invoke)
	s.routeGraph() // the function graph: graph.go
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

func (s *Server) deploy(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := jsonBody(r); err != nil {
		return err
	}
	// base64 of the code plus room for the definition.
	limit := (s.cfg.MaxCodeBytes+2)/3*4 + maxJSONBytes
	tooLarge := withStatus(http.StatusRequestEntityTooLarge,
		fmt.Errorf("deploy too large: code is limited to %s (--max-code)", bytesize.Exact(s.cfg.MaxCodeBytes)))
	if r.ContentLength > limit {
		return tooLarge
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
			return nil // the client has gone: nobody to answer
		}
		if n == maxJSONBytes {
			buf.Grow(int(max(min(r.ContentLength, limit)-n, 0)) + bytes.MinRead)
			_, readErr = buf.ReadFrom(body)
		}
	}
	switch {
	case readErr == nil:
	case errors.As(readErr, new(*http.MaxBytesError)):
		return tooLarge
	case errors.Is(readErr, os.ErrDeadlineExceeded):
		return withStatus(http.StatusRequestTimeout, fmt.Errorf("read request body: too slow: %w", readErr))
	default:
		return withStatus(http.StatusBadRequest, fmt.Errorf("read request body: %w", readErr))
	}
	var req DeployRequest
	err := json.Unmarshal(buf.Bytes(), &req)
	buf = nil
	if err != nil {
		return withStatus(http.StatusBadRequest, fmt.Errorf("decode request body: %w", err))
	}
	if int64(len(req.Code)) > s.cfg.MaxCodeBytes {
		return tooLarge
	}
	if err := req.Function.CheckParams(s.cfg.MaxParamsBytes); err != nil {
		return err
	}
	if c.tenant != "" {
		req.Function.Tenant = c.tenant
	}
	if err := s.authorizeDeploy(c, req.Function); err != nil {
		return err
	}
	// Whatever stops a function from running here (an invalid
	// definition, a runtime not enabled, code that does not compile or is
	// over the runtime's limits) is the deployer's to fix.
	if err := s.cfg.Pipeline.Prepare(r.Context(), req.Function, req.Code); err != nil {
		return withStatus(http.StatusBadRequest, err)
	}
	// A missing bucket is a 400 naming it (objects.ErrNoSuchBucket).
	if err := s.cfg.Pipeline.CheckBuckets(r.Context(), req.Function); err != nil {
		return err
	}
	var prev string
	if old, err := s.cfg.Registry.Get(r.Context(), registry.TenantOr(req.Function.Tenant), req.Function.Name); err == nil {
		prev = old.Version
	}
	fn, err := s.cfg.Registry.Deploy(r.Context(), req.Function, req.Code)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, DeployResponse{Function: fn, NewVersion: fn.Version != prev, Previous: prev})
	return nil
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
		// Any error of CheckAPI (a host not allowed, or not parsing) is a 403.
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
		if tenant := registry.TenantOr(fn.Tenant); tenant != registry.DefaultTenant {
			if err := openwhisk.CheckNamespace(s.owNS[tenant], a); err != nil {
				return fmt.Errorf("%w: tenant %s: %w", errForbidden, tenant, err)
			}
		}
	}
	if fn.Limits.MemoryMB > s.cfg.MaxMemoryMB {
		return withStatus(http.StatusBadRequest, fmt.Errorf("function %s: memory must be at most %d MB (--max-memory), got %d",
			fn.Name, s.cfg.MaxMemoryMB, fn.Limits.MemoryMB))
	}
	return nil
}

// FunctionInfo is a function as GET /v1/functions and
// /v1/functions/{name} answer it: its definition, and its neighbours in
// the function graph (registry.Graph) that the caller may see, by name
// ("tenant/name" for another tenant's than the caller's).
type FunctionInfo struct {
	registry.Function
	// Upstream are the functions whose outputs may trigger this one,
	// Downstream those its outputs may trigger; sorted, never null.
	Upstream   []string `json:"upstream"`
	Downstream []string `json:"downstream"`
}

// sees reports whether c may see the functions of tenant: the admin
// acting for all tenants sees every one's.
func (c caller) sees(tenant string) bool { return c.tenant == "" || tenant == c.tenant }

// functionInfo is f with its neighbours in g that c may see.
func functionInfo(g *registry.Graph, c caller, f registry.Function) FunctionInfo {
	self := registry.TenantOr(c.tenant)
	names := func(fns []registry.Function) []string {
		out := []string{}
		for _, h := range fns {
			switch {
			case !c.sees(h.Tenant):
			case h.Tenant == self:
				out = append(out, h.Name)
			default:
				out = append(out, h.Tenant+"/"+h.Name)
			}
		}
		return out
	}
	return FunctionInfo{Function: f, Upstream: names(g.Upstream(f)), Downstream: names(g.Downstream(f))}
}

func (s *Server) listFunctions(w http.ResponseWriter, r *http.Request, c caller) error {
	g := s.cfg.Registry.Graph()
	out := []FunctionInfo{}
	for _, f := range s.cfg.Registry.List(c.tenant) {
		out = append(out, functionInfo(g, c, f))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getFunction(w http.ResponseWriter, r *http.Request, c caller) error {
	fn, err := s.cfg.Registry.Get(r.Context(), registry.TenantOr(c.tenant), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, functionInfo(s.cfg.Registry.Graph(), c, fn))
	return nil
}

func (s *Server) deleteFunction(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := s.cfg.Registry.Delete(r.Context(), registry.TenantOr(c.tenant), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// invoke runs a function on one object (pipeline.Invoke) through the
// same dedup as events; the activation is the answer.
func (s *Server) invoke(w http.ResponseWriter, r *http.Request, c caller) error {
	var req pipeline.InvokeRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if c.tenant != "" {
		req.Tenant = c.tenant
	}
	req.ReplaceShared = c.admin // only the admin replaces results other tenants reuse
	if err := s.checkRun(r.Context(), c, req.Function, req.Bucket); err != nil {
		return err
	}
	rec, err := s.cfg.Pipeline.Invoke(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec)
	return nil
}
