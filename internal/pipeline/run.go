package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/backoff"
	"github.com/dedupfn/dedupfn/internal/fingerprint"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/spool"
)

// run decides hit, wait or miss for one job and fills its record. It
// returns an error only when the index or store is unavailable, so that
// the event is delivered again; everything else ends in the record.
func (p *Pipeline) run(ctx context.Context, j *job, in *input, force bool) error {
	rt, ok := p.cfg.Runtimes[j.fn.Runtime]
	if !ok {
		return p.fail(j, runtime.Errorf(runtime.ClassInit, "runtime %q is not enabled on this replica", j.fn.Runtime), 1, true)
	}
	if _, err := p.outputKey(j); err != nil {
		return p.fail(j, err, 1, true)
	}
	codeDigest, err := p.codeDigest(ctx, rt, j.fn)
	if err != nil {
		return p.fail(j, err, 1, true)
	}
	key, parts := j.fn.Key(codeDigest, rt.Version(), in.fp)
	j.rec.Key = key
	if !j.fn.Deduplicated() { // --no-dedup, or found nondeterministic under disable-dedup
		return p.runUndeduplicated(ctx, j, in, rt)
	}
	return p.claimLoop(ctx, j, key, parts, &eventRun{p: p, j: j, in: in, rt: rt, key: key, parts: parts, force: force})
}

// claimant is what differs between the claimed runs claimLoop decides:
// an event's (eventRun) and a direct invocation's (directRun, direct.go).
type claimant interface {
	// dropInput gives back the disk an input holds while its job waits
	// (for a claim, a slot, a backoff); the run reads it again.
	dropInput()
	// hit serves a Done or Failed record, filling the job's record and
	// its decision. served false: the record was unusable (and deleted),
	// or a forced run deleted it: claim again.
	hit(ctx context.Context, rec index.Record, waited bool) (served bool, err error)
	// runClaimed runs the function while holding claim and commits its
	// result; see Pipeline.runClaimed.
	runClaimed(ctx context.Context, claim index.Record, claimedAt time.Time) error
	// abandoned handles an error of runClaimed that says nothing about
	// the function (an event's input could not be had): handled reports
	// that it did, err is then what claimLoop returns.
	abandoned(ctx context.Context, err error, claim index.Record) (handled bool, rerr error)
}

