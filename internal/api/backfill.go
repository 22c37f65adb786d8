package api

import (
	"cmp"
	"errors"
	"net/http"

	"github.com/dedupfn/dedupfn/internal/backfill"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// routeBackfills mounts the backfill job endpoints (/v1/backfills). A
// tenant sees and controls its own jobs only, and backfills its own
// functions on its own buckets only; the admin sees every tenant's jobs
// (or one tenant's, with TenantHeader).
func (s *Server) routeBackfills() {
	s.handle("POST /v1/backfills", s.startBackfill)
	s.handle("GET /v1/backfills", s.listBackfills)
	s.handle("GET /v1/backfills/{id}", s.getBackfill)
	s.handle("POST /v1/backfills/{id}/cancel", s.cancelBackfill)
}

// backfills returns the job manager, or answers 503 when there is none.
func (s *Server) backfills(w http.ResponseWriter) *backfill.Manager {
	if s.cfg.Backfills == nil {
		writeError(w, http.StatusServiceUnavailable, errors.New("backfills are not enabled on this server (it runs no backfill manager)"))
	}
	return s.cfg.Backfills
}

// startBackfill creates a job (body: backfill.Request) and answers 201
// with it; the job runs on the server, GET /v1/backfills/{id} follows it.
func (s *Server) startBackfill(w http.ResponseWriter, r *http.Request, c caller) {
	m := s.backfills(w)
	if m == nil {
		return
	}
	var req backfill.Request
	if !decode(w, r, &req) {
		return
	}
	if req.Function == "" {
		writeError(w, http.StatusBadRequest, errors.New("function must be set"))
		return
	}
	req.Tenant = registry.TenantOr(c.tenant)
	fn, err := s.cfg.Registry.Get(r.Context(), req.Tenant, req.Function)
	if err == nil {
		// Bucket and output checked as for a run: the tenant's buckets
		// may have changed since the deploy.
		err = s.checkRun(r.Context(), c, req.Function, cmp.Or(req.Bucket, fn.Trigger.Bucket))
	}
	if err != nil {
		writeError(w, backfillStatus(err), err)
		return
	}
	job, err := m.Start(r.Context(), req)
	if err != nil {
		writeError(w, backfillStatus(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, job)
}

// listBackfills lists the caller's jobs, newest first.
func (s *Server) listBackfills(w http.ResponseWriter, r *http.Request, c caller) {
	m := s.backfills(w)
	if m == nil {
		return
	}
	jobs, err := m.List(r.Context(), c.tenant)
	if err != nil {
		writeError(w, backfillStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, jobs)
}

func (s *Server) getBackfill(w http.ResponseWriter, r *http.Request, c caller) {
	m := s.backfills(w)
	if m == nil {
		return
	}
	job, err := m.Get(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		writeError(w, backfillStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, job)
}

// cancelBackfill asks a job to stop and answers with it: canceled, or
// still running for the moment its objects in flight take to finish.
func (s *Server) cancelBackfill(w http.ResponseWriter, r *http.Request, c caller) {
	if !jsonBody(w, r) {
		return
	}
	m := s.backfills(w)
	if m == nil {
		return
	}
	job, err := m.Cancel(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		writeError(w, backfillStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, job)
}

func backfillStatus(err error) int {
	switch {
	case errors.Is(err, backfill.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, backfill.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, backfill.ErrConflict):
		return http.StatusConflict
	}
	return statusOf(err)
}
