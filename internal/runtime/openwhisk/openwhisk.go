// Package openwhisk runs functions as actions on a remote Apache
// OpenWhisk, through the controller's REST API (/api/v1):
//
//   - Invoke: POST /namespaces/{ns}/actions/{name}?blocking=true with the
//     parameters (runtime.ObjectRef fields with get_url and put_url,
//     the deploy-time params, and the input inline as base64 "body" when
//     at most Options.InlineLimit bytes). 200 carries the activation
//     record; 202 (the blocking wait timed out) carries only the
//     activationId, which is reported through Invocation.OnExternalID and
//     polled at GET /namespaces/{ns}/activations/{id}; 502 is an
//     application error with its record (runtime.ClassFunction); 429 is
//     retried with jittered backoff; 401/403 and 404 are
//     runtime.ClassInit errors.
//   - Resume: an Invocation with ExternalID polls that activation instead
//     of invoking again. A record without a result is unfinished. A
//     resumed activation that failed is runtime.ClassPlatform: its URLs
//     were the starting invocation's, revoked when that one returned.
//   - Describe (runtime.Describer): a digest over the action's version and
//     exec, so updating the action changes every dedup key.
//
// Function.Config keys: ConfigAction ("openwhisk.action",
// "[/NS/][PKG/]ACTION"; namespace "_" when omitted) and ConfigAPI
// ("openwhisk.api", the controller's base URL, e.g. https://host:443).
// Auth is Options.Auth or $DEDUPFN_OPENWHISK_AUTH ("UUID:KEY", HTTP Basic).
// That key is the operator's: it is only ever sent to Options.API and the
// hosts of Options.Allow (see CheckAPI), never to a host a function names
// otherwise, and redirects are not followed. It is used for the admin's
// own functions (tenant registry.DefaultTenant) only: a tenant's function
// runs in the tenant's namespace with the tenant's key (Options.Tenants),
// and a tenant without one makes no request.
//
// The output follows the process runtime's convention: a result object
// with a base64 string "body" is the output object (written to
// Invocation.Output, removed from Result.Result); otherwise the result is
// returned with OutputWritten false, for the pipeline to store or to find
// what the action PUT to put_url.
package openwhisk

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/dedupfn/dedupfn/internal/backoff"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/actionio"
)

// Config keys and environment.
const (
	// ConfigAction is the Function.Config key of the action name.
	ConfigAction = "openwhisk.action"
	// ConfigAPI is the Function.Config key of the controller's base URL.
	ConfigAPI = "openwhisk.api"
	// EnvAuth holds the "UUID:KEY" auth when Options.Auth is empty.
	EnvAuth = "DEDUPFN_OPENWHISK_AUTH"
	// Version is the runtime's version, part of every dedup key.
	Version = "openwhisk/rest-v1/1"
)

// Defaults.
const (
	// DefaultTimeout bounds an invocation, polling included, when
	// Limits.Timeout is zero.
	DefaultTimeout = 5 * time.Minute
	// DefaultInlineLimit is the largest input passed inline as "body".
	DefaultInlineLimit = actionio.DefaultInlineLimit
	// DefaultPollInterval is the first wait between activation polls;
	// it grows by half each time up to DefaultMaxPollInterval.
	DefaultPollInterval    = 200 * time.Millisecond
	DefaultMaxPollInterval = 5 * time.Second
	// DefaultThrottleRetries is how many 429s an invoke retries.
	DefaultThrottleRetries = 6
	// DefaultThrottleBackoff is the first wait after a 429 (doubling,
	// with jitter).
	DefaultThrottleBackoff = 500 * time.Millisecond
	// MaxThrottleBackoff caps the wait between 429 retries.
	MaxThrottleBackoff = 30 * time.Second
	// maxBody bounds a response body read from the controller.
	maxBody = 64 << 20
)