// claimLoop claims key and, until the job's record is final, follows the
// claim: waits for another owner, serves a hit, or runs the function
// (retried as its class allows, the failure recorded or cached). It
// returns an error only when the index is unavailable.
func (p *Pipeline) claimLoop(ctx context.Context, j *job, key string, parts index.Parts, cl claimant) error {
	lookupStart := time.Now()
	waited := false
	poll := 20 * time.Millisecond
	// attempt counts this event's runs that failed or succeeded; runs
	// abandoned because their lease was lost are counted apart: they say
	// nothing about the function, only about the index.
	attempt, leasesLost := 1, 0
	defer p.dropSlot(j)
	for {
		if j.background && !j.slot {
			// A background run claims only while it holds a run slot:
			// a claim that then waited for one behind live events would
			// make live duplicates of it wait behind the live events too.
			// Its input is not held meanwhile: the slot's holder may be
			// waiting for that budget (load reads it again).
			cl.dropInput()
			waitStart := time.Now()
			if err := p.runs.acquire(ctx, true); err != nil {
				return fmt.Errorf("pipeline: wait for a run slot: %w", err)
			}
			j.slot = true
			j.rec.Timings.RunWaitMS += ms(time.Since(waitStart))
		}
		claimedAt := time.Now()
		cctx, cancel := p.callCtx(ctx)
		c, err := p.cfg.Index.Claim(cctx, key, parts, p.cfg.Owner, j.fn.Limits.Lease)
		cancel()
		if err != nil || c.Outcome != index.Miss {
			p.dropSlot(j) // nothing to run (yet): others may use it meanwhile
		}
		if err != nil {
			return fmt.Errorf("pipeline: claim: %w", err)
		}
		switch c.Outcome {
		case index.Wait:
			waited = true
			// The budget sees only waits for budget: an input held while
			// its event waits on a claim could be what the claim's owner
			// waits for. A hit never needs it; a miss later reads it again.
			cl.dropInput()
			if err := p.waitForOwner(ctx, c.Record, poll); err != nil {
				return err
			}
			poll = min(poll*2, DefaultWaitPollMax)
			continue

		case index.Hit:
			j.rec.Timings.LookupMS = ms(time.Since(lookupStart))
			served, err := cl.hit(ctx, c.Record, waited)
			if err != nil || served {
				return err
			}
			continue // output gone, record not ours, or forced: claim again

		case index.Miss:
			j.rec.Timings.LookupMS = ms(time.Since(lookupStart))
			j.rec.Attempts = attempt + leasesLost
			if leasesLost > DefaultMaxLeasesLost {
				// The index keeps failing us: give the claim back and let
				// the source deliver the event again later (not a dead
				// letter: nothing is wrong with the event or the function).
				p.releaseClaim(ctx, key, c.Record.Token)
				return fmt.Errorf("pipeline: %s: lease lost %d times; the event will be delivered again", key, leasesLost)
			}
			err = cl.runClaimed(ctx, c.Record, claimedAt)
			p.dropSlot(j) // unused if the run ended before its invocation
			if err == nil {
				return nil
			}
			if handled, rerr := cl.abandoned(ctx, err, c.Record); handled {
				return rerr
			}
			if ctx.Err() != nil {
				// Shutting down: leave the claim to expire and the event to be redelivered.
				return ctx.Err()
			}
			if errors.Is(err, errLeaseLost) {
				// Whoever holds the claim now decides: a successor's result
				// is delivered as a wait; an expired claim is taken again.
				p.log(ctx).Warn("lease lost; following the claim's current owner", "dedup_key", key, "err", err)
				p.metrics.leaseLost.Inc()
				leasesLost++
				waited = true
				continue
			}
			class := runtime.ClassOf(err)
			cache := class == runtime.ClassFunction && j.fn.CacheFailures
			fctx, cancel := p.callCtx(ctx)
			ferr := p.cfg.Index.Fail(fctx, key, c.Record.Token, err.Error(), string(class), cache)
			cancel()
			if ferr != nil && !errors.Is(ferr, index.ErrNotOwner) {
				return fmt.Errorf("pipeline: fail claim: %w", ferr)
			}
			if retryable(class) && attempt < j.fn.MaxAttempts {
				p.log(ctx).Warn("run failed, retrying", "dedup_key", key, "attempt", attempt, "class", class, "err", err)
				if errors.Is(err, spool.ErrContended) {
					// Holding the input while backing off would keep the
					// others waiting on it: give its disk back, read again.
					cl.dropInput()
				}
				if err := backoff.Sleep(ctx, backoff.Delay(attempt, p.cfg.RetryBase, p.cfg.RetryMax)); err != nil {
					return err
				}
				attempt++
				continue
			}
			return p.fail(j, err, attempt, !cache)
		}
		return fmt.Errorf("pipeline: claim %s: unknown outcome %v", key, c.Outcome)
	}
}

// eventRun is the claimant of an event's job: its input object, the
// output object a hit delivers, and the determinism audit of hits.
type eventRun struct {
	p     *Pipeline
	j     *job
	in    *input
	rt    runtime.Runtime
	key   string
	parts index.Parts
	force bool // delete a recorded result once and run again (dlq retry --force)
}

func (e *eventRun) dropInput() { e.in.dropSpooled() }

func (e *eventRun) hit(ctx context.Context, rec index.Record, waited bool) (bool, error) {
	p, j := e.p, e.j
	if e.force {
		e.force = false
		if err := p.deleteResult(ctx, e.key, rec.Updated); err != nil {
			return false, fmt.Errorf("pipeline: force: delete %s: %w", e.key, err)
		}
		return false, nil
	}
	delivered, err := p.deliver(ctx, j, e.key, e.parts, rec)
	if errors.Is(err, errRunUnshared) {
		return true, p.runUndeduplicated(ctx, j, e.in, e.rt)
	}
	if err != nil || !delivered {
		return false, err
	}
	if rec.State == index.Done && j.rec.Decision != activation.Error {
		hitDecision(j, waited)
		p.audit(ctx, j, e.in, e.key, rec) // sampled; runs in the background
	}
	return true, nil
}

// hitDecision marks j's record as served from a recorded result: a hit,
// or a wait when it first waited for the run that recorded it.
func hitDecision(j *job, waited bool) {
	j.rec.Decision = activation.Hit
	if waited {
		j.rec.Decision = activation.Wait
	}
}

func (e *eventRun) runClaimed(ctx context.Context, claim index.Record, claimedAt time.Time) error {
	return e.p.runClaimed(ctx, e.j, e.in, e.rt, e.key, claim, claimedAt)
}

