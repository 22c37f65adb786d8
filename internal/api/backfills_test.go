package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/backfill"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// newBackfillEnv is an API server with a backfill manager that is not
// running: jobs are created and stay running, which is all these tests
// look at (internal/backfill runs them).
func newBackfillEnv(t *testing.T, withManager bool) *env {
	t.Helper()
	idx := testutil.BoltIndex(t)
	reg := registry.New(idx, nil)
	pipe, err := pipeline.New(pipeline.Config{Index: idx, Objects: store, Registry: reg, Runtimes: map[string]runtime.Runtime{"test": nopRuntime{}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Pipeline: pipe, Registry: reg, Index: idx, AdminToken: adminToken, TenantRuntimes: []string{"test"},
		Tenants: []api.Tenant{
			{Name: "acme", Token: acmeToken, Buckets: []string{"acme-in", "acme-out"}},
			{Name: "globex", Token: otherToken, Buckets: []string{"globex-in", "globex-out"}},
		}}
	if withManager {
		cfg.Backfills, err = backfill.New(backfill.Config{Index: idx, Objects: store, Registry: reg, Pipeline: pipe,
			Heartbeat: 20 * time.Millisecond, StaleAfter: time.Second}) // a cancel waits a few heartbeats for a runner
		if err != nil {
			t.Fatal(err)
		}
	}
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &env{ts: ts, idx: idx, reg: reg}
}

// A tenant starts, sees and cancels its own backfills only, of its own
// functions on its own buckets; the admin sees all.
func TestBackfills_TenantIsolation(t *testing.T) {
	e := newBackfillEnv(t, true)
	for _, d := range []struct{ tenant, name, in, out string }{
		{"acme", "thumbs", "acme-in", "acme-out"},
		{"globex", "thumbs", "globex-in", "globex-out"},
		{"globex", "leaky", "acme-in", "globex-out"}, // deployed when acme-in was globex's, say
	} {
		fn := fnDef(d.name, "test", d.in, d.out)
		fn.Tenant = d.tenant
		if _, err := e.reg.Deploy(t.Context(), fn, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	code, body := e.do(t, "POST", "/v1/backfills", acmeToken, map[string]any{"function": "thumbs", "rate": 5})
	if code != http.StatusCreated {
		t.Fatalf("acme starts a backfill: %d %s", code, body)
	}
	var job backfill.Job
	if err := json.Unmarshal([]byte(body), &job); err != nil {
		t.Fatal(err)
	}
	if job.Tenant != "acme" || job.Bucket != "acme-in" || job.State != backfill.Running || job.Rate != 5 {
		t.Fatalf("acme's job %+v: want tenant acme, bucket acme-in, running, rate 5", job)
	}

	for _, tc := range []struct {
		name, token, method, path string
		body                      any
		want                      int
		says                      string
	}{
		{"OtherTenantGet", otherToken, "GET", "/v1/backfills/" + job.ID, nil, http.StatusNotFound, "not found"},
		{"OtherTenantCancel", otherToken, "POST", "/v1/backfills/" + job.ID + "/cancel", map[string]any{}, http.StatusNotFound, "not found"},
		{"OtherBucket", acmeToken, "POST", "/v1/backfills", map[string]any{"function": "thumbs", "bucket": "globex-in"}, http.StatusForbidden, "globex-in"},
		{"BucketNoLongerOwn", otherToken, "POST", "/v1/backfills", map[string]any{"function": "leaky"}, http.StatusForbidden, "acme-in"},
		{"OtherTenantsFunction", otherToken, "POST", "/v1/backfills", map[string]any{"function": "nope"}, http.StatusNotFound, "nope"},
		{"TenantFromBody", acmeToken, "POST", "/v1/backfills", map[string]any{"function": "thumbs", "tenant": "globex"}, http.StatusBadRequest, "tenant"},
		{"NotTheTrigger", acmeToken, "POST", "/v1/backfills", map[string]any{"function": "thumbs", "bucket": "acme-out"}, http.StatusBadRequest, "trigger bucket"},
		{"AlreadyRunning", acmeToken, "POST", "/v1/backfills", map[string]any{"function": "thumbs"}, http.StatusConflict, job.ID},
		{"BadRate", otherToken, "POST", "/v1/backfills", map[string]any{"function": "thumbs", "rate": -2}, http.StatusBadRequest, "rate must be"},
		{"NotJSON", acmeToken, "POST", "/v1/backfills/" + job.ID + "/cancel", "x", http.StatusUnsupportedMediaType, "application/json"},
		{"NoToken", "", "GET", "/v1/backfills", nil, http.StatusUnauthorized, "token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var code int
			var body string
			if tc.name == "NotJSON" {
				code, body = e.do(t, tc.method, tc.path, tc.token, tc.body, "Content-Type", "text/plain")
			} else {
				code, body = e.do(t, tc.method, tc.path, tc.token, tc.body)
			}
			if code != tc.want || !strings.Contains(body, tc.says) {
				t.Fatalf("%s %s: %d %s, want %d saying %q", tc.method, tc.path, code, body, tc.want, tc.says)
			}
		})
	}

	list := func(token string, hdr ...string) []string {
		t.Helper()
		code, body := e.do(t, "GET", "/v1/backfills", token, nil, hdr...)
		var jobs []backfill.Job
		if code != http.StatusOK || json.Unmarshal([]byte(body), &jobs) != nil {
			t.Fatalf("list: %d %s", code, body)
		}
		var ids []string
		for _, j := range jobs {
			ids = append(ids, j.Tenant+"/"+j.ID)
		}
		return ids
	}
	if got := list(otherToken); len(got) != 0 {
		t.Errorf("globex lists %v, want none of acme's", got)
	}
	if got := list(acmeToken); !slices.Equal(got, []string{"acme/" + job.ID}) {
		t.Errorf("acme lists %v, want its job", got)
	}
	if got := list(adminToken); !slices.Equal(got, []string{"acme/" + job.ID}) {
		t.Errorf("admin lists %v, want every tenant's", got)
	}
	if got := list(adminToken, api.TenantHeader, "globex"); len(got) != 0 {
		t.Errorf("admin acting for globex lists %v, want none", got)
	}

	// The owner cancels; nothing runs the job here, so it is canceled
	// once a manager picks it up: the answer is the job as it is now.
	c := &api.Client{BaseURL: e.ts.URL, Token: acmeToken}
	got, err := c.CancelBackfill(t.Context(), job.ID)
	if err != nil || got.ID != job.ID {
		t.Fatalf("acme cancels its job: %+v, %v", got, err)
	}
	if got, err := c.Backfill(t.Context(), job.ID); err != nil || got.ID != job.ID {
		t.Fatalf("acme reads its job: %+v, %v", got, err)
	}
}

// The job's JSON names are a contract with the dashboard: exactly these.
func TestBackfills_JSONContract(t *testing.T) {
	e := newBackfillEnv(t, true)
	if _, err := e.reg.Deploy(t.Context(), fnDef("f", "test", "acme-in", "acme-out"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	code, body := e.do(t, "POST", "/v1/backfills", adminToken, map[string]any{"function": "f"})
	if code != http.StatusCreated {
		t.Fatalf("start: %d %s", code, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	// "finished" is left out until the job ends.
	want := []string{"bucket", "bytes", "concurrency", "created", "error", "errors", "function", "hits", "id", "objects",
		"prefix", "rate", "runs", "skipped", "state", "tenant", "total_bytes", "total_objects", "updated", "version", "waits"}
	if !slices.Equal(keys, want) {
		t.Fatalf("job JSON keys %v, want exactly %v", keys, want)
	}
}

func TestBackfills_NoManager(t *testing.T) {
	e := newBackfillEnv(t, false)
	for _, path := range []string{"/v1/backfills", "/v1/backfills/x"} {
		code, body := e.do(t, "GET", path, adminToken, nil)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "not enabled") {
			t.Errorf("GET %s without a manager: %d %s, want 503", path, code, body)
		}
	}
}
