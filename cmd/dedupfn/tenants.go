package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/bytesize"
	"github.com/dedupfn/dedupfn/internal/owapi"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk"
)

// Tenant syntax limits.
const (
	// minTenantTokenLen is the shortest tenant token accepted.
	minTenantTokenLen = 16
	// tenantTokensSyntax is quoted in every parse error.
	tenantTokensSyntax = "tenant=token:bucket1,bucket2;tenant2=token2:bucket3"
)

var (
	tenantNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	// Tokens are opaque but may not contain the separators = : ; , or space.
	tenantTokenRE = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+$`)
	bucketNameRE  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,254}$`)
)

// parseTenantTokens parses DEDUPFN_TENANT_TOKENS:
// "tenant=token:bucket1,bucket2;tenant2=token2:bucket3". Tenants are
// separated by ';', a tenant's buckets by ','. Every tenant has at least
// one bucket, so the old "tenant=token,tenant2=token2" form is refused
// with a hint rather than read as something else. Errors never quote a
// token.
func parseTenantTokens(s string) ([]api.Tenant, error) {
	var out []api.Tenant
	for i, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue // "a=t:b;" and an empty variable are fine
		}
		name, rest, ok := strings.Cut(entry, "=")
		name = strings.TrimSpace(name)
		if !ok || !tenantNameRE.MatchString(name) {
			return nil, fmt.Errorf("DEDUPFN_TENANT_TOKENS entry %d: tenant name must match %s, as in %s", i+1, tenantNameRE, tenantTokensSyntax)
		}
		token, buckets, ok := strings.Cut(rest, ":")
		if !ok {
			return nil, fmt.Errorf("DEDUPFN_TENANT_TOKENS: tenant %s has no buckets: the syntax is %s (tenants separated by ';', each with its buckets)", name, tenantTokensSyntax)
		}
		t := api.Tenant{Name: name, Token: strings.TrimSpace(token)}
		for _, b := range strings.Split(buckets, ",") {
			t.Buckets = append(t.Buckets, strings.TrimSpace(b))
		}
		if err := checkTenant(t); err != nil {
			return nil, fmt.Errorf("DEDUPFN_TENANT_TOKENS: %w", err)
		}
		out = append(out, t)
	}
	return out, nil
}

// tenantFileEntry is one tenant of a --tenants file.
type tenantFileEntry struct {
	Token   string   `yaml:"token"`
	Buckets []string `yaml:"buckets"`
	// OpenWhiskNamespace and OpenWhiskAuth are the tenant's own
	// OpenWhisk namespace and "UUID:KEY" (openwhisk.Tenant). The
	// environment form has no room for them: a key holds ':'.
	OpenWhiskNamespace string `yaml:"openwhisk_namespace"`
	OpenWhiskAuth      string `yaml:"openwhisk_auth"`
	// OpenWhiskKey is the "UUID:KEY" of the tenant's namespace on the
	// OpenWhisk API served here (/api/v1); not openwhisk_auth, which
	// calls a remote OpenWhisk.
	OpenWhiskKey string `yaml:"openwhisk_key"`
}