// abandoned handles an input that cannot be had (the event fails, to be
// delivered again or skipped), or whose bytes are other than the claim's
// fingerprint (run again under the bytes' own key).
func (e *eventRun) abandoned(ctx context.Context, err error, claim index.Record) (bool, error) {
	var ie *inputError
	if !errors.As(err, &ie) {
		return false, nil
	}
	e.p.releaseClaim(ctx, e.key, claim.Token)
	if ie.err != nil {
		return true, ie.err
	}
	return true, e.p.run(ctx, e.j, e.in, e.force) // under the key of the bytes' own fingerprint
}

// waitForOwner returns once the claim another owner holds may have ended:
// woken by the index when it can tell (index.Waiter), else after poll.
func (p *Pipeline) waitForOwner(ctx context.Context, held index.Record, poll time.Duration) error {
	if w, ok := p.cfg.Index.(index.Waiter); ok {
		err := w.WaitChange(ctx, held)
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		p.log(ctx).Debug("wait for the claim's owner; polling", "dedup_key", held.Key, "err", err)
	}
	return backoff.Sleep(ctx, poll)
}

// callCtx bounds one index or store call, so that a hung peer is an error
// that is retried, never a stuck worker.
func (p *Pipeline) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.cfg.CallTimeout)
}

func (p *Pipeline) deleteResult(ctx context.Context, key string, updated time.Time) error {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	return p.cfg.Index.DeleteResult(ctx, key, updated)
}

// releaseClaim gives a claim back so the next event need not wait out its
// lease; failing that, the lease simply expires.
func (p *Pipeline) releaseClaim(ctx context.Context, key, token string) {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	if err := p.cfg.Index.Release(ctx, key, token); err != nil && !errors.Is(err, index.ErrNotOwner) {
		p.log(ctx).Warn("release claim", "dedup_key", key, "err", err)
	}
}

// retryable classes never ran the function to a deterministic end, and
// may go away: a config or store error will not.
func retryable(c runtime.Class) bool {
	return c != runtime.ClassFunction && c != runtime.ClassConfig && c != runtime.ClassStore
}

// fail fills the record of a job that ended in an error.
func (p *Pipeline) fail(j *job, err error, attempts int, deadLetter bool) error {
	j.rec.Decision = activation.Error
	j.rec.Error = err.Error()
	j.rec.ErrorClass = string(runtime.ClassOf(err))
	j.rec.Attempts = attempts
	j.rec.DeadLetter = deadLetter
	var rerr *runtime.Error
	if errors.As(err, &rerr) && rerr.Stderr != "" {
		j.rec.Logs = rerr.Stderr
	}
	return nil
}

// errInputBudgetWait ends the wait for disk budget of an input read
// inside a run slot once the function's timeout has passed.
var errInputBudgetWait = errors.New("the function's timeout passed waiting for disk budget for the input")

// inputError is a claimed run that cannot start because of its input:
// the bytes could not be had (err), or they hash to another fingerprint
// than the one the claim's key was made of (err nil).
type inputError struct{ err error }

func (e *inputError) Error() string {
	if e.err == nil {
		return "input bytes do not match the fingerprint of the claim"
	}
	return e.err.Error()
}

func (e *inputError) Unwrap() error { return e.err }

