package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/dedupfn/dedupfn/internal/backfill"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// TestStatusOf: every sentinel the handlers meet maps to its status in
// statusOf, however wrapped; an error's own status wins; the rest is 500.
func TestStatusOf(t *testing.T) {
	invalidFn := (&registry.Function{Name: "f"}).Validate()
	for _, c := range []struct {
		err  error
		want int
	}{
		{withStatus(http.StatusRequestTimeout, index.ErrNotFound), http.StatusRequestTimeout},
		{fmt.Errorf("%w: x", errForbidden), http.StatusForbidden},
		{fmt.Errorf("%w: x", errInvalid), http.StatusBadRequest},
		{invalidFn, http.StatusBadRequest},
		{fmt.Errorf("%w: x", backfill.ErrInvalid), http.StatusBadRequest},
		{fmt.Errorf("get: %w", registry.ErrNotFound), http.StatusNotFound},
		{index.ErrNotFound, http.StatusNotFound},
		{objects.ErrNotFound, http.StatusNotFound},
		{fmt.Errorf("deploy: %w", objects.NoSuchBucket("b", nil)), http.StatusBadRequest},
		{backfill.ErrNotFound, http.StatusNotFound},
		{pipeline.ErrNotRetryable, http.StatusConflict},
		{backfill.ErrConflict, http.StatusConflict},
		{registry.ErrParamsTooLarge, http.StatusRequestEntityTooLarge},
		{context.Canceled, 499},
		{errors.New("index down: must retry"), http.StatusInternalServerError},
	} {
		if got := statusOf(c.err); got != c.want {
			t.Errorf("statusOf(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	const reason = "function f: runtime must be set (wasm, process or openwhisk)"
	if !errors.Is(invalidFn, registry.ErrInvalid) || invalidFn.Error() != reason {
		t.Errorf("Validate: %v, want the reason alone, wrapping registry.ErrInvalid", invalidFn)
	}
}
