package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

const (
	tokA = "0123456789abcdef"
	tokB = "fedcba9876543210"
)

func TestParseTenantTokens(t *testing.T) {
	got, err := parseTenantTokens(" acme=" + tokA + ":acme-in, acme-out ; globex=" + tokB + ":globex-in;")
	want := []api.Tenant{
		{Name: "acme", Token: tokA, Buckets: []string{"acme-in", "acme-out"}},
		{Name: "globex", Token: tokB, Buckets: []string{"globex-in"}},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parse = %+v, %v; want %+v", got, err, want)
	}
	if got, err := parseTenantTokens(""); err != nil || got != nil {
		t.Fatalf("parse empty = %v, %v", got, err)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"OldSyntax", "acme=" + tokA + ",globex=" + tokB, "has no buckets: the syntax is tenant=token:bucket1"},
		{"NoBuckets", "acme=" + tokA, "acme has no buckets"},
		{"EmptyBucket", "acme=" + tokA + ":", "bucket name must match"},
		{"EmptyBucketInList", "acme=" + tokA + ":a,,b", "bucket name must match"},
		{"ShortToken", "acme=short:b", "16+ characters, got 5"},
		{"NoName", "=" + tokA + ":b", "tenant name must match"},
		{"NoEquals", "acme", "tenant name must match"},
		{"ReservedDefault", "default=" + tokA + ":b", "reserved"},
		{"TokenWithComma", "acme=" + tokA + ",x:b", "token must be made of"},
		{"TokenWithEquals", "acme=" + tokA + "=x:b", "token must be made of"},
		{"BadBucket", "acme=" + tokA + ":a b", "bucket name must match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTenantTokens(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseTenantTokens(%q) = %v, want error containing %q", tc.in, err, tc.want)
			}
			if strings.Contains(err.Error(), tokA) {
				t.Fatalf("error %q reveals the token", err)
			}
		})
	}
}

func TestLoadTenants(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tenants.yaml")
	os.WriteFile(file, []byte("initech:\n  token: "+tokB+"\n  buckets: [initech-in, initech-out]\n"), 0o600)
	got, err := loadTenants("admin-token-0123456789", "acme="+tokA+":acme-in", file)
	want := []api.Tenant{
		{Name: "acme", Token: tokA, Buckets: []string{"acme-in"}},
		{Name: "initech", Token: tokB, Buckets: []string{"initech-in", "initech-out"}},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("loadTenants = %+v, %v; want %+v", got, err, want)
	}
	for _, tc := range []struct{ name, admin, env, yaml, want string }{
		{"NoAdmin", "", "acme=" + tokA + ":a", "", "need an admin token: set DEDUPFN_API_TOKEN"},
		{"TokenIsAdmin", tokA, "acme=" + tokA + ":a", "", "also the admin's"},
		{"SameTokenTwice", "admin-token-0123456789", "acme=" + tokA + ":a;globex=" + tokA + ":b", "", "also the admin's or another tenant's"},
		{"SameNameTwice", "admin-token-0123456789", "acme=" + tokA + ":a", "acme: {token: " + tokB + ", buckets: [b]}\n", "defined twice"},
		{"FileUnknownKey", "admin-token-0123456789", "", "acme: {token: " + tokB + ", bucket: [b]}\n", "field bucket not found"},
		{"FileNoBuckets", "admin-token-0123456789", "", "acme: {token: " + tokB + "}\n", "at least one bucket"},
		{"FileNotAMap", "admin-token-0123456789", "", "- acme\n", "must be a map"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ""
			if tc.yaml != "" {
				f = filepath.Join(t.TempDir(), "t.yaml")
				os.WriteFile(f, []byte(tc.yaml), 0o600)
			}
			_, err := loadTenants(tc.admin, tc.env, f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loadTenants: %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// Issue 9 item 4: with tenant tokens and no admin token, every caller was
// the admin. serve refuses to start.
func TestServeRefusesTenantsWithoutAdmin(t *testing.T) {
	for _, k := range []string{"DEDUPFN_ACCESS_KEY", "DEDUPFN_SECRET_KEY", "DEDUPFN_API_TOKEN"} {
		t.Setenv(k, "")
	}
	t.Setenv("DEDUPFN_TENANT_TOKENS", "acme="+tokA+":acme-in")
	port := func() string { _, p, _ := strings.Cut(testutil.FreeAddr(t), ":"); return p }
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--data", filepath.Join(t.TempDir(), "data"),
			"--api-addr", "127.0.0.1:" + port(), "--s3-addr", "127.0.0.1:" + port()})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "need an admin token") {
			t.Fatalf("serve: %v, want a refusal naming the admin token", err)
		}
	case <-time.After(10 * time.Second):
		cancel()
		<-done
		t.Fatal("serve with tenant tokens and no admin token kept running")
	}
}

