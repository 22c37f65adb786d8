package owapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
)

// Annotations dedupfn reads on an action.
const (
	// annotDedup false: the action always runs (registry NoDedup).
	annotDedup = "dedupfn-dedup"
	// annotCacheFailures true: an application error is recorded as the
	// result and reused (registry CacheFailures).
	annotCacheFailures = "dedupfn-cache-failures"
	// annotDedupfn is the annotation dedupfn adds to what it answers.
	annotDedupfn = "dedupfn"
	// configParams holds an action's own parameters, canonical JSON, in
	// its function's config: they are part of its dedup version.
	configParams = "ow.params"
	configKind   = "ow.kind"
	configMain   = "ow.main"
)

// Kinds.
const (
	kindSequence = "sequence"
	kindWasm     = "wasm"
	// defaultNodeKind is what nodejs:default resolves to.
	defaultNodeKind = "nodejs:20"
	runtimeWasm     = "wasm"
	runtimeProcess  = "process"
)

// supportedKinds is the list unknown kinds are answered with.
var supportedKinds = []string{"blackbox", "native", "nodejs:20", "python:3", kindSequence, kindWasm}

// execDoc is an action's exec: its kind and code, or a sequence's
// components.
type execDoc struct {
	Kind       string   `json:"kind"`
	Code       string   `json:"code,omitempty"`
	Binary     bool     `json:"binary"`
	Main       string   `json:"main,omitempty"`
	Image      string   `json:"image,omitempty"`
	Components []string `json:"components,omitempty"`
}

// limitsDoc are OpenWhisk's action limits.
type limitsDoc struct {
	Timeout     int `json:"timeout"`     // ms
	Memory      int `json:"memory"`      // MB
	Logs        int `json:"logs"`        // KB
	Concurrency int `json:"concurrency"` // activations per container
}

// defaultLimits are OpenWhisk's defaults.
var defaultLimits = limitsDoc{Timeout: 60_000, Memory: 256, Logs: 10, Concurrency: 1}

// fill sets unset limits to their defaults.
func (l limitsDoc) fill() limitsDoc {
	if l.Timeout <= 0 {
		l.Timeout = defaultLimits.Timeout
	}
	if l.Memory <= 0 {
		l.Memory = defaultLimits.Memory
	}
	if l.Logs <= 0 {
		l.Logs = defaultLimits.Logs
	}
	if l.Concurrency <= 0 {
		l.Concurrency = defaultLimits.Concurrency
	}
	return l
}

// actionDoc is an action as stored: OpenWhisk's fields (without the
// code, stored as a blob) and dedupfn's.
type actionDoc struct {
	entity
	Exec   execDoc   `json:"exec"`
	Limits limitsDoc `json:"limits"`
	// Function is the registry function ("" for a sequence), of Tenant.
	Function string `json:"dedupfn_function,omitempty"`
	Tenant   string `json:"dedupfn_tenant,omitempty"`
	// CodeDigest names the code as it was sent (a blob).
	CodeDigest string `json:"dedupfn_code,omitempty"`
	// DedupVersion is the function's version (registry.Function.Version).
	DedupVersion string `json:"dedupfn_version,omitempty"`
	// Versions maps dedup versions to the last semver that had them, so
	// an activation shows the version it ran (at most maxVersions).
	Versions map[string]string `json:"dedupfn_versions,omitempty"`
}

// maxVersions bounds actionDoc.Versions.
const maxVersions = 32

// actionView is an action as OpenWhisk shows it.
type actionView struct {
	entity
	Exec   execDoc   `json:"exec"`
	Limits limitsDoc `json:"limits"`
}

// dedupInfo is the value of the dedupfn annotation on an action.
type dedupInfo struct {
	Version  string `json:"version,omitempty"`
	Function string `json:"function,omitempty"`
	Dedup    bool   `json:"dedup"`
}

