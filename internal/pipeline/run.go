package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/backoff"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/fingerprint"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/spool"
)

// errLeaseLost cancels a run whose claim was taken over by another replica.
var errLeaseLost = errors.New("claim lease lost to another owner")

// run decides hit, wait or miss for one job and fills its record. It
// returns an error only when the index or store is unavailable, so that
// the event is delivered again; everything else ends in the record.
func (p *Pipeline) run(ctx context.Context, j *job, in *input, force bool) error {
	rt, ok := p.cfg.Runtimes[j.fn.Runtime]
	if !ok {
		return p.fail(j, runtime.Errorf(runtime.ClassInit, "runtime %q is not enabled on this replica", j.fn.Runtime), 1, true)
	}
	codeDigest, err := p.codeDigest(ctx, rt, j.fn)
	if err != nil {
		return p.fail(j, err, 1, true)
	}
	key, parts := j.fn.Key(codeDigest, rt.Version(), in.fp)
	j.rec.Key = key
	if j.fn.NoDedup {
		return p.runUndeduplicated(ctx, j, in, rt)
	}

	lookupStart := time.Now()
	waited := false
	poll := 20 * time.Millisecond
	for attempt := 1; ; {
		c, err := p.cfg.Index.Claim(ctx, key, parts, p.cfg.Owner, j.fn.Limits.Lease)
		if err != nil {
			return fmt.Errorf("pipeline: claim: %w", err)
		}
		switch c.Outcome {
		case index.Wait:
			waited = true
			if err := backoff.Sleep(ctx, poll); err != nil {
				return err
			}
			poll = min(poll*2, DefaultWaitPollMax)
			continue

		case index.Hit:
			if force {
				force = false
				if err := p.cfg.Index.DeleteResult(ctx, key, c.Record.Updated); err != nil {
					return fmt.Errorf("pipeline: force: delete %s: %w", key, err)
				}
				continue
			}
			j.rec.Timings.LookupMS = ms(time.Since(lookupStart))
			delivered, err := p.deliver(ctx, j, key, parts, c.Record)
			if err != nil {
				return err
			}
			if !delivered {
				continue // output gone or record not ours: run again
			}
			if c.Record.State == index.Done {
				j.rec.Decision = activation.Hit
				if waited {
					j.rec.Decision = activation.Wait
				}
			}
			return nil

		case index.Miss:
			j.rec.Timings.LookupMS = ms(time.Since(lookupStart))
			j.rec.Attempts = attempt
			err := p.runClaimed(ctx, j, in, rt, key, c.Record)
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				// Shutting down: leave the claim to expire and the event to be redelivered.
				return ctx.Err()
			}
			class := runtime.ClassOf(err)
			cache := class == runtime.ClassFunction && j.fn.CacheFailures
			if ferr := p.cfg.Index.Fail(ctx, key, c.Record.Token, err.Error(), string(class), cache); ferr != nil && !errors.Is(ferr, index.ErrNotOwner) {
				return fmt.Errorf("pipeline: fail claim: %w", ferr)
			}
			if retryable(class) && attempt < j.fn.MaxAttempts {
				p.logger.Warn("run failed, retrying", "fn", j.fn.Name, "key", j.ev.Key, "attempt", attempt, "class", class, "err", err)
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

// retryable classes never ran the function to a deterministic end.
func retryable(c runtime.Class) bool { return c != runtime.ClassFunction }

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

// runClaimed runs the function while holding the claim, renewing its
// lease, then commits in order: output object, then the result record
// and "done" (one Complete).
func (p *Pipeline) runClaimed(ctx context.Context, j *job, in *input, rt runtime.Runtime, key string, claim index.Record) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopRenew := p.renewLease(runCtx, cancel, key, claim.Token, j.fn.Limits.Lease)
	out, res, err := p.invoke(runCtx, j, in, rt, key, claim)
	stopRenew()
	if out != nil {
		defer out.Close()
	}
	if err != nil {
		if cause := context.Cause(runCtx); errors.Is(cause, errLeaseLost) {
			return runtime.Errorf(runtime.ClassPlatform, "%v", cause)
		}
		return err
	}

	storeStart := time.Now()
	output, err := p.storeOutput(ctx, j, in, out, res)
	if err != nil {
		return err
	}
	err = p.cfg.Index.Complete(ctx, key, claim.Token, index.Completion{
		Output: output, Result: res.Result, FunctionMS: ms(res.Duration),
	})
	if errors.Is(err, index.ErrNotOwner) {
		// Our lease expired mid-run and another owner took over; our output
		// is delivered, its result will be the recorded one.
		p.logger.Warn("completed after losing the claim", "fn", j.fn.Name, "key", key)
	} else if err != nil {
		return runtime.Errorf(runtime.ClassPlatform, "complete claim: %v", err)
	}
	j.rec.Timings.StoreMS = ms(time.Since(storeStart))
	j.rec.Decision = activation.Miss
	j.rec.Output = &activation.Object{Bucket: output.Bucket, Key: output.Key, ETag: output.ETag, Size: output.Size}
	return nil
}

// runUndeduplicated runs a function marked no-dedup: no claim, no result.
func (p *Pipeline) runUndeduplicated(ctx context.Context, j *job, in *input, rt runtime.Runtime) error {
	for attempt := 1; ; attempt++ {
		j.rec.Attempts = attempt
		out, res, err := p.invoke(ctx, j, in, rt, "", index.Record{})
		if err == nil {
			output, serr := p.storeOutput(ctx, j, in, out, res)
			out.Close()
			if serr == nil {
				j.rec.Decision = activation.Miss
				j.rec.Output = &activation.Object{Bucket: output.Bucket, Key: output.Key, ETag: output.ETag, Size: output.Size}
				return nil
			}
			err = serr
		} else if out != nil {
			out.Close()
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

// renewLease renews the claim every lease/3 until the returned stop is
// called; if the claim is lost it cancels the run.
func (p *Pipeline) renewLease(ctx context.Context, cancel context.CancelCauseFunc, key, token string, lease time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(max(lease/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				err := p.cfg.Index.Renew(ctx, key, token, lease)
				if errors.Is(err, index.ErrNotOwner) {
					cancel(errLeaseLost)
					return
				}
				if err != nil && ctx.Err() == nil {
					p.logger.Warn("renew lease", "key", key, "err", err)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// invoke runs the function once on the spooled input and returns its
// spooled output.
func (p *Pipeline) invoke(ctx context.Context, j *job, in *input, rt runtime.Runtime, key string, claim index.Record) (*spool.Spool, runtime.Result, error) {
	code, err := p.cfg.Registry.Code(ctx, j.fn.CodeDigest)
	if err != nil {
		return nil, runtime.Result{}, runtime.Errorf(runtime.ClassInit, "%v", err)
	}
	outKey := j.fn.OutputKey(j.ev.Key)
	ref := runtime.ObjectRef{
		Bucket: j.ev.Bucket, Key: j.ev.Key, Size: in.info.Size, ETag: in.info.ETag,
		SHA256: fingerprint.Hex(in.fp), ContentType: in.info.ContentType,
		OutputBucket: j.fn.Output.Bucket, OutputKey: outKey,
	}
	if rt.Name() != "wasm" { // only functions outside the sandbox fetch by URL
		if ref.GetURL, err = p.cfg.Objects.PresignGet(ctx, j.ev.Bucket, j.ev.Key, DefaultPresignExpiry); err != nil {
			return nil, runtime.Result{}, runtime.Errorf(runtime.ClassPlatform, "presign input: %v", err)
		}
		if ref.PutURL, err = p.cfg.Objects.PresignPut(ctx, j.fn.Output.Bucket, outKey, DefaultPresignExpiry); err != nil {
			return nil, runtime.Result{}, runtime.Errorf(runtime.ClassPlatform, "presign output: %v", err)
		}
	}
	out := spool.New(p.cfg.SpoolDir, 0, p.cfg.MaxOutputBytes)
	inv := &runtime.Invocation{
		Function: runtime.Function{
			Tenant: j.fn.Tenant, Name: j.fn.Name, Version: j.fn.Version,
			CodeDigest: j.fn.CodeDigest, Code: code, Config: j.fn.Config,
		},
		Params: j.fn.Params,
		Input:  in.sp.Reader(),
		Object: ref,
		Output: out,
		Limits: runtime.Limits{
			Timeout:        j.fn.Limits.Timeout,
			MemoryBytes:    uint64(j.fn.Limits.MemoryMB) << 20,
			MaxOutputBytes: p.cfg.MaxOutputBytes,
			MaxLogBytes:    DefaultMaxLogBytes,
		},
		ActivationID: j.rec.ID,
		ExternalID:   claim.ExternalID,
	}
	if key != "" {
		inv.OnExternalID = func(id string) {
			j.rec.ExternalID = id
			if err := p.cfg.Index.SetExternalID(ctx, key, claim.Token, id); err != nil {
				p.logger.Warn("record external activation id", "key", key, "id", id, "err", err)
			}
		}
	}
	invokeStart := time.Now()
	res, err := rt.Invoke(ctx, inv)
	j.rec.Timings.InvokeMS = ms(time.Since(invokeStart))
	if res.Duration == 0 {
		res.Duration = time.Since(invokeStart)
	}
	j.rec.FunctionMS = ms(res.Duration)
	j.rec.Logs = res.Logs
	j.rec.Result = res.Result
	if res.ExternalID != "" {
		j.rec.ExternalID = res.ExternalID
	}
	return out, res, err
}

// storeOutput writes the function's output to its output location, marked
// so that it never triggers a function itself. A function that produced
// only a JSON result gets the result stored as KEY.json; one that PUT its
// output through the presigned URL has it adopted.
func (p *Pipeline) storeOutput(ctx context.Context, j *job, in *input, out *spool.Spool, res runtime.Result) (*index.Output, error) {
	bucket, key := j.fn.Output.Bucket, j.fn.OutputKey(j.ev.Key)
	opts := objects.PutOptions{Metadata: map[string]string{event.MetaOutputOf: j.fn.Name + "@" + j.fn.Version}}
	var info objects.Info
	var err error
	switch {
	case res.OutputWritten || (out.Size() > 0 && res.Result == nil):
		opts.ContentType = sniff(out)
		info, err = p.cfg.Objects.Put(ctx, bucket, key, out.Reader(), out.Size(), opts)
	default:
		if st, serr := p.cfg.Objects.Stat(ctx, bucket, key); serr == nil && !isSelfWritten(st.Metadata) && !st.Modified.Before(j.start.Add(-time.Second)) {
			// The function PUT its output through the presigned URL.
			info = st
			break
		}
		result := res.Result
		if len(result) == 0 {
			result = json.RawMessage("null")
		}
		opts.ContentType = "application/json"
		info, err = p.cfg.Objects.Put(ctx, bucket, key+".json", strings.NewReader(string(result)), int64(len(result)), opts)
	}
	if err != nil {
		return nil, runtime.Errorf(runtime.ClassPlatform, "store output %s/%s: %v", bucket, key, err)
	}
	return &index.Output{Bucket: info.Bucket, Key: info.Key, ETag: info.ETag, Size: info.Size, ContentType: info.ContentType}, nil
}

func sniff(sp *spool.Spool) string {
	buf := make([]byte, 512)
	n, _ := sp.Reader().Read(buf)
	return http.DetectContentType(buf[:n])
}

// deliver serves a hit: it re-checks the record's key parts, checks the
// recorded output still exists unchanged, and copies it server-side to
// this event's output location. It reports false when the record cannot
// be used (output gone or changed, parts differ): the record is deleted
// and the caller runs the function again — never an empty delivery.
func (p *Pipeline) deliver(ctx context.Context, j *job, key string, parts index.Parts, rec index.Record) (bool, error) {
	if rec.State == index.Failed {
		j.rec.Decision = activation.Error
		j.rec.Error = "cached failure: " + rec.Error
		j.rec.ErrorClass = rec.ErrorClass
		return true, nil
	}
	usable := rec.Parts == parts && registry.PartsKey(rec.Parts) == key && rec.Output != nil
	if !usable {
		p.logger.Error("dedup record does not match its key; running again", "key", key, "parts", rec.Parts)
	}
	if r := j.fn.Limits.Retention; usable && r > 0 && time.Since(rec.Updated) > r {
		usable = false // past retention: run again and record a fresh result
	}
	var src objects.Info
	if usable {
		var err error
		src, err = p.cfg.Objects.Stat(ctx, rec.Output.Bucket, rec.Output.Key)
		switch {
		case errors.Is(err, objects.ErrNotFound):
			usable = false
		case err != nil:
			return false, fmt.Errorf("pipeline: stat recorded output: %w", err)
		case src.ETag != rec.Output.ETag:
			usable = false
		}
		if !usable {
			p.metrics.outputMissing.Inc()
			p.logger.Warn("recorded output missing or changed; running again", "key", key, "output", rec.Output.Bucket+"/"+rec.Output.Key)
		}
	}
	if !usable {
		if err := p.cfg.Index.DeleteResult(ctx, key, rec.Updated); err != nil {
			return false, fmt.Errorf("pipeline: delete unusable record: %w", err)
		}
		return false, nil
	}

	storeStart := time.Now()
	dstKey := j.fn.OutputKey(j.ev.Key)
	if strings.HasSuffix(rec.Output.Key, ".json") && !strings.HasSuffix(dstKey, ".json") && rec.Output.ContentType == "application/json" {
		dstKey += ".json"
	}
	out := *rec.Output
	if rec.Output.Bucket != j.fn.Output.Bucket || rec.Output.Key != dstKey {
		info, err := p.cfg.Objects.Copy(ctx, rec.Output.Bucket, rec.Output.Key, j.fn.Output.Bucket, dstKey, objects.PutOptions{
			ContentType: src.ContentType,
			Metadata:    map[string]string{event.MetaOutputOf: j.fn.Name + "@" + j.fn.Version},
		})
		if errors.Is(err, objects.ErrNotFound) {
			// Deleted between Stat and Copy: treat like a missing output.
			if err := p.cfg.Index.DeleteResult(ctx, key, rec.Updated); err != nil {
				return false, fmt.Errorf("pipeline: delete unusable record: %w", err)
			}
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("pipeline: copy recorded output: %w", err)
		}
		out = index.Output{Bucket: info.Bucket, Key: info.Key, ETag: info.ETag, Size: info.Size}
	}
	j.rec.Timings.StoreMS = ms(time.Since(storeStart))
	j.rec.Output = &activation.Object{Bucket: out.Bucket, Key: out.Key, ETag: out.ETag, Size: out.Size}
	j.rec.Result = rec.Result
	j.rec.SavedMS = rec.FunctionMS
	j.rec.FunctionMS = rec.FunctionMS
	return true, nil
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
