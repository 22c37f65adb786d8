// Package runtime defines how a user's function is run. Implementations
// live in subpackages: wasm (wazero, the default), process (OpenWhisk
// actionloop executables) and openwhisk (a remote OpenWhisk action).
// runtimetest is the conformance suite every runtime passes.
package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Class classifies a failed invocation; the pipeline decides retries and
// caching from it.
type Class string

// Classes.
const (
	// ClassInit: the function could not be started (bad module, missing
	// executable, no ack). Nothing ran; retried; never cached.
	ClassInit Class = "init"
	// ClassPlatform: the runtime or platform failed (remote 5xx, lost
	// connection, process died). Retried; never cached.
	ClassPlatform Class = "platform"
	// ClassTimeout: the function exceeded its time limit. Retried; never cached.
	ClassTimeout Class = "timeout"
	// ClassOOM: the function exceeded its memory limit. Retried; never cached.
	ClassOOM Class = "oom"
	// ClassFunction: the function itself reported failure (non-zero exit,
	// trap, error result). Deterministic for a pure function; cached only
	// where the function's policy opts in.
	ClassFunction Class = "function"
	// ClassConfig: the function's definition cannot work for this event
	// (its output key is the input, or already holds another input's
	// output). Not retried, never cached.
	ClassConfig Class = "config"
	// ClassStore: the object store refused a request for good (a missing
	// bucket, access denied, an invalid key: objects.ErrPermanent). Not
	// retried, never cached.
	ClassStore Class = "store"
)

// Error is an invocation failure with its class and whatever the function
// printed on stderr.
type Error struct {
	Class  Class
	Err    error
	Stderr string
}

func (e *Error) Error() string {
	if e.Stderr != "" {
		return fmt.Sprintf("%s error: %v: %s", e.Class, e.Err, e.Stderr)
	}
	return fmt.Sprintf("%s error: %v", e.Class, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of class c.
func Errorf(c Class, format string, args ...any) *Error {
	return &Error{Class: c, Err: fmt.Errorf(format, args...)}
}

// ClassOf returns the class of err: its *Error's class, ClassTimeout for a
// deadline, else ClassPlatform.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ClassTimeout
	}
	return ClassPlatform
}

// ErrResultNotObject: a direct invocation's result (Invocation.Value) is
// not one JSON object (DirectResult).
var ErrResultNotObject = errors.New("result is not a JSON object")

// DirectResult checks a function's result b as a direct invocation's
// result, OpenWhisk's rule: one JSON object (else a ClassFunction error
// wrapping ErrResultNotObject); an object with an "error" field is the
// function's own failure, OpenWhisk's application error: a ClassFunction
// error naming it, with the result returned too, to be recorded.
func DirectResult(b []byte) (json.RawMessage, error) {
	b = bytes.TrimSpace(b)
	// Only "error" is decoded: the other fields are skipped, not copied.
	var probe struct {
		Error json.RawMessage `json:"error"`
	}
	if len(b) == 0 || b[0] != '{' || !json.Valid(b) || json.Unmarshal(b, &probe) != nil {
		return nil, &Error{Class: ClassFunction, Err: fmt.Errorf("%w: %.200q", ErrResultNotObject, b)}
	}
	if e := probe.Error; e != nil {
		msg := string(e)
		var s string
		if json.Unmarshal(e, &s) == nil {
			msg = s
		}
		return json.RawMessage(b), Errorf(ClassFunction, "action error: %s", msg)
	}
	return json.RawMessage(b), nil
}

// Limits bound one invocation.
type Limits struct {
	Timeout     time.Duration
	MemoryBytes uint64
	// MaxOutputBytes bounds what the function may write as output.
	MaxOutputBytes int64
	// MaxLogBytes bounds the logs kept on the activation.
	MaxLogBytes int
}

// Function identifies the code to run.
type Function struct {
	Tenant  string
	Name    string
	Version string // code digest + params digest, short
	// CodeDigest is the SHA-256 hex of Code; runtimes cache compiled or
	// unpacked code under it.
	CodeDigest string
	// Code is the module (wasm), executable or zip (process); empty for openwhisk.
	Code []byte
	// Config is runtime-specific settings from the deploy (e.g. the
	// OpenWhisk action name and API URL, environment for a process).
	Config map[string]string
}

