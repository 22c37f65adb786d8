package owapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
)

// Kinds of the index documents that hold OpenWhisk entities, each under
// the id "namespace/name" ("namespace/package/name" for an action in a
// package).
const (
	kindAction  = "ow.action"
	kindPackage = "ow.package"
	kindTrigger = "ow.trigger"
	kindRule    = "ow.rule"
)

// keyValue is one of OpenWhisk's parameters or annotations: a key and
// any JSON value.
type keyValue struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// keyValues are parameters or annotations, in order.
type keyValues []keyValue

// get returns the value of key.
func (kv keyValues) get(key string) (json.RawMessage, bool) {
	for _, p := range kv {
		if p.Key == key {
			return p.Value, true
		}
	}
	return nil, false
}

// bool reads key as a boolean (true, or the string "true"); def when
// absent or of another type.
func (kv keyValues) bool(key string, def bool) bool {
	v, ok := kv.get(key)
	if !ok {
		return def
	}
	var b bool
	if json.Unmarshal(v, &b) == nil {
		return b
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		if b, err := strconv.ParseBool(s); err == nil {
			return b
		}
	}
	return def
}

// set returns kv with key set to v (replaced, or added at the end).
func (kv keyValues) set(key string, v any) keyValues {
	b, _ := json.Marshal(v)
	out := make(keyValues, 0, len(kv)+1)
	for _, p := range kv {
		if p.Key != key {
			out = append(out, p)
		}
	}
	return append(out, keyValue{Key: key, Value: b})
}

// without returns kv without key.
func (kv keyValues) without(key string) keyValues {
	out := keyValues{}
	for _, p := range kv {
		if p.Key != key {
			out = append(out, p)
		}
	}
	return out
}

// check refuses a parameter or annotation without a key or a value.
func (kv keyValues) check(what string) error {
	for _, p := range kv {
		if p.Key == "" {
			return badRequest("%s must each have a key", what)
		}
		if len(bytes.TrimSpace(p.Value)) == 0 {
			return badRequest("%s %q has no value", what, p.Key)
		}
	}
	return nil
}

// orEmpty is kv, or an empty list (never null in JSON).
func (kv keyValues) orEmpty() keyValues {
	if kv == nil {
		return keyValues{}
	}
	return kv
}

// entity is what every OpenWhisk entity has.
type entity struct {
	Namespace   string    `json:"namespace"`
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	Publish     bool      `json:"publish"`
	Annotations keyValues `json:"annotations"`
	Parameters  keyValues `json:"parameters"`
	Updated     int64     `json:"updated"`
}

// touch sets the version (0.0.1, or old's bumped) and the update time.
func (e *entity) touch(old *entity) {
	e.Version = "0.0.1"
	if old != nil {
		e.Version = bumpVersion(old.Version)
	}
	e.Updated = time.Now().UnixMilli()
	e.Annotations = e.Annotations.orEmpty()
}

// bumpVersion adds one to a semver's patch number.
func bumpVersion(v string) string {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return "0.0.1"
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil {
		return "0.0.1"
	}
	return parts[0] + "." + parts[1] + "." + strconv.Itoa(n+1)
}

// entityBody are the fields of a PUT's body every entity has; absent
// ones keep their values on an update.
type entityBody struct {
	Parameters  keyValues `json:"parameters"`
	Annotations keyValues `json:"annotations"`
	Publish     *bool     `json:"publish"`
}

// check refuses parameters or annotations without a key or a value.
func (b *entityBody) check() error {
	if err := b.Parameters.check("parameters"); err != nil {
		return err
	}
	return b.Annotations.check("annotations")
}

// apply sets e's fields that b has.
func (b *entityBody) apply(e *entity) {
	if b.Parameters != nil {
		e.Parameters = b.Parameters
	}
	if b.Annotations != nil {
		e.Annotations = b.Annotations
	}
	if b.Publish != nil {
		e.Publish = *b.Publish
	}
	e.Parameters = e.Parameters.orEmpty()
}

// existing reads the entity a PUT replaces into old: found reports
// whether there is one; there is one and the PUT does not overwrite: 409.
func (s *Server) existing(q *request, kind, id string, old any) (found bool, err error) {
	err = s.getDoc(q.r.Context(), kind, id, old)
	switch {
	case err != nil && statusOf(err) == http.StatusNotFound:
		return false, nil
	case err != nil:
		return false, err
	case !overwrite(q):
		return true, withStatus(http.StatusConflict, errors.New(msgExists))
	}
	return true, nil
}

// beginPut starts a PUT of an entity of kind named name (below the
// request's namespace): it decodes the body into body (at most limit
// bytes) and checks it, takes s.mu (release it with the returned
// unlock), and reads the entity the PUT replaces into old (existing).
func (s *Server) beginPut(w http.ResponseWriter, q *request, kind, name string, limit int64, body interface{ check() error }, old any) (id string, found bool, unlock func(), err error) {
	unlock = func() {}
	if err := decode(w, q.r, limit, body); err != nil {
		return "", false, unlock, err
	}
	if err := body.check(); err != nil {
		return "", false, unlock, err
	}
	s.mu.Lock()
	id = docID(q.ns, name)
	found, err = s.existing(q, kind, id, old)
	if err != nil {
		s.mu.Unlock()
		return "", false, unlock, err
	}
	return id, found, s.mu.Unlock, nil
}

