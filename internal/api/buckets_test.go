package api_test

import (
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// Issue 19 item 3: a deploy onto a trigger or output bucket that does not
// exist is refused with a 400 naming the bucket and how to create it (it
// succeeded silently: its events never came, or every run failed), and
// nothing is deployed.
func TestDeploy_MissingBucketRefused(t *testing.T) {
	ts, _ := newServer(t)
	c := &api.Client{BaseURL: ts.URL, Token: adminToken}
	for _, b := range []string{"deploy-in", "deploy-out"} {
		if err := store.MakeBucket(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, trigger, output, missing string }{
		{"Trigger", "deploy-in-nope", "deploy-out", "deploy-in-nope"},
		{"Output", "deploy-in", "deploy-out-nope", "deploy-out-nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fn := registry.Function{Name: "f" + strings.ToLower(tc.name), Runtime: "test",
				Trigger: registry.Trigger{Bucket: tc.trigger}, Output: registry.Output{Bucket: tc.output}}
			_, err := c.Deploy(t.Context(), api.DeployRequest{Function: fn, Code: []byte("x")})
			if err == nil {
				t.Fatal("deploy succeeded, want a 400")
			}
			for _, want := range []string{"400", strings.ToLower(tc.name) + ` bucket "` + tc.missing + `" does not exist`,
				"aws s3 mb s3://" + tc.missing, "--create-bucket " + tc.missing} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("deploy error %q does not say %q", err, want)
				}
			}
			if _, err := c.Function(t.Context(), fn.Name); err == nil || !strings.Contains(err.Error(), "404") {
				t.Errorf("refused function was deployed: get %v", err)
			}
		})
	}
	fn := registry.Function{Name: "fok", Runtime: "test", Trigger: registry.Trigger{Bucket: "deploy-in"}, Output: registry.Output{Bucket: "deploy-out"}}
	if _, err := c.Deploy(t.Context(), api.DeployRequest{Function: fn, Code: []byte("x")}); err != nil {
		t.Fatalf("deploy onto existing buckets: %v", err)
	}
}

// makeBuckets makes the buckets the tests deploy onto (deploy refuses a
// missing one). They may exist: the store is the test process's.
func makeBuckets(t *testing.T) {
	t.Helper()
	for _, b := range []string{"dedup-in", "dedup-out", "acme-in", "acme-out", "globex-in", "globex-out"} {
		if err := store.MakeBucket(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
}
