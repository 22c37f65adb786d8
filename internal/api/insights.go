package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
)

// Defaults of the dashboard's read endpoints.
const (
	// DefaultSeriesMinutes is how many minutes GET /v1/series covers
	// without ?minutes=; MaxSeriesMinutes is the most it may ask for.
	DefaultSeriesMinutes = 60
	MaxSeriesMinutes     = 24 * 60
	// SeriesScanCap is the most activation records one GET /v1/series
	// reads (the newest of the window). A window with more activations
	// than that undercounts its oldest minutes and says complete=false:
	// the cost of a request stays bounded however busy the cluster is.
	SeriesScanCap = 20000
)

// seriesScanCap is SeriesScanCap, lowered by tests.
var seriesScanCap = SeriesScanCap

// routeInsights mounts the dashboard's read endpoints: per-function
// totals and the runs-vs-hits series.
func (s *Server) routeInsights() {
	s.handle("GET /v1/stats/functions", s.functionStats)
	s.handle("GET /v1/series", s.series)
}

// FunctionTotals is one row of GET /v1/stats/functions: a function's
// totals (index.Index.FunctionStats) and its hit rate.
type FunctionTotals struct {
	activation.FunctionStats
	// HitRate is Hits / (Hits + Runs), 0 when both are 0.
	HitRate float64 `json:"hit_rate"`
}

// functionStats answers the caller's tenant's functions (the admin's: every
// tenant's, or the one named by TenantHeader), sorted by tenant, then
// function. Like /v1/stats they are cluster-wide and never lowered by
// pruning activations.
func (s *Server) functionStats(w http.ResponseWriter, r *http.Request, c caller) error {
	fs, err := s.cfg.Index.FunctionStats(r.Context(), c.tenant)
	if err != nil {
		return err
	}
	out := make([]FunctionTotals, 0, len(fs))
	for _, f := range fs {
		out = append(out, FunctionTotals{FunctionStats: f, HitRate: f.HitRate()})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// SeriesPoint is one minute of GET /v1/series: the activations that
// started in it.
type SeriesPoint struct {
	T      time.Time `json:"t"`      // the minute's start, UTC
	Runs   int64     `json:"runs"`   // decision miss
	Hits   int64     `json:"hits"`   // decision hit or wait
	Errors int64     `json:"errors"` // decision error
}

// Series is the body of GET /v1/series.
type Series struct {
	// Minutes are exactly as many as asked for, oldest first, the last
	// one the current minute; minutes without activations are zero.
	Minutes []SeriesPoint `json:"minutes"`
	// Complete is false when the window held more than SeriesScanCap
	// activations: only the newest were counted.
	Complete bool `json:"complete"`
}

// series counts the caller's activations (optionally one function's) by
// minute over the last ?minutes= minutes, from the activation records:
// cluster-wide, and the same after a restart. Records pruned already
// are not counted.
func (s *Server) series(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	minutes := DefaultSeriesMinutes
	if v := q.Get("minutes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxSeriesMinutes {
			return withStatus(http.StatusBadRequest, fmt.Errorf("minutes must be an integer from 1 to %d, got %q", MaxSeriesMinutes, v))
		}
		minutes = n
	}
	first := time.Now().UTC().Truncate(time.Minute).Add(-time.Duration(minutes-1) * time.Minute)
	recs, err := s.cfg.Index.Activations(r.Context(), activation.Filter{
		Tenant: c.tenant, Function: q.Get("fn"), Since: first, Limit: seriesScanCap + 1,
	})
	if err != nil {
		return err
	}
	out := Series{Minutes: make([]SeriesPoint, minutes), Complete: len(recs) <= seriesScanCap}
	for i := range out.Minutes {
		out.Minutes[i].T = first.Add(time.Duration(i) * time.Minute)
	}
	for _, rec := range recs[:min(len(recs), seriesScanCap)] {
		if rec.Start.Before(first) {
			continue // not expected: Since is inclusive
		}
		// A start ahead of this replica's clock (another replica's
		// clock) counts in the current minute.
		i := min(int(rec.Start.Sub(first)/time.Minute), minutes-1)
		switch p := &out.Minutes[i]; rec.Decision {
		case activation.Miss:
			p.Runs++
		case activation.Hit, activation.Wait:
			p.Hits++
		case activation.Error:
			p.Errors++
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