// view is the action as answered: with the exec kind and dedupfn
// annotations, and the code when withCode.
func (s *Server) view(ctx context.Context, d *actionDoc, withCode bool) (actionView, error) {
	v := actionView{entity: d.entity, Exec: d.Exec, Limits: d.Limits}
	v.Parameters = v.Parameters.orEmpty()
	v.Annotations = v.Annotations.orEmpty().set("exec", d.Exec.Kind)
	if d.Exec.Kind != kindSequence {
		v.Annotations = v.Annotations.set(annotDedupfn, dedupInfo{Version: d.DedupVersion, Function: d.Function,
			Dedup: d.Annotations.bool(annotDedup, true)})
	}
	v.Exec.Code = ""
	if withCode && d.CodeDigest != "" {
		code, err := s.cfg.Index.GetBlob(ctx, d.CodeDigest)
		if err != nil {
			return v, fmt.Errorf("owapi: code of action %s: %w", d.Name, err)
		}
		v.Exec.Code = string(code)
	}
	return v, nil
}

// routeActions mounts the action endpoints.
func (s *Server) routeActions() {
	s.handle("GET /namespaces/{ns}/actions", true, s.listActions)
	s.handle("GET /namespaces/{ns}/actions/{path...}", true, s.getAction)
	s.handle("PUT /namespaces/{ns}/actions/{path...}", false, s.putAction)
	s.handle("DELETE /namespaces/{ns}/actions/{path...}", false, s.deleteAction)
	s.handle("POST /namespaces/{ns}/actions/{path...}", true, s.postAction)
}

// actionBody is the body of PUT …/actions/NAME; absent fields keep
// their values on an update.
type actionBody struct {
	entityBody
	Exec    *execDoc   `json:"exec"`
	Limits  *limitsDoc `json:"limits"`
	Version string     `json:"version"`
}

