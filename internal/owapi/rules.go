package owapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Rule statuses.
const (
	statusActive   = "active"
	statusInactive = "inactive"
)

// entityPath names an entity as a rule does: its namespace (with its
// package) and name.
type entityPath struct {
	Path string `json:"path"`
	Name string `json:"name"`
}

// ruleDoc is a rule as stored and shown.
type ruleDoc struct {
	entity
	Status  string     `json:"status"`
	Trigger entityPath `json:"trigger"`
	Action  entityPath `json:"action"`
	// Function is the bucket function an object trigger's rule deployed
	// (registry name, in Tenant), while it is active.
	Function string `json:"dedupfn_function,omitempty"`
	Tenant   string `json:"dedupfn_tenant,omitempty"`
}

// ruleView is a rule as answered (without dedupfn's fields).
type ruleView struct {
	entity
	Status  string     `json:"status"`
	Trigger entityPath `json:"trigger"`
	Action  entityPath `json:"action"`
}

func (r *ruleDoc) view() ruleView {
	v := ruleView{entity: r.entity, Status: r.Status, Trigger: r.Trigger, Action: r.Action}
	v.Parameters = nil
	return v
}

// actionFQN is the rule's action.
func (r *ruleDoc) actionFQN() fqn {
	ns, pkg, _ := strings.Cut(r.Action.Path, "/")
	return fqn{ns: ns, pkg: pkg, name: r.Action.Name}
}

// pathOf is f as a rule names it.
func pathOf(f fqn) entityPath {
	p := f.ns
	if f.pkg != "" {
		p += "/" + f.pkg
	}
	return entityPath{Path: p, Name: f.name}
}

// ruleBody is the body of PUT …/rules/NAME and POST (status).
type ruleBody struct {
	entityBody
	Trigger string `json:"trigger"`
	Action  string `json:"action"`
	Status  string `json:"status"`
}

// routeRules mounts the rule endpoints.
func (s *Server) routeRules() {
	s.handle("GET /namespaces/{ns}/rules", false, s.listRules)
	s.handle("GET /namespaces/{ns}/rules/{name}", false, s.getRule)
	s.handle("PUT /namespaces/{ns}/rules/{name}", false, s.putRule)
	s.handle("DELETE /namespaces/{ns}/rules/{name}", false, s.deleteRule)
	s.handle("POST /namespaces/{ns}/rules/{name}", false, s.setRuleStatus)
}

// rulesOf returns the caller's rules on trigger ("" = all), by name.
func (s *Server) rulesOf(ctx context.Context, caller *Namespace, trigger string) ([]ruleDoc, error) {
	var out []ruleDoc
	err := s.eachDoc(ctx, kindRule, caller.Name, func(_ string, b []byte) error {
		var r ruleDoc
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		if trigger == "" || (r.Trigger.Path == caller.Name && r.Trigger.Name == trigger) {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

func (s *Server) putRule(w http.ResponseWriter, q *request) error {
	ctx := q.r.Context()
	name := q.r.PathValue("name")
	if err := checkName(name); err != nil {
		return err
	}
	var body ruleBody
	var old ruleDoc
	id, found, unlock, err := s.beginPut(w, q, kindRule, name, maxJSONBytes, &body, &old)
	defer unlock()
	if err != nil {
		return err
	}
	doc := ruleDoc{entity: entity{Namespace: q.ns, Name: name}, Status: statusActive}
	var prev *entity
	if found {
		doc, prev = old, &old.entity
	}
	if body.Trigger == "" && !found || body.Action == "" && !found {
		return badRequest("The request content was malformed: a rule needs a trigger and an action")
	}
	if body.Trigger != "" {
		t, err := parseFQN(body.Trigger, q.caller.Name)
		if err != nil {
			return err
		}
		if t.ns != q.caller.Name || t.pkg != "" {
			return forbidden()
		}
		if ok, err := s.exists(ctx, kindTrigger, docID(t.ns, t.name)); err != nil || !ok {
			return errors.Join(err, withStatus(http.StatusNotFound, fmt.Errorf("The requested resource '%s' does not exist.", t)))
		}
		doc.Trigger = pathOf(t)
	}
	if body.Action != "" {
		a, err := parseFQN(body.Action, q.caller.Name)
		if err != nil {
			return err
		}
		if _, err := s.resolveAction(ctx, q.caller, a); err != nil {
			if statusOf(err) == http.StatusNotFound {
				return withStatus(http.StatusNotFound, fmt.Errorf("The requested resource '%s' does not exist.", a))
			}
			return err
		}
		doc.Action = pathOf(a)
	}
	body.Parameters = nil
	body.apply(&doc.entity)
	doc.touch(prev)
	doc.Parameters = nil
	return s.saveRule(w, q, id, &doc)
}

// saveRule applies a rule (applyRule) and stores and answers it.
func (s *Server) saveRule(w http.ResponseWriter, q *request, id string, r *ruleDoc) error {
	if err := s.applyRule(q.r.Context(), q.caller, r); err != nil {
		return err
	}
	if err := s.putDoc(q.r.Context(), kindRule, id, r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, r.view())
	return nil
}

func (s *Server) getRule(w http.ResponseWriter, q *request) error {
	var d ruleDoc
	if err := s.getDoc(q.r.Context(), kindRule, docID(q.ns, q.r.PathValue("name")), &d); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d.view())
	return nil
}

func (s *Server) listRules(w http.ResponseWriter, q *request) error {
	return listEntities(s, w, q, kindRule, func(_ string, r *ruleDoc) (ruleView, bool, error) { return r.view(), true, nil })
}

func (s *Server) deleteRule(w http.ResponseWriter, q *request) error {
	ctx := q.r.Context()
	s.mu.Lock()
	defer s.mu.Unlock()
	id := docID(q.ns, q.r.PathValue("name"))
	var d ruleDoc
	if err := s.getDoc(ctx, kindRule, id, &d); err != nil {
		return err
	}
	if err := s.undeployRule(ctx, &d); err != nil {
		return err
	}
	if err := s.deleteDoc(ctx, kindRule, id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d.view())
	return nil
}

// setRuleStatus is POST …/rules/NAME {status: active|inactive}.
func (s *Server) setRuleStatus(w http.ResponseWriter, q *request) error {
	ctx := q.r.Context()
	var body ruleBody
	if err := decode(w, q.r, maxJSONBytes, &body); err != nil {
		return err
	}
	if body.Status != statusActive && body.Status != statusInactive {
		return badRequest("status must be '%s' or '%s', got %q", statusActive, statusInactive, body.Status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := docID(q.ns, q.r.PathValue("name"))
	var d ruleDoc
	if err := s.getDoc(ctx, kindRule, id, &d); err != nil {
		return err
	}
	if d.Status == body.Status {
		writeJSON(w, http.StatusOK, d.view())
		return nil
	}
	d.Status = body.Status
	return s.saveRule(w, q, id, &d)
}