// ObjectRef describes the input object and where output goes, for
// runtimes that pass objects by URL.
type ObjectRef struct {
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	Size        int64  `json:"size"`
	ETag        string `json:"etag,omitempty"`
	SHA256      string `json:"sha256"`
	ContentType string `json:"content_type,omitempty"`
	GetURL      string `json:"get_url,omitempty"`
	PutURL      string `json:"put_url,omitempty"`
	// OutputBucket/OutputKey: where the output will be stored.
	OutputBucket string `json:"output_bucket,omitempty"`
	OutputKey    string `json:"output_key,omitempty"`
}

// Invocation is one call of a function on one input.
type Invocation struct {
	Function Function
	// Params are the function's deploy-time parameters.
	Params map[string]string
	// Input streams the object's bytes; Object describes it.
	Input  io.Reader
	Object ObjectRef
	// Output receives the output object's bytes.
	Output io.Writer
	Limits Limits
	// ActivationID is dedupfn's activation id, passed to functions that want it.
	ActivationID string
	// OnExternalID, if set, is called as soon as a remote platform assigns
	// its own activation id, before waiting for the result, so it can be
	// stored on the claim.
	OnExternalID func(id string)
	// ExternalID, if set, is a remote activation already started by a
	// previous owner of this claim: poll it instead of invoking again.
	ExternalID string
	// Value, when non-nil, makes this a direct invocation (OpenWhisk's
	// POST .../actions/NAME, pipeline.InvokeDirect): no object. Value is
	// the parameters as one JSON object, passed as they are (an
	// actionloop "value", a wasm module's stdin, a remote action's
	// params); Params, Input, Object and Output are unused, and the
	// function's result is Result.Result.
	Value json.RawMessage
}

// Result of a successful invocation.
type Result struct {
	// Result is the function's JSON result, if it produced one.
	Result json.RawMessage
	// OutputWritten reports that the function wrote Output (or PUT the
	// output by URL). When false and Result is set, the pipeline stores
	// Result as the output object.
	OutputWritten bool
	// OutputStored reports that the output object was already written to
	// the store by the function itself (through the presigned PUT URL).
	OutputStored bool
	Logs         string
	Duration     time.Duration
	ExternalID   string
}

// Runtime runs functions.
type Runtime interface {
	// Name is the runtime's name as used in `fn deploy` ("wasm", "process", "openwhisk").
	Name() string
	// Version is part of every dedup key: a runtime change that could change
	// outputs must change it.
	Version() string
	// Invoke runs inv. Failures are *Error with a Class. Invoke must stop
	// the function when ctx ends or the timeout passes.
	Invoke(ctx context.Context, inv *Invocation) (Result, error)
	// Close stops everything the runtime started (warm processes, caches).
	Close(ctx context.Context) error
}

// Describer is implemented by runtimes whose code lives elsewhere (a
// remote OpenWhisk action): Describe returns a digest of the remote code
// and version, which replaces the local code digest in the dedup key, so
// updating the remote action invalidates old results.
type Describer interface {
	Describe(ctx context.Context, fn Function) (digest string, err error)
}

// Preparer is implemented by runtimes that can check and warm a function
// when it is deployed (compile a module): code that cannot run is then
// refused at deploy with the reason, not found failing at the first event,
// and the first event does not pay for the compile.
type Preparer interface {
	Prepare(ctx context.Context, fn Function) error
}

// Loader is implemented by runtimes with a costly step before a run that
// they cache (compiling a module). The pipeline calls Load before it
// takes a run slot, so that step never holds one, and release once the
// run is over; an Invoke of fn in between does not repeat it. Failures
// are *Error, as Invoke's. release is safe to call twice.
type Loader interface {
	Load(ctx context.Context, fn Function) (release func(), err error)
}

// Forgetter is implemented by runtimes that keep state for a function
// beyond an invocation (unpacked code on disk, warm processes): Forget
// releases it when the function is deleted. It is idempotent, and a later
// Invoke of the same code recreates whatever it needs.
type Forgetter interface {
	Forget(ctx context.Context, fn Function) error
}
