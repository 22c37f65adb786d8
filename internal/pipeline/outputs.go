package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/fingerprint"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/spool"
)

// outputKey renders the job's output key and refuses one that is the
// input itself.
func (p *Pipeline) outputKey(j *job) (string, error) {
	key, err := j.fn.OutputKey(j.ev.Key)
	if err != nil {
		return "", &runtime.Error{Class: runtime.ClassConfig, Err: err}
	}
	if j.fn.Output.Bucket == j.ev.Bucket && key == j.ev.Key {
		return "", runtime.Errorf(runtime.ClassConfig, "output key template %q renders %s/%s, the input itself: refusing to overwrite it", j.fn.Output.KeyTemplate, j.ev.Bucket, key)
	}
	return key, nil
}

// storeError is the run error of a failed store call for an output: a
// permanent store error (a missing bucket, access denied) is
// runtime.ClassStore, which no retry cures, so the event is one dead
// letter and the function does not run again; anything else is a
// platform error, retried.
func storeError(err error, format string, args ...any) error {
	class := runtime.ClassPlatform
	if errors.Is(err, objects.ErrPermanent) {
		class = runtime.ClassStore
	}
	return &runtime.Error{Class: class, Err: fmt.Errorf(format+": %w", append(args, err)...)}
}

// outputMeta marks an object written for j: it never triggers a function,
// and it names the input it was made from.
func outputMeta(j *job) map[string]string {
	return map[string]string{
		event.MetaOutputOf: j.fn.Name + "@" + j.fn.Version,
		event.MetaInput:    url.PathEscape(j.ev.Bucket + "/" + j.ev.Key),
	}
}

// checkTarget refuses to write j's output over an object that is not an
// earlier output of the same function for the same input: the user's own
// data, or the output of another input whose key renders the same (a
// template like {base}.png maps x/cat.jpg and y/cat.jpg to one key). It
// returns the ETag of the object it allows replacing, "" when the key is
// free, for a Put conditional on it (see writeOutput).
func (p *Pipeline) checkTarget(ctx context.Context, j *job, bucket, key string) (string, error) {
	if bucket == j.ev.Bucket && key == j.ev.Key {
		return "", runtime.Errorf(runtime.ClassConfig, "output %s/%s is the input itself: refusing to overwrite it", bucket, key)
	}
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	st, err := p.cfg.Objects.Stat(ctx, bucket, key)
	switch {
	case errors.Is(err, objects.ErrNotFound):
		return "", nil
	case err != nil:
		return "", storeError(err, "stat output %s/%s", bucket, key)
	case st.Metadata[event.MetaOutputOf] == "":
		// Metadata suffices here: it only lets dedupfn replace an object
		// whose writer says it is this function's output for this input.
		return "", runtime.Errorf(runtime.ClassConfig, "output %s/%s holds an object dedupfn did not write: refusing to overwrite it", bucket, key)
	}
	if fn, _, _ := strings.Cut(st.Metadata[event.MetaOutputOf], "@"); fn != j.fn.Name {
		return "", runtime.Errorf(runtime.ClassConfig, "output %s/%s holds the output of function %s: refusing to overwrite it", bucket, key, fn)
	}
	if in := st.Metadata[event.MetaInput]; in != "" && in != url.PathEscape(j.ev.Bucket+"/"+j.ev.Key) {
		other, _ := url.PathUnescape(in)
		return "", runtime.Errorf(runtime.ClassConfig, "output %s/%s already holds the output of %s: key template %q maps different inputs to one key", bucket, key, other, j.fn.Output.KeyTemplate)
	}
	return st.ETag, nil
}

// outputIsStream reports whether an invocation's output object is what
// the function wrote to its output stream (rather than its JSON result,
// or an object it PUT through the presigned URL).
func outputIsStream(out *spool.Spool, res runtime.Result) bool {
	return res.OutputWritten || (out.Size() > 0 && res.Result == nil)
}

// resultObject is the body of the KEY.json object that holds a function's
// JSON result: "null" when it returned none.
func resultObject(res runtime.Result) []byte {
	if len(res.Result) == 0 {
		return []byte("null")
	}
	return res.Result
}