// runClaimed runs the function while holding the claim, then commits in
// order: output object, then the result record and "done" (one Complete).
// The lease is renewed from the claim until the commit is done, the
// download of an input known only by its trusted fingerprint included;
// when it can no longer be proven held the work is cancelled and an
// errLeaseLost error returned, and nothing is committed. An input that
// cannot be had is an *inputError.
func (p *Pipeline) runClaimed(ctx context.Context, j *job, in *input, rt runtime.Runtime, key string, claim index.Record, claimedAt time.Time) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lease := p.holdLease(runCtx, cancel, key, claim.Token, j.fn.Limits.Lease, claimedAt)
	defer lease.stop()

	// Compiled before the slot is taken: a compile never holds one.
	release, err := p.loadFunction(runCtx, rt, j)
	if err != nil {
		return err
	}
	defer release()
	// The run slot comes before the download below: an event holds disk
	// budget for its input only while it may run, so inputs waiting for a
	// slot do not starve the runs' outputs. An input read before the
	// claim (to hash it) that went to disk is dropped while the event
	// waits, and read again (and checked against its fingerprint) below.
	if !j.slot && p.runs.tryAcquire(j.background) {
		j.slot = true
	}
	if !j.slot {
		in.dropSpooled()
		waitStart := time.Now()
		if err := p.runs.acquire(runCtx, j.background); err != nil {
			if l := lost(runCtx); l != nil {
				return l
			}
			return runtime.Errorf(runtime.ClassPlatform, "wait for a run slot: %v", err)
		}
		j.slot = true
		j.rec.Timings.RunWaitMS += ms(time.Since(waitStart))
	}
	// A run needs the bytes: a trusted fingerprint came without them, or
	// they were dropped above. Read inside the slot, its wait for disk
	// budget ends with the function's timeout, as the output's do: runCtx
	// lasts as long as the lease, and the budget's holders may be waiting
	// on something it cannot see (a claim, a slot).
	wctx, endWait := context.WithTimeoutCause(runCtx, cmp.Or(j.fn.Limits.Timeout, registry.DefaultTimeout), errInputBudgetWait)
	mismatch, err := p.load(runCtx, wctx, j.ev, in)
	endWait()
	if l := lost(runCtx); l != nil {
		return l
	}
	if errors.Is(err, errInputBudgetWait) {
		return runtime.Errorf(runtime.ClassPlatform, "load input: %v (raise --spool-budget, or lower --concurrency or --runs)", err)
	}
	if err != nil || mismatch {
		return &inputError{err: err}
	}
	out, res, err := p.invoke(runCtx, j, in, rt, key, claim)
	if out != nil {
		defer out.Close()
	}
	if l := lost(runCtx); l != nil {
		return l
	}
	if err != nil {
		return err
	}
	storeStart := time.Now()
	output, err := p.storeOutput(runCtx, j, out, res)
	// Written with the completion, or not at all: another attempt, or a
	// successor, writes its own.
	docs := j.docs
	j.docs = nil
	if l := lost(runCtx); l != nil {
		return l
	}
	if err != nil {
		return err
	}
	if err := p.complete(runCtx, key, claim.Token, index.Completion{Output: output, Result: res.Result, FunctionMS: ms(res.Duration), Docs: docs}); err != nil {
		return err
	}
	j.rec.Timings.StoreMS = ms(time.Since(storeStart))
	j.rec.Decision = activation.Miss
	j.rec.Output = outputObject(j, output)
	return nil
}

// complete commits a run's result. A transient index error is retried
// with backoff for as long as the lease is held (the caller's ctx is
// cancelled when it is not); a claim that is no longer ours is a lost lease.
func (p *Pipeline) complete(ctx context.Context, key, token string, c index.Completion) error {
	for attempt := 1; ; attempt++ {
		cctx, cancel := p.callCtx(ctx)
		err := p.cfg.Index.Complete(cctx, key, token, c)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, index.ErrNotOwner):
			return leaseLostError("another owner took the claim over before the result was committed")
		case attempt >= DefaultCompleteAttempts:
			return runtime.Errorf(runtime.ClassPlatform, "complete claim after %d attempts: %v", attempt, err)
		}
		p.log(ctx).Warn("complete claim failed, retrying", "dedup_key", key, "attempt", attempt, "err", err)
		if serr := backoff.Sleep(ctx, backoff.Delay(attempt, p.cfg.RetryBase, p.cfg.RetryMax)); serr != nil {
			if l := lost(ctx); l != nil {
				return l
			}
			return serr
		}
	}
}

// runUndeduplicated runs a function marked no-dedup: no claim, no result.
func (p *Pipeline) runUndeduplicated(ctx context.Context, j *job, in *input, rt runtime.Runtime) error {
	if _, err := p.load(ctx, ctx, j.ev, in); err != nil { // every event runs: it needs the bytes
		return err
	}
	j.rec.Fingerprint = in.fp
	return p.retried(ctx, j, func() error {
		out, res, err := p.invoke(ctx, j, in, rt, "", index.Record{})
		if err != nil {
			if out != nil {
				out.Close()
			}
			return err
		}
		output, err := p.storeOutput(ctx, j, out, res)
		out.Close()
		if err != nil {
			return err
		}
		j.rec.Decision = activation.Miss
		j.rec.Output = outputObject(j, output)
		return nil
	})
}