func (s *Server) putAction(w http.ResponseWriter, q *request) error {
	ctx := q.r.Context()
	pkg, name, err := splitPath(q.r.PathValue("path"))
	if err != nil {
		return err
	}
	var body actionBody
	var old actionDoc
	id, found, unlock, err := s.beginPut(w, q, kindAction, joinPath(pkg, name), s.codeBodyLimit(), &body, &old)
	defer unlock()
	if err != nil {
		return err
	}
	if pkg != "" {
		if ok, err := s.exists(ctx, kindPackage, docID(q.ns, pkg)); err != nil || !ok {
			return errors.Join(err, notFound())
		}
	}
	doc := actionDoc{entity: entity{Namespace: q.ns, Name: name}, Limits: defaultLimits}
	if pkg != "" {
		doc.Namespace = q.ns + "/" + pkg
	}
	var code []byte
	if found {
		doc = old
		if body.Exec == nil && old.CodeDigest != "" {
			if code, err = s.cfg.Index.GetBlob(ctx, old.CodeDigest); err != nil {
				return fmt.Errorf("owapi: code of action %s: %w", name, err)
			}
		}
	}
	if body.Exec != nil {
		doc.Exec = *body.Exec
		code = []byte(body.Exec.Code)
	} else if !found {
		return badRequest("The request content was malformed: exec undefined")
	}
	if body.Annotations != nil {
		body.Annotations = body.Annotations.without(annotDedupfn).without("exec")
	}
	body.apply(&doc.entity)
	if body.Limits != nil {
		doc.Limits = *body.Limits
	}
	doc.Limits = doc.Limits.fill()
	if err := s.checkLimits(doc.Limits); err != nil {
		return err
	}
	if doc.Exec.Kind == "nodejs:default" {
		doc.Exec.Kind = defaultNodeKind
	}
	if body.Exec != nil && !doc.Exec.Binary && process.HostKind(doc.Exec.Kind) && base64Zip(code) {
		doc.Exec.Binary = true // as OpenWhisk infers it: clients send a zip as base64 without saying so
	}
	doc.Exec.Code = ""
	if err := s.deployAction(ctx, q.caller, pkg, &doc, code); err != nil {
		return err
	}
	if found && old.Function != "" && old.Function != doc.Function {
		s.cfg.Registry.Delete(ctx, old.Tenant, old.Function)
	}
	var prev *entity
	if found {
		prev = &old.entity
	}
	doc.touch(prev)
	if doc.DedupVersion != "" {
		doc.Versions = keepVersion(doc.Versions, doc.DedupVersion, doc.Version)
	}
	if err := s.putDoc(ctx, kindAction, id, doc); err != nil {
		return err
	}
	s.redeployRules(ctx, q.caller, fqn{ns: q.ns, pkg: pkg, name: name})
	v, err := s.view(ctx, &doc, true)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// checkLimits refuses limits beyond the server's (as fn deploy refuses
// a --memory over --max-memory), in OpenWhisk's words.
func (s *Server) checkLimits(l limitsDoc) error {
	switch {
	case l.Timeout > maxTimeoutMS:
		return badRequest("timeout %d milliseconds exceeds allowed threshold of %d milliseconds", l.Timeout, maxTimeoutMS)
	case l.Memory > s.cfg.MaxMemoryMB:
		return badRequest("memory %d MB exceeds allowed threshold of %d MB", l.Memory, s.cfg.MaxMemoryMB)
	case l.Concurrency > 1:
		return badRequest("concurrency %d exceeds allowed threshold of 1", l.Concurrency)
	}
	return nil
}

// keepVersion records that dedup version dv is semver sv, keeping at
// most maxVersions entries (the oldest semvers go first).
func keepVersion(m map[string]string, dv, sv string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[dv] = sv
	for len(m) > maxVersions {
		oldest := ""
		for k, v := range m {
			if oldest == "" || semverLess(v, m[oldest]) {
				oldest = k
			}
		}
		delete(m, oldest)
	}
	return m
}

// semverLess orders "a.b.c" versions numerically.
func semverLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

// codeBodyLimit bounds an action's body: its code as base64 plus room
// for the rest.
func (s *Server) codeBodyLimit() int64 {
	return (s.cfg.MaxCodeBytes+2)/3*4 + maxJSONBytes
}

// deployAction checks an action's kind and code and deploys its
// function (none for a sequence), filling doc's dedupfn fields.
func (s *Server) deployAction(ctx context.Context, caller *Namespace, pkg string, doc *actionDoc, code []byte) error {
	kind := doc.Exec.Kind
	doc.Tenant = caller.tenant()
	if kind == kindSequence {
		return s.checkSequence(ctx, caller, pkg, doc)
	}
	doc.Exec.Components = nil
	if int64(len(code)) > s.cfg.MaxCodeBytes {
		return withStatus(http.StatusRequestEntityTooLarge, fmt.Errorf("exec larger than allowed: %d > %d bytes", len(code), s.cfg.MaxCodeBytes))
	}
	if process.HostKind(kind) && !caller.Admin && !slices.Contains(s.cfg.TenantRuntimes, runtimeProcess) {
		return withStatus(http.StatusForbidden, fmt.Errorf("The supplied authentication is not authorized to access actions of kind '%s': host code is the operator's; namespace %s may create kinds wasm and sequence", kind, caller.Name))
	}
	var fn registry.Function
	var exe []byte
	switch {
	case kind == kindWasm:
		if !doc.Exec.Binary {
			return badRequest("kind wasm needs the module as base64 code with binary: true")
		}
		mod, err := base64.StdEncoding.DecodeString(string(code))
		if err != nil {
			return badRequest("kind wasm: code is not base64: %v", err)
		}
		fn.Runtime, exe = runtimeWasm, mod
	case process.HostKind(kind) && s.cfg.ActionCode != nil:
		raw := code
		if doc.Exec.Binary {
			b, err := base64.StdEncoding.DecodeString(string(code))
			if err != nil {
				return badRequest("kind %s: binary code is not base64: %v", kind, err)
			}
			raw = b
		}
		var cfg map[string]string
		var err error
		if exe, cfg, err = s.cfg.ActionCode(kind, raw, doc.Exec.Binary, doc.Exec.Main); err != nil {
			return badRequest("kind %s: %v", kind, err)
		}
		fn.Runtime, fn.Config = runtimeProcess, cfg
	default:
		return badRequest("The specified runtime '%s' is not supported by this platform. Valid values are: '%s'.", kind, strings.Join(supportedKinds, "', '"))
	}
	if !caller.Admin && !slices.Contains(s.cfg.TenantRuntimes, fn.Runtime) {
		return withStatus(http.StatusForbidden, fmt.Errorf("The supplied authentication is not authorized to access actions of kind '%s': runtime %s is not one tenants may deploy", kind, fn.Runtime))
	}
	name, err := functionName(pkg, doc.Name)
	if err != nil {
		return err
	}
	if err := s.notClaimed(ctx, doc.Tenant, name, doc.Function); err != nil {
		return err
	}
	fn.Tenant, fn.Name = doc.Tenant, name
	if fn.Config == nil {
		fn.Config = map[string]string{}
	}
	fn.Config[configKind] = kind
	if doc.Exec.Main != "" {
		fn.Config[configMain] = doc.Exec.Main
	}
	params, err := paramsObject(doc.Parameters)
	if err != nil {
		return err
	}
	fn.Config[configParams] = string(params)
	if err := fn.CheckParams(s.cfg.MaxParamsBytes); err != nil {
		return err
	}
	fn.Limits = registry.Limits{Timeout: time.Duration(doc.Limits.Timeout) * time.Millisecond, MemoryMB: doc.Limits.Memory}
	fn.NoDedup = !doc.Annotations.bool(annotDedup, true)
	fn.CacheFailures = doc.Annotations.bool(annotCacheFailures, false)
	if s.cfg.Deployer != nil {
		if err := s.cfg.Deployer.Prepare(ctx, fn, exe); err != nil {
			return withStatus(http.StatusBadRequest, err)
		}
	}
	if err := s.cfg.Index.PutBlob(ctx, registry.Digest(code), code); err != nil {
		return fmt.Errorf("owapi: store code of %s: %w", doc.Name, err)
	}
	deployed, err := s.cfg.Registry.Deploy(ctx, fn, exe)
	if err != nil {
		return err
	}
	doc.Function, doc.CodeDigest, doc.DedupVersion = deployed.Name, registry.Digest(code), deployed.Version
	return nil
}

// base64Zip reports whether code is a zip in base64.
func base64Zip(code []byte) bool {
	if len(code) < 8 {
		return false
	}
	head, err := base64.StdEncoding.DecodeString(string(code[:8]))
	return err == nil && bytes.HasPrefix(head, []byte("PK\x03\x04"))
}

// notClaimed refuses to deploy the function name of tenant over one that
// is not the entity's own (own, "" for a new entity): a function deployed
// with fn deploy under that name stays as it is.
func (s *Server) notClaimed(ctx context.Context, tenant, name, own string) error {
	if name == own {
		return nil
	}
	_, err := s.cfg.Registry.Get(ctx, tenant, name)
	switch {
	case err == nil:
		return withStatus(http.StatusConflict, fmt.Errorf("a dedupfn function named %s exists that this API did not create: delete it or choose another name", name))
	case errors.Is(err, registry.ErrNotFound):
		return nil
	}
	return err
}

// paramsObject is parameters as one JSON object, keys sorted and values
// compacted: the canonical form of an action's own parameters.
func paramsObject(kv keyValues) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	for _, p := range kv {
		var b bytes.Buffer
		if err := json.Compact(&b, p.Value); err != nil {
			return nil, badRequest("parameter %q: %v", p.Key, err)
		}
		m[p.Key] = b.Bytes()
	}
	return json.Marshal(m)
}

