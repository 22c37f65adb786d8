package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/pipeline"
)

// Bounds of the activation listings.
const (
	// DefaultActivationScan is how many of the newest activations (of the
	// tenant, function and since asked for) GET /v1/activations looks
	// through when it filters on decision or errors: an older match is
	// not listed.
	DefaultActivationScan = 10000
	// DefaultDLQScan is how many of the newest activations (of the
	// tenant, function and --since asked for) GET /v1/dlq looks through
	// for dead letters: a dead letter older than that is not listed.
	DefaultDLQScan = 10000
)

// routeActivations mounts the activation records (/v1/activations) and
// the dead letters among them (/v1/dlq), with their retry. A tenant sees
// its own records only: another tenant's do not exist for it (404).
func (s *Server) routeActivations() {
	s.handle("GET /v1/activations", s.activations)
	s.handle("GET /v1/activations/{id}", s.activation)
	s.handle("GET /v1/dlq", s.deadLetters)
	s.handle("POST /v1/dlq/{id}/retry", s.retry)
}

// activationFilter reads the fn, since (RFC 3339) and limit parameters
// of an activation listing for caller c.
func activationFilter(r *http.Request, c caller) (activation.Filter, error) {
	q := r.URL.Query()
	f := activation.Filter{Tenant: c.tenant, Function: q.Get("fn")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return f, withStatus(http.StatusBadRequest, fmt.Errorf("limit must be a positive integer, got %q", l))
		}
		f.Limit = n
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return f, withStatus(http.StatusBadRequest, fmt.Errorf("since must be an RFC 3339 time, got %q", v))
		}
		f.Since = t
	}
	return f, nil
}

// decisions are the values of GET /v1/activations?decision=.
var decisions = []activation.Decision{activation.Hit, activation.Miss, activation.Wait, activation.Error, activation.Skipped, activation.Delete}

// recordFilter reads the decision and errors parameters of an activation
// listing: the records to keep, or nil to keep all.
func recordFilter(q url.Values) (func(activation.Record) bool, error) {
	var keep []func(activation.Record) bool
	if v := q.Get("decision"); v != "" {
		d := activation.Decision(v)
		if !slices.Contains(decisions, d) {
			return nil, withStatus(http.StatusBadRequest, fmt.Errorf("decision must be one of %v, got %q", decisions, v))
		}
		keep = append(keep, func(r activation.Record) bool { return r.Decision == d })
	}
	if v := q.Get("errors"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return nil, withStatus(http.StatusBadRequest, fmt.Errorf("errors must be 1 or 0, got %q", v))
		}
		if on {
			keep = append(keep, func(r activation.Record) bool { return r.Decision == activation.Error || r.DeadLetter })
		}
	}
	if len(keep) == 0 {
		return nil, nil
	}
	return func(r activation.Record) bool {
		for _, k := range keep {
			if !k(r) {
				return false
			}
		}
		return true
	}, nil
}

// activations lists activation records, newest first; decision= and
// errors=1 filter a bounded scan (see listActivations).
func (s *Server) activations(w http.ResponseWriter, r *http.Request, c caller) error {
	f, err := activationFilter(r, c)
	if err != nil {
		return err
	}
	keep, err := recordFilter(r.URL.Query())
	if err != nil {
		return err
	}
	recs, err := s.listActivations(r.Context(), f, keep)
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []activation.Record{}
	}
	writeJSON(w, http.StatusOK, recs)
	return nil
}

// listActivations returns the records f selects, newest first; with
// keep, the first f.Limit (default 100) of the DefaultActivationScan
// newest that keep accepts.
func (s *Server) listActivations(ctx context.Context, f activation.Filter, keep func(activation.Record) bool) ([]activation.Record, error) {
	if keep == nil {
		return s.cfg.Index.Activations(ctx, f)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	f.Limit = DefaultActivationScan
	recs, err := s.cfg.Index.Activations(ctx, f)
	if err != nil {
		return nil, err
	}
	out := []activation.Record{} // not recs[:0]: the scan is garbage once this returns
	for _, r := range recs {
		if len(out) == limit {
			break
		}
		if keep(r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// MinActivationPrefix is the shortest activation id prefix the API
// resolves, as git does short hashes (tables show 12 characters).
const MinActivationPrefix = 8

// maxCandidates is how many ids the answer to an ambiguous prefix lists.
const maxCandidates = 10

// ownActivation gets caller c's activation whose id is id, or else whose
// id starts with id: a unique prefix of at least MinActivationPrefix
// characters among c's own records. Another tenant's records do not
// exist for c: they are never candidates, and their full ids get the
// answers of an absent id.
func (s *Server) ownActivation(ctx context.Context, c caller, id string) (activation.Record, error) {
	rec, err := s.cfg.Index.GetActivation(ctx, id)
	if err == nil && (c.tenant == "" || rec.Tenant == c.tenant) {
		return rec, nil
	}
	if err != nil && !errors.Is(err, index.ErrNotFound) {
		return activation.Record{}, err
	}
	if len(id) < MinActivationPrefix {
		return activation.Record{}, fmt.Errorf("%w: no activation %s, and a short id must have at least %d characters",
			errInvalid, id, MinActivationPrefix)
	}
	recs, err := s.cfg.Index.ActivationsByPrefix(ctx, id, c.tenant, maxCandidates+1)
	switch {
	case err != nil:
		return activation.Record{}, err
	case len(recs) == 0:
		return activation.Record{}, fmt.Errorf("no activation %s: %w", id, index.ErrNotFound)
	case len(recs) == 1:
		return recs[0], nil
	}
	n := strconv.Itoa(len(recs))
	if len(recs) > maxCandidates {
		recs, n = recs[:maxCandidates], "more than "+strconv.Itoa(maxCandidates)
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return activation.Record{}, fmt.Errorf("%w: %s activations start with %s: %s; give more characters",
		errAmbiguous, n, id, strings.Join(ids, ", "))
}

func (s *Server) activation(w http.ResponseWriter, r *http.Request, c caller) error {
	rec, err := s.ownActivation(r.Context(), c, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec)
	return nil
}

// deadLetters lists the dead letters not retried yet, newest first,
// among the DefaultDLQScan newest activations matching the filter. A dead
// letter counts as retried once a newer activation names it in RetryOf
// (a retry that failed again is listed in its place).
func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request, c caller) error {
	f, err := activationFilter(r, c)
	if err != nil {
		return err
	}
	limit := f.Limit
	if limit == 0 {
		limit = 100
	}
	f.Limit = DefaultDLQScan
	recs, err := s.cfg.Index.Activations(r.Context(), f)
	if err != nil {
		return err
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
	return nil
}

// retry runs a dead letter's event again (pipeline.Retry); the new
// activation is the answer. Tenants retry their own dead letters only,
// on buckets that are still theirs.
func (s *Server) retry(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := jsonBody(r); err != nil {
		return err
	}
	rec, err := s.ownActivation(r.Context(), c, r.PathValue("id"))
	if err == nil {
		err = pipeline.CheckRetry(rec)
	}
	if err == nil {
		err = s.checkRun(r.Context(), c, rec.Function, rec.Event.Bucket)
	}
	if err != nil {
		return err
	}
	out, err := s.cfg.Pipeline.Retry(r.Context(), rec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
