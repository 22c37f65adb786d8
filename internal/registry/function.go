package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/dedupfn/dedupfn/internal/bytesize"
	"github.com/dedupfn/dedupfn/internal/index"
)

// Defaults for a function's limits and policy.
const (
	DefaultTimeout     = 60 * time.Second // one invocation
	DefaultLease       = 30 * time.Second // how long a claim holds without renewal
	DefaultMemoryMB    = 256              // WebAssembly memory limit
	DefaultMaxAttempts = 3                // runs of one event before it is dead-lettered
	DefaultTenant      = "default"        // tenant of functions deployed without one
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
)

// What a determinism audit's mismatch does (Audit.OnMismatch).
const (
	// OnMismatchWarn marks the version and keeps reusing its results.
	OnMismatchWarn = "warn"
	// OnMismatchDisableDedup marks the version and from then on runs every
	// event of it, as if deployed NoDedup.
	OnMismatchDisableDedup = "disable-dedup"
)

// What an object-removed event for a function's input does to the
// outputs it wrote for that input (Function.OnInputDelete).
const (
	// OnInputDeleteKeep leaves them (the default).
	OnInputDeleteKeep = "keep"
	// OnInputDeleteDelete deletes them, and through downstream functions
	// that also delete, their outputs in turn.
	OnInputDeleteDelete = "delete"
)

// ErrParamsTooLarge is returned by CheckParams.
var ErrParamsTooLarge = errors.New("params too large")

// TenantOr is tenant, or DefaultTenant when tenant is empty: the tenant
// of functions deployed without one.
func TenantOr(tenant string) string {
	if tenant == "" {
		return DefaultTenant
	}
	return tenant
}

// Trigger selects the objects a function runs on.
type Trigger struct {
	Bucket   string   `json:"bucket"`
	Prefix   string   `json:"prefix,omitempty"`
	Suffixes []string `json:"suffixes,omitempty"` // any of them; none = all
}