// retried calls once, a run without a claim, until it succeeds, fails
// for good, or j's function's attempts are spent: the last failure is
// then j's record. It returns an error only when ctx ends.
func (p *Pipeline) retried(ctx context.Context, j *job, once func() error) error {
	for attempt := 1; ; attempt++ {
		j.rec.Attempts = attempt
		err := once()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retryable(runtime.ClassOf(err)) || attempt >= j.fn.MaxAttempts {
			return p.fail(j, err, attempt, true)
		}
		if err := backoff.Sleep(ctx, backoff.Delay(attempt, p.cfg.RetryBase, p.cfg.RetryMax)); err != nil {
			return err
		}
	}
}

// runtimeFunction is j's function as its runtime takes it, code included.
func (p *Pipeline) runtimeFunction(ctx context.Context, j *job) (runtime.Function, error) {
	code, err := p.cfg.Registry.Code(ctx, j.fn.CodeDigest)
	if err != nil {
		return runtime.Function{}, runtime.Errorf(runtime.ClassInit, "%v", err)
	}
	return runtime.Function{
		Tenant: j.fn.Tenant, Name: j.fn.Name, Version: j.fn.Version,
		CodeDigest: j.fn.CodeDigest, Code: code, Config: j.fn.Config,
	}, nil
}

// loadFunction compiles j's function, or finds it compiled, where its runtime
// compiles (runtime.Loader), and keeps it so until release: before a run
// slot is taken, since a compile must never hold one.
func (p *Pipeline) loadFunction(ctx context.Context, rt runtime.Runtime, j *job) (release func(), err error) {
	l, ok := rt.(runtime.Loader)
	if !ok {
		return func() {}, nil
	}
	fn, err := p.runtimeFunction(ctx, j)
	if err != nil {
		return nil, err
	}
	return l.Load(ctx, fn)
}

// invoke runs the function once on the spooled input and returns its
// spooled output.
func (p *Pipeline) invoke(ctx context.Context, j *job, in *input, rt runtime.Runtime, key string, claim index.Record) (*spool.Spool, runtime.Result, error) {
	fn, err := p.runtimeFunction(ctx, j)
	if err != nil {
		return nil, runtime.Result{}, err
	}
	outKey, err := p.outputKey(j)
	if err != nil {
		return nil, runtime.Result{}, err
	}
	ref := runtime.ObjectRef{
		Bucket: j.ev.Bucket, Key: j.ev.Key, Size: in.info.Size, ETag: in.info.ETag,
		SHA256: fingerprint.Hex(in.fp), ContentType: in.info.ContentType,
		OutputBucket: j.fn.Output.Bucket, OutputKey: outKey,
	}
	// The output is one budget holder with its input (spool.Sibling); its
	// waits for budget end with the function's timeout (below).
	octx, endWaits := context.WithCancelCause(ctx)
	defer endWaits(nil)
	out := in.sp.Sibling(octx, 0, p.cfg.MaxOutputBytes)
	inv := &runtime.Invocation{
		Function:     fn,
		Params:       j.fn.Params,
		Input:        in.sp.Reader(),
		Object:       ref,
		Output:       out,
		Limits:       p.limits(j),
		ActivationID: j.rec.ID,
		ExternalID:   claim.ExternalID,
		OnExternalID: p.onExternalID(ctx, j, key, claim),
	}
	release, err := p.loadFunction(ctx, rt, j) // compiled already where a slot is held (runClaimed)
	if err != nil {
		return out, runtime.Result{}, err
	}
	defer release()
	waitStart := time.Now()
	if err := p.acquireRun(ctx, j); err != nil {
		return out, runtime.Result{}, runtime.Errorf(runtime.ClassPlatform, "wait for a run slot: %v", err)
	}
	j.rec.Timings.RunWaitMS += ms(time.Since(waitStart))
	// The URLs are made once the run can start: they expire with it.
	revoke := func() {}
	if rt.Name() != "wasm" { // only functions outside the sandbox fetch by URL
		if revoke, err = p.objectURLs(ctx, j, in, &inv.Object); err != nil {
			p.runs.release()
			return out, runtime.Result{}, err
		}
	}
	invokeStart := time.Now()
	// The function's timeout bounds the output's waits for disk budget
	// too: a guest blocked writing its output (a wasm fd_write) cannot be
	// interrupted, and the pipeline's ctx would let it wait forever.
	timeout := time.AfterFunc(cmp.Or(j.fn.Limits.Timeout, registry.DefaultTimeout), func() { endWaits(context.DeadlineExceeded) })
	defer timeout.Stop()
	res, err := rt.Invoke(ctx, inv)
	revoke()
	p.runs.release()
	if refused := out.Refused(); refused != nil {
		err = spoolRefused(refused) // whatever the function made of the failed write
	}
	return out, invoked(j, res, invokeStart), err
}