func (s *Server) getAction(w http.ResponseWriter, q *request) error {
	pkg, name, err := splitPath(q.r.PathValue("path"))
	if err != nil {
		return err
	}
	a, err := s.resolveAction(q.r.Context(), q.caller, fqn{ns: q.ns, pkg: pkg, name: name})
	if err != nil {
		return err
	}
	code := q.r.URL.Query().Get("code") != "false"
	v, err := s.view(q.r.Context(), a.doc, code)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) listActions(w http.ResponseWriter, q *request) error {
	if q.ns == SystemNamespace {
		skip, limit, err := listWindow(q)
		if err != nil {
			return err
		}
		out := []actionView{}
		for _, a := range builtinActions() {
			v, _ := s.view(q.r.Context(), &a.doc, false)
			out = append(out, v)
		}
		writeSorted(w, out, skip, limit)
		return nil
	}
	return listEntities(s, w, q, kindAction, func(_ string, d *actionDoc) (actionView, bool, error) {
		v, err := s.view(q.r.Context(), d, false)
		return v, err == nil, err
	})
}

func (s *Server) deleteAction(w http.ResponseWriter, q *request) error {
	ctx := q.r.Context()
	pkg, name, err := splitPath(q.r.PathValue("path"))
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := docID(q.ns, joinPath(pkg, name))
	var d actionDoc
	if err := s.getDoc(ctx, kindAction, id, &d); err != nil {
		return err
	}
	if err := s.removeAction(ctx, q.caller, fqn{ns: q.ns, pkg: pkg, name: name}, &d); err != nil {
		return err
	}
	v, err := s.view(ctx, &d, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// removeAction deletes action f's document and function, and the bucket
// functions of rules to it. Its results and activations stay until
// pruned.
func (s *Server) removeAction(ctx context.Context, caller *Namespace, f fqn, d *actionDoc) error {
	if err := s.undeployRulesTo(ctx, caller, f); err != nil {
		return err
	}
	if d.Function != "" {
		if err := s.cfg.Registry.Delete(ctx, d.Tenant, d.Function); err != nil && !errors.Is(err, registry.ErrNotFound) {
			return err
		}
	}
	return s.deleteDoc(ctx, kindAction, docID(f.ns, joinPath(f.pkg, f.name)))
}

// resolved is an action found for a caller: its document, the
// parameters of its package, and where it is.
type resolved struct {
	fqn
	doc       *actionDoc
	pkgParams keyValues
	// builtin names a built-in (utils.go, feeds.go); "" for stored ones.
	builtin string
}

// resolveAction finds action f for caller: one of the caller's own, or
// a built-in of whisk.system. Other namespaces' actions do not exist
// for the caller (403 would tell they do).
func (s *Server) resolveAction(ctx context.Context, caller *Namespace, f fqn) (*resolved, error) {
	if f.ns == "_" {
		f.ns = caller.Name
	}
	if f.ns == SystemNamespace {
		for _, a := range builtinActions() {
			if a.pkg == f.pkg && a.doc.Name == f.name {
				return &resolved{fqn: f, doc: &a.doc, builtin: a.id}, nil
			}
		}
		return nil, notFound()
	}
	if f.ns != caller.Name {
		return nil, forbidden()
	}
	var d actionDoc
	if err := s.getDoc(ctx, kindAction, docID(f.ns, joinPath(f.pkg, f.name)), &d); err != nil {
		return nil, err
	}
	a := &resolved{fqn: f, doc: &d}
	if f.pkg != "" {
		var p packageDoc
		if err := s.getDoc(ctx, kindPackage, docID(f.ns, f.pkg), &p); err == nil {
			a.pkgParams = p.Parameters
		}
	}
	return a, nil
}

// function is the registry function that runs a resolved action, for
// caller.
func (s *Server) function(ctx context.Context, caller *Namespace, a *resolved) (registry.Function, error) {
	if a.builtin != "" {
		return builtinFunction(caller, a.builtin)
	}
	return s.cfg.Registry.Get(ctx, a.doc.Tenant, a.doc.Function)
}

// mergeParams merges parameters as OpenWhisk does: package < action <
// the invocation's payload.
func mergeParams(pkg, action keyValues, payload map[string]json.RawMessage) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	for _, kv := range []keyValues{pkg, action} {
		for _, p := range kv {
			m[p.Key] = p.Value
		}
	}
	for k, v := range payload {
		m[k] = v
	}
	return json.Marshal(m)
}

// outcome is a finished invocation: its record, or why it has none.
type outcome struct {
	rec activation.Record
	err error
}

// start invokes a resolved action (a sequence's components one by one)
// in the background, owned by the server, and returns where its outcome
// arrives: the request may stop waiting, the invocation goes on. With
// the caller's invocations in flight at MaxInFlight it starts none: 429.
func (s *Server) start(caller *Namespace, a *resolved, params json.RawMessage, id, cause string) (<-chan outcome, error) {
	slots := s.inFlight[caller.Name]
	select {
	case slots <- struct{}{}:
	default:
		return nil, withStatus(http.StatusTooManyRequests, fmt.Errorf("Too many concurrent requests in flight (count: %d, allowed: %d).", cap(slots), cap(slots)))
	}
	done := make(chan outcome, 1)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer func() { <-slots }()
		rec, err := s.run(s.bgCtx, caller, a, params, id, cause, nil)
		done <- outcome{rec, err}
	}()
	return done, nil
}