// Options configure a Runtime. The zero value uses the defaults and
// $DEDUPFN_OPENWHISK_AUTH.
type Options struct {
	// Auth is "UUID:KEY"; default $DEDUPFN_OPENWHISK_AUTH.
	Auth string
	// API is the default controller base URL for functions without
	// ConfigAPI. It is always allowed.
	API string
	// Allow are further controller URLs functions may name in ConfigAPI;
	// a function naming any other host fails with ErrNotAllowed before a
	// request is made.
	Allow []string
	// Tenants are the OpenWhisk identities of dedupfn tenants, by tenant
	// name. A tenant's functions run only in its Namespace, with its Auth;
	// a tenant not listed here has no OpenWhisk functions.
	Tenants map[string]Tenant
	// Client makes the HTTP calls; default a client without timeout
	// (every call is bounded by its context).
	Client *http.Client
	// InlineLimit: inputs up to this size are passed as "body";
	// negative disables inlining.
	InlineLimit int64
	// PollInterval, MaxPollInterval: activation polling backoff.
	PollInterval, MaxPollInterval time.Duration
	// ThrottleRetries and ThrottleBackoff bound 429 retries.
	ThrottleRetries int
	ThrottleBackoff time.Duration
	Logger          *slog.Logger
}

// Tenant is a dedupfn tenant's own OpenWhisk identity.
type Tenant struct {
	// Namespace is the only namespace the tenant's actions may be in;
	// an action in the default namespace "_" is taken to be in it.
	Namespace string
	// Auth is the tenant's "UUID:KEY" for that namespace.
	Auth string
}

// Check validates t, without quoting its key.
func (t Tenant) Check() error {
	switch {
	case !entityRE.MatchString(t.Namespace) || strings.Contains(t.Namespace, ".."):
		return fmt.Errorf("openwhisk namespace must be an OpenWhisk name (%s, no \"..\"), got %q", entityRE, t.Namespace)
	case !strings.Contains(t.Auth, ":"):
		return errors.New("openwhisk auth must be UUID:KEY")
	}
	return nil
}

// ErrNamespace is returned for an action outside its tenant's namespace,
// or of a tenant with none.
var ErrNamespace = errors.New("openwhisk: action is outside the tenant's OpenWhisk namespace")

// CheckNamespace returns an ErrNamespace error unless action a may run
// for a tenant whose namespace is ns ("" = it has none).
func CheckNamespace(ns string, a Action) error {
	switch {
	case ns == "":
		return fmt.Errorf("%w: the tenant has no OpenWhisk namespace (openwhisk_namespace and openwhisk_auth in the tenants file)", ErrNamespace)
	case a.Namespace != "_" && a.Namespace != ns:
		return fmt.Errorf("%w: action %s is not in namespace %s", ErrNamespace, a, ns)
	}
	return nil
}

// Runtime invokes remote OpenWhisk actions. Safe for concurrent use.
type Runtime struct {
	opts Options
	log  *slog.Logger
}

var (
	_ runtime.Runtime   = (*Runtime)(nil)
	_ runtime.Describer = (*Runtime)(nil)
)

