package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/index"
	_ "github.com/dedupfn/dedupfn/internal/index/bolt"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

var store objects.Store

func TestMain(m *testing.M) { testutil.MainWithStore(m, &store) }

type nopRuntime struct{}

func (nopRuntime) Name() string                { return "test" }
func (nopRuntime) Version() string             { return "test/1" }
func (nopRuntime) Close(context.Context) error { return nil }
func (nopRuntime) Invoke(context.Context, *runtime.Invocation) (runtime.Result, error) {
	return runtime.Result{}, nil
}

const (
	adminToken = "admin-token-0123456789"
	acmeToken  = "acme-token-0123456789"
	otherToken = "globex-token-0123456789"
)

func newServer(t *testing.T) (*httptest.Server, index.Index) {
	t.Helper()
	makeBuckets(t)
	idx := testutil.BoltIndex(t)
	reg := registry.New(idx, nil)
	pipe, err := pipeline.New(pipeline.Config{Index: idx, Objects: store, Registry: reg, Runtimes: map[string]runtime.Runtime{"test": nopRuntime{}}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Pipeline: pipe, Registry: reg, Index: idx, AdminToken: adminToken,
		TenantRuntimes: []string{"test"},
		Tenants: []api.Tenant{
			{Name: "acme", Token: acmeToken, Buckets: []string{"dedup-in", "dedup-out"}},
			{Name: "globex", Token: otherToken, Buckets: []string{"dedup-in", "dedup-out"}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, idx
}

func TestAuth(t *testing.T) {
	ts, _ := newServer(t)
	for _, tc := range []struct {
		name, path, token string
		want              int
	}{
		{"HealthzOpen", "/healthz", "", 200},
		{"NoToken", "/v1/stats", "", 401},
		{"WrongToken", "/v1/stats", "nope", 401},
		{"Admin", "/v1/stats", adminToken, 200},
		{"Tenant", "/v1/stats", acmeToken, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", ts.URL+tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.want)
			}
		})
	}
}

// One tenant sees none of another's functions, activations or totals.
func TestTenantIsolation(t *testing.T) {
	ts, idx := newServer(t)
	acme := &api.Client{BaseURL: ts.URL, Token: acmeToken}
	globex := &api.Client{BaseURL: ts.URL, Token: otherToken}
	ctx := t.Context()
	fn := registry.Function{Name: "f", Runtime: "test", Trigger: registry.Trigger{Bucket: "dedup-in"}, Output: registry.Output{Bucket: "dedup-out"}}
	// A tenant token cannot deploy for someone else, whatever the body says.
	fn.Tenant = "globex"
	resp, err := acme.Deploy(ctx, api.DeployRequest{Function: fn, Code: []byte("x")})
	if err != nil || resp.Function.Tenant != "acme" {
		t.Fatalf("deploy as acme: %v, tenant %q", err, resp.Function.Tenant)
	}
	if fns, _ := globex.Functions(ctx); len(fns) != 0 {
		t.Fatalf("globex sees %d functions of acme", len(fns))
	}
	if _, err := globex.Function(ctx, "f"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("globex get acme's function: %v, want 404", err)
	}
	rec := activation.Record{ID: "act-00000001", Tenant: "acme", Function: "f", Decision: activation.Miss}
	if err := idx.AddActivation(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// (An id of 8 characters or more: a shorter one that is not the
	// caller's own is refused as too short, for any tenant alike.)
	if _, err := globex.Activation(ctx, "act-00000001"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("globex read acme's activation: %v, want 404", err)
	}
	if recs, _ := globex.Activations(ctx, "", 0); len(recs) != 0 {
		t.Fatalf("globex lists %d of acme's activations", len(recs))
	}
	if st, _ := globex.Stats(ctx); st.Events != 0 {
		t.Fatalf("globex stats count acme's events: %+v", st)
	}
	if st, _ := acme.Stats(ctx); st.Events != 1 {
		t.Fatalf("acme stats %+v, want 1 event", st)
	}
}

func TestDeployValidationError(t *testing.T) {
	ts, _ := newServer(t)
	c := &api.Client{BaseURL: ts.URL, Token: adminToken}
	_, err := c.Deploy(t.Context(), api.DeployRequest{Function: registry.Function{Name: "f", Runtime: "test"}})
	if err == nil || !strings.Contains(err.Error(), "trigger bucket must be set") || !strings.Contains(err.Error(), "HTTP 400") {
		t.Fatalf("deploy without bucket: %v", err)
	}
	_, err = c.Deploy(t.Context(), api.DeployRequest{Function: registry.Function{Name: "f", Runtime: "cobol",
		Trigger: registry.Trigger{Bucket: "dedup-in"}, Output: registry.Output{Bucket: "dedup-out"}}})
	if err == nil || !strings.Contains(err.Error(), `runtime "cobol" is not enabled`) {
		t.Fatalf("deploy with unknown runtime: %v", err)
	}
}
