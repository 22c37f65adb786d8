package owapi

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/runtime"
)

// OpenWhisk's activation status codes.
const (
	statusSuccess          = 0
	statusApplicationError = 1
	statusDeveloperError   = 2
	statusWhiskError       = 3
)

var statusMessages = [...]string{"success", "application error", "action developer error", "whisk internal error"}

// responseView is an activation's response.
type responseView struct {
	Status     string          `json:"status"`
	StatusCode int             `json:"statusCode"`
	Success    bool            `json:"success"`
	Result     json.RawMessage `json:"result,omitempty"`
}

// activationView is an activation as OpenWhisk shows it. dedupfn's own
// fields are in the "dedupfn" annotation.
type activationView struct {
	Namespace    string        `json:"namespace"`
	Name         string        `json:"name"`
	Version      string        `json:"version"`
	Subject      string        `json:"subject"`
	ActivationID string        `json:"activationId"`
	Cause        string        `json:"cause,omitempty"`
	Start        int64         `json:"start"`
	End          int64         `json:"end"`
	Duration     int64         `json:"duration"`
	StatusCode   *int          `json:"statusCode,omitempty"` // summaries only
	Response     *responseView `json:"response,omitempty"`
	Logs         []string      `json:"logs"`
	Annotations  keyValues     `json:"annotations"`
	Publish      bool          `json:"publish"`
}

// dedupAnnotation is the value of the dedupfn annotation of an activation.
type dedupAnnotation struct {
	Decision activation.Decision `json:"decision"`
	SavedMS  float64             `json:"saved_ms"`
	DedupKey string              `json:"dedup_key,omitempty"`
	Version  string              `json:"version,omitempty"`
	Error    string              `json:"error,omitempty"`
}

// Event sources of the records the API writes itself (a sequence's, a
// trigger's, a feed's): no function ran for them.
const (
	sourceSequence = "openwhisk-sequence"
	sourceTrigger  = "openwhisk-trigger"
	sourceFeed     = "openwhisk-feed"
)

// response is a record's response: success, or the error's status by
// its class. A result with an "error" field is an application error, as
// in OpenWhisk.
func response(rec activation.Record) responseView {
	code := statusSuccess
	result := rec.Result
	if rec.Error != "" || rec.Decision == activation.Error {
		switch runtime.Class(rec.ErrorClass) {
		case runtime.ClassFunction:
			code = statusApplicationError
			if !hasError(result) {
				code = statusDeveloperError
			}
		case runtime.ClassInit, runtime.ClassTimeout, runtime.ClassOOM:
			code = statusDeveloperError
		default:
			code = statusWhiskError
		}
		if !hasError(result) {
			msg := rec.Error
			if runtime.Class(rec.ErrorClass) == runtime.ClassTimeout {
				msg = "The action exceeded its time limits: " + msg
			}
			result, _ = json.Marshal(map[string]string{"error": msg})
		}
	} else if hasError(result) {
		code = statusApplicationError
	}
	if len(result) == 0 {
		result = json.RawMessage("{}")
	}
	return responseView{Status: statusMessages[code], StatusCode: code, Success: code == statusSuccess, Result: result}
}

// hasError reports whether a result is an object with an "error" field.
func hasError(result json.RawMessage) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(result, &m) != nil {
		return false
	}
	_, ok := m["error"]
	return ok
}

// activationView maps a record to OpenWhisk's activation, seen by
// caller; full includes the response and logs.
func (s *Server) activationView(ctx context.Context, caller *Namespace, rec activation.Record, full bool) activationView {
	v := activationView{Namespace: caller.Name, Subject: caller.Name, ActivationID: rec.ID,
		Start: rec.Start.UnixMilli(), Logs: []string{}, Version: "0.0.1"}
	v.Duration = int64(math.Round(rec.Timings.TotalMS))
	v.End = rec.Start.Add(time.Duration(v.Duration) * time.Millisecond).UnixMilli()
	v.Cause = rec.Cause
	where, kind, limits := s.describe(ctx, caller, rec, &v)
	resp := response(rec)
	if full {
		v.Response = &resp
		if rec.Logs != "" {
			v.Logs = strings.Split(strings.TrimRight(rec.Logs, "\n"), "\n")
		}
	} else {
		v.StatusCode = &resp.StatusCode
	}
	v.Annotations = keyValues{}.set("path", where).set("kind", kind).set("limits", limits).
		set("waitTime", int64(math.Round(rec.Timings.QueueMS+rec.Timings.RunWaitMS))).set("initTime", 0).
		set(annotDedupfn, dedupAnnotation{Decision: rec.Decision, SavedMS: rec.SavedMS, DedupKey: rec.Key, Version: rec.Version, Error: rec.Error})
	return v
}

