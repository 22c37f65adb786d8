// Package owtest is an in-test Apache OpenWhisk controller: an
// http.Handler implementing the documented REST contract (/api/v1) that
// dedupfn's openwhisk runtime and the official JavaScript client use:
//
//   - PUT/GET /api/v1/namespaces/{ns}/actions/{[pkg/]name} (create with
//     ?overwrite=true for updates, which bump the patch version),
//   - POST the same path to invoke, blocking (?blocking=true, waiting up
//     to BlockingTimeout, then 202 with the activationId) or not (202),
//     with ?result=true returning only the result,
//   - GET /api/v1/namespaces/{ns}/activations/{id} (404 until done),
//   - HTTP Basic auth (401 on a bad key, 403 for another namespace),
//   - 404 for unknown actions, 502 with the record for application
//     errors, 429 on demand (Throttle).
//
// Actions registered with Register run Go functions; actions created by
// PUT without one echo their parameters as the result.
package owtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults.
const (
	// DefaultNamespace is the namespace of the default key ("_").
	DefaultNamespace = "guest"
	// DefaultAuth is a fixed UUID:KEY pair for tests.
	DefaultAuth = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
	// DefaultBlockingTimeout is how long a blocking invoke waits before
	// answering 202 (OpenWhisk waits up to 60s).
	DefaultBlockingTimeout = 5 * time.Second
)

// Func is an action implemented in Go. It returns the result object, or
// an error for an application error ({"error": err.Error()}, 502).
// logf appends a line to the activation's logs.
type Func func(ctx context.Context, params map[string]any, logf func(format string, args ...any)) (map[string]any, error)

// Exec is an action's exec as stored.
type Exec struct {
	Kind   string `json:"kind"`
	Code   string `json:"code,omitempty"`
	Image  string `json:"image,omitempty"`
	Main   string `json:"main,omitempty"`
	Binary bool   `json:"binary"`
}

// KeyValue is an OpenWhisk parameter or annotation.
type KeyValue struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// Action is an action record.
type Action struct {
	Namespace   string         `json:"namespace"`
	Name        string         `json:"name"`
	Version     string         `json:"version"`
	Publish     bool           `json:"publish"`
	Exec        Exec           `json:"exec"`
	Parameters  []KeyValue     `json:"parameters"`
	Annotations []KeyValue     `json:"annotations"`
	Limits      map[string]any `json:"limits"`
	Updated     int64          `json:"updated"`
}

// Response is an activation's response.
type Response struct {
	Status     string         `json:"status"`
	StatusCode int            `json:"statusCode"`
	Success    bool           `json:"success"`
	Result     map[string]any `json:"result,omitempty"`
}

// Activation is an activation record.
type Activation struct {
	Namespace    string     `json:"namespace"`
	Name         string     `json:"name"`
	Version      string     `json:"version"`
	Subject      string     `json:"subject"`
	ActivationID string     `json:"activationId"`
	Start        int64      `json:"start"`
	End          int64      `json:"end"`
	Duration     int64      `json:"duration"`
	StatusCode   int        `json:"statusCode"`
	Response     Response   `json:"response"`
	Logs         []string   `json:"logs"`
	Annotations  []KeyValue `json:"annotations"`
	Publish      bool       `json:"publish"`
}

// Server is the in-test controller. Use it as the handler of an
// httptest.Server; Close it to stop running actions.
type Server struct {
	// Auth is the accepted "UUID:KEY" (default DefaultAuth); its
	// namespace is Namespace (default DefaultNamespace).
	Auth      string
	Namespace string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mux    *http.ServeMux

	mu              sync.Mutex
	actions         map[string]*Action // "ns/name"
	funcs           map[string]Func    // "ns/name"
	activations     map[string]*Activation
	invokes         map[string]int
	throttle        int
	blockingTimeout time.Duration
	noResult        map[string]bool
}

// New returns a controller with the default auth and namespace.
func New() *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		Auth:            DefaultAuth,
		Namespace:       DefaultNamespace,
		ctx:             ctx,
		cancel:          cancel,
		actions:         map[string]*Action{},
		funcs:           map[string]Func{},
		activations:     map[string]*Activation{},
		invokes:         map[string]int{},
		noResult:        map[string]bool{},
		blockingTimeout: DefaultBlockingTimeout,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /api/v1/namespaces/{ns}/actions/{name...}", s.putAction)
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/actions/{name...}", s.getAction)
	mux.HandleFunc("POST /api/v1/namespaces/{ns}/actions/{name...}", s.invoke)
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/activations/{id}", s.getActivation)
	s.mux = mux
	return s
}