// storeOutput writes the function's output to its output location, marked
// so that it never triggers a function itself. A function that produced
// only a JSON result gets the result stored as KEY.json (resultKey); one that PUT its
// output through the presigned URL has it moved from its staging key.
func (p *Pipeline) storeOutput(ctx context.Context, j *job, out *spool.Spool, res runtime.Result) (*index.Output, error) {
	bucket := j.fn.Output.Bucket
	key, err := p.outputKey(j)
	if err != nil {
		return nil, err
	}
	opts := objects.PutOptions{Metadata: outputMeta(j)}
	var (
		info     objects.Info
		sum      string // the output's SHA-256, recorded for hits to check
		isResult bool
		docs     []index.Doc // noteOutput's, written with j's last commit
	)
	switch {
	case outputIsStream(out, res):
		fp, _, err := fingerprint.Sum(out.Reader())
		if err != nil {
			return nil, runtime.Errorf(runtime.ClassPlatform, "hash output: %v", err)
		}
		sum = fingerprint.Hex(fp)
		opts.ContentType = sniff(out)
		if info, docs, err = p.writeOutput(ctx, j, bucket, key, sum, out.Reader, out.Size(), opts); err != nil {
			return nil, err
		}
	default:
		staged, serr := p.stagedOutput(ctx, j)
		if serr != nil {
			return nil, serr
		}
		if staged != nil {
			etag, err := p.checkTarget(ctx, j, bucket, key)
			if err != nil {
				return nil, err
			}
			if sum, err = p.deliveredSHA256(ctx, *staged); err != nil {
				return nil, runtime.Errorf(runtime.ClassPlatform, "hash staged output: %v", err)
			}
			if docs, err = p.noteOutput(ctx, j, bucket, key, sum, p.triggers(bucket, key), etag != ""); err != nil {
				return nil, err
			}
			opts.ContentType = staged.ContentType
			info, err = p.cfg.Objects.Copy(ctx, *staged, bucket, key, opts)
			if err != nil {
				return nil, storeError(err, "store output %s/%s", bucket, key)
			}
			p.dropStaged(ctx, j)
			// The staged object may have been replaced since it was hashed.
			if info.SHA256, err = p.deliveredSHA256(ctx, info); err != nil {
				return nil, runtime.Errorf(runtime.ClassPlatform, "hash output %s/%s: %v", bucket, key, err)
			}
			break
		}
		key, isResult = resultKey(key), true
		result := resultObject(res)
		h := sha256.Sum256(result)
		sum = hex.EncodeToString(h[:])
		opts.ContentType = "application/json"
		body := func() io.Reader { return bytes.NewReader(result) }
		if info, docs, err = p.writeOutput(ctx, j, bucket, key, sum, body, int64(len(result)), opts); err != nil {
			return nil, err
		}
	}
	if info.SHA256 != "" && info.SHA256 != sum {
		return nil, runtime.Errorf(runtime.ClassPlatform, "store output %s/%s: the store holds other bytes (SHA-256 %s) than were written (%s)", bucket, key, info.SHA256, sum)
	}
	j.outVersion, j.docs = info.VersionID, docs
	return &index.Output{Bucket: info.Bucket, Key: info.Key, ETag: info.ETag, Size: info.Size, ContentType: info.ContentType,
		SHA256: sum, ResultObject: isResult}, nil
}

// deliveredSHA256 is the SHA-256 of the object a Put or Copy wrote: the
// store's own (the built-in endpoint hashes every write; MinIO/S3 a copy
// made with a SHA-256 checksum requested), else read back and hashed.
func (p *Pipeline) deliveredSHA256(ctx context.Context, o objects.Info) (string, error) {
	if o.SHA256 != "" {
		return o.SHA256, nil
	}
	rc, _, err := p.cfg.Objects.Get(ctx, o.Bucket, o.Key, o.VersionID, o.ETag)
	if err != nil {
		return "", fmt.Errorf("read back %s/%s: %w", o.Bucket, o.Key, err)
	}
	defer rc.Close()
	fp, _, err := fingerprint.Sum(rc)
	if err != nil {
		return "", fmt.Errorf("read back %s/%s: %w", o.Bucket, o.Key, err)
	}
	return fingerprint.Hex(fp), nil
}

// resultKey is where a function's JSON result is stored for the output
// key key, on a miss and on a hit alike: KEY.json, also when KEY ends in
// .json (b.json's result is b.json.json), so one input's result has one key.
func resultKey(key string) string { return key + ".json" }

