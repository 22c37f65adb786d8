package api

import (
	"fmt"
	"net/http"

	"github.com/dedupfn/dedupfn/internal/pipeline"
)

// routeLineage mounts GET /v1/lineage?bucket=&key=: an object's chain back
// to its upload and what was derived from it (pipeline.Lineage).
func (s *Server) routeLineage() {
	s.handle("GET /v1/lineage", s.lineage)
}

// lineage answers pipeline.Lineage for one of the caller's objects. An
// object in another tenant's bucket gets the answer of one dedupfn knows
// nothing of, so that a 404 tells a tenant nothing about others' objects.
func (s *Server) lineage(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	bucket, key := q.Get("bucket"), q.Get("key")
	if bucket == "" || key == "" {
		return fmt.Errorf("%w: bucket and key are required", errInvalid)
	}
	unknown := fmt.Errorf("%w: dedupfn knows nothing of %s/%s", pipeline.ErrNoLineage, bucket, key)
	visible := func(b string) bool { return c.checkBucket("bucket", b) == nil }
	if !visible(bucket) {
		return unknown
	}
	l, err := s.cfg.Pipeline.Lineage(r.Context(), bucket, key, visible)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}
