package owapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// The objects feed, /whisk.system/dedupfn/objects, makes a trigger fire
// on the objects created in a bucket. OpenWhisk clients create a feed
// trigger by invoking the feed action with lifecycleEvent CREATE (then
// READ, UPDATE, DELETE), the trigger's name and the feed's parameters.
// A rule from such a trigger to an action deploys a dedupfn bucket
// function: the action's code and runtime on the feed's bucket, as `fn
// deploy` would; disabling or deleting the rule (or the trigger, or the
// feed) deletes it. The feed's parameters are checked as fn deploy
// checks them: templates (registry.Validate), buckets the caller's
// tenant may use, buckets that exist.

// Lifecycle events of a feed.
const (
	feedCreate = "CREATE"
	feedRead   = "READ"
	feedUpdate = "UPDATE"
	feedDelete = "DELETE"
)

// feedConfig is the objects feed's configuration of a trigger.
type feedConfig struct {
	Bucket        string `json:"bucket"`
	Prefix        string `json:"prefix,omitempty"`
	Suffix        string `json:"suffix,omitempty"`
	OutputBucket  string `json:"output_bucket"`
	OutputKey     string `json:"output_key,omitempty"`
	OnInputDelete string `json:"on_input_delete,omitempty"` // registry.OnInputDeleteKeep or Delete
}

// feedParams reads a feed's parameters from an invocation's payload.
// authKey, which OpenWhisk clients send along, is ignored: it is never
// stored.
func feedParams(payload map[string]json.RawMessage) (feedConfig, error) {
	var c feedConfig
	for _, f := range []struct {
		key string
		dst *string
	}{{"bucket", &c.Bucket}, {"prefix", &c.Prefix}, {"suffix", &c.Suffix}, {"output_bucket", &c.OutputBucket},
		{"output_key", &c.OutputKey}, {"on_input_delete", &c.OnInputDelete}} {
		if v, ok := payload[f.key]; ok {
			if err := json.Unmarshal(v, f.dst); err != nil {
				return c, badRequest("feed parameter %s must be a string", f.key)
			}
		}
	}
	return c, nil
}

// bucketFunction is the definition a feed gives fn: its trigger and
// output.
func (c feedConfig) bucketFunction(fn registry.Function) registry.Function {
	fn.Trigger = registry.Trigger{Bucket: c.Bucket, Prefix: c.Prefix}
	if c.Suffix != "" {
		fn.Trigger.Suffixes = []string{c.Suffix}
	}
	fn.Output = registry.Output{Bucket: c.OutputBucket, KeyTemplate: c.OutputKey}
	fn.OnInputDelete = c.OnInputDelete
	return fn
}

// checkFeed checks a feed's configuration as fn deploy checks a
// function's trigger and output.
func (s *Server) checkFeed(ctx context.Context, caller *Namespace, c feedConfig) error {
	if c.Bucket == "" || c.OutputBucket == "" {
		return badRequest("the objects feed needs the parameters bucket and output_bucket")
	}
	if err := caller.checkBucket("bucket", c.Bucket); err != nil {
		return err
	}
	if err := caller.checkBucket("output bucket", c.OutputBucket); err != nil {
		return err
	}
	fn := c.bucketFunction(registry.Function{Tenant: caller.tenant(), Name: "feed", Runtime: runtimeWasm})
	if err := fn.Validate(); err != nil {
		return err
	}
	if s.cfg.Deployer != nil {
		if err := s.cfg.Deployer.CheckBuckets(ctx, fn); err != nil {
			return withStatus(http.StatusBadRequest, err)
		}
	}
	return nil
}

