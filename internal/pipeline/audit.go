package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/fingerprint"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/spool"
)

// Why audits run beside hits, not in them
//
// Dedup is only correct for pure functions. An audit re-runs a sampled
// hit's function on the hit's input and compares the output's SHA-256 with
// the recorded output's. It is evidence, not delivery: it never claims a
// key, completes a record, writes an output or records an activation, and
// the hit it samples is recorded and acked without waiting for it. Audits
// are bounded per replica (DefaultMaxAudits); a sample that finds them all
// busy is dropped and counted, never queued, so audits cannot build a
// backlog behind a burst of hits. They take a run slot like any execution,
// so they share Config.MaxRuns with runs instead of adding to it.
//
// The recorded output's digest is read from the output object itself
// (one GET per audit) rather than stored on every result: it needs no
// change to the index records, costs nothing on the miss path, and works
// for results recorded before audits existed.

// DefaultMaxAudits is how many audits run at once on one replica.
const DefaultMaxAudits = 2

// Results of an audit (label "result" of dedupfn_audits_total).
const (
	auditMatch    = "match"
	auditMismatch = "mismatch"
	auditError    = "error"   // the function failed: evidence of nothing
	auditSkipped  = "skipped" // input or recorded output changed or gone, or a platform error
	auditDropped  = "dropped" // sampled while DefaultMaxAudits were running, or after Close
)

// auditor owns the audits in flight. Its zero value is ready to use.
type auditor struct {
	once   sync.Once
	slots  chan struct{}
	ctx    context.Context // parent of every audit; cancelled by Close
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (a *auditor) init() {
	a.once.Do(func() {
		a.slots = make(chan struct{}, DefaultMaxAudits)
		a.ctx, a.cancel = context.WithCancel(context.Background())
	})
}

// start takes an audit slot without waiting and reports whether it got
// one; the caller then runs an audit and calls finish.
func (a *auditor) start() bool {
	a.init()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	select {
	case a.slots <- struct{}{}:
		a.wg.Add(1)
		return true
	default:
		return false
	}
}

func (a *auditor) finish() {
	<-a.slots
	a.wg.Done()
}

// close refuses new audits, cancels those in flight and waits for them
// until ctx ends. Safe to call more than once.
func (a *auditor) close(ctx context.Context) error {
	a.init()
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.cancel()
	done := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pipeline: close: audits still running: %w", ctx.Err())
	}
}

// auditJob is what an audit needs of the hit it samples: copies only, so
// that it outlives the hit's event.
type auditJob struct {
	j        job          // the hit's event and function; a fresh record
	hit      string       // the hit's activation id
	key      string       // its dedup key
	fp       string       // its input's fingerprint
	recorded index.Output // the recorded output it reused
}

// audit samples a hit of j (key, the Done record rec) for a determinism
// audit at the function's Audit.Rate and starts the audit in the
// background. It never waits.
func (p *Pipeline) audit(ctx context.Context, j *job, in *input, key string, rec index.Record) {
	rate := j.fn.Audit.Rate
	if rate <= 0 || rec.State != index.Done || rec.Output == nil || (rate < 1 && rand.Float64() >= rate) {
		return
	}
	if !p.audits.start() {
		p.metrics.audits.WithLabelValues(auditDropped).Inc()
		p.log(ctx).Debug("determinism audit dropped: audits busy", "dedup_key", key)
		return
	}
	a := auditJob{
		j:   job{ev: j.ev, fn: j.fn, start: time.Now(), background: true, rec: activation.Record{ID: "audit-" + newID()}},
		hit: j.rec.ID, key: key, fp: in.fp, recorded: *rec.Output,
	}
	actx := context.WithValue(p.audits.ctx, logKey{}, p.log(ctx))
	go func() {
		defer p.audits.finish()
		p.runAudit(actx, &a)
	}()
}

