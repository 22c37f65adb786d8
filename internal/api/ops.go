package api

import (
	"fmt"
	"net/http"

	"github.com/dedupfn/dedupfn/internal/registry"
)

// routeOps mounts the operator's endpoints: totals (/v1/stats), purging
// dedup records (/v1/purge) and explaining an object's dedup
// (/v1/explain).
func (s *Server) routeOps() {
	s.handle("GET /v1/stats", s.stats)
	s.handle("POST /v1/purge", s.purge)
	s.handle("GET /v1/explain", s.explain)
}

// stats answers the caller's totals (index.Index.Stats).
func (s *Server) stats(w http.ResponseWriter, r *http.Request, c caller) error {
	st, err := s.cfg.Index.Stats(r.Context(), c.tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// PurgeRequest is the body of POST /v1/purge.
type PurgeRequest struct {
	Function string `json:"function"`
	Key      string `json:"key,omitempty"` // one dedup key (see explain); empty = all of the function's
}

// purge deletes the dedup records of one of the caller's functions
// (pipeline.Purge); a shared function's are the admin's to purge.
func (s *Server) purge(w http.ResponseWriter, r *http.Request, c caller) error {
	var req PurgeRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	fn, err := s.cfg.Registry.Get(r.Context(), registry.TenantOr(c.tenant), req.Function)
	if err != nil {
		return err
	}
	if fn.Shared && !c.admin {
		return fmt.Errorf("%w: function %s is shared: its results are purged by the admin only", errForbidden, fn.Name)
	}
	n, err := s.cfg.Pipeline.Purge(r.Context(), c.tenant, req.Function, req.Key, c.admin)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"purged": n})
	return nil
}

// explain shows an object's dedup key and what an event would do
// (pipeline.Explain); only the admin sees the record itself.
func (s *Server) explain(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	if err := c.checkBucket("bucket", q.Get("bucket")); err != nil {
		return err
	}
	x, err := s.cfg.Pipeline.Explain(r.Context(), c.tenant, q.Get("fn"), q.Get("bucket"), q.Get("key"), c.admin)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, x)
	return nil
}