// New validates opts and returns a Runtime.
func New(opts Options) (*Runtime, error) {
	if opts.Auth == "" {
		opts.Auth = os.Getenv(EnvAuth)
	}
	if opts.Auth != "" && !strings.Contains(opts.Auth, ":") {
		return nil, errors.New("openwhisk: auth must be UUID:KEY")
	}
	if opts.API != "" {
		if _, err := parseAPI(opts.API); err != nil {
			return nil, err
		}
		opts.Allow = append([]string{opts.API}, opts.Allow...)
	}
	for _, a := range opts.Allow {
		if _, err := parseAPI(a); err != nil {
			return nil, fmt.Errorf("openwhisk: allow-list: %w", err)
		}
	}
	for name, t := range opts.Tenants {
		if err := t.Check(); err != nil {
			return nil, fmt.Errorf("openwhisk: tenant %s: %w", name, err)
		}
	}
	if opts.PollInterval < 0 || opts.MaxPollInterval < 0 || opts.ThrottleRetries < 0 || opts.ThrottleBackoff < 0 {
		return nil, errors.New("openwhisk: poll intervals, throttle retries and backoff must be >= 0")
	}
	if opts.Client == nil {
		// A redirect could carry the key elsewhere: the controller's
		// answers are used as they are.
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	opts.InlineLimit = cmp.Or(opts.InlineLimit, DefaultInlineLimit)
	opts.PollInterval = cmp.Or(opts.PollInterval, DefaultPollInterval)
	opts.MaxPollInterval = cmp.Or(opts.MaxPollInterval, DefaultMaxPollInterval)
	opts.ThrottleRetries = cmp.Or(opts.ThrottleRetries, DefaultThrottleRetries)
	opts.ThrottleBackoff = cmp.Or(opts.ThrottleBackoff, DefaultThrottleBackoff)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runtime{opts: opts, log: opts.Logger.With("component", "runtime.openwhisk")}, nil
}

// Name returns "openwhisk".
func (r *Runtime) Name() string { return "openwhisk" }

// Version returns Version.
func (r *Runtime) Version() string { return Version }

// Close releases idle connections.
func (r *Runtime) Close(context.Context) error {
	r.opts.Client.CloseIdleConnections()
	return nil
}

// Action is a parsed action reference.
type Action struct {
	Namespace string // "_" for the caller's default namespace
	Name      string // "action" or "package/action"
}

// String returns "/ns/name".
func (a Action) String() string { return "/" + a.Namespace + "/" + a.Name }

// path returns the URL path of the action under /api/v1.
func (a Action) path() string {
	return "/api/v1/namespaces/" + url.PathEscape(a.Namespace) + "/actions/" + escapeName(a.Name)
}

func escapeName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// entityRE is OpenWhisk's entity name (namespace, package, action):
// a word character, then word characters, "@", " ", "." and "-", not
// ending in a space, at most 256 characters.
var entityRE = regexp.MustCompile(`^\w([\w@ .-]{0,254}[\w@.-])?$`)

// ParseAction parses "[/NS/][PKG/]ACTION". Each part must be an OpenWhisk
// entity name (entityRE) without "..": the name goes into a URL path, and
// must name one resource whatever the controller's path cleaning does.
func ParseAction(s string) (Action, error) {
	a := Action{Namespace: "_"}
	rest := s
	if strings.HasPrefix(s, "/") {
		ns, name, ok := strings.Cut(s[1:], "/")
		if !ok {
			return Action{}, fmt.Errorf("openwhisk: action %q: expected /NS/[PKG/]ACTION", s)
		}
		a.Namespace, rest = ns, name
	}
	parts := strings.Split(rest, "/")
	if len(parts) > 2 || a.Namespace == "" {
		return Action{}, fmt.Errorf("openwhisk: action %q: expected [/NS/][PKG/]ACTION", s)
	}
	for _, p := range append(parts, a.Namespace) {
		switch {
		case p == "":
			return Action{}, fmt.Errorf("openwhisk: action %q: empty name part, expected [/NS/][PKG/]ACTION", s)
		case !entityRE.MatchString(p) || strings.Contains(p, ".."):
			return Action{}, fmt.Errorf("openwhisk: action %q: each part must be an OpenWhisk name (%s, no \"..\"), got %q", s, entityRE, p)
		}
	}
	a.Name = rest
	return a, nil
}

// ErrNotAllowed is returned for a controller URL outside the allow-list.
var ErrNotAllowed = errors.New("openwhisk: api host is not in the operator's allow-list")

// CheckAPI reports whether api names the same scheme, host and port as
// one of allow (controller URLs): the hosts that may receive the
// operator's key. It returns ErrNotAllowed (wrapped) otherwise, or a
// parse error for a malformed api.
func CheckAPI(allow []string, api string) error {
	u, err := parseAPI(api)
	if err != nil {
		return err
	}
	for _, a := range allow {
		if v, err := parseAPI(a); err == nil && origin(v) == origin(u) {
			return nil
		}
	}
	return fmt.Errorf("%w (--openwhisk-api, --openwhisk-allow): %s", ErrNotAllowed, origin(u))
}

// origin is scheme://host:port with the default port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func parseAPI(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("openwhisk: api %q: expected an http(s) URL such as https://openwhisk.example:443", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.Path = strings.TrimSuffix(u.Path, "/api/v1")
	return u, nil
}

// target is the resolved endpoint of one function.
type target struct {
	api    *url.URL
	action Action
	auth   string
}

