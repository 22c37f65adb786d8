// Package registry holds function definitions and their versions, stored in
// the index so replicas sharing an index share functions, and derives the
// dedup key of (function version, content).
package registry

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
)

// Defaults for a function's limits and policy.
const (
	DefaultTimeout       = 60 * time.Second       // one invocation
	DefaultLease         = 30 * time.Second       // how long a claim holds without renewal
	DefaultMemoryMB      = 256                    // WebAssembly memory limit
	DefaultMaxAttempts   = 3                      // runs of one event before it is dead-lettered
	DefaultTenant        = "default"              // tenant of functions deployed without one
	DefaultRefresh       = 500 * time.Millisecond // polling, for indexes that cannot push changes
	DefaultPushedRefresh = 30 * time.Second       // backstop polling when the index pushes changes
	// DefaultCodeCacheBytes bounds the function code a registry keeps in
	// memory; the least recently used versions are evicted and read back
	// from the index when needed again.
	DefaultCodeCacheBytes = 256 << 20
	// DefaultMaxParamsBytes bounds a function's params, and apart its
	// config, as canonical JSON (serve --max-params): they are read on
	// every refresh and passed to every run.
	DefaultMaxParamsBytes = 64 << 10
	// inlineParams is the longest params (with config) a dedup record's
	// key parts hold as they are; longer ones are named by their digest
	// and stored once, as a blob (see Function.Key), so a record does not
	// grow with them. Short ones stay inline, which keeps the keys that
	// releases before the digest made.
	inlineParams = 64
	docKind      = "function"
	// markKind holds the Nondeterministic marks, one document per
	// function version (id tenant/name/version), apart from the function
	// definitions: a mark belongs to a version, not to a deploy.
	markKind = "nondeterministic"
)

// What a determinism audit's mismatch does (Audit.OnMismatch).
const (
	// OnMismatchWarn marks the version and keeps reusing its results.
	OnMismatchWarn = "warn"
	// OnMismatchDisableDedup marks the version and from then on runs every
	// event of it, as if deployed NoDedup.
	OnMismatchDisableDedup = "disable-dedup"
)

// ErrNotFound is returned for an unknown function.
var ErrNotFound = errors.New("function not found")

// ErrParamsTooLarge is returned by CheckParams.
var ErrParamsTooLarge = errors.New("params too large")

// Trigger selects the objects a function runs on.
type Trigger struct {
	Bucket   string   `json:"bucket"`
	Prefix   string   `json:"prefix,omitempty"`
	Suffixes []string `json:"suffixes,omitempty"` // any of them; none = all
}

// Output says where a function's output goes.
type Output struct {
	Bucket string `json:"bucket"`
	// KeyTemplate may use {key} (the input key), {dir}, {base} (file name
	// without extension), {ext} (with the dot) and {name} (function name).
	// Default "{key}".
	KeyTemplate string `json:"key_template,omitempty"`
}

// Limits bound one invocation and its claim.
type Limits struct {
	Timeout  time.Duration `json:"timeout"`
	Lease    time.Duration `json:"lease"`
	MemoryMB int           `json:"memory_mb"`
	// Retention is how long a recorded result is reused; 0 keeps it until
	// purged. It is independent of Lease, which bounds a running claim.
	Retention time.Duration `json:"retention,omitempty"`
}

// Audit samples reused results to check that a function is pure: that
// fraction of hits also runs the function, off the hit's path, and
// compares the output with the recorded one. Audit settings do not change
// a function's Version: they do not change its output.
type Audit struct {
	// Rate is the fraction of hits audited, 0 (never, the default) to 1.
	Rate float64 `json:"rate"`
	// OnMismatch is OnMismatchWarn (the default once Rate > 0) or
	// OnMismatchDisableDedup.
	OnMismatch string `json:"on_mismatch,omitempty"`
}

// Nondeterministic records that an audit of a function version ran it on
// the input of a hit and got an output other than the recorded one. The
// first mismatch found is kept; the mark stays with the version until a
// deploy changes the version (code, params, runtime, config).
type Nondeterministic struct {
	Version string    `json:"version"`
	At      time.Time `json:"at"`
	// Activation is the hit whose reused result the audit contradicted.
	Activation string `json:"activation"`
	// DedupKey is that hit's key (dedupfn purge --key forgets its result).
	DedupKey string `json:"dedup_key,omitempty"`
	// RecordedDigest and AuditDigest are the SHA-256 (hex) of the
	// recorded output object and of the audit run's output.
	RecordedDigest string `json:"recorded_digest"`
	AuditDigest    string `json:"audit_digest"`
}