// run invokes a resolved action and returns its record.
// budget counts down the invocations a top-level sequence may still make
// (nil: none is running).
func (s *Server) run(ctx context.Context, caller *Namespace, a *resolved, params json.RawMessage, id, cause string, budget *int) (activation.Record, error) {
	if a.doc.Exec.Kind == kindSequence {
		if budget == nil {
			n := maxSequenceActions
			budget = &n
		}
		return s.runSequence(ctx, caller, a, params, id, cause, budget)
	}
	fn, err := s.function(ctx, caller, a)
	if err != nil {
		return activation.Record{}, err
	}
	return s.cfg.Invoker.InvokeDirect(ctx, pipeline.DirectRequest{Function: fn, Params: params, ActivationID: id, Cause: cause})
}

// postAction invokes an action (or, for the objects feed, handles a
// lifecycle event): blocking, it waits up to timeout ms and answers the
// activation (only its result with result=true); otherwise, or past the
// wait, 202 with the activation id.
func (s *Server) postAction(w http.ResponseWriter, q *request) error {
	ctx := q.r.Context()
	pkg, name, err := splitPath(q.r.PathValue("path"))
	if err != nil {
		return err
	}
	query := q.r.URL.Query()
	blocking, _ := strconv.ParseBool(query.Get("blocking"))
	resultOnly, _ := strconv.ParseBool(query.Get("result"))
	wait := DefaultWait
	if v := query.Get("timeout"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 300_000 {
			return badRequest(msgBadTimeout)
		}
		wait = n
	}
	var payload map[string]json.RawMessage
	if err := decode(w, q.r, maxJSONBytes, &payload); err != nil {
		return err
	}
	a, err := s.resolveAction(ctx, q.caller, fqn{ns: q.ns, pkg: pkg, name: name})
	if err != nil {
		return err
	}
	if a.builtin == builtinObjectsFeed {
		return s.objectsFeed(w, q, payload)
	}
	params, err := mergeParams(a.pkgParams, a.doc.Parameters, payload)
	if err != nil {
		return err
	}
	id := newID()
	done, err := s.start(q.caller, a, params, id, "")
	if err != nil {
		return err
	}
	w.Header().Set("x-openwhisk-activation-id", id)
	accepted := map[string]string{"activationId": id}
	if !blocking {
		writeJSON(w, http.StatusAccepted, accepted)
		return nil
	}
	timer := time.NewTimer(time.Duration(wait) * time.Millisecond)
	defer timer.Stop()
	var o outcome
	select {
	case o = <-done:
	case <-timer.C:
		writeJSON(w, http.StatusAccepted, accepted)
		return nil
	case <-ctx.Done():
		return nil // the client has gone; the invocation goes on
	}
	if o.err != nil && o.rec.ID == "" { // no record: nothing ran to show
		return o.err
	}
	v := s.activationView(ctx, q.caller, o.rec, true)
	status := http.StatusOK
	switch v.Response.StatusCode {
	case statusApplicationError, statusDeveloperError:
		status = http.StatusBadGateway
	case statusWhiskError:
		status = http.StatusInternalServerError
	}
	if resultOnly {
		writeJSON(w, status, v.Response.Result)
		return nil
	}
	writeJSON(w, status, v)
	return nil
}