func (r *Runtime) target(fn runtime.Function) (target, error) {
	name := fn.Config[ConfigAction]
	if name == "" {
		return target{}, fmt.Errorf("openwhisk: function %s has no %s", fn.Name, ConfigAction)
	}
	a, err := ParseAction(name)
	if err != nil {
		return target{}, err
	}
	api := fn.Config[ConfigAPI]
	if api == "" {
		api = r.opts.API
	}
	if api == "" {
		return target{}, fmt.Errorf("openwhisk: function %s has no %s", fn.Name, ConfigAPI)
	}
	if err := CheckAPI(r.opts.Allow, api); err != nil {
		return target{}, fmt.Errorf("function %s: %w", fn.Name, err)
	}
	u, err := parseAPI(api)
	if err != nil {
		return target{}, err
	}
	auth, err := r.scope(fn, &a)
	if err != nil {
		return target{}, err
	}
	return target{api: u, action: a, auth: auth}, nil
}

// scope returns the key fn's action is called with. The operator's key
// is for the admin's own functions; a tenant's action must be in the
// tenant's namespace (made explicit in a) and is called with its key.
func (r *Runtime) scope(fn runtime.Function, a *Action) (string, error) {
	if fn.Tenant == "" || fn.Tenant == registry.DefaultTenant {
		if r.opts.Auth == "" {
			return "", fmt.Errorf("openwhisk: no auth: set %s to UUID:KEY", EnvAuth)
		}
		return r.opts.Auth, nil
	}
	t := r.opts.Tenants[fn.Tenant]
	if err := CheckNamespace(t.Namespace, *a); err != nil {
		return "", fmt.Errorf("function %s of tenant %s: %w", fn.Name, fn.Tenant, err)
	}
	a.Namespace = t.Namespace
	return t.Auth, nil
}

// Activation is the part of an OpenWhisk activation record dedupfn uses.
type Activation struct {
	ActivationID string `json:"activationId"`
	Namespace    string `json:"namespace"`
	Name         string `json:"name"`
	Version      string `json:"version"`
	Start        int64  `json:"start"`
	End          int64  `json:"end"`
	Duration     int64  `json:"duration"`
	Response     *struct {
		Status     string          `json:"status"`
		StatusCode int             `json:"statusCode"`
		Success    bool            `json:"success"`
		Result     json.RawMessage `json:"result"`
	} `json:"response"`
	Logs []string `json:"logs"`
}

// finished reports whether the record carries a result: a record without
// one is not trusted as a completion.
func (a *Activation) finished() bool {
	return a.Response != nil && len(a.Response.Result) > 0 && string(a.Response.Result) != "null"
}

// Invoke runs inv on the remote action (or resumes inv.ExternalID).
func (r *Runtime) Invoke(ctx context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	t, err := r.target(inv.Function)
	if err != nil {
		return runtime.Result{}, &runtime.Error{Class: runtime.ClassInit, Err: err}
	}
	timeout := inv.Limits.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if inv.ExternalID != "" {
		rec, err := r.poll(ctx, t, inv.ExternalID)
		if err != nil {
			return runtime.Result{ExternalID: inv.ExternalID}, err
		}
		res, err := r.finish(rec, inv)
		if runtime.ClassOf(err) == runtime.ClassFunction {
			// The activation was started by another invocation, whose
			// get_url and put_url were revoked when it returned (a lost
			// lease): its failure may be that, so it says nothing about the
			// function. A platform error is retried with a fresh
			// activation and never cached.
			err = &runtime.Error{Class: runtime.ClassPlatform, Stderr: res.Logs,
				Err: fmt.Errorf("openwhisk: resumed activation %s, started by another invocation whose URLs are revoked, failed: %w", inv.ExternalID, err)}
		}
		return res, err
	}
	params, err := r.params(inv)
	if err != nil {
		return runtime.Result{}, &runtime.Error{Class: runtime.ClassPlatform, Err: err}
	}
	rec, id, err := r.invoke(ctx, t, params, inv.OnExternalID)
	if err != nil {
		return runtime.Result{ExternalID: id}, err
	}
	if rec == nil || !rec.finished() {
		rec, err = r.poll(ctx, t, id)
		if err != nil {
			return runtime.Result{ExternalID: id}, err
		}
	}
	return r.finish(rec, inv)
}

