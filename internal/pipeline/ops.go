package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
)

// InvokeRequest runs a function on demand on one object.
type InvokeRequest struct {
	Tenant   string `json:"tenant"`
	Function string `json:"function"`
	Bucket   string `json:"bucket"`
	Key      string `json:"key"`
	// Force runs again and replaces a recorded result; see ReplaceShared.
	Force bool `json:"force,omitempty"`
	// ReplaceShared lets Force replace a --shared function's result,
	// which other tenants reuse: the admin's right only (never read from
	// a request body). Without it a forced shared function runs for this
	// invocation alone, as if deployed --no-dedup: no result is read,
	// replaced or recorded.
	ReplaceShared bool `json:"-"`
	// AnyKey runs the function on an object outside its trigger (another
	// bucket, prefix or suffix); without it such an invoke is refused
	// with ErrOutsideTrigger.
	AnyKey bool `json:"any_key,omitempty"`
}

// ErrOutsideTrigger is returned by Invoke for an object that does not
// trigger the function, unless the request sets AnyKey.
var ErrOutsideTrigger = errors.New("object outside the function's trigger")

// Invoke runs a function on an object through the same dedup as events,
// and returns its activation record.
func (p *Pipeline) Invoke(ctx context.Context, req InvokeRequest) (activation.Record, error) {
	fn, err := p.cfg.Registry.Get(ctx, registry.TenantOr(req.Tenant), req.Function)
	if err != nil {
		return activation.Record{}, err
	}
	if req.Force && fn.Shared && !req.ReplaceShared {
		fn.NoDedup, req.Force = true, false
	}
	if !req.AnyKey {
		if err := checkTrigger(fn, req.Bucket, req.Key); err != nil {
			return activation.Record{}, err
		}
	}
	// A missing object is the caller's mistake (a typo, the wrong
	// bucket), not an event: an error, and nothing is recorded.
	sctx, cancel := p.callCtx(ctx)
	_, err = p.cfg.Objects.Stat(sctx, req.Bucket, req.Key)
	cancel()
	if errors.Is(err, objects.ErrNotFound) {
		// The store's own text is left out: it may be a raw XML body.
		return activation.Record{}, fmt.Errorf("invoke %s: no such object: key %s in bucket %s: %w", fn.Name, req.Key, req.Bucket, objects.ErrNotFound)
	}
	ev, err := event.Normalize(event.Event{
		Source: "invoke", Name: "s3:ObjectCreated:Invoke", Bucket: req.Bucket, Key: req.Key,
		Nonce: newID(), Time: time.Now().UTC(),
	})
	if err != nil {
		return activation.Record{}, err
	}
	recs, err := p.process(ctx, ev, []registry.Function{fn}, req.Force, "")
	if err != nil {
		return activation.Record{}, err
	}
	if len(recs) == 0 {
		return activation.Record{}, fmt.Errorf("%s/%s was written by dedupfn itself, by %s or a function upstream of it: an output never triggers its writer", req.Bucket, req.Key, req.Function)
	}
	if recs[0].Decision == activation.Skipped { // deleted between the Stat and the read
		return recs[0], fmt.Errorf("invoke %s: no such object: key %s in bucket %s (deleted while invoking; recorded as skipped, activation %s): %w",
			fn.Name, req.Key, req.Bucket, recs[0].ID, objects.ErrNotFound)
	}
	return recs[0], nil
}

// checkTrigger returns an ErrOutsideTrigger error saying which part of
// fn's trigger the object does not match, or nil if it triggers fn.
func checkTrigger(fn registry.Function, bucket, key string) error {
	var why string
	switch fn.Mismatch(bucket, key) {
	case "":
		return nil
	case registry.MismatchBucket:
		why = fmt.Sprintf("its trigger bucket is %s, not %s", fn.Trigger.Bucket, bucket)
	case registry.MismatchPrefix:
		why = fmt.Sprintf("key %s does not start with its trigger prefix %q", key, fn.Trigger.Prefix)
	case registry.MismatchSuffix:
		why = fmt.Sprintf("key %s ends in none of its trigger suffixes %s", key, strings.Join(fn.Trigger.Suffixes, ", "))
	}
	return fmt.Errorf("%w: function %s: %s; pass --any-key (API: \"any_key\": true) to run it on this object anyway",
		ErrOutsideTrigger, fn.Name, why)
}

