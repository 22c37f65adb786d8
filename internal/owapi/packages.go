package owapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// packageDoc is a package as stored and shown. Bindings are not
// supported: a package with a binding is refused.
type packageDoc struct {
	entity
	Binding json.RawMessage `json:"binding,omitempty"`
}

// packageView is a package as answered by GET: with its actions.
type packageView struct {
	entity
	Binding json.RawMessage  `json:"binding"`
	Actions []packageContent `json:"actions"`
	Feeds   []packageContent `json:"feeds"`
}

// packageContent is an action listed in a package.
type packageContent struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	Annotations keyValues `json:"annotations"`
}

// packageBody is the body of PUT …/packages/NAME.
type packageBody struct {
	entityBody
	Binding json.RawMessage `json:"binding"`
}

// check refuses what entityBody.check refuses, and bindings.
func (b *packageBody) check() error {
	if v := strings.TrimSpace(string(b.Binding)); v != "" && v != "{}" && v != "null" {
		return badRequest("package bindings are not supported by dedupfn")
	}
	return b.entityBody.check()
}

// routePackages mounts the package endpoints.
func (s *Server) routePackages() {
	s.handle("GET /namespaces/{ns}/packages", true, s.listPackages)
	s.handle("GET /namespaces/{ns}/packages/{name}", true, s.getPackage)
	s.handle("PUT /namespaces/{ns}/packages/{name}", false, s.putPackage)
	s.handle("DELETE /namespaces/{ns}/packages/{name}", false, s.deletePackage)
}

// systemPackages are whisk.system's packages, from its built-ins.
func systemPackages() map[string]*packageView {
	out := map[string]*packageView{}
	for _, a := range builtinActions() {
		p := out[a.pkg]
		if p == nil {
			p = &packageView{entity: entity{Namespace: SystemNamespace, Name: a.pkg, Version: "0.0.1", Publish: true,
				Annotations: keyValues{}, Parameters: keyValues{}}, Binding: json.RawMessage("{}")}
			out[a.pkg] = p
		}
		c := packageContent{Name: a.doc.Name, Version: a.doc.Version, Annotations: a.doc.Annotations}
		if a.id == builtinObjectsFeed {
			p.Feeds = append(p.Feeds, c)
		} else {
			p.Actions = append(p.Actions, c)
		}
	}
	return out
}

func (s *Server) putPackage(w http.ResponseWriter, q *request) error {
	ctx := q.r.Context()
	name := q.r.PathValue("name")
	if err := checkName(name); err != nil {
		return err
	}
	var body packageBody
	var old packageDoc
	id, found, unlock, err := s.beginPut(w, q, kindPackage, name, maxJSONBytes, &body, &old)
	defer unlock()
	if err != nil {
		return err
	}
	doc := packageDoc{entity: entity{Namespace: q.ns, Name: name}}
	var prev *entity
	if found {
		doc, prev = old, &old.entity
	}
	body.apply(&doc.entity)
	doc.touch(prev)
	if err := s.putDoc(ctx, kindPackage, id, doc); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// packageActions lists the actions of package name in ns.
func (s *Server) packageActions(q *request, name string) ([]packageContent, []string, error) {
	var out []packageContent
	var ids []string
	err := s.eachDoc(q.r.Context(), kindAction, q.ns, func(path string, b []byte) error {
		pkg, _, ok := strings.Cut(path, "/")
		if !ok || pkg != name {
			return nil
		}
		var d actionDoc
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		out = append(out, packageContent{Name: d.Name, Version: d.Version, Annotations: d.Annotations.orEmpty()})
		ids = append(ids, docID(q.ns, path))
		return nil
	})
	return out, ids, err
}

func (s *Server) getPackage(w http.ResponseWriter, q *request) error {
	name := q.r.PathValue("name")
	if q.ns == SystemNamespace {
		p, ok := systemPackages()[name]
		if !ok {
			return notFound()
		}
		writeJSON(w, http.StatusOK, p)
		return nil
	}
	var d packageDoc
	if err := s.getDoc(q.r.Context(), kindPackage, docID(q.ns, name), &d); err != nil {
		return err
	}
	actions, _, err := s.packageActions(q, name)
	if err != nil {
		return err
	}
	v := packageView{entity: d.entity, Binding: json.RawMessage("{}"), Actions: actions, Feeds: []packageContent{}}
	if v.Actions == nil {
		v.Actions = []packageContent{}
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) listPackages(w http.ResponseWriter, q *request) error {
	if q.ns == SystemNamespace {
		skip, limit, err := listWindow(q)
		if err != nil {
			return err
		}
		out := []entity{}
		for _, p := range systemPackages() {
			out = append(out, p.entity)
		}
		writeSorted(w, out, skip, limit)
		return nil
	}
	return listEntities(s, w, q, kindPackage, func(_ string, d *packageDoc) (entity, bool, error) { return d.entity, true, nil })
}

// deletePackage deletes a package; one holding actions only with
// force=true, which deletes them too.
func (s *Server) deletePackage(w http.ResponseWriter, q *request) error {
	ctx := q.r.Context()
	name := q.r.PathValue("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	var d packageDoc
	if err := s.getDoc(ctx, kindPackage, docID(q.ns, name), &d); err != nil {
		return err
	}
	_, ids, err := s.packageActions(q, name)
	if err != nil {
		return err
	}
	if force, _ := strconv.ParseBool(q.r.URL.Query().Get("force")); len(ids) > 0 && !force {
		return withStatus(http.StatusConflict, fmt.Errorf("Package not empty (contains %d %s). Set force param or delete package contents.", len(ids), plural(len(ids), "entity", "entities")))
	}
	for _, id := range ids {
		var a actionDoc
		if err := s.getDoc(ctx, kindAction, id, &a); err != nil {
			return err
		}
		if err := s.removeAction(ctx, q.caller, fqn{ns: q.ns, pkg: name, name: a.Name}, &a); err != nil {
			return err
		}
	}
	if err := s.deleteDoc(ctx, kindPackage, docID(q.ns, name)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// plural is one or many by n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