// invoke POSTs the activation, retrying 429s. It returns the record when
// the blocking call completed, else the activation id to poll.
func (r *Runtime) invoke(ctx context.Context, t target, params []byte, onID func(string)) (*Activation, string, error) {
	u := *t.api
	u.Path += t.action.path()
	u.RawQuery = "blocking=true"
	for attempt := 0; ; attempt++ {
		status, body, err := r.do(ctx, t, http.MethodPost, u.String(), params)
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", &runtime.Error{Class: runtime.ClassOf(ctx.Err()), Err: fmt.Errorf("openwhisk: invoke %s: %w", t.action, err)}
			}
			// The request may have reached the controller: the action may
			// be running. The caller retries after the claim's lease.
			return nil, "", &runtime.Error{Class: runtime.ClassPlatform, Err: fmt.Errorf("openwhisk: invoke %s: %w", t.action, err)}
		}
		switch {
		case status == http.StatusOK, status == http.StatusAccepted, status == http.StatusBadGateway:
			var rec Activation
			if err := json.Unmarshal(body, &rec); err != nil || rec.ActivationID == "" {
				return nil, "", runtime.Errorf(runtime.ClassPlatform, "openwhisk: invoke %s: status %d without an activation id: %.200q", t.action, status, body)
			}
			if onID != nil {
				onID(rec.ActivationID)
			}
			if status == http.StatusAccepted {
				return nil, rec.ActivationID, nil
			}
			return &rec, rec.ActivationID, nil
		case status == http.StatusTooManyRequests:
			if attempt >= r.opts.ThrottleRetries {
				return nil, "", runtime.Errorf(runtime.ClassPlatform, "openwhisk: invoke %s: throttled (429) %d times: %s", t.action, attempt+1, errorText(body))
			}
			wait := backoff.Delay(attempt+1, r.opts.ThrottleBackoff, MaxThrottleBackoff)
			r.log.Info("throttled, backing off", "action", t.action.String(), "wait", wait)
			if err := backoff.Sleep(ctx, wait); err != nil {
				return nil, "", &runtime.Error{Class: runtime.ClassOf(err), Err: fmt.Errorf("openwhisk: invoke %s: %w", t.action, err)}
			}
		default:
			return nil, "", statusError(status, body, "invoke", t.action)
		}
	}
}

// statusError maps a controller status to a classified error.
func statusError(status int, body []byte, op string, a Action) error {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return runtime.Errorf(runtime.ClassInit, "openwhisk: authentication rejected (%d): %s", status, errorText(body))
	case status == http.StatusNotFound:
		return runtime.Errorf(runtime.ClassInit, "openwhisk: action %s not found", a)
	case status >= 500:
		return runtime.Errorf(runtime.ClassPlatform, "openwhisk: %s %s: status %d: %s", op, a, status, errorText(body))
	default:
		return runtime.Errorf(runtime.ClassInit, "openwhisk: %s %s: rejected with status %d: %s", op, a, status, errorText(body))
	}
}

// errorText extracts the controller's {"error": "..."} message.
func errorText(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return fmt.Sprintf("%.200q", body)
}

// poll waits for activation id's record, with capped backoff, until it
// carries a result or ctx ends (ClassTimeout on its deadline).
func (r *Runtime) poll(ctx context.Context, t target, id string) (*Activation, error) {
	u := *t.api
	u.Path += "/api/v1/namespaces/" + url.PathEscape(t.action.Namespace) + "/activations/" + url.PathEscape(id)
	wait := r.opts.PollInterval
	var last string
	for {
		status, body, err := r.do(ctx, t, http.MethodGet, u.String(), nil)
		switch {
		case err != nil:
			last = err.Error() // transient: keep polling
		case status == http.StatusOK:
			var rec Activation
			if err := json.Unmarshal(body, &rec); err != nil {
				last = fmt.Sprintf("undecodable record: %v", err)
				break
			}
			if rec.finished() {
				return &rec, nil
			}
			last = "record without a result"
		case status == http.StatusNotFound:
			last = "no record yet"
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			return nil, statusError(status, body, "poll", t.action)
		default:
			last = fmt.Sprintf("status %d: %s", status, errorText(body))
		}
		if err := backoff.Sleep(ctx, wait/2+rand.N(wait)); err != nil {
			return nil, &runtime.Error{Class: runtime.ClassOf(err),
				Err: fmt.Errorf("openwhisk: activation %s of %s did not finish (last poll: %s): %w", id, t.action, last, err)}
		}
		wait = min(wait*3/2, r.opts.MaxPollInterval)
	}
}

