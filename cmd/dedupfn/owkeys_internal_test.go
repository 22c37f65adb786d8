package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/owapi"
)

// Issue 21: the OpenWhisk API's keys map namespaces to the admin or a
// tenant; anything else is refused at start.
func TestOpenWhiskNamespaces(t *testing.T) {
	const gk, ak, bk = "u1:guest-key-0123456789", "u2:acme-key-0123456789", "u3:beta-key-0123456789"
	tenants := []api.Tenant{{Name: "acme", Buckets: []string{"a-in"}}, {Name: "beta", Buckets: []string{"b-in"}, OpenWhiskKey: bk}}
	got, err := openWhiskNamespaces("guest="+gk+"; acme="+ak+";", "guest", tenants)
	want := []owapi.Namespace{
		{Name: "guest", Key: gk, Admin: true},
		{Name: "acme", Key: ak, Tenant: "acme", Buckets: []string{"a-in"}},
		{Name: "beta", Key: bk, Tenant: "beta", Buckets: []string{"b-in"}},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("openWhiskNamespaces = %+v, %v, want %+v", got, err, want)
	}
	if got, err := openWhiskNamespaces("", "guest", []api.Tenant{{Name: "acme"}}); err != nil || got != nil {
		t.Fatalf("no keys = %+v, %v, want none", got, err)
	}
	for _, tc := range []struct{ name, env, admin, want string }{
		{"UnknownNamespace", "nobody=" + gk, "guest", "neither the admin's"},
		{"RenamedAdmin", "guest=" + gk, "ops", "neither the admin's"},
		{"NoKey", "guest", "guest", "namespace=UUID:KEY"},
		{"KeyWithoutColon", "guest=abcdefghijklmnopq", "guest", "namespace=UUID:KEY"},
		{"TwoKeys", "beta=" + gk, "guest", "has a key already"},
		{"TenantNamedLikeAdmin", "acme=" + ak, "acme", "named like the OpenWhisk admin namespace"},
		{"WellKnownGuestKey", "guest=" + owapi.WellKnownGuestKey, "guest", "well-known guest key"},
		{"SameKeyTwice", "guest=" + gk + ";acme=" + gk, "guest", "also another namespace's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openWhiskNamespaces(tc.env, tc.admin, tenants)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if err != nil && (strings.Contains(err.Error(), "key-0123") || strings.Contains(err.Error(), "abcdefgh")) {
				t.Fatalf("the error quotes a key: %v", err)
			}
		})
	}
}

func TestParseTenantsFile_OpenWhiskKey(t *testing.T) {
	got, err := parseTenantsFile("t.yaml", []byte("acme:\n  token: acme-token-0123456789\n  buckets: [a]\n  openwhisk_key: u:acme-ow-key-0123\n"))
	if err != nil || len(got) != 1 || got[0].OpenWhiskKey != "u:acme-ow-key-0123" {
		t.Fatalf("parseTenantsFile = %+v, %v", got, err)
	}
}