// parseTenantsFile parses a --tenants YAML file: a map tenant → {token,
// buckets, openwhisk_namespace, openwhisk_auth, openwhisk_key}.
func parseTenantsFile(name string, b []byte) ([]api.Tenant, error) {
	var m map[string]tenantFileEntry
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("tenants file %s: must be a map tenant: {token, buckets}: %w", name, err)
	}
	var out []api.Tenant
	for tenant, e := range m {
		t := api.Tenant{Name: tenant, Token: e.Token, Buckets: e.Buckets,
			OpenWhisk: openwhisk.Tenant{Namespace: e.OpenWhiskNamespace, Auth: e.OpenWhiskAuth}, OpenWhiskKey: e.OpenWhiskKey}
		if !tenantNameRE.MatchString(tenant) {
			return nil, fmt.Errorf("tenants file %s: tenant name must match %s, got %q", name, tenantNameRE, tenant)
		}
		if err := checkTenant(t); err != nil {
			return nil, fmt.Errorf("tenants file %s: %w", name, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// checkTenant validates one tenant, without quoting its token.
func checkTenant(t api.Tenant) error {
	switch {
	case t.Name == registry.DefaultTenant:
		return fmt.Errorf("tenant name %q is reserved for the admin's own functions", t.Name)
	case len(t.Token) < minTenantTokenLen:
		return fmt.Errorf("tenant %s: token must have %d+ characters, got %d", t.Name, minTenantTokenLen, len(t.Token))
	case !tenantTokenRE.MatchString(t.Token):
		return fmt.Errorf("tenant %s: token must be made of letters, digits and . _ ~ + / -", t.Name)
	case len(t.Buckets) == 0:
		return fmt.Errorf("tenant %s: buckets must list at least one bucket", t.Name)
	}
	for _, b := range t.Buckets {
		if !bucketNameRE.MatchString(b) {
			return fmt.Errorf("tenant %s: bucket name must match %s, got %q", t.Name, bucketNameRE, b)
		}
	}
	switch ow := t.OpenWhisk; {
	case ow == openwhisk.Tenant{}:
	case ow.Namespace == "" || ow.Auth == "":
		return fmt.Errorf("tenant %s: openwhisk_namespace and openwhisk_auth go together: set both or neither", t.Name)
	default:
		if err := ow.Check(); err != nil {
			return fmt.Errorf("tenant %s: %w", t.Name, err)
		}
	}
	return nil
}

// loadTenants reads the tenants of DEDUPFN_TENANT_TOKENS (env) and a
// --tenants file (file, may be empty). Tenants need an admin token:
// without one every caller would be the admin.
func loadTenants(adminToken, env, file string) ([]api.Tenant, error) {
	tenants, err := parseTenantTokens(env)
	if err != nil {
		return nil, err
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read tenants file: %w", err)
		}
		more, err := parseTenantsFile(file, b)
		if err != nil {
			return nil, err
		}
		tenants = append(tenants, more...)
	}
	if len(tenants) > 0 && adminToken == "" {
		return nil, errors.New("tenant tokens (DEDUPFN_TENANT_TOKENS or --tenants) need an admin token: set DEDUPFN_API_TOKEN, or every caller would be the admin")
	}
	names, tokens := map[string]bool{}, map[string]bool{adminToken: true}
	for _, t := range tenants {
		if names[t.Name] {
			return nil, fmt.Errorf("tenant %s is defined twice", t.Name)
		}
		if tokens[t.Token] {
			return nil, fmt.Errorf("tenant %s: its token is also the admin's or another tenant's", t.Name)
		}
		names[t.Name], tokens[t.Token] = true, true
	}
	slices.SortFunc(tenants, func(a, b api.Tenant) int { return cmp.Compare(a.Name, b.Name) })
	return tenants, nil
}

// securityOptions are serve's flags for the trust model (docs/security.md).
type securityOptions struct {
	tenantsFile    string
	openwhiskAPI   string
	openwhiskAllow []string
	apiHosts       []string
	maxCodeBytes   int64
	maxMemoryMB    int
	maxParamsBytes int
	// owAdminNS is the OpenWhisk API's namespace of the admin.
	owAdminNS string
}

func (o *securityOptions) register(fl *pflag.FlagSet) {
	fl.StringVar(&o.tenantsFile, "tenants", "", "YAML file of tenants: a map tenant: {token: T, buckets: [B, ...], openwhisk_namespace: NS, openwhisk_auth: UUID:KEY} (adds to DEDUPFN_TENANT_TOKENS; needs DEDUPFN_API_TOKEN)")
	fl.StringVar(&o.openwhiskAPI, "openwhisk-api", os.Getenv("DEDUPFN_OPENWHISK_API"), "default OpenWhisk API host URL of remote actions; always allowed (env DEDUPFN_OPENWHISK_API)")
	fl.StringSliceVar(&o.openwhiskAllow, "openwhisk-allow", nil, "further OpenWhisk API URLs functions may name with --openwhisk-api; they receive DEDUPFN_OPENWHISK_AUTH (the admin's functions) and tenants' openwhisk_auth")
	fl.StringVar(&o.owAdminNS, "openwhisk-admin-namespace", "guest", "namespace of the OpenWhisk API (/api/v1) that acts as the admin; other namespaces are tenants' (keys: DEDUPFN_OPENWHISK_KEYS=guest=UUID:KEY;acme=UUID2:KEY2, or openwhisk_key in --tenants)")
	fl.StringSliceVar(&o.apiHosts, "api-host", nil, "extra Host names the API answers to on loopback, besides localhost, 127.0.0.1, [::1] and --api-addr's host")
	sizeVar(fl, &o.maxCodeBytes, "max-code", api.DefaultMaxCodeBytes, 1<<20, 1, "largest function code a deploy may upload, such as 64MiB or 512KiB (a bare number is MiB; 413 above it)")
	sizeVar(fl, &o.maxMemoryMB, "max-memory", api.DefaultMaxMemoryMB, 1<<20, 1<<20, "largest --memory a function may ask for, such as 2GiB (a bare number is MiB)")
	sizeVar(fl, &o.maxParamsBytes, "max-params", registry.DefaultMaxParamsBytes, 1<<10, 1, "largest params of a function (and, apart, its config) as JSON, such as 16KiB (a bare number is KiB; 413 above it)")
}

// openWhiskOptions returns the OpenWhisk runtime's host settings and
// the tenants' own namespaces and keys.
func (o *securityOptions) openWhiskOptions(tenants []api.Tenant) (openwhisk.Options, error) {
	if o.maxCodeBytes <= 0 || o.maxMemoryMB <= 0 || o.maxParamsBytes <= 0 {
		return openwhisk.Options{}, fmt.Errorf("--max-code, --max-memory and --max-params must be > 0, got %s, %d MiB and %s", bytesize.Exact(o.maxCodeBytes), o.maxMemoryMB, bytesize.Exact(int64(o.maxParamsBytes)))
	}
	opts := openwhisk.Options{API: o.openwhiskAPI, Allow: o.openwhiskAllow}
	for _, t := range tenants {
		if t.OpenWhisk.Namespace != "" {
			if opts.Tenants == nil {
				opts.Tenants = map[string]openwhisk.Tenant{}
			}
			opts.Tenants[t.Name] = t.OpenWhisk
		}
	}
	return opts, nil
}

// apiConfig adds the security settings to an API config.
func (o *securityOptions) apiConfig(cfg api.Config) api.Config {
	if o.openwhiskAPI != "" {
		cfg.OpenWhiskAllow = append(cfg.OpenWhiskAllow, o.openwhiskAPI)
	}
	cfg.OpenWhiskAllow = append(cfg.OpenWhiskAllow, o.openwhiskAllow...)
	cfg.ExtraHosts = o.apiHosts
	cfg.MaxCodeBytes = o.maxCodeBytes
	cfg.MaxMemoryMB = o.maxMemoryMB
	cfg.MaxParamsBytes = o.maxParamsBytes
	return cfg
}

// tenantBuckets is each tenant's buckets, for the pipeline's check that a
// tenant's function still may use its buckets (pipeline.Config.TenantBuckets).
func tenantBuckets(tenants []api.Tenant) map[string][]string {
	m := make(map[string][]string, len(tenants))
	for _, t := range tenants {
		m[t.Name] = t.Buckets
	}
	return m
}

// openWhiskKeysSyntax is quoted in DEDUPFN_OPENWHISK_KEYS's parse errors.
const openWhiskKeysSyntax = "guest=UUID:KEY;acme=UUID2:KEY2"

// openWhiskNamespaces returns the namespaces of the OpenWhisk API
// served under /api/v1, from DEDUPFN_OPENWHISK_KEYS (env:
// "namespace=UUID:KEY;..."), and the tenants' openwhisk_key. The
// namespace adminNS (--openwhisk-admin-namespace) acts as the admin; a
// namespace named like a tenant acts as that tenant, on its buckets;
// any other namespace is refused, and so is a tenant named adminNS.
// None: the API is not served. Errors never quote a key.
func openWhiskNamespaces(env, adminNS string, tenants []api.Tenant) ([]owapi.Namespace, error) {
	byName := map[string]api.Tenant{}
	for _, t := range tenants {
		byName[t.Name] = t
	}
	var out []owapi.Namespace
	seen := map[string]bool{}
	add := func(ns, key, from string) error {
		if seen[ns] {
			return fmt.Errorf("%s: namespace %s has a key already (DEDUPFN_OPENWHISK_KEYS or the tenants file): one key per namespace", from, ns)
		}
		seen[ns] = true
		n := owapi.Namespace{Name: ns, Key: key}
		if ns == adminNS {
			n.Admin = true
		} else if t, ok := byName[ns]; ok {
			n.Tenant, n.Buckets = t.Name, t.Buckets
		} else {
			return fmt.Errorf("%s: namespace %s is neither the admin's (--openwhisk-admin-namespace %s) nor a tenant's: name it like a tenant", from, ns, adminNS)
		}
		out = append(out, n)
		return nil
	}
	for i, entry := range strings.Split(env, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		ns, key, ok := strings.Cut(entry, "=")
		ns, key = strings.TrimSpace(ns), strings.TrimSpace(key)
		if !ok || ns == "" || !strings.Contains(key, ":") {
			return nil, fmt.Errorf("DEDUPFN_OPENWHISK_KEYS entry %d: must be namespace=UUID:KEY, as in %s", i+1, openWhiskKeysSyntax)
		}
		if err := add(ns, key, "DEDUPFN_OPENWHISK_KEYS"); err != nil {
			return nil, err
		}
	}
	for _, t := range tenants {
		if t.OpenWhiskKey == "" {
			continue
		}
		if err := add(t.Name, t.OpenWhiskKey, "tenants file"); err != nil {
			return nil, err
		}
	}
	if len(out) > 0 {
		if _, ok := byName[adminNS]; ok {
			return nil, fmt.Errorf("tenant %s is named like the OpenWhisk admin namespace (--openwhisk-admin-namespace): rename one of them", adminNS)
		}
	}
	return out, owapi.CheckNamespaces(out)
}