// Close cancels running actions and waits for them.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

// Register creates (or replaces) action name ("name" or "pkg/name" in the
// default namespace) implemented by f, with a blackbox exec.
func (s *Server) Register(name string, f Func) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := s.Namespace + "/" + name
	s.funcs[key] = f
	s.upsert(key, name, Exec{Kind: "blackbox", Image: "owtest/go-func:" + name}, nil)
}

// Throttle makes the next n invokes answer 429.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	s.throttle = n
	s.mu.Unlock()
}

// SetBlockingTimeout sets how long a blocking invoke waits before 202.
func (s *Server) SetBlockingTimeout(d time.Duration) {
	s.mu.Lock()
	s.blockingTimeout = d
	s.mu.Unlock()
}

// DropResults makes the records of action name's activations carry no
// result (a completion OpenWhisk lost the result of).
func (s *Server) DropResults(name string, on bool) {
	s.mu.Lock()
	s.noResult[s.Namespace+"/"+name] = on
	s.mu.Unlock()
}

// Invokes returns how many times action name was invoked (429s excluded).
func (s *Server) Invokes(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.invokes[s.Namespace+"/"+name]
}

// Action returns a copy of action name's record.
func (s *Server) Action(name string) (Action, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.actions[s.Namespace+"/"+name]
	if !ok {
		return Action{}, false
	}
	return *a, true
}

// ServeHTTP authenticates and routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user+":"+pass != s.Auth {
		writeError(w, http.StatusUnauthorized, "The supplied authentication is invalid")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// resolve maps the namespace path element ("_" = the caller's) and name
// to a key, or answers 403.
func (s *Server) resolve(w http.ResponseWriter, r *http.Request) (key, ns, name string, ok bool) {
	ns = r.PathValue("ns")
	if ns == "_" {
		ns = s.Namespace
	}
	if ns != s.Namespace {
		writeError(w, http.StatusForbidden, "The supplied authentication is not authorized to access '"+ns+"'.")
		return "", "", "", false
	}
	name = r.PathValue("name")
	return ns + "/" + name, ns, name, true
}

