package pipeline

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gowebpki/jcs"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/fingerprint"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
)

// DirectSource is the EventSource of a direct invocation's activation
// record (InvokeDirect): it has no event, no object, no output.
const DirectSource = "api"

// DirectRequest is one direct invocation of a function on JSON
// parameters: OpenWhisk's POST .../actions/NAME.
type DirectRequest struct {
	// Function is an action (registry.Function.IsAction), or any function
	// invoked with parameters, as the registry returns it: its code is
	// read by CodeDigest (registry.Deploy stores it); limits and attempts
	// left zero take the registry's defaults. Its deploy-time Params
	// (strings) are merged under Params.
	Function registry.Function
	// Params are the merged parameters (package < action < invocation),
	// one JSON object; nil or empty is {}.
	Params json.RawMessage
	// ActivationID is chosen by the caller: 32 lower-case hex, OpenWhisk's
	// form; "" = generate one. It is the activation record's ID (recorded
	// once: an ID already recorded is not recorded again).
	ActivationID string
	// Cause is the activation that caused this one (a sequence's), or "".
	Cause string
}

// InvokeDirect runs req.Function on req.Params, or reuses the recorded
// result, and returns the activation it recorded.
//
// Deduplication: the dedup key is the function's key (registry.Function.Key:
// tenant, dedup version, code, runtime) with, as the input's fingerprint,
// the SHA-256 of the RFC 8785 canonical JSON of the parameters (Params with
// the deploy-time Params merged under them): key order and whitespace do
// not matter, any other change does, and a new version never reuses an
// older one's results. A function that is not Deduplicated() always runs,
// as do parameters holding an integer that a JSON number (an IEEE double,
// which canonical JSON writes) cannot hold exactly: two such integers
// could canonicalize alike. Concurrent identical invocations run once:
// the others wait for the claim, as events do (decision wait).
//
// The record: EventSource DirectSource, empty Event bucket and key,
// Fingerprint and Key of the parameters, Result the function's JSON result
// (on a hit the recorded one, with SavedMS), Logs, Timings, FunctionMS,
// Decision miss, hit, wait or error. Results are recorded in the index
// record only (no output object). A failure is in the record (Decision
// error, Error, ErrorClass; an application error's result, e.g.
// {"error": ...}, in Result): the function's own error (class function)
// is cached only when its CacheFailures is set, and a hit of a cached
// failure has Error "cached failure: ..." and no Result. Platform
// failures are retried up to the function's MaxAttempts. A direct
// invocation is never a dead letter: its caller sees the failure.
//
// ctx bounds the whole invocation, waits for a concurrent identical one
// included: a caller that answers before the result (OpenWhisk's
// non-blocking invocation, or a blocking one past its wait) passes a ctx
// that outlives its request.
//
// Errors: only index unavailability, or ctx's end (nothing was recorded).
func (p *Pipeline) InvokeDirect(ctx context.Context, req DirectRequest) (rec activation.Record, err error) {
	start := time.Now()
	fn := req.Function
	fn.Tenant = registry.TenantOr(fn.Tenant)
	fn.Limits.Timeout = cmp.Or(fn.Limits.Timeout, registry.DefaultTimeout)
	fn.Limits.Lease = cmp.Or(fn.Limits.Lease, registry.DefaultLease)
	fn.Limits.MemoryMB = cmp.Or(fn.Limits.MemoryMB, registry.DefaultMemoryMB)
	fn.MaxAttempts = cmp.Or(fn.MaxAttempts, registry.DefaultMaxAttempts)
	id := req.ActivationID
	if id == "" {
		id = newActivationID()
	}
	j := &job{fn: fn, start: start, ev: eventOfDirect(start), rec: activation.Record{
		ID: id, Tenant: fn.Tenant, Function: fn.Name, Version: fn.Version,
		EventSource: DirectSource, EventTime: start.UTC(), Start: start.UTC(), Cause: req.Cause,
	}}
	ctx = p.withJob(ctx, j)
	defer func() {
		if r := recover(); r != nil { // as runRecovered: one bad invocation must not stop the server
			p.metrics.panics.Inc()
			p.log(ctx).Error("panic in a direct invocation", "panic", r)
			p.fail(j, runtime.Errorf(runtime.ClassPlatform, "panic: %v", r), max(j.rec.Attempts, 1), false)
			j.rec.Logs = string(debug.Stack())
			err = nil
		}
		if err == nil {
			j.rec.DeadLetter = false
			err = p.record(ctx, j)
		}
		rec = j.rec
	}()
	err = p.runDirect(ctx, j, req.Params)
	return j.rec, err
}