// ErrNotRetryable is returned by Retry for an activation that is not a
// dead letter, or names no function and object to run again.
var ErrNotRetryable = errors.New("activation cannot be retried")

// Retry runs the event of the dead-lettered activation rec again through
// its function's current version: retrying after the cause is fixed (a new
// deploy, a permission granted) is the point. The event is rebuilt from
// the record's bucket, key and ETag (so the same object version is read;
// one replaced since is recorded as skipped) with a fresh nonce, so a new
// activation is recorded, its RetryOf naming rec; rec itself is left as it
// is (activation records are written once). Each call retries again.
func (p *Pipeline) Retry(ctx context.Context, rec activation.Record) (activation.Record, error) {
	if err := CheckRetry(rec); err != nil {
		return activation.Record{}, err
	}
	fn, err := p.cfg.Registry.Get(ctx, registry.TenantOr(rec.Tenant), rec.Function)
	if err != nil {
		return activation.Record{}, err
	}
	ev, err := event.Normalize(event.Event{
		Source: "retry", Name: "s3:ObjectCreated:Retry", Bucket: rec.Event.Bucket, Key: rec.Event.Key,
		ETag: rec.Event.ETag, Size: rec.Event.Size, Nonce: newID(), Time: time.Now().UTC(),
	})
	if err != nil {
		return activation.Record{}, err
	}
	recs, err := p.process(ctx, ev, []registry.Function{fn}, false, rec.ID)
	if err != nil {
		return activation.Record{}, err
	}
	if len(recs) == 0 {
		return activation.Record{}, fmt.Errorf("%s/%s was written by dedupfn itself, by %s or a function upstream of it: an output never triggers its writer", rec.Event.Bucket, rec.Event.Key, rec.Function)
	}
	return recs[0], nil
}

// CheckRetry returns an ErrNotRetryable error unless Retry can run rec
// again: a dead letter naming a function and an object.
func CheckRetry(rec activation.Record) error {
	switch {
	case !rec.DeadLetter:
		return fmt.Errorf("%w: activation %s is not a dead letter", ErrNotRetryable, rec.ID)
	case rec.Function == "" || rec.Event.Bucket == "" || rec.Event.Key == "":
		return fmt.Errorf("%w: activation %s names no function and object (a malformed event): send it again from its source", ErrNotRetryable, rec.ID)
	}
	return nil
}

// Prepare checks that fn can run on this replica before it is deployed:
// its runtime is enabled, a remote one can reach its get_url, and
// runtimes that can (wasm) compile its code.
func (p *Pipeline) Prepare(ctx context.Context, fn registry.Function, code []byte) error {
	if err := fn.Validate(); err != nil {
		return err
	}
	rt, ok := p.cfg.Runtimes[fn.Runtime]
	if !ok {
		return fmt.Errorf("function %s: runtime %q is not enabled on this replica", fn.Name, fn.Runtime)
	}
	if err := p.checkReach(rt, fn); err != nil {
		return err
	}
	pr, ok := rt.(runtime.Preparer)
	if !ok || code == nil {
		return nil
	}
	err := pr.Prepare(ctx, runtime.Function{Tenant: fn.Tenant, Name: fn.Name, CodeDigest: registry.Digest(code), Code: code})
	if err != nil {
		return fmt.Errorf("function %s cannot run: %w", fn.Name, err)
	}
	return nil
}

// Explanation shows how an object's dedup key is made and what would happen.
type Explanation struct {
	Function    string      `json:"function"`
	Version     string      `json:"version"`
	Bucket      string      `json:"bucket"`
	Key         string      `json:"key"`
	Fingerprint string      `json:"fingerprint"`
	DedupKey    string      `json:"dedup_key"`
	Parts       index.Parts `json:"parts"`
	// State is the record's state under DedupKey ("" = none).
	State index.State `json:"state,omitempty"`
	// Output is where this object's output goes for the caller, run or
	// reused (a JSON result is stored beside it as KEY.json).
	Output *activation.Object `json:"output,omitempty"`
	// Record is the whole record, for the admin only: a shared function's
	// record names another tenant's output, replica and error.
	Record   *index.Record `json:"record,omitempty"`
	WouldRun bool          `json:"would_run"`
	Reason   string        `json:"reason"`
}