// Function is a deployed function definition.
type Function struct {
	Tenant     string            `json:"tenant"`
	Name       string            `json:"name"`
	Runtime    string            `json:"runtime"` // wasm | process | openwhisk
	CodeDigest string            `json:"code_digest,omitempty"`
	Params     map[string]string `json:"params,omitempty"`
	Config     map[string]string `json:"config,omitempty"` // runtime-specific settings
	Trigger    Trigger           `json:"trigger"`
	Output     Output            `json:"output"`
	Limits     Limits            `json:"limits"`
	// NoDedup: always run (for functions that are not pure).
	NoDedup bool `json:"no_dedup,omitempty"`
	// Shared: dedup across tenants (only for functions whose output reveals
	// nothing tenant-specific).
	Shared bool `json:"shared,omitempty"`
	// CacheFailures: a deterministic function error is recorded as the
	// result, so the same content does not run again.
	CacheFailures bool `json:"cache_failures,omitempty"`
	MaxAttempts   int  `json:"max_attempts"`
	// Audit: determinism audits of hits (see Audit).
	Audit Audit `json:"audit,omitzero"`
	// Version is derived from everything that can change the output.
	Version string    `json:"version"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Nondeterministic is set by the registry when an audit found this
	// version nondeterministic. It is not part of the definition: a
	// deploy ignores it, and it is stored apart (see MarkNondeterministic).
	Nondeterministic *Nondeterministic `json:"nondeterministic,omitempty"`
}

// Deduplicated reports whether f's results are reused: it is not deployed
// NoDedup, and its version was not found nondeterministic under the
// OnMismatchDisableDedup policy.
func (f *Function) Deduplicated() bool {
	return !f.NoDedup && (f.Nondeterministic == nil || f.Audit.OnMismatch != OnMismatchDisableDedup)
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// Validate checks a definition and fills defaults.
func (f *Function) Validate() error {
	if f.Tenant == "" {
		f.Tenant = DefaultTenant
	}
	switch {
	case !nameRE.MatchString(f.Name):
		return fmt.Errorf("function name must match %s, got %q", nameRE, f.Name)
	case !nameRE.MatchString(f.Tenant):
		return fmt.Errorf("tenant must match %s, got %q", nameRE, f.Tenant)
	case f.Runtime == "":
		return fmt.Errorf("function %s: runtime must be set (wasm, process or openwhisk)", f.Name)
	case f.Trigger.Bucket == "":
		return fmt.Errorf("function %s: trigger bucket must be set", f.Name)
	case f.Output.Bucket == "":
		return fmt.Errorf("function %s: output bucket must be set", f.Name)
	case f.Limits.Timeout < 0 || f.Limits.Lease < 0 || f.Limits.MemoryMB < 0 || f.Limits.Retention < 0 || f.MaxAttempts < 0:
		return fmt.Errorf("function %s: limits must be >= 0", f.Name)
	case math.IsNaN(f.Audit.Rate) || f.Audit.Rate < 0 || f.Audit.Rate > 1:
		return fmt.Errorf("function %s: audit rate must be between 0 and 1 (a fraction of hits), got %v", f.Name, f.Audit.Rate)
	case f.Audit.OnMismatch != "" && f.Audit.OnMismatch != OnMismatchWarn && f.Audit.OnMismatch != OnMismatchDisableDedup:
		return fmt.Errorf("function %s: audit on_mismatch must be %q or %q, got %q", f.Name, OnMismatchWarn, OnMismatchDisableDedup, f.Audit.OnMismatch)
	case f.NoDedup && f.Audit.Rate > 0:
		return fmt.Errorf("function %s: audit rate must be 0 for a no-dedup function (it reuses no results to audit), got %v", f.Name, f.Audit.Rate)
	}
	if f.Audit.Rate > 0 && f.Audit.OnMismatch == "" {
		f.Audit.OnMismatch = OnMismatchWarn
	}
	if f.Output.KeyTemplate == "" {
		f.Output.KeyTemplate = "{key}"
	}
	if f.Limits.Timeout == 0 {
		f.Limits.Timeout = DefaultTimeout
	}
	if f.Limits.Lease == 0 {
		f.Limits.Lease = DefaultLease
	}
	if f.Limits.MemoryMB == 0 {
		f.Limits.MemoryMB = DefaultMemoryMB
	}
	if f.MaxAttempts == 0 {
		f.MaxAttempts = DefaultMaxAttempts
	}
	if err := f.checkOutputTemplate(); err != nil {
		return err
	}
	f.Version = f.version()
	return nil
}

// version digests everything that can change the output: code, params,
// runtime and its config. Limits, triggers and audits do not change outputs.
func (f *Function) version() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", f.Runtime, f.CodeDigest, canonical(f.Params))
	fmt.Fprintf(h, "%s\x00", canonical(f.Config))
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// canonical encodes a map as JSON with sorted keys (encoding/json sorts map keys).
func canonical(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// CheckParams refuses params, or a config, longer than maxBytes as
// canonical JSON, with an error naming the limit (ErrParamsTooLarge).
func (f *Function) CheckParams(maxBytes int) error {
	for _, p := range []struct {
		what string
		m    map[string]string
	}{{"params", f.Params}, {"config", f.Config}} {
		if n := len(canonical(p.m)); n > maxBytes {
			return fmt.Errorf("%w: function %s: %s are %d bytes as JSON, over the limit of %s (serve --max-params)",
				ErrParamsTooLarge, f.Name, p.what, n, sizeString(maxBytes))
		}
	}
	return nil
}

// sizeString is n bytes in the largest binary unit that divides it.
func sizeString(n int) string {
	switch {
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// paramsPart is the Params of f's key parts and, when they name a
// digest, the canonical params (with config) stored under it.
func (f *Function) paramsPart() (part string, stored []byte) {
	s := canonical(f.Params) + canonical(f.Config)
	if len(s) <= inlineParams {
		return s, nil
	}
	return paramsDigestPrefix + Digest([]byte(s)), []byte(s)
}

// paramsDigestPrefix marks key parts' Params that name a blob (canonical
// JSON starts with "{", so the two forms never meet).
const paramsDigestPrefix = "sha256:"

// ParamsOf returns the canonical params (with config) that key parts p
// were derived from: p.Params itself, or the blob it names.
func ParamsOf(ctx context.Context, idx interface {
	GetBlob(ctx context.Context, digest string) ([]byte, error)
}, p index.Parts) (string, error) {
	digest, ok := strings.CutPrefix(p.Params, paramsDigestPrefix)
	if !ok {
		return p.Params, nil
	}
	b, err := idx.GetBlob(ctx, digest)
	if err != nil {
		return "", fmt.Errorf("registry: params %s: %w", digest, err)
	}
	return string(b), nil
}

// Matches reports whether an object triggers f.
func (f *Function) Matches(bucket, key string) bool {
	if bucket != f.Trigger.Bucket || !strings.HasPrefix(key, f.Trigger.Prefix) {
		return false
	}
	if len(f.Trigger.Suffixes) == 0 {
		return true
	}
	lower := strings.ToLower(key)
	return slices.ContainsFunc(f.Trigger.Suffixes, func(s string) bool {
		return strings.HasSuffix(lower, strings.ToLower(s))
	})
}

// OutputKey is where f's output for an input key goes: the key template
// rendered, with "." and empty segments dropped (so "./{key}", "/{key}"
// and "a//b" name the keys they look like). A key with a ".." segment, or
// one that renders empty or as a folder, is an error.
func (f *Function) OutputKey(key string) (string, error) {
	dir, file := path.Split(key)
	ext := path.Ext(file)
	rendered := strings.NewReplacer(
		"{key}", key,
		"{dir}", dir,
		"{base}", strings.TrimSuffix(file, ext),
		"{ext}", ext,
		"{name}", f.Name,
	).Replace(f.Output.KeyTemplate)
	var segs []string
	for _, s := range strings.Split(rendered, "/") {
		switch s {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("function %s: output key %q (template %q) has a \"..\" segment", f.Name, rendered, f.Output.KeyTemplate)
		}
		segs = append(segs, s)
	}
	if len(segs) == 0 || strings.HasSuffix(rendered, "/") {
		return "", fmt.Errorf("function %s: output key template %q renders %q for input %q: not an object key", f.Name, f.Output.KeyTemplate, rendered, key)
	}
	return strings.Join(segs, "/"), nil
}

// sampleKeys are rendered through a key template at deploy to catch
// templates that overwrite their input.
var sampleKeys = []string{"cat.jpg", "x/cat.jpg", "a/b/archive.tar.gz", "README", ".hidden"}

// checkOutputTemplate refuses a template that, with output bucket = input
// bucket, renders some input's own key (overwriting the user's original).
func (f *Function) checkOutputTemplate() error {
	for _, k := range sampleKeys {
		out, err := f.OutputKey(k)
		if err != nil {
			return err
		}
		if f.Output.Bucket == f.Trigger.Bucket && out == k {
			return fmt.Errorf("function %s: output key template %q renders %q for input %q: the output would overwrite its own input; use a prefix such as thumbs/{key}", f.Name, f.Output.KeyTemplate, out, k)
		}
	}
	return nil
}

// SharedTenant is the tenant part of the dedup keys of --shared
// functions: their results are reused across tenants.
const SharedTenant = "*shared*"

// Key derives the dedup key of running f (whose code digest, for remote
// functions, the caller may override with the remote digest) on content
// with fingerprint fp.
func (f *Function) Key(codeDigest, runtimeVersion, fp string) (string, index.Parts) {
	tenant := f.Tenant
	if f.Shared {
		tenant = SharedTenant
	}
	params, _ := f.paramsPart()
	p := index.Parts{
		Tenant:         tenant,
		Function:       f.Name,
		CodeDigest:     codeDigest,
		Params:         params,
		RuntimeVersion: runtimeVersion,
		Fingerprint:    fp,
	}
	return PartsKey(p), p
}

// PartsKey hashes key parts; a hit re-checks that its record's parts hash
// to the key it was found under.
func PartsKey(p index.Parts) string {
	h := sha256.New()
	for _, s := range []string{p.Tenant, p.Function, p.CodeDigest, p.Params, p.RuntimeVersion, p.Fingerprint} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Registry stores functions and their code in the index and keeps a cache
// that Run refreshes, so a function deployed through any replica sharing
// the index goes live on all of them within DefaultRefresh.
type Registry struct {
	idx    index.DocStore
	logger *slog.Logger

	mu        sync.RWMutex
	cache     []Function // with their versions' marks attached
	marks     map[string]Nondeterministic
	onRemoved []func(Function)
	// revs are the index's revisions of definitions and marks that cache
	// was read at (index.DocRevisions); revsOK is false without them.
	revs   [2]uint64
	revsOK bool

	code codeCache
}

// codeCache is a least-recently-used cache of function code by digest,
// bounded by its total size in bytes.
type codeCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *list.List               // front = most recently used; values are *codeEntry
	byKey map[string]*list.Element // digest → element of order
}

type codeEntry struct {
	digest string
	code   []byte
}

func (c *codeCache) get(digest string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[digest]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*codeEntry).code, true
}

// add caches code, evicting the least recently used entries to stay
// within max; code larger than max is not cached at all.
func (c *codeCache) add(digest string, code []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[digest]; ok || int64(len(code)) > c.max {
		return
	}
	c.byKey[digest] = c.order.PushFront(&codeEntry{digest: digest, code: code})
	c.size += int64(len(code))
	c.evict()
}

func (c *codeCache) evict() {
	for c.size > c.max {
		e := c.order.Back()
		ce := e.Value.(*codeEntry)
		c.order.Remove(e)
		delete(c.byKey, ce.digest)
		c.size -= int64(len(ce.code))
	}
}

// New returns a registry over idx.
func New(idx index.DocStore, logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		idx: idx, logger: logger.With("component", "registry"),
		code: codeCache{max: DefaultCodeCacheBytes, order: list.New(), byKey: map[string]*list.Element{}},
	}
}

// SetCodeCacheBytes bounds the code cache to maxBytes (default
// DefaultCodeCacheBytes), evicting at once if it holds more.
func (r *Registry) SetCodeCacheBytes(maxBytes int64) {
	r.code.mu.Lock()
	defer r.code.mu.Unlock()
	r.code.max = maxBytes
	r.code.evict()
}

// CodeCacheBytes is the size of the code the cache holds.
func (r *Registry) CodeCacheBytes() int64 {
	r.code.mu.Lock()
	defer r.code.mu.Unlock()
	return r.code.size
}

func docID(tenant, name string) string { return tenant + "/" + name }

func markID(tenant, name, version string) string { return tenant + "/" + name + "/" + version }

// Deploy stores f and its code (nil for remote runtimes) and returns the
// stored definition. Redeploying identical code and params keeps the version.
func (r *Registry) Deploy(ctx context.Context, f Function, code []byte) (Function, error) {
	if code != nil {
		f.CodeDigest = Digest(code)
		if err := r.idx.PutBlob(ctx, f.CodeDigest, code); err != nil {
			return f, fmt.Errorf("registry: store code of %s: %w", f.Name, err)
		}
	}
	if err := f.Validate(); err != nil {
		return f, err
	}
	// Once per version, not in every record: see inlineParams.
	if digest, stored := f.paramsPart(); stored != nil {
		if err := r.idx.PutBlob(ctx, strings.TrimPrefix(digest, paramsDigestPrefix), stored); err != nil {
			return f, fmt.Errorf("registry: store params of %s: %w", f.Name, err)
		}
	}
	f.Nondeterministic = nil // the registry's to say, never the deployer's
	now := time.Now().UTC()
	f.Created, f.Updated = now, now
	if old, err := r.Get(ctx, f.Tenant, f.Name); err == nil {
		f.Created = old.Created
	}
	doc, err := json.Marshal(f)
	if err != nil {
		return f, err
	}
	if err := r.idx.PutDoc(ctx, docKind, docID(f.Tenant, f.Name), doc); err != nil {
		return f, fmt.Errorf("registry: store function %s: %w", f.Name, err)
	}
	if err := r.Refresh(ctx); err != nil {
		return f, err
	}
	r.mu.RLock()
	f = r.attach(f)
	r.mu.RUnlock()
	return f, nil
}

// Digest is the content address of function code.
func Digest(code []byte) string {
	sum := sha256.Sum256(code)
	return hex.EncodeToString(sum[:])
}

// Get returns a function by tenant and name, read from the index.
func (r *Registry) Get(ctx context.Context, tenant, name string) (Function, error) {
	var f Function
	doc, err := r.idx.GetDoc(ctx, docKind, docID(tenant, name))
	if errors.Is(err, index.ErrNotFound) {
		return f, fmt.Errorf("%w: %s (tenant %s)", ErrNotFound, name, tenant)
	}
	if err != nil {
		return f, fmt.Errorf("registry: get %s: %w", name, err)
	}
	if err := json.Unmarshal(doc, &f); err != nil {
		return f, fmt.Errorf("registry: decode %s: %w", name, err)
	}
	f.Nondeterministic = nil
	m, err := r.mark(ctx, f.Tenant, f.Name, f.Version)
	if err != nil && !errors.Is(err, index.ErrNotFound) {
		return f, err
	}
	if err == nil {
		f.Nondeterministic = &m
	}
	return f, nil
}

// mark reads the mark of a function version from the index, or ErrNotFound.
func (r *Registry) mark(ctx context.Context, tenant, name, version string) (Nondeterministic, error) {
	var m Nondeterministic
	doc, err := r.idx.GetDoc(ctx, markKind, markID(tenant, name, version))
	if errors.Is(err, index.ErrNotFound) {
		return m, err
	}
	if err != nil {
		return m, fmt.Errorf("registry: get nondeterministic mark of %s@%s: %w", name, version, err)
	}
	if err := json.Unmarshal(doc, &m); err != nil {
		return m, fmt.Errorf("registry: decode nondeterministic mark of %s@%s: %w", name, version, err)
	}
	return m, nil
}

// MarkNondeterministic records m, an audit's mismatch, on the version
// m.Version of f (tenant and name), unless that version is marked
// already: the first mark stays (two replicas marking at once may each
// store theirs; either is a real mismatch). It returns the mark that
// stands and whether it is m. The mark is live on this replica at once,
// and on replicas sharing the index at their next refresh (pushed, where
// the index can). Idempotent.
func (r *Registry) MarkNondeterministic(ctx context.Context, f Function, m Nondeterministic) (Nondeterministic, bool, error) {
	old, err := r.mark(ctx, f.Tenant, f.Name, m.Version)
	if err == nil {
		r.cacheMark(f.Tenant, f.Name, old)
		return old, false, nil
	}
	if !errors.Is(err, index.ErrNotFound) {
		return m, false, err
	}
	doc, err := json.Marshal(m)
	if err != nil {
		return m, false, err
	}
	if err := r.idx.PutDoc(ctx, markKind, markID(f.Tenant, f.Name, m.Version), doc); err != nil {
		return m, false, fmt.Errorf("registry: mark %s@%s nondeterministic: %w", f.Name, m.Version, err)
	}
	r.cacheMark(f.Tenant, f.Name, m)
	return m, true, nil
}

// cacheMark puts m into the cache at once, without waiting for a refresh.
func (r *Registry) cacheMark(tenant, name string, m Nondeterministic) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := markID(tenant, name, m.Version)
	if _, ok := r.marks[id]; ok {
		return
	}
	if r.marks == nil {
		r.marks = map[string]Nondeterministic{}
	}
	r.marks[id] = m
	// Refresh reads the slice it replaced outside the lock: replace the
	// cache, never write into it.
	fns := make([]Function, len(r.cache))
	for i, f := range r.cache {
		fns[i] = r.attach(f)
	}
	r.cache = fns
}

// attach returns f with the mark of its version, if any. r.mu must be held.
func (r *Registry) attach(f Function) Function {
	f.Nondeterministic = nil
	if m, ok := r.marks[markID(f.Tenant, f.Name, f.Version)]; ok {
		f.Nondeterministic = &m
	}
	return f
}

// Delete removes a function. Its results stay in the index until purged.
func (r *Registry) Delete(ctx context.Context, tenant, name string) error {
	err := r.idx.DeleteDoc(ctx, docKind, docID(tenant, name))
	if errors.Is(err, index.ErrNotFound) {
		return fmt.Errorf("%w: %s (tenant %s)", ErrNotFound, name, tenant)
	}
	if err != nil {
		return fmt.Errorf("registry: delete %s: %w", name, err)
	}
	return r.Refresh(ctx)
}

// List returns the functions of tenant ("" = all), from the cache.
func (r *Registry) List(tenant string) []Function {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Function
	for _, f := range r.cache {
		if tenant == "" || f.Tenant == tenant {
			out = append(out, f)
		}
	}
	return out
}

// Match returns the functions an object triggers, from the cache.
func (r *Registry) Match(bucket, key string) []Function {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Function
	for _, f := range r.cache {
		if f.Matches(bucket, key) {
			out = append(out, f)
		}
	}
	return out
}

// Buckets returns the distinct trigger buckets, for the reconciler.
func (r *Registry) Buckets() []string {
	seen := map[string]bool{}
	for _, f := range r.List("") {
		seen[f.Trigger.Bucket] = true
	}
	out := make([]string, 0, len(seen))
	for b := range seen {
		out = append(out, b)
	}
	sort.Strings(out)
	return out
}

// Code returns a function's code by digest, from a bounded cache of
// recently used versions or else read from the index.
func (r *Registry) Code(ctx context.Context, digest string) ([]byte, error) {
	if digest == "" {
		return nil, nil
	}
	if c, ok := r.code.get(digest); ok {
		return c, nil
	}
	c, err := r.idx.GetBlob(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("registry: code %s: %w", digest, err)
	}
	r.code.add(digest, c)
	return c, nil
}

// revisions reads the index's revisions of definitions and marks; ok is
// false where it keeps none or they cannot be read (then refresh).
func (r *Registry) revisions(ctx context.Context) (revs [2]uint64, ok bool) {
	dr, ok := r.idx.(index.DocRevisions)
	if !ok {
		return revs, false
	}
	for i, kind := range []string{docKind, markKind} {
		rev, err := dr.DocsRevision(ctx, kind)
		if err != nil {
			return revs, false
		}
		revs[i] = rev
	}
	return revs, true
}

// unchanged reports whether the index says no definition or mark changed
// since the cache was read.
func (r *Registry) unchanged(ctx context.Context) bool {
	revs, ok := r.revisions(ctx)
	r.mu.RLock()
	defer r.mu.RUnlock()
	return ok && r.revsOK && revs == r.revs
}

// Refresh reloads the cache from the index.
func (r *Registry) Refresh(ctx context.Context) error {
	// Read before the documents: a change after this read is seen by the
	// next poll even if the documents read below include it already.
	revs, revsOK := r.revisions(ctx)
	var fns []Function
	err := r.idx.Docs(ctx, docKind, func(id string, doc []byte) error {
		var f Function
		if err := json.Unmarshal(doc, &f); err != nil {
			r.logger.Warn("skip undecodable function", "id", id, "err", err)
			return nil
		}
		fns = append(fns, f)
		return nil
	})
	if err != nil {
		return fmt.Errorf("registry: list functions: %w", err)
	}
	marks := map[string]Nondeterministic{}
	err = r.idx.Docs(ctx, markKind, func(id string, doc []byte) error {
		var m Nondeterministic
		if err := json.Unmarshal(doc, &m); err != nil {
			r.logger.Warn("skip undecodable nondeterministic mark", "id", id, "err", err)
			return nil
		}
		marks[id] = m
		return nil
	})
	if err != nil {
		return fmt.Errorf("registry: list nondeterministic marks: %w", err)
	}
	r.mu.Lock()
	old, hooks := r.cache, r.onRemoved
	// A mark made here since the documents were read stays: marks are
	// never taken back, and dropping it would let a disable-dedup version
	// reuse results again until the next refresh.
	for id, m := range r.marks {
		if _, ok := marks[id]; !ok {
			marks[id] = m
		}
	}
	r.marks = marks
	for i, f := range fns {
		fns[i] = r.attach(f)
	}
	r.cache = fns
	r.revs, r.revsOK = revs, revsOK
	r.mu.Unlock()
	for _, f := range removed(old, fns) {
		for _, h := range hooks {
			h(f)
		}
	}
	return nil
}

// OnRemoved registers h to be called, after a refresh, with each function
// that was deleted (through any replica sharing the index). Call before Run.
func (r *Registry) OnRemoved(h func(Function)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onRemoved = append(r.onRemoved, h)
}

// removed returns the functions of before whose tenant and name are not in after.
func removed(before, after []Function) []Function {
	live := make(map[string]bool, len(after))
	for _, f := range after {
		live[docID(f.Tenant, f.Name)] = true
	}
	var gone []Function
	for _, f := range before {
		if !live[docID(f.Tenant, f.Name)] {
			gone = append(gone, f)
		}
	}
	return gone
}

// Run keeps the cache fresh until ctx ends: on every change the index
// pushes (backends that implement index.DocWatcher), and by polling every
// interval, which is all other backends have and a backstop for pushes.
// A poll of an index that keeps revisions (index.DocRevisions) reads
// them only, and the documents when they changed.
func (r *Registry) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultRefresh
	}
	var lastErr time.Time
	refresh := func() {
		if err := r.Refresh(ctx); err != nil && ctx.Err() == nil && time.Since(lastErr) > time.Minute {
			lastErr = time.Now()
			r.logger.Warn("refresh functions", "err", err)
		}
	}
	var pushed chan struct{} // stays nil (never ready) without a watcher
	if w, ok := r.idx.(index.DocWatcher); ok {
		pushed = make(chan struct{}, 1)
		notify := func() {
			select {
			case pushed <- struct{}{}:
			default: // a refresh is already pending
			}
		}
		var watchers sync.WaitGroup
		defer watchers.Wait()
		// Definitions and marks both change what Match returns.
		for _, kind := range []string{docKind, markKind} {
			watchers.Go(func() { w.WatchDocs(ctx, kind, notify) })
		}
		interval = max(interval, DefaultPushedRefresh)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pushed:
			refresh()
		case <-t.C:
			if !r.unchanged(ctx) {
				refresh()
			}
		}
	}
}
