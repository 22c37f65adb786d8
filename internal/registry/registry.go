// Package registry holds function definitions and their versions, stored in
// the index so replicas sharing an index share functions, and derives the
// dedup key of (function version, content).
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
)

// How a registry keeps its cache fresh, and where it stores what.
const (
	DefaultRefresh       = 500 * time.Millisecond // polling, for indexes that cannot push changes
	DefaultPushedRefresh = 30 * time.Second       // backstop polling when the index pushes changes
	docKind              = "function"
	// markKind holds the Nondeterministic marks, one document per
	// function version (id tenant/name/version), apart from the function
	// definitions: a mark belongs to a version, not to a deploy.
	markKind = "nondeterministic"
)

// ErrNotFound is returned for an unknown function.
var ErrNotFound = errors.New("function not found")

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
	// graph is the function graph of cache, built by Graph when first
	// asked for after the cache changed (nil until then).
	graph *Graph

	code codeCache
}

// New returns a registry over idx.
func New(idx index.DocStore, logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		idx: idx, logger: logger.With("component", "registry"),
		code: newCodeCache(DefaultCodeCacheBytes),
	}
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
	// Checked against this replica's cache, freshly read: two replicas
	// deploying at once, each half of a cycle, may both pass. That is
	// accepted (deploys are rare and operator-driven); the pipeline still
	// never lets an output trigger its writer or anything upstream of
	// it, and stops a chain deeper than MaxChainStages.
	if err := r.Refresh(ctx); err != nil {
		return f, err
	}
	if err := CheckGraph(r.List(""), f, visibleTo(f.Tenant)); err != nil {
		return f, err
	}
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

// visibleTo says which functions tenant may see named in its errors:
// its own, and all of them for DefaultTenant (the admin's).
func visibleTo(tenant string) func(Function) bool {
	return func(f Function) bool { return tenant == DefaultTenant || f.Tenant == tenant }
}

// Graph returns the function graph of the cached functions. It is built
// once per change of the cache (Refresh), so it is cheap to call per event.
func (r *Registry) Graph() *Graph {
	r.mu.RLock()
	g := r.graph
	r.mu.RUnlock()
	if g != nil {
		return g
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.graph == nil {
		r.graph = NewGraph(r.cache)
	}
	return r.graph
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
	r.graph = nil // holds the functions without the mark
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

// Buckets returns the distinct trigger buckets, for the reconciler
// (actions have none).
func (r *Registry) Buckets() []string {
	seen := map[string]bool{}
	for _, f := range r.List("") {
		if !f.IsAction() {
			seen[f.Trigger.Bucket] = true
		}
	}
	out := make([]string, 0, len(seen))
	for b := range seen {
		out = append(out, b)
	}
	sort.Strings(out)
	return out
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
	r.graph = nil
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
