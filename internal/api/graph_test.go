package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// deployChain deploys acme-in/raw/ → thumb → acme-out → classify →
// acme-in/labels/ (acme's), and globex's index on acme-out (as only the
// admin could: the bucket is not globex's).
func deployChain(t *testing.T, e *env) {
	t.Helper()
	for _, f := range []registry.Function{
		{Tenant: "acme", Name: "thumb", Runtime: "test", Trigger: registry.Trigger{Bucket: "acme-in", Prefix: "raw/"}, Output: registry.Output{Bucket: "acme-out"}},
		{Tenant: "acme", Name: "classify", Runtime: "test", Trigger: registry.Trigger{Bucket: "acme-out"}, Output: registry.Output{Bucket: "acme-in", KeyTemplate: "labels/{key}"}},
		{Tenant: "globex", Name: "index", Runtime: "test", Trigger: registry.Trigger{Bucket: "acme-out"}, Output: registry.Output{Bucket: "globex-out"}},
	} {
		if _, err := e.reg.Deploy(t.Context(), f, []byte("code")); err != nil {
			t.Fatal(err)
		}
	}
}

// neighbours is infos as name:upstream:downstream.
func neighbours(infos ...api.FunctionInfo) string {
	var s []string
	for _, f := range infos {
		s = append(s, fmt.Sprintf("%s:%s:%s", f.Name, strings.Join(f.Upstream, ","), strings.Join(f.Downstream, ",")))
	}
	return strings.Join(s, " ")
}

// Issue 20 item 4: the function list and get name each function's
// upstream and downstream functions, those the caller may see, tenant-
// qualified where not the caller's.
func TestFunctions_UpstreamDownstream(t *testing.T) {
	e := newEnv(t, setup{})
	deployChain(t, e)
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		c    *api.Client
		want string
	}{
		{"Acme", &api.Client{BaseURL: e.ts.URL, Token: acmeToken}, "classify:thumb: thumb::classify"},
		{"Globex", &api.Client{BaseURL: e.ts.URL, Token: otherToken}, "index::"},
		{"Admin", &api.Client{BaseURL: e.ts.URL, Token: adminToken}, "classify:acme/thumb: index:acme/thumb: thumb::acme/classify,globex/index"},
		{"AdminForGlobex", &api.Client{BaseURL: e.ts.URL, Token: adminToken, Tenant: "globex"}, "index::"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			infos, err := tc.c.FunctionInfos(ctx)
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(infos, func(a, b api.FunctionInfo) int { return strings.Compare(a.Name, b.Name) })
			if got := neighbours(infos...); got != tc.want {
				t.Errorf("list: %s, want %s", got, tc.want)
			}
		})
	}
	acme := &api.Client{BaseURL: e.ts.URL, Token: acmeToken}
	if f, err := acme.FunctionInfo(ctx, "thumb"); err != nil || neighbours(f) != "thumb::classify" || f.Trigger.Prefix != "raw/" {
		t.Errorf("get thumb: %s (%+v), %v", neighbours(f), f.Trigger, err)
	}
	// Empty lists are [], not null.
	code, body := e.do(t, "GET", "/v1/functions/thumb", acmeToken, nil)
	if code != http.StatusOK || !strings.Contains(body, `"upstream": []`) || !strings.Contains(body, `"downstream": [`) {
		t.Errorf("GET /v1/functions/thumb: %d %s", code, body)
	}
}

// Issue 20 item 4: GET /v1/graph has buckets and functions as nodes,
// trigger and output edges with each function's totals, and a tenant sees
// only its own.
func TestGraph(t *testing.T) {
	e := newEnv(t, setup{})
	deployChain(t, e)
	ctx := t.Context()
	for i, d := range []activation.Decision{activation.Miss, activation.Hit, activation.Hit, activation.Error} {
		rec := activation.Record{ID: fmt.Sprintf("graph-%08d", i), Tenant: "acme", Function: "thumb", Decision: d}
		if err := e.idx.AddActivation(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	edges := func(g api.FunctionGraph) string {
		var s []string
		for _, e := range g.Edges {
			s = append(s, fmt.Sprintf("%s>%s:%d/%d/%d/%.2f", e.From, e.To, e.Events, e.Runs, e.Hits, e.HitRate))
		}
		return strings.Join(s, " ")
	}
	nodes := func(g api.FunctionGraph) string {
		var s []string
		for _, n := range g.Nodes {
			s = append(s, fmt.Sprintf("%s=%s:%s:%s", n.ID, n.Kind, n.Tenant, n.Name))
		}
		return strings.Join(s, " ")
	}
	acme, err := (&api.Client{BaseURL: e.ts.URL, Token: acmeToken}).Graph(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := nodes(acme), "bucket:acme-in=bucket::acme-in bucket:acme-out=bucket::acme-out "+
		"function:acme/classify=function:acme:classify function:acme/thumb=function:acme:thumb"; got != want {
		t.Errorf("acme's nodes:\n%s\nwant\n%s", got, want)
	}
	if got, want := edges(acme), "bucket:acme-out>function:acme/classify:0/0/0/0.00 function:acme/classify>bucket:acme-in:0/0/0/0.00 "+
		"bucket:acme-in>function:acme/thumb:4/1/2/0.67 function:acme/thumb>bucket:acme-out:4/1/2/0.67"; got != want {
		t.Errorf("acme's edges:\n%s\nwant\n%s", got, want)
	}
	globex, err := (&api.Client{BaseURL: e.ts.URL, Token: otherToken}).Graph(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := nodes(globex) + " " + edges(globex); strings.Contains(got, "thumb") || strings.Contains(got, "classify") || strings.Contains(got, "acme-in") {
		t.Errorf("globex sees acme's functions: %s", got)
	}
	admin, err := (&api.Client{BaseURL: e.ts.URL, Token: adminToken}).Graph(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(admin.Nodes) != 6 || len(admin.Edges) != 6 {
		t.Errorf("admin: %s; %s: want 3 buckets, 3 functions and 6 edges", nodes(admin), edges(admin))
	}
	// The JSON names are the dashboard's.
	code, body := e.do(t, "GET", "/v1/graph", acmeToken, nil)
	for _, want := range []string{`"nodes"`, `"edges"`, `"kind": "bucket"`, `"kind": "function"`, `"from"`, `"to"`, `"events": 4`, `"runs": 1`, `"hits": 2`, `"hit_rate"`} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET /v1/graph: %d, lacks %s:\n%s", code, want, body)
		}
	}
}

// A deploy that would close a cycle is a 400 naming it.
func TestDeploy_CycleRefused(t *testing.T) {
	e := newEnv(t, setup{})
	deployChain(t, e)
	// acme-in/labels/… under raw/ would feed thumb again.
	req := deployReq(registry.Function{Name: "relabel", Runtime: "test", Trigger: registry.Trigger{Bucket: "acme-in", Prefix: "labels/"},
		Output: registry.Output{Bucket: "acme-in", KeyTemplate: "raw/{key}"}}, "code")
	code, body := e.do(t, "POST", "/v1/functions", acmeToken, req)
	if code != http.StatusBadRequest || !strings.Contains(body, "deploying relabel would close a cycle: thumb → classify → relabel → thumb") {
		t.Fatalf("deploy closing a cycle: %d %s, want 400 naming it", code, body)
	}
}