// do makes one authenticated call and reads the (bounded) body.
func (r *Runtime) do(ctx context.Context, t target, method, u string, body []byte) (int, []byte, error) {
	return call(ctx, r.opts.Client, t.auth, method, u, body)
}

func call(ctx context.Context, c *http.Client, auth, method, u string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	user, pass, _ := strings.Cut(auth, ":")
	req.SetBasicAuth(user, pass)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, b, nil
}

// params builds the invoke parameters (see actionio.Params) as JSON; a
// direct invocation's are its Value, as they are.
func (r *Runtime) params(inv *runtime.Invocation) ([]byte, error) {
	if inv.Value != nil {
		return inv.Value, nil
	}
	v, err := actionio.Params(inv, r.opts.InlineLimit)
	if err != nil {
		return nil, fmt.Errorf("openwhisk: %w", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("openwhisk: encode params: %w", err)
	}
	return out, nil
}

// finish turns a finished record into a Result or a classified error.
func (r *Runtime) finish(rec *Activation, inv *runtime.Invocation) (runtime.Result, error) {
	res := runtime.Result{
		Result:     rec.Response.Result,
		Logs:       strings.Join(rec.Logs, "\n"),
		Duration:   time.Duration(rec.Duration) * time.Millisecond,
		ExternalID: rec.ActivationID,
	}
	if max := inv.Limits.MaxLogBytes; max > 0 && len(res.Logs) > max {
		res.Logs = res.Logs[:max] + "\n[dedupfn: logs truncated]"
	}
	status := rec.Response.Status
	if status == "" && !rec.Response.Success {
		status = "application error"
	}
	switch status {
	case "success", "":
	case "application error", "action developer error":
		return res, &runtime.Error{Class: runtime.ClassFunction,
			Err:    fmt.Errorf("openwhisk: activation %s: %s: %s", rec.ActivationID, status, resultError(rec.Response.Result)),
			Stderr: res.Logs}
	default: // "whisk internal error"
		return res, &runtime.Error{Class: runtime.ClassPlatform,
			Err:    fmt.Errorf("openwhisk: activation %s: %s: %s", rec.ActivationID, status, resultError(rec.Response.Result)),
			Stderr: res.Logs}
	}
	return actionio.Output(res, inv)
}

func resultError(b json.RawMessage) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) == nil {
		if e, ok := m["error"]; ok {
			var s string
			if json.Unmarshal(e, &s) == nil {
				return s
			}
			return string(e)
		}
	}
	return fmt.Sprintf("%.200s", b)
}

// actionRecord is the part of GET .../actions/{name} that identifies
// the deployed code.
type actionRecord struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	Exec      struct {
		Kind       string          `json:"kind"`
		Code       string          `json:"code"`
		Image      string          `json:"image"`
		Main       string          `json:"main"`
		Binary     bool            `json:"binary"`
		Components json.RawMessage `json:"components"`
	} `json:"exec"`
}

// Describe returns a digest over the remote action's version and exec
// (kind, image, main, code digest, sequence components): it changes
// whenever the action is updated.
func (r *Runtime) Describe(ctx context.Context, fn runtime.Function) (string, error) {
	t, err := r.target(fn)
	if err != nil {
		return "", &runtime.Error{Class: runtime.ClassInit, Err: err}
	}
	u := *t.api
	u.Path += t.action.path()
	status, body, err := r.do(ctx, t, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", runtime.Errorf(runtime.ClassPlatform, "openwhisk: describe %s: %w", t.action, err)
	}
	if status != http.StatusOK {
		return "", statusError(status, body, "describe", t.action)
	}
	var a actionRecord
	if err := json.Unmarshal(body, &a); err != nil {
		return "", runtime.Errorf(runtime.ClassPlatform, "openwhisk: describe %s: decode: %w", t.action, err)
	}
	code := sha256.Sum256([]byte(a.Exec.Code))
	h := sha256.New()
	for _, s := range []string{"openwhisk-action/1", t.api.String(), a.Namespace, a.Name, a.Version,
		a.Exec.Kind, a.Exec.Image, a.Exec.Main, fmt.Sprint(a.Exec.Binary), hex.EncodeToString(code[:]), string(a.Exec.Components)} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