// runDirect decides and runs one direct invocation, filling j's record;
// as run, it returns an error only when the index is unavailable.
func (p *Pipeline) runDirect(ctx context.Context, j *job, params json.RawMessage) error {
	value, canon, exact, err := directValue(j.fn.Params, params)
	if err != nil {
		return p.fail(j, runtime.Errorf(runtime.ClassConfig, "parameters: %w", err), 1, false)
	}
	rt, ok := p.cfg.Runtimes[j.fn.Runtime]
	if !ok {
		return p.fail(j, runtime.Errorf(runtime.ClassInit, "runtime %q is not enabled on this replica", j.fn.Runtime), 1, false)
	}
	fp, _, err := fingerprint.Sum(bytes.NewReader(canon))
	if err != nil {
		return p.fail(j, runtime.Errorf(runtime.ClassPlatform, "fingerprint parameters: %w", err), 1, false)
	}
	j.rec.Fingerprint = fp
	d := &directRun{p: p, j: j, rt: rt, value: value}
	if !j.fn.Deduplicated() || !exact {
		if !exact {
			p.log(ctx).Info("parameters hold an integer a JSON number cannot hold exactly: not deduplicated")
		}
		return d.once(ctx)
	}
	codeDigest, err := p.codeDigest(ctx, rt, j.fn)
	if err != nil {
		return p.fail(j, err, 1, false)
	}
	d.key, d.parts = j.fn.Key(codeDigest, rt.Version(), fp)
	j.rec.Key = d.key
	return p.claimLoop(ctx, j, d.key, d.parts, d)
}

// eventOfDirect is the event a direct invocation's job carries: none, only
// its time, so that what logs and records events (withJob) finds no
// bucket or key.
func eventOfDirect(t time.Time) event.Event { return event.Event{Source: DirectSource, Time: t} }

// newActivationID is a random activation id in OpenWhisk's form (32
// lower-case hex digits).
func newActivationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// directValue merges the deploy-time params under params (one JSON
// object) and returns the merged object as the function gets it, its
// RFC 8785 canonical form, and whether every integer in it is exactly a
// JSON number (see InvokeDirect).
func directValue(deploy map[string]string, params json.RawMessage) (value, canon []byte, exact bool, err error) {
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(params)) > 0 {
		if err := json.Unmarshal(params, &m); err != nil || m == nil {
			return nil, nil, false, fmt.Errorf("must be one JSON object, got %.100q", params)
		}
	}
	if m == nil {
		m = map[string]json.RawMessage{}
	}
	for k, v := range deploy {
		if _, ok := m[k]; !ok {
			m[k], _ = json.Marshal(v) // a string always encodes
		}
	}
	if value, err = json.Marshal(m); err != nil {
		return nil, nil, false, err
	}
	if canon, err = jcs.Transform(value); err != nil {
		return nil, nil, false, fmt.Errorf("canonical JSON: %w", err)
	}
	return value, canon, exactIntegers(value), nil
}

// exactIntegers reports whether every integer literal in the JSON b is
// exactly an IEEE double: canonical JSON (RFC 8785) writes numbers as
// doubles, so 9007199254740993 and 9007199254740992 canonicalize alike,
// though a Python action reads them as two integers.
func exactIntegers(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return true // the end (b was decoded whole already)
		}
		n, ok := tok.(json.Number)
		if !ok || strings.ContainsAny(string(n), ".eE") || len(strings.TrimPrefix(string(n), "-")) <= 15 {
			continue // not an integer literal, or one of at most 15 digits: exact
		}
		i, ok := new(big.Int).SetString(string(n), 10)
		f, ferr := strconv.ParseFloat(string(n), 64)
		if !ok || ferr != nil {
			return false
		}
		if back, _ := big.NewFloat(f).Int(nil); back.Cmp(i) != 0 {
			return false
		}
	}
}

// directRun is the claimant of a direct invocation: no input object, a
// result recorded in the index only.
type directRun struct {
	p     *Pipeline
	j     *job
	rt    runtime.Runtime
	value json.RawMessage
	key   string
	parts index.Parts
}

func (d *directRun) dropInput() {}

