package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
)

// Issue 19 item 5: GET /v1/activations/{id} and POST /v1/dlq/{id}/retry
// take any unique prefix of at least 8 characters among the caller's own
// records, as git does; an ambiguous one is a 409 listing the caller's
// candidates, a shorter one a 400. Another tenant's records are never
// candidates and never revealed.
func TestShortActivationIDs(t *testing.T) {
	ts, idx := newServer(t)
	ctx := t.Context()
	acme := &api.Client{BaseURL: ts.URL, Token: acmeToken}
	globex := &api.Client{BaseURL: ts.URL, Token: otherToken}
	admin := &api.Client{BaseURL: ts.URL, Token: adminToken}
	now := time.Now().UTC()
	for _, r := range []activation.Record{
		{ID: "fab772f05bca4e0c9d1a2b3c4d5e6f70", Tenant: "acme"},
		{ID: "0123456789abcdef0123456789abcdef", Tenant: "acme"},
		{ID: "0123456789abffff0123456789abcdef", Tenant: "acme"},
		{ID: "0123456789ab00000000000000000000", Tenant: "globex"},
		{ID: "99887766554433221100998877665544", Tenant: "globex"},
		{ID: "act-1", Tenant: "acme"}, // a full id shorter than 8 still works
	} {
		r.Function, r.Decision, r.Start = "f", activation.Miss, now
		if err := idx.AddActivation(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		c      *api.Client
		id     string
		want   string   // the id found, or
		errHas []string // what the error says
		errNot []string // and must not
	}{
		{"Unique12", acme, "fab772f05bca", "fab772f05bca4e0c9d1a2b3c4d5e6f70", nil, nil},
		{"Unique8", acme, "fab772f0", "fab772f05bca4e0c9d1a2b3c4d5e6f70", nil, nil},
		{"Full", acme, "0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef", nil, nil},
		{"FullShort", acme, "act-1", "act-1", nil, nil},
		{"UniqueAmongOwn", acme, "0123456789abc", "0123456789abcdef0123456789abcdef", nil, nil},
		{"Ambiguous", acme, "0123456789ab", "", []string{"HTTP 409", "ambiguous", "0123456789abcdef0123456789abcdef", "0123456789abffff0123456789abcdef"},
			[]string{"0123456789ab00000000000000000000"}},
		{"AmbiguousAdmin", admin, "0123456789ab", "", []string{"HTTP 409", "0123456789ab00000000000000000000"}, nil},
		{"OtherTenantsUniqueForThem", globex, "0123456789ab", "0123456789ab00000000000000000000", nil, nil},
		{"OtherTenantsIsAbsent", acme, "99887766", "", []string{"HTTP 404"}, []string{"99887766554433221100998877665544"}},
		{"OtherTenantsFullIsAbsent", acme, "99887766554433221100998877665544", "", []string{"HTTP 404"}, nil},
		{"Absent", acme, "deadbeefdead", "", []string{"HTTP 404"}, nil},
		{"TooShort", acme, "fab772", "", []string{"HTTP 400", "at least 8 characters"}, nil},
		{"TooShortOtherTenants", globex, "act-1", "", []string{"HTTP 400", "at least 8 characters"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.c.Activation(ctx, tc.id)
			if tc.want != "" {
				if err != nil || got.ID != tc.want {
					t.Fatalf("GET /v1/activations/%s = %s, %v; want %s", tc.id, got.ID, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("GET /v1/activations/%s = %s, want an error", tc.id, got.ID)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("GET /v1/activations/%s: %v; want it to say %q", tc.id, err, s)
				}
			}
			for _, s := range tc.errNot {
				if strings.Contains(err.Error(), s) {
					t.Errorf("GET /v1/activations/%s: %v; it reveals %q", tc.id, err, s)
				}
			}
		})
	}
	// Retry resolves a prefix the same way: the record found (not a dead
	// letter) is named in full in the refusal.
	if _, err := acme.Retry(ctx, "fab772f05bca"); err == nil || !strings.Contains(err.Error(), "activation fab772f05bca4e0c9d1a2b3c4d5e6f70 is not a dead letter") {
		t.Errorf("retry of a short id: %v; want the full id's refusal", err)
	}
	if _, err := acme.Retry(ctx, "0123456789ab"); err == nil || !strings.Contains(err.Error(), "HTTP 409") || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("retry of an ambiguous prefix: %v; want a 409", err)
	}
}