func (s *Server) putAction(w http.ResponseWriter, r *http.Request) {
	key, _, name, ok := s.resolve(w, r)
	if !ok {
		return
	}
	var body struct {
		Exec        *Exec          `json:"exec"`
		Parameters  []KeyValue     `json:"parameters"`
		Annotations []KeyValue     `json:"annotations"`
		Limits      map[string]any `json:"limits"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 48<<20)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "The request content was malformed: "+err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, exists := s.actions[key]
	if exists && r.URL.Query().Get("overwrite") != "true" {
		writeError(w, http.StatusConflict, "resource already exists")
		return
	}
	if body.Exec == nil {
		if !exists {
			writeError(w, http.StatusBadRequest, "exec undefined")
			return
		}
		body.Exec = &old.Exec
	}
	a := s.upsert(key, name, *body.Exec, body.Parameters)
	if body.Annotations != nil {
		a.Annotations = body.Annotations
	}
	if body.Limits != nil {
		a.Limits = body.Limits
	}
	writeJSON(w, http.StatusOK, a)
}

// upsert creates or updates an action, bumping its version; s.mu held.
func (s *Server) upsert(key, name string, exec Exec, params []KeyValue) *Action {
	a, ok := s.actions[key]
	if !ok {
		a = &Action{Namespace: s.Namespace, Name: name, Version: "0.0.1",
			Limits: map[string]any{"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}}
		s.actions[key] = a
	} else {
		a.Version = bumpPatch(a.Version)
	}
	if pkg, base, ok := strings.Cut(name, "/"); ok {
		a.Namespace, a.Name = s.Namespace+"/"+pkg, base
	}
	a.Exec = exec
	if params != nil || !ok {
		a.Parameters = append([]KeyValue{}, params...)
	}
	a.Annotations = []KeyValue{{Key: "exec", Value: exec.Kind}}
	a.Updated = time.Now().UnixMilli()
	return a
}

func bumpPatch(v string) string {
	parts := strings.Split(v, ".")
	n, _ := strconv.Atoi(parts[len(parts)-1])
	parts[len(parts)-1] = strconv.Itoa(n + 1)
	return strings.Join(parts, ".")
}

func (s *Server) getAction(w http.ResponseWriter, r *http.Request) {
	key, _, _, ok := s.resolve(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	a, found := s.actions[key]
	var cp Action
	if found {
		cp = *a
	}
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, "The requested resource does not exist.")
		return
	}
	if r.URL.Query().Get("code") == "false" {
		cp.Exec.Code = ""
	}
	writeJSON(w, http.StatusOK, cp)
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request) {
	key, ns, name, ok := s.resolve(w, r)
	if !ok {
		return
	}
	params := map[string]any{}
	if b, err := io.ReadAll(io.LimitReader(r.Body, 48<<20)); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	} else if len(strings.TrimSpace(string(b))) > 0 {
		if err := json.Unmarshal(b, &params); err != nil {
			writeError(w, http.StatusBadRequest, "The request content was malformed: "+err.Error())
			return
		}
	}
	s.mu.Lock()
	a, found := s.actions[key]
	if !found {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "The requested resource does not exist.")
		return
	}
	if s.throttle > 0 {
		s.throttle--
		s.mu.Unlock()
		writeError(w, http.StatusTooManyRequests, "Too many requests in the last minute (count: 61, allowed: 60).")
		return
	}
	s.invokes[key]++
	merged := map[string]any{}
	for _, p := range a.Parameters {
		merged[p.Key] = p.Value
	}
	maps.Copy(merged, params)
	f := s.funcs[key]
	version := a.Version
	wait := s.blockingTimeout
	dropResult := s.noResult[key]
	id := newID()
	done := make(chan struct{})
	s.wg.Add(1)
	s.mu.Unlock()

	go s.run(id, ns, name, version, f, merged, dropResult, done)

	if r.URL.Query().Get("blocking") != "true" {
		writeJSON(w, http.StatusAccepted, map[string]string{"activationId": id})
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		writeJSON(w, http.StatusAccepted, map[string]string{"activationId": id})
		return
	case <-r.Context().Done():
		return
	}
	s.mu.Lock()
	rec := *s.activations[id]
	s.mu.Unlock()
	status := http.StatusOK
	if !rec.Response.Success {
		status = http.StatusBadGateway
	}
	if r.URL.Query().Get("result") == "true" {
		writeJSON(w, status, rec.Response.Result)
		return
	}
	writeJSON(w, status, rec)
}

// run executes one activation and stores its record.
func (s *Server) run(id, ns, name, version string, f Func, params map[string]any, dropResult bool, done chan struct{}) {
	defer s.wg.Done()
	start := time.Now()
	var logs []string
	logf := func(format string, args ...any) {
		logs = append(logs, time.Now().UTC().Format(time.RFC3339Nano)+" stdout: "+fmt.Sprintf(format, args...))
	}
	var result map[string]any
	var err error
	if f != nil {
		result, err = f(s.ctx, params, logf)
	} else {
		result = params // echo
	}
	end := time.Now()
	resp := Response{Status: "success", Success: true, Result: result}
	if err != nil {
		resp = Response{Status: "application error", StatusCode: 1, Result: map[string]any{"error": err.Error()}}
	}
	if resp.Result == nil {
		resp.Result = map[string]any{}
	}
	if dropResult {
		resp.Result = nil
	}
	rec := &Activation{
		Namespace: ns, Name: name, Version: version, Subject: strings.Split(s.Auth, ":")[0],
		ActivationID: id, Start: start.UnixMilli(), End: end.UnixMilli(),
		Duration: end.Sub(start).Milliseconds(), StatusCode: resp.StatusCode, Response: resp, Logs: logs,
		Annotations: []KeyValue{{Key: "path", Value: ns + "/" + name}, {Key: "kind", Value: "blackbox"}},
	}
	if logs == nil {
		rec.Logs = []string{}
	}
	s.mu.Lock()
	s.activations[id] = rec
	s.mu.Unlock()
	close(done)
}

func (s *Server) getActivation(w http.ResponseWriter, r *http.Request) {
	if _, _, _, ok := s.resolve(w, r); !ok {
		return
	}
	s.mu.Lock()
	rec, ok := s.activations[r.PathValue("id")]
	var cp Activation
	if ok {
		cp = *rec
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "The requested resource does not exist.")
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg, "code": newID()[:16]})
}
