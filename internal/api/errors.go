package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/dedupfn/dedupfn/internal/backfill"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// errForbidden marks errors answered with 403, errInvalid with 400,
// errAmbiguous (a short id naming several records) with 409; their text
// starts with the sentinel's ("forbidden: ...").
var (
	errForbidden = errors.New("forbidden")
	errInvalid   = errors.New("invalid")
	errAmbiguous = errors.New("ambiguous")
)

// statusError is an error answered with its own status, whatever it
// wraps (as Caddy's APIError): for an error whose status is known where
// it is made, such as a malformed query parameter or a body too large.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// withStatus returns err, answered with status.
func withStatus(status int, err error) error {
	return &statusError{status: status, err: err}
}

// statusOf is the one mapping from errors to statuses: a statusError's
// own, else its sentinel's, else 500.
func statusOf(err error) int {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.status
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	case errors.Is(err, errInvalid), errors.Is(err, registry.ErrInvalid), errors.Is(err, backfill.ErrInvalid),
		errors.Is(err, pipeline.ErrOutsideTrigger):
		return http.StatusBadRequest
	case errors.Is(err, objects.ErrNoSuchBucket):
		// The request names a bucket to create first: the caller's to fix,
		// and not a missing API resource (404).
		return http.StatusBadRequest
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, index.ErrNotFound), errors.Is(err, objects.ErrNotFound),
		errors.Is(err, backfill.ErrNotFound), errors.Is(err, pipeline.ErrNoLineage):
		return http.StatusNotFound
	case errors.Is(err, pipeline.ErrNotRetryable), errors.Is(err, backfill.ErrConflict), errors.Is(err, errAmbiguous):
		return http.StatusConflict
	case errors.Is(err, registry.ErrParamsTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, context.Canceled):
		return 499 // the client has gone (nginx's code)
	}
	return http.StatusInternalServerError
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

// writeError answers err with its status (statusOf) and text.
func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, statusOf(err), Error{Error: err.Error()})
}
