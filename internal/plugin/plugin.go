// Package plugin is the URL-scheme registry that every backend family
// (objects, events, index) uses to register its implementations.
package plugin

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Registry maps URL schemes to constructors of type F.
type Registry[F any] struct {
	kind string
	mu   sync.Mutex
	m    map[string]F
}

// New returns an empty registry; kind names the family in error messages.
func New[F any](kind string) *Registry[F] {
	return &Registry[F]{kind: kind, m: map[string]F{}}
}

// Register adds a constructor for scheme. It panics on an empty or
// duplicate scheme: both are programming errors found at init time.
func (r *Registry[F]) Register(scheme string, f F) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if scheme == "" {
		panic(r.kind + ": register with empty scheme")
	}
	if _, dup := r.m[scheme]; dup {
		panic(fmt.Sprintf("%s: scheme %q registered twice", r.kind, scheme))
	}
	r.m[scheme] = f
}

// Lookup parses raw and returns the constructor registered for its scheme.
func (r *Registry[F]) Lookup(raw string) (F, *url.URL, error) {
	var zero F
	u, err := url.Parse(raw)
	if err != nil {
		return zero, nil, fmt.Errorf("%s: parse url %q: %w", r.kind, Redact(raw), err)
	}
	r.mu.Lock()
	f, ok := r.m[u.Scheme]
	r.mu.Unlock()
	if !ok {
		return zero, nil, fmt.Errorf("%s: unknown scheme %q in %q, expected one of %s",
			r.kind, u.Scheme, Redact(raw), strings.Join(r.Schemes(), ", "))
	}
	return f, u, nil
}

// Schemes lists the registered schemes, sorted.
func (r *Registry[F]) Schemes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := make([]string, 0, len(r.m))
	for k := range r.m {
		s = append(s, k+":")
	}
	sort.Strings(s)
	return s
}

// Redact hides the password of a URL so it can be logged.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