// updatedAt orders entities in lists, newest first.
func (e entity) updatedAt() int64 { return e.Updated }

// listEntities answers a list of the documents of kind in the request's
// namespace, newest first, in the query's window; view maps each
// (path below the namespace, decoded document) to what is listed, or
// false to leave it out.
func listEntities[T any, V interface{ updatedAt() int64 }](s *Server, w http.ResponseWriter, q *request, kind string, view func(path string, d *T) (V, bool, error)) error {
	skip, limit, err := listWindow(q)
	if err != nil {
		return err
	}
	out := []V{}
	err = s.eachDoc(q.r.Context(), kind, q.ns, func(path string, b []byte) error {
		var d T
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		v, ok, err := view(path, &d)
		if ok {
			out = append(out, v)
		}
		return err
	})
	if err != nil {
		return err
	}
	writeSorted(w, out, skip, limit)
	return nil
}

// writeSorted answers items newest first, in the window skip, limit.
func writeSorted[V interface{ updatedAt() int64 }](w http.ResponseWriter, items []V, skip, limit int) {
	sort.SliceStable(items, func(i, j int) bool { return items[i].updatedAt() > items[j].updatedAt() })
	writeJSON(w, http.StatusOK, window(items, skip, limit))
}

// docID is the index id of an entity.
func docID(ns, path string) string { return ns + "/" + path }

// getDoc reads an entity document into v; a missing one is a 404.
func (s *Server) getDoc(ctx context.Context, kind, id string, v any) error {
	b, err := s.cfg.Index.GetDoc(ctx, kind, id)
	if errors.Is(err, index.ErrNotFound) {
		return notFound()
	}
	if err != nil {
		return fmt.Errorf("owapi: get %s %s: %w", kind, id, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("owapi: decode %s %s: %w", kind, id, err)
	}
	return nil
}

// exists reports whether an entity document exists.
func (s *Server) exists(ctx context.Context, kind, id string) (bool, error) {
	_, err := s.cfg.Index.GetDoc(ctx, kind, id)
	if errors.Is(err, index.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// putDoc stores an entity document.
func (s *Server) putDoc(ctx context.Context, kind, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.cfg.Index.PutDoc(ctx, kind, id, b); err != nil {
		return fmt.Errorf("owapi: put %s %s: %w", kind, id, err)
	}
	return nil
}

// deleteDoc removes an entity document; a missing one is a 404.
func (s *Server) deleteDoc(ctx context.Context, kind, id string) error {
	err := s.cfg.Index.DeleteDoc(ctx, kind, id)
	if errors.Is(err, index.ErrNotFound) {
		return notFound()
	}
	if err != nil {
		return fmt.Errorf("owapi: delete %s %s: %w", kind, id, err)
	}
	return nil
}

// eachDoc calls fn with every document of kind in namespace ns, in id
// order, with its path below the namespace.
func (s *Server) eachDoc(ctx context.Context, kind, ns string, fn func(path string, doc []byte) error) error {
	prefix := ns + "/"
	return s.cfg.Index.Docs(ctx, kind, func(id string, doc []byte) error {
		path, ok := strings.CutPrefix(id, prefix)
		if !ok {
			return nil
		}
		return fn(path, doc)
	})
}

// listWindow is a list's skip and limit from the query, checked as
// OpenWhisk does (limit 0..200, default 30; 0 means the maximum).
func listWindow(q *request) (skip, limit int, err error) {
	limit, skip = defaultListLimit, 0
	if v := q.r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, 0, badRequest("The value '%s' is not an integer for %s.", v, "limit")
		}
		if n < 0 || n > maxListLimit {
			return 0, 0, badRequest("The value '%d' is not in the range of 0 to %d for %s.", n, maxListLimit, "limit")
		}
		limit = n
		if n == 0 {
			limit = maxListLimit
		}
	}
	if v := q.r.URL.Query().Get("skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, 0, badRequest("The value '%s' is not an integer for %s.", v, "skip")
		}
		if n < 0 {
			return 0, 0, badRequest("The value '%d' is not greater than or equal to 0 for %s.", n, "skip")
		}
		skip = n
	}
	return skip, limit, nil
}

// window returns items[skip : skip+limit], clipped.
func window[T any](items []T, skip, limit int) []T {
	if skip >= len(items) {
		return []T{}
	}
	items = items[skip:]
	if len(items) > limit {
		items = items[:limit]
	}
	return items
}

// overwrite reads the overwrite query parameter.
func overwrite(q *request) bool {
	b, _ := strconv.ParseBool(q.r.URL.Query().Get("overwrite"))
	return b
}