// Explain fingerprints an object and looks up its key without claiming.
// It says only what belongs to the caller (whether it would run, hit or
// wait, and its own output location) unless withRecord (the admin) asks
// for the record itself.
func (p *Pipeline) Explain(ctx context.Context, tenant, function, bucket, key string, withRecord bool) (Explanation, error) {
	fn, err := p.cfg.Registry.Get(ctx, registry.TenantOr(tenant), function)
	if err != nil {
		return Explanation{}, err
	}
	rt, ok := p.cfg.Runtimes[fn.Runtime]
	if !ok {
		return Explanation{}, fmt.Errorf("runtime %q is not enabled on this replica", fn.Runtime)
	}
	in, err := p.fetch(ctx, event.Event{Bucket: bucket, Key: key})
	if err != nil {
		return Explanation{}, err
	}
	in.sp.Close()
	digest, err := p.codeDigest(ctx, rt, fn)
	if err != nil {
		return Explanation{}, err
	}
	k, parts := fn.Key(digest, rt.Version(), in.fp)
	x := Explanation{Function: fn.Name, Version: fn.Version, Bucket: bucket, Key: key, Fingerprint: in.fp, DedupKey: k, Parts: parts}
	if out, err := fn.OutputKey(key); err == nil {
		x.Output = &activation.Object{Bucket: fn.Output.Bucket, Key: out}
	}
	rec, err := p.cfg.Index.Get(ctx, k)
	switch {
	case fn.NoDedup:
		x.WouldRun, x.Reason = true, "function is deployed with --no-dedup"
	case !fn.Deduplicated():
		x.WouldRun, x.Reason = true, "an audit found this version nondeterministic and it is deployed --on-mismatch disable-dedup: every event runs"
	case errors.Is(err, index.ErrNotFound):
		x.WouldRun, x.Reason = true, "no record for this key: a new event would run the function"
	case err != nil:
		return x, err
	default:
		x.State = rec.State
		if withRecord {
			x.Record = &rec
		}
		switch rec.State {
		case index.Done:
			x.Reason = "done: a new event would reuse the recorded output, copied to its own output location"
			if r := fn.Limits.Retention; r > 0 && time.Since(rec.Updated) > r {
				x.WouldRun, x.Reason = true, "done, but longer ago than the function's retention: a new event would run it again"
			}
		case index.Failed:
			x.Reason = "failed and cached: a new event would record the cached error"
		default:
			x.Reason = "running: a new event would wait for it"
			if !index.Live(rec, time.Now()) {
				x.WouldRun, x.Reason = true, "running with an expired lease: a new event would take it over"
			}
		}
	}
	return x, nil
}

// Purge deletes the dedup records of a function (all of them, or the one
// dedup key given), so its next events run again. With shared, records
// of --shared functions (tenant "*shared*") count as the tenant's too:
// only the admin purges those. It returns how many records were deleted.
// A key that is another tenant's or function's counts as absent (0, nil):
// an answer of its own would tell the caller that someone else holds a
// result for that key.
func (p *Pipeline) Purge(ctx context.Context, tenant, function, key string, shared bool) (int, error) {
	tenant = registry.TenantOr(tenant)
	own := func(r index.Record) bool {
		return r.Parts.Function == function && (r.Parts.Tenant == tenant || (shared && r.Parts.Tenant == registry.SharedTenant))
	}
	var keys []string
	if key != "" {
		rec, err := p.cfg.Index.Get(ctx, key)
		if errors.Is(err, index.ErrNotFound) || (err == nil && !own(rec)) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("purge: get %s: %w", key, err)
		}
		keys = []string{key}
	} else {
		err := p.cfg.Index.Records(ctx, func(r index.Record) error {
			if own(r) {
				keys = append(keys, r.Key)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("purge: list records: %w", err)
		}
	}
	for _, k := range keys {
		if err := p.cfg.Index.Delete(ctx, k); err != nil && !errors.Is(err, index.ErrNotFound) {
			return 0, fmt.Errorf("purge: delete %s: %w", k, err)
		}
	}
	return len(keys), nil
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