// stagedOutput returns the object the function PUT through its presigned
// URL, or nil if it wrote none.
func (p *Pipeline) stagedOutput(ctx context.Context, j *job) (*objects.Info, error) {
	if j.staging == "" {
		return nil, nil
	}
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	st, err := p.cfg.Objects.Stat(ctx, j.fn.Output.Bucket, j.staging)
	if errors.Is(err, objects.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storeError(err, "stat staged output")
	}
	return &st, nil
}

// dropStaged deletes the staging object of j's last invocation. A failure
// only leaves garbage under event.StagingPrefix, which triggers nothing.
func (p *Pipeline) dropStaged(ctx context.Context, j *job) {
	if j.staging == "" {
		return
	}
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	if err := p.cfg.Objects.Delete(ctx, j.fn.Output.Bucket, j.staging); err != nil {
		p.log(ctx).Warn("delete staged output", "output_bucket", j.fn.Output.Bucket, "staging_key", j.staging, "err", err)
	}
}

func sniff(sp *spool.Spool) string {
	buf := make([]byte, 512)
	n, _ := sp.Reader().Read(buf)
	return http.DetectContentType(buf[:n])
}

// deliver serves a hit: it re-checks the record's key parts, copies the
// recorded output server-side to this event's output location, and checks
// that what it delivered has the recorded output's SHA-256. It reports
// false when the record cannot be used (output gone or changed, parts
// differ): the record is deleted and the caller runs the function again —
// never an empty or a wrong delivery.
func (p *Pipeline) deliver(ctx context.Context, j *job, key string, parts index.Parts, rec index.Record) (bool, error) {
	if rec.State == index.Failed {
		j.rec.Decision = activation.Error
		j.rec.Error = "cached failure: " + rec.Error
		if rec.Parts.Tenant == registry.SharedTenant {
			// The error of a run on another tenant's object may name it.
			j.rec.Error = "cached failure: a run of this shared function on the same content failed; its error is not shown across tenants"
		}
		j.rec.ErrorClass = rec.ErrorClass
		return true, nil
	}
	usable := rec.Parts == parts && registry.PartsKey(rec.Parts) == key && rec.Output != nil
	if !usable {
		p.log(ctx).Error("dedup record does not match its key; running again", "dedup_key", key, "parts", rec.Parts)
	}
	if usable && rec.Output.SHA256 == "" {
		usable = false // recorded before outputs' SHA-256s were: what a hit delivers cannot be checked
	}
	if r := j.fn.Limits.Retention; usable && r > 0 && time.Since(rec.Updated) > r {
		if rec.Parts.Tenant == registry.SharedTenant && j.fn.Tenant != registry.DefaultTenant {
			return false, errRunUnshared // a tenant's retention expires no one else's result
		}
		usable = false // past retention: run again and record a fresh result
	}
	if !usable {
		if err := p.deleteResult(ctx, key, rec.Updated); err != nil {
			return false, fmt.Errorf("pipeline: delete unusable record: %w", err)
		}
		return false, nil
	}

	storeStart := time.Now()
	dstKey, err := p.outputKey(j)
	if err != nil {
		return true, p.fail(j, err, 1, true)
	}
	if rec.Output.ResultObject {
		dstKey = resultKey(dstKey)
	}
	src := objects.Info{Bucket: rec.Output.Bucket, Key: rec.Output.Key, ETag: rec.Output.ETag, Size: rec.Output.Size, ContentType: rec.Output.ContentType}
	copyNeeded := src.Bucket != j.fn.Output.Bucket || src.Key != dstKey
	out := *rec.Output
	if !copyNeeded {
		// Nothing to copy: the recorded output is where this event's goes.
		// Check it still holds the recorded bytes.
		sctx, cancel := p.callCtx(ctx)
		st, err := p.cfg.Objects.Stat(sctx, src.Bucket, src.Key)
		cancel()
		var sum string
		if err == nil {
			sum, err = p.deliveredSHA256(ctx, st)
		}
		switch {
		case errors.Is(err, objects.ErrNotFound) || (err == nil && sum != rec.Output.SHA256):
			return false, p.dropMissingOutput(ctx, key, rec)
		case errors.Is(err, objects.ErrPermanent):
			return true, p.fail(j, storeError(err, "check recorded output"), 1, true)
		case err != nil:
			return false, fmt.Errorf("pipeline: check recorded output: %w", err)
		}
		j.outVersion = st.VersionID
	} else {
		etag, err := p.checkTarget(ctx, j, j.fn.Output.Bucket, dstKey)
		if err != nil {
			if !retryable(runtime.ClassOf(err)) {
				return true, p.fail(j, err, 1, true)
			}
			return false, err
		}
		docs, err := p.noteOutput(ctx, j, j.fn.Output.Bucket, dstKey, rec.Output.SHA256, p.triggers(j.fn.Output.Bucket, dstKey), etag != "")
		if err != nil {
			return false, err
		}
		// If-Match on the ETag only narrows the race; the SHA-256 of what
		// was delivered decides (an MD5-colliding overwrite keeps the ETag).
		info, err := p.cfg.Objects.Copy(ctx, src, j.fn.Output.Bucket, dstKey, objects.PutOptions{
			ContentType: src.ContentType,
			Metadata:    outputMeta(j),
		})
		switch {
		case errors.Is(err, objects.ErrNotFound):
			return false, p.dropMissingOutput(ctx, key, rec) // deleted or overwritten since it was recorded
		case errors.Is(err, objects.ErrPermanent):
			if p.sourceGone(ctx, src) {
				// The record's problem, not the event's: a deleted or refused
				// source bucket would dead-letter every hit, of every tenant.
				return false, p.dropMissingOutput(ctx, key, rec)
			}
			return true, p.fail(j, storeError(err, "copy recorded output to %s/%s", j.fn.Output.Bucket, dstKey), 1, true)
		case err != nil:
			return false, fmt.Errorf("pipeline: copy recorded output: %w", err)
		}
		sum, err := p.deliveredSHA256(ctx, info)
		if err != nil {
			return false, fmt.Errorf("pipeline: check delivered output: %w", err)
		}
		if sum != rec.Output.SHA256 {
			// Other bytes than the recorded output's: take them back, and run.
			p.dropDelivered(ctx, info)
			return false, p.dropMissingOutput(ctx, key, rec)
		}
		out = index.Output{Bucket: info.Bucket, Key: info.Key, ETag: info.ETag, Size: info.Size, SHA256: sum}
		j.outVersion, j.docs = info.VersionID, docs
	}
	j.rec.Timings.StoreMS = ms(time.Since(storeStart))
	j.rec.Output = outputObject(j, &out)
	j.rec.Result = rec.Result
	j.rec.SavedMS = rec.FunctionMS
	j.rec.FunctionMS = rec.FunctionMS
	return true, nil
}