// Output says where a function's output goes.
type Output struct {
	Bucket string `json:"bucket"`
	// KeyTemplate is the output key, with the placeholders of
	// Placeholders replaced (for input a/b/cat.jpg: {key} a/b/cat.jpg,
	// {dir} a/b/, {base} cat, {ext} .jpg, {name} the function's name).
	// Default "{key}". Validate refuses other placeholders, unbalanced
	// braces and a template that does not determine the input key.
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
	// OnInputDelete is what deleting an input does to the outputs this
	// function wrote for it: OnInputDeleteKeep (the default) or
	// OnInputDeleteDelete. Like limits and audits it does not change
	// outputs, nor the Version.
	OnInputDelete string `json:"on_input_delete,omitempty"`
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

// IsAction reports whether f is an action: a function without a trigger
// or output bucket, invoked directly only (OpenWhisk's POST
// .../actions/NAME, pipeline.InvokeDirect) on JSON parameters, never
// matched by object events. Its Params are still its deploy-time
// params; the parameters of an invocation travel with it.
func (f *Function) IsAction() bool { return f.Trigger.Bucket == "" && f.Output.Bucket == "" }

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// ErrInvalid is wrapped by Validate's errors: a definition that cannot be
// deployed as it is. Their text is only the reason.
var ErrInvalid = errors.New("invalid function definition")

// invalidError is an error of Validate: its text, and ErrInvalid.
type invalidError struct{ err error }

func (e invalidError) Error() string   { return e.err.Error() }
func (e invalidError) Unwrap() []error { return []error{e.err, ErrInvalid} }

// Validate checks a definition and fills defaults; its errors wrap
// ErrInvalid.
func (f *Function) Validate() (err error) {
	defer func() {
		if err != nil {
			err = invalidError{err}
		}
	}()
	f.Tenant = TenantOr(f.Tenant)
	switch {
	case !nameRE.MatchString(f.Name):
		return fmt.Errorf("function name must match %s, got %q", nameRE, f.Name)
	case !nameRE.MatchString(f.Tenant):
		return fmt.Errorf("tenant must match %s, got %q", nameRE, f.Tenant)
	case f.Runtime == "":
		return fmt.Errorf("function %s: runtime must be set (wasm, process or openwhisk)", f.Name)
	case f.Trigger.Bucket == "" && (f.Output.Bucket != "" || f.Trigger.Prefix != "" || len(f.Trigger.Suffixes) > 0):
		return fmt.Errorf("function %s: trigger bucket must be set (or no trigger and no output bucket, for an action invoked directly)", f.Name)
	case f.Output.Bucket == "" && f.Trigger.Bucket != "":
		return fmt.Errorf("function %s: output bucket must be set", f.Name)
	case f.Limits.Timeout < 0 || f.Limits.Lease < 0 || f.Limits.MemoryMB < 0 || f.Limits.Retention < 0 || f.MaxAttempts < 0:
		return fmt.Errorf("function %s: limits must be >= 0", f.Name)
	case math.IsNaN(f.Audit.Rate) || f.Audit.Rate < 0 || f.Audit.Rate > 1:
		return fmt.Errorf("function %s: audit rate must be between 0 and 1 (a fraction of hits), got %v", f.Name, f.Audit.Rate)
	case f.Audit.OnMismatch != "" && f.Audit.OnMismatch != OnMismatchWarn && f.Audit.OnMismatch != OnMismatchDisableDedup:
		return fmt.Errorf("function %s: audit on_mismatch must be %q or %q, got %q", f.Name, OnMismatchWarn, OnMismatchDisableDedup, f.Audit.OnMismatch)
	case f.OnInputDelete != "" && f.OnInputDelete != OnInputDeleteKeep && f.OnInputDelete != OnInputDeleteDelete:
		return fmt.Errorf("function %s: on_input_delete must be %q or %q, got %q", f.Name, OnInputDeleteKeep, OnInputDeleteDelete, f.OnInputDelete)
	case f.NoDedup && f.Audit.Rate > 0:
		return fmt.Errorf("function %s: audit rate must be 0 for a no-dedup function (it reuses no results to audit), got %v", f.Name, f.Audit.Rate)
	}
	if f.Audit.Rate > 0 && f.Audit.OnMismatch == "" {
		f.Audit.OnMismatch = OnMismatchWarn
	}
	if f.OnInputDelete == "" {
		f.OnInputDelete = OnInputDeleteKeep
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
	if !f.IsAction() { // an action writes no objects
		if err := f.checkOutputTemplate(); err != nil {
			return err
		}
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
				ErrParamsTooLarge, f.Name, p.what, n, bytesize.Exact(int64(maxBytes)))
		}
	}
	return nil
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
// An action never does.
func (f *Function) Matches(bucket, key string) bool {
	return !f.IsAction() && f.Mismatch(bucket, key) == ""
}

// Placeholders are the names an output-key template may use, each with
// what it renders for input a/b/cat.jpg of function thumbnail.
var Placeholders = []Placeholder{
	{"{key}", "a/b/cat.jpg", "the input key"},
	{"{dir}", "a/b/", `its folder, with the slash ("" at the top)`},
	{"{base}", "cat", "its file name without the extension"},
	{"{ext}", ".jpg", `the extension, with the dot ("" if none)`},
	{"{name}", "thumbnail", "the function's name (not the file's)"},
}

// Placeholder is one name of an output-key template.
type Placeholder struct{ Name, Example, Meaning string }

// placeholderList is Placeholders' names, for error messages.
func placeholderList() string {
	names := make([]string, len(Placeholders))
	for i, p := range Placeholders {
		names[i] = p.Name
	}
	return strings.Join(names, " ")
}

// checkKeyTemplate refuses a template that would not render what it
// says: an unknown placeholder or an unbalanced brace (rendered
// literally, they name an object "{nope}/{key"), and one whose keys do
// not determine the input key: without {key}, or {dir}, {base} and {ext}
// together, different inputs render one output key ({dir}{name}.json
// for every input of a folder; {dir}{base} for x.jpg and x.png), and
// every input after the first would be a dead letter.
func checkKeyTemplate(tmpl string) error {
	var problems []string
	used := map[string]bool{}
	for rest := tmpl; rest != ""; {
		open, closing := strings.IndexByte(rest, '{'), strings.IndexByte(rest, '}')
		switch {
		case open < 0 && closing < 0:
			rest = ""
			continue
		case closing >= 0 && (open < 0 || closing < open):
			problems = append(problems, `"}" without a "{"`)
			rest = rest[closing+1:]
			continue
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] == '{' {
			problems = append(problems, fmt.Sprintf(`unclosed "{" in %q`, rest[open:]))
			rest = rest[open+1:]
			continue
		}
		name := rest[open : open+end+2]
		if !slices.ContainsFunc(Placeholders, func(p Placeholder) bool { return p.Name == name }) {
			problems = append(problems, "unknown placeholder "+name)
		}
		used[name] = true
		rest = rest[open+end+2:]
	}
	if len(problems) > 0 {
		return fmt.Errorf("output key template %q: %s (placeholders: %s; braces are only for placeholders)",
			tmpl, strings.Join(problems, "; "), placeholderList())
	}
	if !used["{key}"] && !(used["{dir}"] && used["{base}"] && used["{ext}"]) {
		return fmt.Errorf("output key template %q does not determine the input key: different inputs would get one output key; use {key}, or {dir}, {base} and {ext} together (e.g. thumbs/{key} or thumbs/{dir}{base}{ext}.png)", tmpl)
	}
	return nil
}

// OutputKey is where f's output for an input key goes: the key template
// rendered, with "." and empty segments dropped (so "./{key}", "/{key}"
// and "a//b" name the keys they look like). A key with a ".." segment, or
// one that renders empty or as a folder, is an error.
func (f *Function) OutputKey(key string) (string, error) {
	dir, file := path.Split(key)
	ext := path.Ext(file)
	rendered := strings.NewReplacer( // the order of Placeholders
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

// checkOutputTemplate refuses a template checkKeyTemplate refuses, and one
// that, with output bucket = input bucket, renders some input's own key
// (overwriting the user's original).
func (f *Function) checkOutputTemplate() error {
	if err := checkKeyTemplate(f.Output.KeyTemplate); err != nil {
		return fmt.Errorf("function %s: %w", f.Name, err)
	}
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

// Digest is the content address of function code.
func Digest(code []byte) string {
	sum := sha256.Sum256(code)
	return hex.EncodeToString(sum[:])
}
