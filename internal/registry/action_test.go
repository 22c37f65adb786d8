package registry_test

import (
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/registry"
)

// An action (no trigger, no output bucket) validates, with the other
// checks intact, and no object event ever matches it.
func TestValidate_Action(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*registry.Function)
		wantErr string
	}{
		{"OK", func(*registry.Function) {}, ""},
		{"NoRuntime", func(f *registry.Function) { f.Runtime = "" }, "runtime must be set"},
		{"NegativeTimeout", func(f *registry.Function) { f.Limits.Timeout = -1 }, "limits must be >= 0"},
		{"OutputOnly", func(f *registry.Function) { f.Output.Bucket = "out" }, "trigger bucket must be set"},
		{"PrefixWithoutBucket", func(f *registry.Function) { f.Trigger.Prefix = "in/" }, "trigger bucket must be set"},
		{"TriggerOnly", func(f *registry.Function) { f.Trigger.Bucket = "in" }, "output bucket must be set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := registry.Function{Name: "hello", Runtime: "process", CodeDigest: "abc"}
			tc.mutate(&f)
			err := f.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if !f.IsAction() || f.Version == "" || f.Limits.Timeout != registry.DefaultTimeout {
					t.Fatalf("IsAction %v, defaults %+v", f.IsAction(), f)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestMatches_NeverAnAction(t *testing.T) {
	f := registry.Function{Name: "hello", Runtime: "process"}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if f.Matches("", "") || f.Matches("", "x") {
		t.Fatal("an action matched an event")
	}
	if fn := validFn(); fn.IsAction() {
		t.Fatal("a bucket function is an action")
	}
}

// The reconciler lists the trigger buckets: an action adds none (an
// empty bucket name would fail every listing).
func TestBuckets_NoneOfAnAction(t *testing.T) {
	r, _ := newRegistry(t)
	ctx := t.Context()
	if _, err := r.Deploy(ctx, registry.Function{Name: "hello", Runtime: "process"}, []byte("code")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Deploy(ctx, validFn(), []byte("code")); err != nil {
		t.Fatal(err)
	}
	if got := r.Buckets(); len(got) != 1 || got[0] != "images" {
		t.Fatalf("Buckets() = %q, want [images]", got)
	}
	if got := r.Match("", "x"); len(got) != 0 {
		t.Fatalf("Match of an empty bucket: %v", got)
	}
}