// describe fills an activation's name and version from what it ran (an
// action, a built-in, a sequence, a trigger or another dedupfn
// function) and returns its path, kind and limits.
func (s *Server) describe(ctx context.Context, caller *Namespace, rec activation.Record, v *activationView) (where, kind string, limits limitsDoc) {
	limits = defaultLimits
	v.Name, where, kind = rec.Function, caller.Name+"/"+rec.Function, "dedupfn"
	if name, ok := strings.CutPrefix(rec.Function, triggerPrefix); ok {
		if n, ok := unescapeName(name); ok {
			v.Name, where, kind = n, caller.Name+"/"+n, "trigger"
		}
		return where, kind, limits
	}
	if pkg, name, ok := systemActionOf(rec.Function); ok {
		v.Name, where, kind = name, SystemNamespace+"/"+joinPath(pkg, name), "builtin"
		return where, kind, limits
	}
	pkg, name, ok := actionOf(rec.Function)
	if !ok {
		return where, kind, limits
	}
	v.Name, where = name, caller.Name+"/"+joinPath(pkg, name)
	var d actionDoc
	if s.getDoc(ctx, kindAction, docID(caller.Name, joinPath(pkg, name)), &d) != nil {
		return where, kind, limits
	}
	kind, limits, v.Version = d.Exec.Kind, d.Limits, d.Version
	if sv, ok := d.Versions[rec.Version]; ok {
		v.Version = sv
	}
	return where, kind, limits
}

// routeActivations mounts the activation endpoints.
func (s *Server) routeActivations() {
	s.handle("GET /namespaces/{ns}/activations", false, s.listActivations)
	s.handle("GET /namespaces/{ns}/activations/{id}", false, s.getActivation)
	s.handle("GET /namespaces/{ns}/activations/{id}/result", false, s.activationResult)
	s.handle("GET /namespaces/{ns}/activations/{id}/logs", false, s.activationLogs)
}

// maxActivationScan bounds how many records a list with upto reads to
// find its window.
const maxActivationScan = 5000

func (s *Server) listActivations(w http.ResponseWriter, q *request) error {
	skip, limit, err := listWindow(q)
	if err != nil {
		return err
	}
	query := q.r.URL.Query()
	f := activation.Filter{Tenant: q.caller.tenant(), Limit: skip + limit}
	if name := query.Get("name"); name != "" {
		pkg, n, err := splitPath(strings.TrimPrefix(name, q.caller.Name+"/"))
		if err != nil {
			return badRequest("Parameter may be a 'simple' name or 'package-name/simple' name: %s", name)
		}
		if f.Function, err = functionName(pkg, n); err != nil {
			return err
		}
	}
	since, err := epochParam(query.Get("since"))
	if err != nil {
		return err
	}
	upto, err := epochParam(query.Get("upto"))
	if err != nil {
		return err
	}
	if !since.IsZero() {
		f.Since = since
	}
	if !upto.IsZero() {
		f.Limit = maxActivationScan
	}
	recs, err := s.cfg.Index.Activations(q.r.Context(), f)
	if err != nil {
		return err
	}
	docs, _ := strconv.ParseBool(query.Get("docs"))
	out := []activationView{}
	for _, rec := range recs {
		if !upto.IsZero() && rec.Start.After(upto) {
			continue
		}
		out = append(out, s.activationView(q.r.Context(), q.caller, rec, docs))
	}
	writeJSON(w, http.StatusOK, window(out, skip, limit))
	return nil
}

// epochParam reads epoch milliseconds ("" is the zero time).
func epochParam(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, badRequest("Parameter is not a valid value for epoch seconds: %s", v)
	}
	return time.UnixMilli(n), nil
}

// record reads the activation of the path's id, the caller's only:
// another namespace's id is a 404, as an unknown one.
func (s *Server) record(q *request) (activation.Record, error) {
	rec, err := s.cfg.Index.GetActivation(q.r.Context(), q.r.PathValue("id"))
	if err != nil {
		return rec, err
	}
	if rec.Tenant != q.caller.tenant() {
		return activation.Record{}, notFound()
	}
	return rec, nil
}

func (s *Server) getActivation(w http.ResponseWriter, q *request) error {
	rec, err := s.record(q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.activationView(q.r.Context(), q.caller, rec, true))
	return nil
}

func (s *Server) activationResult(w http.ResponseWriter, q *request) error {
	rec, err := s.record(q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, response(rec))
	return nil
}

func (s *Server) activationLogs(w http.ResponseWriter, q *request) error {
	rec, err := s.record(q)
	if err != nil {
		return err
	}
	v := s.activationView(q.r.Context(), q.caller, rec, true)
	writeJSON(w, http.StatusOK, map[string][]string{"logs": v.Logs})
	return nil
}