// hit serves a recorded result whose parts match its key, within the
// function's retention; a cached failure as deliver serves it.
func (d *directRun) hit(ctx context.Context, rec index.Record, waited bool) (bool, error) {
	p, j := d.p, d.j
	if rec.State == index.Failed {
		return p.deliver(ctx, j, d.key, d.parts, rec) // a cached failure: no object involved
	}
	usable := rec.Parts == d.parts && registry.PartsKey(rec.Parts) == d.key && rec.Output == nil
	if !usable {
		p.log(ctx).Error("dedup record does not match its key; running again", "dedup_key", d.key, "parts", rec.Parts)
	}
	if r := j.fn.Limits.Retention; usable && r > 0 && time.Since(rec.Updated) > r {
		if rec.Parts.Tenant == registry.SharedTenant && j.fn.Tenant != registry.DefaultTenant {
			return true, d.once(ctx) // a tenant's retention expires no one else's result
		}
		usable = false
	}
	if !usable {
		if err := p.deleteResult(ctx, d.key, rec.Updated); err != nil {
			return false, fmt.Errorf("pipeline: delete unusable record: %w", err)
		}
		return false, nil
	}
	j.rec.Result = rec.Result
	j.rec.FunctionMS = rec.FunctionMS
	j.rec.SavedMS = rec.FunctionMS
	hitDecision(j, waited)
	return true, nil
}

// runClaimed runs the function holding the claim, its lease renewed, and
// commits the result on the claim.
func (d *directRun) runClaimed(ctx context.Context, claim index.Record, claimedAt time.Time) error {
	p, j := d.p, d.j
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lease := p.holdLease(runCtx, cancel, d.key, claim.Token, j.fn.Limits.Lease, claimedAt)
	defer lease.stop()
	res, err := d.invoke(runCtx, claim)
	if l := lost(runCtx); l != nil {
		return l
	}
	if err != nil {
		return err
	}
	storeStart := time.Now()
	if err := p.complete(runCtx, d.key, claim.Token, index.Completion{Result: res.Result, FunctionMS: ms(res.Duration)}); err != nil {
		return err
	}
	j.rec.Timings.StoreMS = ms(time.Since(storeStart))
	j.rec.Decision = activation.Miss
	return nil
}

func (d *directRun) abandoned(context.Context, error, index.Record) (bool, error) { return false, nil }

// once runs the function without a claim (not deduplicated), retried as
// an event's run without one is.
func (d *directRun) once(ctx context.Context) error {
	return d.p.retried(ctx, d.j, func() error {
		if _, err := d.invoke(ctx, index.Record{}); err != nil {
			return err
		}
		d.j.rec.Decision = activation.Miss
		return nil
	})
}

// invoke runs the function once on the parameters, in a run slot; claim
// is the claim held (zero without one).
func (d *directRun) invoke(ctx context.Context, claim index.Record) (runtime.Result, error) {
	p, j := d.p, d.j
	fn, err := p.runtimeFunction(ctx, j)
	if err != nil {
		return runtime.Result{}, err
	}
	key := d.key
	if claim.Token == "" {
		key = ""
	}
	inv := &runtime.Invocation{
		Function:     fn,
		Value:        d.value,
		Limits:       p.limits(j),
		ActivationID: j.rec.ID,
		ExternalID:   claim.ExternalID,
		OnExternalID: p.onExternalID(ctx, j, key, claim),
	}
	release, err := p.loadFunction(ctx, d.rt, j) // before the slot: a compile never holds one
	if err != nil {
		return runtime.Result{}, err
	}
	defer release()
	waitStart := time.Now()
	if err := p.acquireRun(ctx, j); err != nil {
		return runtime.Result{}, runtime.Errorf(runtime.ClassPlatform, "wait for a run slot: %v", err)
	}
	j.rec.Timings.RunWaitMS += ms(time.Since(waitStart))
	invokeStart := time.Now()
	res, err := func() (runtime.Result, error) {
		defer p.runs.release() // a panicking runtime must not keep the slot
		return d.rt.Invoke(ctx, inv)
	}()
	res = invoked(j, res, invokeStart)
	// Compact, as the index keeps it: a hit's result is then the miss's.
	var compact bytes.Buffer
	if json.Compact(&compact, res.Result) == nil {
		res.Result = compact.Bytes()
		j.rec.Result = res.Result
	} else if err == nil {
		err = runtime.Errorf(runtime.ClassFunction, "result is not JSON: %.100q", res.Result)
	}
	return res, err
}

var _ claimant = (*directRun)(nil)
