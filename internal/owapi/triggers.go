package owapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
)

// triggerPrefix starts the function name of a trigger's activations.
const triggerPrefix = "owtrigger."

// triggerDoc is a trigger as stored.
type triggerDoc struct {
	entity
	Limits struct{} `json:"limits"`
	// Feed is the objects feed's configuration, once a CREATE set it.
	Feed *feedConfig `json:"dedupfn_feed,omitempty"`
}

// triggerView is a trigger as answered: with the rules that name it.
type triggerView struct {
	entity
	Limits struct{}            `json:"limits"`
	Rules  map[string]ruleLink `json:"rules,omitempty"`
}

// ruleLink is a rule as a trigger lists it.
type ruleLink struct {
	Action entityPath `json:"action"`
	Status string     `json:"status"`
}

// triggerBody is the body of PUT …/triggers/NAME.
type triggerBody struct {
	entityBody
}

// routeTriggers mounts the trigger endpoints.
func (s *Server) routeTriggers() {
	s.handle("GET /namespaces/{ns}/triggers", false, s.listTriggers)
	s.handle("GET /namespaces/{ns}/triggers/{name}", false, s.getTrigger)
	s.handle("PUT /namespaces/{ns}/triggers/{name}", false, s.putTrigger)
	s.handle("DELETE /namespaces/{ns}/triggers/{name}", false, s.deleteTrigger)
	s.handle("POST /namespaces/{ns}/triggers/{name}", false, s.fireTrigger)
}

func (s *Server) putTrigger(w http.ResponseWriter, q *request) error {
	ctx := q.r.Context()
	name := q.r.PathValue("name")
	if err := checkName(name); err != nil {
		return err
	}
	var body triggerBody
	var old triggerDoc
	id, found, unlock, err := s.beginPut(w, q, kindTrigger, name, maxJSONBytes, &body, &old)
	defer unlock()
	if err != nil {
		return err
	}
	doc := triggerDoc{entity: entity{Namespace: q.ns, Name: name}}
	var prev *entity
	if found {
		doc, prev = old, &old.entity
	}
	body.apply(&doc.entity)
	doc.touch(prev)
	if err := s.putDoc(ctx, kindTrigger, id, doc); err != nil {
		return err
	}
	v, err := s.triggerView(ctx, q.caller, &doc)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// triggerView is doc with its rules.
func (s *Server) triggerView(ctx context.Context, caller *Namespace, doc *triggerDoc) (triggerView, error) {
	v := triggerView{entity: doc.entity}
	rules, err := s.rulesOf(ctx, caller, doc.Name)
	if err != nil {
		return v, err
	}
	for _, r := range rules {
		if v.Rules == nil {
			v.Rules = map[string]ruleLink{}
		}
		v.Rules[caller.Name+"/"+r.Name] = ruleLink{Action: r.Action, Status: r.Status}
	}
	return v, nil
}

func (s *Server) getTrigger(w http.ResponseWriter, q *request) error {
	var d triggerDoc
	if err := s.getDoc(q.r.Context(), kindTrigger, docID(q.ns, q.r.PathValue("name")), &d); err != nil {
		return err
	}
	v, err := s.triggerView(q.r.Context(), q.caller, &d)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) listTriggers(w http.ResponseWriter, q *request) error {
	return listEntities(s, w, q, kindTrigger, func(_ string, d *triggerDoc) (entity, bool, error) { return d.entity, true, nil })
}

// deleteTrigger deletes a trigger. Its rules stay (as in OpenWhisk),
// but the bucket functions of object rules go: nothing fires them.
func (s *Server) deleteTrigger(w http.ResponseWriter, q *request) error {
	ctx := q.r.Context()
	name := q.r.PathValue("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	var d triggerDoc
	if err := s.getDoc(ctx, kindTrigger, docID(q.ns, name), &d); err != nil {
		return err
	}
	if d.Feed != nil {
		if err := s.undeployRulesOf(ctx, q.caller, name); err != nil {
			return err
		}
	}
	if err := s.deleteDoc(ctx, kindTrigger, docID(q.ns, name)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d.entity)
	return nil
}

// ruleActivation is one line of a trigger activation's logs.
type ruleActivation struct {
	StatusCode   int    `json:"statusCode"`
	Success      bool   `json:"success"`
	ActivationID string `json:"activationId"`
	Rule         string `json:"rule"`
	Action       string `json:"action"`
	Error        string `json:"error,omitempty"`
}

// fireTrigger fires a trigger: each active rule's action is invoked
// (not blocking) with the trigger's parameters under the payload, caused
// by the trigger's activation, which is answered (202). No active rule:
// 204, and nothing is recorded.
func (s *Server) fireTrigger(w http.ResponseWriter, q *request) error {
	ctx := q.r.Context()
	name := q.r.PathValue("name")
	var payload map[string]json.RawMessage
	if err := decode(w, q.r, maxJSONBytes, &payload); err != nil {
		return err
	}
	var d triggerDoc
	if err := s.getDoc(ctx, kindTrigger, docID(q.ns, name), &d); err != nil {
		return err
	}
	rules, err := s.rulesOf(ctx, q.caller, name)
	if err != nil {
		return err
	}
	start := time.Now()
	id := newID()
	var logs []byte
	fired := 0
	for _, r := range rules {
		if r.Status != statusActive {
			continue
		}
		fired++
		line := ruleActivation{Rule: q.caller.Name + "/" + r.Name, Action: r.Action.Path + "/" + r.Action.Name}
		a, err := s.resolveAction(ctx, q.caller, r.actionFQN())
		var params json.RawMessage
		if err == nil {
			params, err = mergeParams(d.Parameters, nil, payload)
		}
		if err == nil {
			var p map[string]json.RawMessage
			json.Unmarshal(params, &p)
			params, err = mergeParams(a.pkgParams, a.doc.Parameters, p)
		}
		if err == nil {
			line.ActivationID, line.Success = newID(), true
			_, err = s.start(q.caller, a, params, line.ActivationID, id)
		}
		if err != nil {
			line.StatusCode, line.Success, line.ActivationID, line.Error = statusDeveloperError, false, "", err.Error()
		}
		b, _ := json.Marshal(line)
		logs = append(append(logs, b...), '\n')
	}
	if fired == 0 {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	result, _ := json.Marshal(payload)
	if payload == nil {
		result = json.RawMessage("{}")
	}
	rec := activation.Record{ID: id, EventID: id, Tenant: q.caller.tenant(), Function: triggerPrefix + escapeName(name),
		EventSource: sourceTrigger, Start: start.UTC(), EventTime: start.UTC(), Decision: activation.Skipped,
		Result: result, Logs: string(logs), Attempts: 1}
	rec.Timings.TotalMS = float64(time.Since(start).Microseconds()) / 1000
	if err := s.cfg.Index.AddActivation(context.WithoutCancel(ctx), rec); err != nil {
		return err
	}
	w.Header().Set("x-openwhisk-activation-id", id)
	writeJSON(w, http.StatusAccepted, map[string]string{"activationId": id})
	return nil
}