// invoked notes on j's record what an invocation started at start
// returned (its time, logs, result, remote id), and returns res with
// its Duration measured here when the runtime reported none.
func invoked(j *job, res runtime.Result, start time.Time) runtime.Result {
	j.rec.Timings.InvokeMS = ms(time.Since(start))
	if res.Duration == 0 {
		res.Duration = time.Since(start)
	}
	j.rec.FunctionMS = ms(res.Duration)
	j.rec.Logs = res.Logs
	j.rec.Result = res.Result
	if res.ExternalID != "" {
		j.rec.ExternalID = res.ExternalID
	}
	return res
}

// limits are the bounds of an invocation of j's function.
func (p *Pipeline) limits(j *job) runtime.Limits {
	return runtime.Limits{
		Timeout:        j.fn.Limits.Timeout,
		MemoryBytes:    uint64(j.fn.Limits.MemoryMB) << 20,
		MaxOutputBytes: p.cfg.MaxOutputBytes,
		MaxLogBytes:    DefaultMaxLogBytes,
	}
}

// onExternalID is the Invocation.OnExternalID of a run holding claim on
// key: it stores a remote activation id on the claim, so a successor
// polls that activation instead of starting another. nil without a key
// (a run without a claim).
func (p *Pipeline) onExternalID(ctx context.Context, j *job, key string, claim index.Record) func(string) {
	if key == "" {
		return nil
	}
	return func(id string) {
		j.rec.ExternalID = id
		if err := p.cfg.Index.SetExternalID(ctx, key, claim.Token, id); err != nil {
			p.log(ctx).Warn("record external activation id", "dedup_key", key, "external_id", id, "err", err)
		}
	}
}

// acquireRun takes a run slot for j's invocation: the one j holds, if
// any (see job.slot), else one waited for with j's priority. The caller
// releases it (p.runs.release).
func (p *Pipeline) acquireRun(ctx context.Context, j *job) error {
	if j.slot {
		j.slot = false
		return nil
	}
	return p.runs.acquire(ctx, j.background)
}

// dropSlot releases the run slot j holds but has not used, if any.
func (p *Pipeline) dropSlot(j *job) {
	if j.slot {
		j.slot = false
		p.runs.release()
	}
}

// spoolRefused is the run error of an output the disk budget refused: a
// config error when the event's input and output can never fit, a
// platform error (retried after a backoff) when every holder of the
// budget waits, so none could go on now, a timeout when the wait for
// budget outlasted the function's timeout.
func spoolRefused(err error) error {
	if errors.Is(err, spool.ErrOverBudget) {
		return runtime.Errorf(runtime.ClassConfig, "store output: %w (raise --spool-budget)", err)
	}
	if errors.Is(err, spool.ErrContended) {
		return runtime.Errorf(runtime.ClassPlatform, "store output: %w (raise --spool-budget, or lower --concurrency or --runs)", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return runtime.Errorf(runtime.ClassTimeout, "store output: the function's timeout passed waiting for --spool-budget: %w", err)
	}
	return runtime.Errorf(runtime.ClassPlatform, "store output: %w", err)
}

// codeDigest is the function's code digest, or for runtimes whose code
// lives elsewhere the remote digest, re-read once it is older than
// Config.DescribeTTL.
func (p *Pipeline) codeDigest(ctx context.Context, rt runtime.Runtime, fn registry.Function) (string, error) {
	d, ok := rt.(runtime.Describer)
	if !ok {
		return fn.CodeDigest, nil
	}
	id := fn.Tenant + "/" + fn.Name + "@" + fn.Version
	p.digestMu.Lock()
	cached, ok := p.digests[id]
	p.digestMu.Unlock()
	if ok && time.Since(cached.at) < p.cfg.DescribeTTL {
		return cached.digest, nil
	}
	digest, err := d.Describe(ctx, runtime.Function{Tenant: fn.Tenant, Name: fn.Name, Version: fn.Version, Config: fn.Config})
	if err != nil {
		return "", err
	}
	p.digestMu.Lock()
	p.digests[id] = remoteDigest{digest: digest, at: time.Now()}
	p.digestMu.Unlock()
	return digest, nil
}