// FuzzParseTenantTokens: any input either parses into tenants that pass
// checkTenant (so the API gets only well-formed tenants), or fails with an
// error that does not quote a token.
func FuzzParseTenantTokens(f *testing.F) {
	for _, s := range []string{
		"acme=" + tokA + ":acme-in,acme-out;globex=" + tokB + ":globex-in",
		"acme=" + tokA + ",globex=" + tokB,
		"acme=" + tokA + ":", ";;", "=:,", "acme=" + tokA + ":a;acme=" + tokB + ":b",
		"acme:\n  token: " + tokA + "\n  buckets: [a]\n  openwhisk_namespace: ns\n  openwhisk_auth: u:k\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := parseTenantTokens(s)
		if err != nil {
			return
		}
		for _, tn := range ts {
			if err := checkTenant(tn); err != nil {
				t.Fatalf("parsed %q into an invalid tenant %+v: %v", s, tn, err)
			}
			for _, sep := range []string{";", ",", ":", "=", " "} {
				if strings.Contains(tn.Token, sep) || strings.Contains(tn.Name, sep) || strings.Contains(strings.Join(tn.Buckets, ""), sep) {
					t.Fatalf("parsed %q: %+v holds separator %q", s, tn, sep)
				}
			}
		}
		if _, err := parseTenantsFile("fuzz.yaml", []byte(s)); err == nil {
			return
		}
	})
}

// Issue 17 item 16: tenants map to their own OpenWhisk namespaces, in the
// tenants file (openwhisk_namespace, openwhisk_auth). The environment
// form has no room for them: a key holds ':', its separator.
func TestParseTenantsFile_OpenWhisk(t *testing.T) {
	const auth = "acme-uuid:acme-secret-key"
	got, err := parseTenantsFile("t.yaml", []byte("acme:\n  token: "+tokA+"\n  buckets: [acme-in]\n  openwhisk_namespace: acme-ns\n  openwhisk_auth: "+auth+"\n"))
	want := []api.Tenant{{Name: "acme", Token: tokA, Buckets: []string{"acme-in"}, OpenWhisk: openwhisk.Tenant{Namespace: "acme-ns", Auth: auth}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parse = %+v, %v; want %+v", got, err, want)
	}
	for _, tc := range []struct{ name, extra, want string }{
		{"NamespaceWithoutAuth", "  openwhisk_namespace: acme-ns\n", "openwhisk_namespace and openwhisk_auth go together"},
		{"AuthWithoutNamespace", "  openwhisk_auth: " + auth + "\n", "openwhisk_namespace and openwhisk_auth go together"},
		{"BadNamespace", "  openwhisk_namespace: ../guest\n  openwhisk_auth: " + auth + "\n", "openwhisk namespace must be"},
		{"NamespaceWithSlash", "  openwhisk_namespace: a/b\n  openwhisk_auth: " + auth + "\n", "openwhisk namespace must be"},
		{"AuthWithoutColon", "  openwhisk_namespace: acme-ns\n  openwhisk_auth: acme-secret-key\n", "UUID:KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTenantsFile("t.yaml", []byte("acme:\n  token: "+tokA+"\n  buckets: [acme-in]\n"+tc.extra))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parse: %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "acme-secret-key") || strings.Contains(err.Error(), tokA) {
				t.Fatalf("error %q reveals a secret", err)
			}
		})
	}
	// serve hands the namespaces and keys to the OpenWhisk runtime.
	o := securityOptions{maxCodeBytes: 1 << 20, maxMemoryMB: 1, maxParamsBytes: 1 << 10}
	opts, err := o.openWhiskOptions(got)
	if err != nil || !reflect.DeepEqual(opts.Tenants, map[string]openwhisk.Tenant{"acme": {Namespace: "acme-ns", Auth: auth}}) {
		t.Fatalf("openWhiskOptions = %+v, %v", opts.Tenants, err)
	}
}
