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

// backfills returns the job manager, or a 503 error when there is none.
func (s *Server) backfills() (*backfill.Manager, error) {
	if s.cfg.Backfills == nil {
		return nil, withStatus(http.StatusServiceUnavailable, errors.New("backfills are not enabled on this server (it runs no backfill manager)"))
	}
	return s.cfg.Backfills, nil
}

// startBackfill creates a job (body: backfill.Request) and answers 201
// with it; the job runs on the server, GET /v1/backfills/{id} follows it.
func (s *Server) startBackfill(w http.ResponseWriter, r *http.Request, c caller) error {
	m, err := s.backfills()
	if err != nil {
		return err
	}
	var req backfill.Request
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Function == "" {
		return withStatus(http.StatusBadRequest, errors.New("function must be set"))
	}
	req.Tenant = registry.TenantOr(c.tenant)
	fn, err := s.cfg.Registry.Get(r.Context(), req.Tenant, req.Function)
	if err != nil {
		return err
	}
	// Bucket and output checked as for a run: the tenant's buckets may
	// have changed since the deploy.
	if err := s.checkRun(r.Context(), c, req.Function, cmp.Or(req.Bucket, fn.Trigger.Bucket)); err != nil {
		return err
	}
	job, err := m.Start(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, job)
	return nil
}

// listBackfills lists the caller's jobs, newest first.
func (s *Server) listBackfills(w http.ResponseWriter, r *http.Request, c caller) error {
	m, err := s.backfills()
	if err != nil {
		return err
	}
	jobs, err := m.List(r.Context(), c.tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, jobs)
	return nil
}

// getBackfill answers one of the caller's jobs.
func (s *Server) getBackfill(w http.ResponseWriter, r *http.Request, c caller) error {
	m, err := s.backfills()
	if err != nil {
		return err
	}
	job, err := m.Get(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, job)
	return nil
}

// cancelBackfill asks a job to stop and answers with it: canceled, or
// still running for the moment its objects in flight take to finish.
func (s *Server) cancelBackfill(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := jsonBody(r); err != nil {
		return err
	}
	m, err := s.backfills()
	if err != nil {
		return err
	}
	job, err := m.Cancel(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, job)
	return nil
}