// runAudit runs one audit to its end and acts on its result: counted,
// and a mismatch marks the function version nondeterministic.
func (p *Pipeline) runAudit(ctx context.Context, a *auditJob) {
	fn := a.j.fn
	ctx, cancel := context.WithTimeout(ctx, fn.Limits.Timeout+3*p.cfg.CallTimeout)
	defer cancel()
	log := p.log(ctx).With("audit", a.j.rec.ID, "dedup_key", a.key)
	recorded, got, err := p.auditDigests(ctx, a)
	var result string
	switch {
	case err == nil && recorded == got:
		result = auditMatch
		log.Debug("determinism audit: output matches the recorded one", "digest", got)
	case err == nil:
		result = auditMismatch
	case errors.Is(err, errAuditSkipped) || p.audits.ctx.Err() != nil:
		result = auditSkipped
		log.Info("determinism audit skipped", "err", err)
	default:
		result = auditError
		log.Warn("determinism audit: the function failed; not evidence of a mismatch", "class", runtime.ClassOf(err), "err", err)
	}
	if result != auditMismatch {
		p.metrics.audits.WithLabelValues(result).Inc()
		return
	}
	// Counted once the mark is stored (or failed to be): an audit counted
	// is an audit done.
	defer p.metrics.audits.WithLabelValues(result).Inc()
	defer p.metrics.auditMismatches.WithLabelValues(fn.Tenant, fn.Name).Inc()
	log.Warn("determinism audit: output differs from the recorded one; the function is not pure",
		"version", fn.Version, "recorded_digest", recorded, "audit_digest", got, "on_mismatch", fn.Audit.OnMismatch)
	mark := registry.Nondeterministic{
		Version: fn.Version, At: time.Now().UTC(), Activation: a.hit, DedupKey: a.key,
		RecordedDigest: recorded, AuditDigest: got,
	}
	mctx, mcancel := p.callCtx(context.WithoutCancel(ctx))
	defer mcancel()
	if _, first, err := p.cfg.Registry.MarkNondeterministic(mctx, fn, mark); err != nil {
		log.Error("mark function version nondeterministic", "version", fn.Version, "err", err)
	} else if first {
		log.Warn("function version marked nondeterministic", "version", fn.Version, "on_mismatch", fn.Audit.OnMismatch)
	}
}

// errAuditSkipped: the audit could not compare (input or recorded output
// changed or gone, or a platform failure), which is evidence of nothing.
var errAuditSkipped = errors.New("audit skipped")

// auditDigests returns the SHA-256 of a's recorded output and of the
// output of running its function again on its input. An error wrapping
// errAuditSkipped means nothing could be compared; any other is the
// function's failure.
func (p *Pipeline) auditDigests(ctx context.Context, a *auditJob) (recorded, got string, err error) {
	rt, ok := p.cfg.Runtimes[a.j.fn.Runtime]
	if !ok {
		return "", "", fmt.Errorf("%w: runtime %q is not enabled on this replica", errAuditSkipped, a.j.fn.Runtime)
	}
	// The recorded output first: if it is gone, running is pointless.
	recorded, err = p.objectDigest(ctx, a.recorded.Bucket, a.recorded.Key, a.recorded.ETag)
	if err != nil {
		return "", "", fmt.Errorf("%w: recorded output %s/%s: %w", errAuditSkipped, a.recorded.Bucket, a.recorded.Key, err)
	}
	// A hit may not have read its input (a trusted fingerprint), and its
	// spool is gone by now: read the object again, at the event's version.
	in, err := p.fetch(ctx, a.j.ev)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", errAuditSkipped, err)
	}
	defer in.close()
	if in.fp != a.fp {
		return "", "", fmt.Errorf("%w: input %s/%s changed since the hit", errAuditSkipped, a.j.ev.Bucket, a.j.ev.Key)
	}
	out, res, err := p.invoke(ctx, &a.j, in, rt, "", index.Record{})
	if out != nil {
		defer out.Close()
	}
	defer p.dropStaged(context.WithoutCancel(ctx), &a.j)
	if err != nil {
		if c := runtime.ClassOf(err); c != runtime.ClassFunction && c != runtime.ClassTimeout && c != runtime.ClassOOM {
			err = fmt.Errorf("%w: %w", errAuditSkipped, err)
		}
		return "", "", err
	}
	got, err = p.outputDigest(ctx, &a.j, out, res)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", errAuditSkipped, err)
	}
	return recorded, got, nil
}

// outputDigest is the SHA-256 of the object storeOutput would store for
// this invocation's output, decided the same way.
func (p *Pipeline) outputDigest(ctx context.Context, j *job, out *spool.Spool, res runtime.Result) (string, error) {
	if outputIsStream(out, res) {
		return readerDigest(out.Reader())
	}
	staged, err := p.stagedOutput(ctx, j)
	if err != nil {
		return "", err
	}
	if staged != nil {
		return p.objectDigest(ctx, staged.Bucket, staged.Key, staged.ETag)
	}
	return readerDigest(bytes.NewReader(resultObject(res)))
}

// objectDigest streams an object (the version with etag, when given) and
// returns its SHA-256.
func (p *Pipeline) objectDigest(ctx context.Context, bucket, key, etag string) (string, error) {
	rc, _, err := p.cfg.Objects.Get(ctx, bucket, key, "", etag)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	return readerDigest(rc)
}

// readerDigest is the hex SHA-256 of what r yields: the bare digest of
// its fingerprint.
func readerDigest(r io.Reader) (string, error) {
	fp, _, err := fingerprint.Sum(r)
	return fingerprint.Hex(fp), err
}