// objectsFeed handles an invocation of the objects feed: one lifecycle
// event of a trigger of the caller's.
func (s *Server) objectsFeed(w http.ResponseWriter, q *request, payload map[string]json.RawMessage) error {
	ctx := q.r.Context()
	var event, trigger string
	json.Unmarshal(payload["lifecycleEvent"], &event)
	json.Unmarshal(payload["triggerName"], &trigger)
	t, err := parseFQN(trigger, q.caller.Name)
	if err != nil || t.pkg != "" {
		return badRequest("the objects feed needs triggerName, a trigger of the caller's namespace (/ns/name), got %q", trigger)
	}
	if t.ns != q.caller.Name {
		return forbidden()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := docID(t.ns, t.name)
	var d triggerDoc
	err = s.getDoc(ctx, kindTrigger, id, &d)
	found := err == nil
	if err != nil && statusOf(err) != http.StatusNotFound {
		return err
	}
	result := map[string]any{"lifecycleEvent": event, "triggerName": t.String()}
	switch event {
	case feedCreate, feedUpdate:
		c, err := feedParams(payload)
		if err != nil {
			return err
		}
		if err := s.checkFeed(ctx, q.caller, c); err != nil {
			return err
		}
		if !found && event == feedUpdate {
			return notFound()
		}
		var prev *entity
		if found {
			old := d.entity
			prev = &old
		} else {
			d = triggerDoc{entity: entity{Namespace: t.ns, Name: t.name, Parameters: keyValues{}}}
		}
		d.Feed = &c
		d.Annotations = d.Annotations.orEmpty().set("feed", "/"+SystemNamespace+"/"+builtinObjectsFeed)
		d.touch(prev)
		if err := s.putDoc(ctx, kindTrigger, id, d); err != nil {
			return err
		}
		if err := s.applyRulesOf(ctx, q.caller, t.name); err != nil {
			return err
		}
		result["config"] = c
	case feedRead:
		if !found || d.Feed == nil {
			return notFound()
		}
		result["config"] = d.Feed
	case feedDelete:
		if found && d.Feed != nil {
			d.Feed = nil
			if err := s.putDoc(ctx, kindTrigger, id, d); err != nil {
				return err
			}
			if err := s.undeployRulesOf(ctx, q.caller, t.name); err != nil {
				return err
			}
		}
	default:
		return badRequest("lifecycleEvent must be CREATE, READ, UPDATE or DELETE, got %q", event)
	}
	b, _ := json.Marshal(result)
	now := time.Now().UTC()
	fn, _ := builtinFunction(q.caller, builtinObjectsFeed)
	rec := activation.Record{ID: newID(), Tenant: q.caller.tenant(), Function: fn.Name, EventSource: sourceFeed,
		Start: now, EventTime: now, Decision: activation.Skipped, Result: b, Attempts: 1}
	rec.EventID = rec.ID
	if err := s.cfg.Index.AddActivation(context.WithoutCancel(ctx), rec); err != nil {
		return err
	}
	w.Header().Set("x-openwhisk-activation-id", rec.ID)
	if ok, _ := strconv.ParseBool(q.r.URL.Query().Get("result")); ok {
		writeJSON(w, http.StatusOK, json.RawMessage(b))
		return nil
	}
	writeJSON(w, http.StatusOK, s.activationView(ctx, q.caller, rec, true))
	return nil
}

// applyRule makes an object rule's bucket function match the rule: its
// trigger has the objects feed and it is active, deployed; otherwise
// none. Rules of other triggers have no function. s.mu is held.
func (s *Server) applyRule(ctx context.Context, caller *Namespace, r *ruleDoc) error {
	var t triggerDoc
	err := s.getDoc(ctx, kindTrigger, docID(caller.Name, r.Trigger.Name), &t)
	if err != nil && statusOf(err) != http.StatusNotFound {
		return err
	}
	if err != nil || t.Feed == nil || r.Status != statusActive {
		return s.undeployRule(ctx, r)
	}
	a, err := s.resolveAction(ctx, caller, r.actionFQN())
	if err != nil {
		return err
	}
	if a.builtin != "" || a.doc.Exec.Kind == kindSequence {
		return badRequest("a rule from an objects-feed trigger needs an action of the namespace with code (not a built-in or a sequence): %s", a.fqn)
	}
	fn, err := s.cfg.Registry.Get(ctx, a.doc.Tenant, a.doc.Function)
	if err != nil {
		return err
	}
	var code []byte
	if fn.CodeDigest != "" {
		if code, err = s.cfg.Registry.Code(ctx, fn.CodeDigest); err != nil {
			return err
		}
	}
	name, err := ruleFunctionName(r.Name)
	if err != nil {
		return err
	}
	if err := s.notClaimed(ctx, caller.tenant(), name, r.Function); err != nil {
		return err
	}
	fn = t.Feed.bucketFunction(fn)
	fn.Name, fn.Version, fn.Nondeterministic = name, "", nil
	fn.Params = stringParams(a.pkgParams, a.doc.Parameters, t.Parameters)
	if err := s.checkFeed(ctx, caller, *t.Feed); err != nil {
		return err
	}
	if s.cfg.Deployer != nil {
		if err := s.cfg.Deployer.Prepare(ctx, fn, code); err != nil {
			return withStatus(http.StatusBadRequest, err)
		}
	}
	if _, err := s.cfg.Registry.Deploy(ctx, fn, code); err != nil {
		return err
	}
	r.Function, r.Tenant = fn.Name, fn.Tenant
	return nil
}

// stringParams are parameters as a bucket function's params: strings
// as they are, other values as JSON; later lists win.
func stringParams(lists ...keyValues) map[string]string {
	var m map[string]string
	for _, kv := range lists {
		for _, p := range kv {
			if m == nil {
				m = map[string]string{}
			}
			var str string
			if json.Unmarshal(p.Value, &str) == nil {
				m[p.Key] = str
			} else {
				m[p.Key] = string(p.Value)
			}
		}
	}
	return m
}

// undeployRule deletes a rule's bucket function, if it has one.
func (s *Server) undeployRule(ctx context.Context, r *ruleDoc) error {
	if r.Function == "" {
		return nil
	}
	if err := s.cfg.Registry.Delete(ctx, r.Tenant, r.Function); err != nil && !errors.Is(err, registry.ErrNotFound) {
		return fmt.Errorf("owapi: delete the bucket function of rule %s: %w", r.Name, err)
	}
	r.Function, r.Tenant = "", ""
	return nil
}

// applyRulesOf applies (applyRule) and stores every rule of a trigger.
func (s *Server) applyRulesOf(ctx context.Context, caller *Namespace, trigger string) error {
	rules, err := s.rulesOf(ctx, caller, trigger)
	if err != nil {
		return err
	}
	for i := range rules {
		r := &rules[i]
		if err := s.applyRule(ctx, caller, r); err != nil {
			return fmt.Errorf("rule %s: %w", r.Name, err)
		}
		if err := s.putDoc(ctx, kindRule, docID(caller.Name, r.Name), r); err != nil {
			return err
		}
	}
	return nil
}

// undeployRulesOf deletes the bucket functions of a trigger's rules.
func (s *Server) undeployRulesOf(ctx context.Context, caller *Namespace, trigger string) error {
	rules, err := s.rulesOf(ctx, caller, trigger)
	if err != nil {
		return err
	}
	for i := range rules {
		r := &rules[i]
		if r.Function == "" {
			continue
		}
		if err := s.undeployRule(ctx, r); err != nil {
			return err
		}
		if err := s.putDoc(ctx, kindRule, docID(caller.Name, r.Name), r); err != nil {
			return err
		}
	}
	return nil
}

// redeployRules redeploys the bucket functions of the rules to action
// f, after an update of f: they run its new code. Failures are logged:
// the action's update stands.
func (s *Server) redeployRules(ctx context.Context, caller *Namespace, f fqn) {
	err := s.eachObjectRuleTo(ctx, caller, f, func(r *ruleDoc) error {
		if err := s.applyRule(ctx, caller, r); err != nil {
			s.logger.Warn("redeploy the bucket function of a rule", "rule", r.Name, "action", f.String(), "err", err)
			return nil
		}
		return s.putDoc(ctx, kindRule, docID(caller.Name, r.Name), r)
	})
	if err != nil {
		s.logger.Warn("redeploy the rules of an action", "action", f.String(), "err", err)
	}
}

// undeployRulesTo deletes the bucket functions of the rules to action f,
// which is being deleted: they would run its code on. The rules stay,
// as in OpenWhisk, without function.
func (s *Server) undeployRulesTo(ctx context.Context, caller *Namespace, f fqn) error {
	return s.eachObjectRuleTo(ctx, caller, f, func(r *ruleDoc) error {
		if err := s.undeployRule(ctx, r); err != nil {
			return err
		}
		return s.putDoc(ctx, kindRule, docID(caller.Name, r.Name), r)
	})
}

// eachObjectRuleTo calls fn with each of the caller's rules to action f
// that has a bucket function.
func (s *Server) eachObjectRuleTo(ctx context.Context, caller *Namespace, f fqn, fn func(r *ruleDoc) error) error {
	rules, err := s.rulesOf(ctx, caller, "")
	if err != nil {
		return err
	}
	for i := range rules {
		if rules[i].Function == "" || rules[i].actionFQN() != f {
			continue
		}
		if err := fn(&rules[i]); err != nil {
			return err
		}
	}
	return nil
}