// outputObject is the activation's record of the output o that j delivered.
func outputObject(j *job, o *index.Output) *activation.Object {
	return &activation.Object{Bucket: o.Bucket, Key: o.Key, VersionID: j.outVersion, ETag: o.ETag, Size: o.Size, SHA256: o.SHA256}
}

// sourceGone reports, after a copy of the recorded output src failed
// permanently, whether src is the cause: gone, or its bucket missing or
// refused. Otherwise the destination is, and the event a dead letter.
func (p *Pipeline) sourceGone(ctx context.Context, src objects.Info) bool {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	_, err := p.cfg.Objects.Stat(ctx, src.Bucket, src.Key)
	return errors.Is(err, objects.ErrNotFound) || errors.Is(err, objects.ErrPermanent)
}

// errRunUnshared is deliver's answer for a shared result past a tenant
// function's retention: only the admin's functions (DefaultTenant)
// expire shared results, so the caller runs the function for this event
// alone and the record stays.
var errRunUnshared = errors.New("shared result past the function's retention: run for this event only")

// dropDelivered deletes a hit's copy that turned out to hold other bytes
// than the recorded output's, so that nobody reads it as this event's
// output; the run that follows writes the right one.
func (p *Pipeline) dropDelivered(ctx context.Context, o objects.Info) {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	if err := p.cfg.Objects.Delete(ctx, o.Bucket, o.Key); err != nil {
		p.log(ctx).Warn("delete a delivered output that does not match its record", "output_bucket", o.Bucket, "output_key", o.Key, "err", err)
	}
}

// dropMissingOutput deletes the record under key whose output object is
// gone or changed, so that the caller runs the function again.
func (p *Pipeline) dropMissingOutput(ctx context.Context, key string, rec index.Record) error {
	p.metrics.outputMissing.Inc()
	p.log(ctx).Warn("recorded output missing or changed; running again", "dedup_key", key, "output", rec.Output.Bucket+"/"+rec.Output.Key)
	if err := p.deleteResult(ctx, key, rec.Updated); err != nil {
		return fmt.Errorf("pipeline: delete unusable record: %w", err)
	}
	return nil
}
