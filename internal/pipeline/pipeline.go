// Package pipeline is the controller: it takes one object-created event
// through fingerprint → claim → run or reuse → activation record. It sees
// only the component interfaces.
package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/fingerprint"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/inputurl"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/spool"
)

// Defaults of the pipeline's own knobs.
const (
	DefaultRetryBase      = 200 * time.Millisecond // first retry backoff; doubles per attempt, with jitter
	DefaultRetryMax       = 10 * time.Second       // retry backoff cap
	DefaultWaitPollMax    = 500 * time.Millisecond // how often a waiter re-claims, at most
	DefaultMaxOutputBytes = 1 << 30                // output a function may write
	DefaultMaxLogBytes    = 64 << 10               // logs kept per activation
	// DefaultURLMargin is how long a function's get_url and put_url stay
	// valid beyond its timeout: room for a cold start's ack and for clock
	// skew between dedupfn and the store that checks a presigned URL.
	DefaultURLMargin = 30 * time.Second
	// DefaultCallTimeout bounds one index or store call (not a whole
	// output upload): a hung peer becomes an error that is retried.
	DefaultCallTimeout = 30 * time.Second
	// DefaultCompleteAttempts is how often committing a result is tried
	// on transient index errors, while the lease is held, before the run
	// counts as failed.
	DefaultCompleteAttempts = 8
	// DefaultMaxLeasesLost is how many runs of one event may be abandoned
	// for a lost lease before the event is handed back to its source.
	DefaultMaxLeasesLost = 3
	// DefaultSpoolBudget is the disk inputs and outputs in flight may use.
	DefaultSpoolBudget = 16 << 30
	// DefaultDescribeTTL is how long a remote function's code digest
	// (runtime.Describer, e.g. an OpenWhisk action's version) is reused
	// before it is read again: an update of the remote code changes the
	// dedup key within this long.
	DefaultDescribeTTL = time.Minute
)

// Config wires a pipeline.
type Config struct {
	Index    index.Index
	Objects  objects.Store
	Registry *registry.Registry
	Runtimes map[string]runtime.Runtime
	// Owner identifies this replica on claims.
	Owner string
	// SpoolDir holds temporary files of large inputs and outputs.
	SpoolDir       string
	Logger         *slog.Logger
	Metrics        prometheus.Registerer
	RetryBase      time.Duration
	RetryMax       time.Duration
	MaxOutputBytes int64
	// DescribeTTL: how long a remote code digest is reused; default
	// DefaultDescribeTTL.
	DescribeTTL time.Duration
	// CallTimeout bounds each index and store call; default DefaultCallTimeout.
	CallTimeout time.Duration
	// SpoolBudget bounds the disk all input and output spools use at once:
	// beyond it an event waits for others to finish. nil = unbounded.
	SpoolBudget *spool.Budget
	// MaxRuns bounds the function executions in flight on this replica,
	// apart from events in flight (the source's concurrency): hits are
	// I/O-light and must not queue behind runs. Default GOMAXPROCS.
	MaxRuns int
	// Inputs serves each running activation's input (its spooled,
	// fingerprinted bytes) as the get_url of functions outside the
	// sandbox. nil: they get no get_url, only inputs small enough to
	// pass inline.
	Inputs *inputurl.Server
	// TenantBuckets are, for each tenant whose buckets are scoped (the
	// tenants file), the buckets it may use now: a function of such a
	// tenant runs only while its trigger and output buckets are both
	// among them, so a bucket taken from a tenant since its deploy (and
	// perhaps given to another) triggers nothing of it. Tenants absent
	// here (the admin's) are not scoped.
	TenantBuckets map[string][]string
	// ActivationRetention is how long activation records are kept (0 =
	// forever). The reconciler leaves older objects alone: their records,
	// which say they were processed, may have been pruned.
	ActivationRetention time.Duration
}

// Pipeline processes events. It is safe for concurrent use.
type Pipeline struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
	runs    *runSlots // a slot per function execution in flight (Config.MaxRuns)

	digestMu sync.Mutex
	digests  map[string]remoteDigest // remote code digests by function version

	audits auditor // determinism audits in flight (audit.go)
}

type remoteDigest struct {
	digest string
	at     time.Time
}

// New validates cfg and returns a pipeline; it starts nothing.
func New(cfg Config) (*Pipeline, error) {
	switch {
	case cfg.Index == nil:
		return nil, errors.New("pipeline: index is required")
	case cfg.Objects == nil:
		return nil, errors.New("pipeline: object store is required")
	case cfg.Registry == nil:
		return nil, errors.New("pipeline: registry is required")
	case len(cfg.Runtimes) == 0:
		return nil, errors.New("pipeline: at least one runtime is required")
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = DefaultRetryBase
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.MaxOutputBytes <= 0 {
		cfg.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.DescribeTTL <= 0 {
		cfg.DescribeTTL = DefaultDescribeTTL
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	if cfg.MaxRuns <= 0 {
		cfg.MaxRuns = goruntime.GOMAXPROCS(0)
	}
	p := &Pipeline{
		runs:    newRunSlots(cfg.MaxRuns),
		cfg:     cfg,
		logger:  cfg.Logger.With("component", "pipeline"),
		metrics: m,
		digests: map[string]remoteDigest{},
	}
	cfg.Registry.OnRemoved(p.forget)
	return p, nil
}

// forget releases what a runtime keeps for a deleted function (unpacked
// code, warm processes) on this replica.
func (p *Pipeline) forget(fn registry.Function) {
	f, ok := p.cfg.Runtimes[fn.Runtime].(runtime.Forgetter)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CallTimeout)
	defer cancel()
	err := f.Forget(ctx, runtime.Function{Tenant: fn.Tenant, Name: fn.Name, Version: fn.Version, CodeDigest: fn.CodeDigest, Config: fn.Config})
	if err != nil {
		p.logger.Warn("release a deleted function's runtime state", "fn", fn.Name, "tenant", fn.Tenant, "err", err)
	}
}

// Close stops the pipeline's background work: audits in flight are
// cancelled (they record nothing) and waited for, until ctx ends. Events
// may still be handled after Close; their hits start no audits. Safe to
// call more than once.
func (p *Pipeline) Close(ctx context.Context) error { return p.audits.close(ctx) }

// Handle processes one event for every function it triggers and records
// one activation per function. It returns nil once every activation is
// recorded, so the source may ack; an error means nothing final was
// recorded and the event must be delivered again. It is a source.Handler.
func (p *Pipeline) Handle(ctx context.Context, ev event.Event) error {
	_, err := p.handle(ctx, ev)
	return err
}

// handle is Handle, also reporting how many activations it recorded.
func (p *Pipeline) handle(ctx context.Context, ev event.Event) (n int, err error) {
	defer func() {
		// A bug on the event path must not crash-loop the server: the event
		// is recorded as a platform error with the stack, and serving goes on.
		if r := recover(); r != nil {
			err = p.recordPanic(ctx, ev, r)
		}
	}()
	ev, err = event.Normalize(ev)
	if errors.Is(err, event.ErrNotCreated) {
		return 0, nil
	}
	if err != nil {
		return 1, p.recordMalformed(ctx, ev, err)
	}
	if ev.Removed() {
		return p.inputRemoved(ctx, ev)
	}
	fns := p.match(ev.Bucket, ev.Key)
	if len(fns) == 0 {
		return 0, nil
	}
	recs, err := p.process(ctx, ev, fns, false, "")
	return len(recs), err
}

// match returns the functions an object triggers (registry.Match) whose
// tenant may still use both their buckets (Config.TenantBuckets). One
// that may not is left out without an activation, which would show the
// tenant an object of a bucket no longer its own; the operator sees it
// in the log.
func (p *Pipeline) match(bucket, key string) []registry.Function {
	fns := p.cfg.Registry.Match(bucket, key)
	if len(p.cfg.TenantBuckets) == 0 {
		return fns
	}
	return slices.DeleteFunc(fns, func(f registry.Function) bool {
		if p.inScope(f) {
			return false
		}
		p.logger.Warn("function not run: its bucket is no longer its tenant's (tenants file); redeploy or delete it",
			"tenant", f.Tenant, "fn", f.Name, "bucket", bucket, "trigger_bucket", f.Trigger.Bucket, "output_bucket", f.Output.Bucket)
		return true
	})
}

// inScope reports whether f's tenant may still use both f's buckets
// (Config.TenantBuckets).
func (p *Pipeline) inScope(f registry.Function) bool {
	own, scoped := p.cfg.TenantBuckets[f.Tenant]
	return !scoped || (slices.Contains(own, f.Trigger.Bucket) && slices.Contains(own, f.Output.Bucket))
}

// process fetches the object once and runs each function on it. A
// non-empty retryOf is the dead letter whose event this is again.
func (p *Pipeline) process(ctx context.Context, ev event.Event, fns []registry.Function, force bool, retryOf string) ([]activation.Record, error) {
	start := time.Now()
	// The content is known first: the event's identity (event.ID) is its
	// SHA-256, never its ETag. A trusted fingerprint (the built-in
	// endpoint's event, a store checksum) costs no read.
	in, openErr := p.open(ctx, ev)
	defer in.close()
	var l link
	if openErr == nil {
		ev.SHA256 = fingerprint.Hex(in.fp)
		var err error
		if ev, fns, l, err = p.linked(ctx, ev, fns); err != nil || len(fns) == 0 {
			return nil, err
		}
	}
	pending, found, err := p.unrecorded(ctx, ev, fns, start, l)
	if err != nil {
		return nil, err
	}
	var recs []activation.Record
	next := make([]stageOutput, 0, len(pending)+len(found))
	for _, rec := range found {
		next = append(next, stageOutput{rec: rec})
	}
	for _, j := range pending {
		j.rec.RetryOf = retryOf
		jctx := p.withJob(ctx, j)
		jerr := openErr
		switch {
		case jerr != nil:
		case l.stage() > registry.MaxChainStages:
			jerr = p.fail(j, runtime.Errorf(runtime.ClassConfig, "pipeline deeper than %d stages: %s/%s is the output of stage %d (%s); at most %d functions are chained, as OpenWhisk limits sequences",
				registry.MaxChainStages, ev.Bucket, ev.Key, l.prov.Stage, l.prov.Function, registry.MaxChainStages), 1, true)
		default:
			j.rec.Fingerprint = in.fp
			jerr = p.runRecovered(jctx, j, in, force)
			j.rec.Fingerprint = in.fp // the bytes' own, if they were not what the store vouched for
			j.rec.Timings.FetchMS = ms(in.fetch)
		}
		if jerr != nil && !p.inputFailed(j, jerr) {
			return recs, jerr // index or store unavailable: deliver again later
		}
		// Before the record: a redelivery after a crash between the two
		// finds the activation and would not come back to them.
		if err := p.dropReplacedOutputs(jctx, j); err != nil {
			return recs, err
		}
		if err := p.record(jctx, j); err != nil {
			return recs, err
		}
		recs = append(recs, j.rec)
		next = append(next, stageOutput{rec: j.rec, prov: j.prov})
	}
	// The pipeline goes on from every output: those written now, and
	// those an earlier delivery of this event wrote, whose next stage may
	// not have been recorded before that delivery was cut short.
	return recs, p.nextStage(ctx, next)
}

// linked finds whether ev's object is an output dedupfn wrote (its
// provenance in the index names its bytes), and then returns the event
// as its write made it, whichever way it came (in-process or from the
// store's notification, both one event: at the time of the write), and
// the functions of fns it may trigger: never the writer, nor any
// function upstream of it. An upload comes back as it is.
func (p *Pipeline) linked(ctx context.Context, ev event.Event, fns []registry.Function) (event.Event, []registry.Function, link, error) {
	prov, err := p.ownOutput(ctx, ev.Bucket, ev.Key, ev.SHA256)
	if err != nil || prov == nil {
		return ev, fns, link{}, err
	}
	ev.Time = prov.Written
	fns = p.downstream(prov, fns)
	if len(fns) == 0 {
		p.metrics.selfSkipped.Inc()
	}
	return ev, fns, link{prov: prov}, nil
}

// ownOutput is provenanceOf for the buckets some function writes into:
// no other can hold an output, so no other costs an index read.
func (p *Pipeline) ownOutput(ctx context.Context, bucket, key, sum string) (*provenance, error) {
	if !slices.ContainsFunc(p.cfg.Registry.List(""), func(f registry.Function) bool { return f.Output.Bucket == bucket }) {
		return nil, nil
	}
	return p.provenanceOf(ctx, bucket, key, sum)
}

// downstream returns the functions of fns that an output with provenance
// prov may trigger: not its writer, nor any function upstream of it, so
// that no pipeline loops even where the graph changed since the deploy
// that checked it.
//
// A note written before provenance named its writer (an older release's
// {"sha256"} only) names no function: its output triggers nothing, as
// every output did then.
func (p *Pipeline) downstream(prov *provenance, fns []registry.Function) []registry.Function {
	if prov.Function == "" {
		return nil
	}
	id := func(tenant, name string) string { return tenant + "/" + name }
	upstream := map[string]bool{id(prov.Tenant, prov.Function): true}
	if w, ok := p.function(prov.Tenant, prov.Function); ok {
		for _, a := range p.cfg.Registry.Graph().Ancestors(w) {
			upstream[id(a.Tenant, a.Name)] = true
		}
	}
	return slices.DeleteFunc(slices.Clone(fns), func(f registry.Function) bool { return upstream[id(f.Tenant, f.Name)] })
}

// stageOutput is an activation whose output may trigger the next stage,
// with the provenance noted for that output when it was written now.
type stageOutput struct {
	rec  activation.Record
	prov *provenance
}

// chainSource is the event source of an output's event, made in-process
// when dedupfn wrote the output.
const chainSource = "chain"

// nextStage sends each output of outs to the functions it triggers, as
// its event would: in-process, with the SHA-256 recorded for it, so a
// stage whose input is the recorded output of a hit decides from the
// index without reading it (early cutoff), and an embedded endpoint,
// which publishes no events for dedupfn's own writes, chains too. The
// store's own event for the output, where one comes, is the same event
// (see linked) and finds its activations recorded.
func (p *Pipeline) nextStage(ctx context.Context, outs []stageOutput) error {
	for _, o := range outs {
		out := o.rec.Output
		switch {
		case out == nil || out.SHA256 == "":
			continue
		case o.rec.Decision != activation.Miss && o.rec.Decision != activation.Hit && o.rec.Decision != activation.Wait:
			continue
		}
		fns := p.match(out.Bucket, out.Key)
		if len(fns) == 0 {
			continue
		}
		prov := o.prov
		if prov == nil || prov.SHA256 != out.SHA256 {
			var err error
			if prov, err = p.provenanceOf(ctx, out.Bucket, out.Key, out.SHA256); err != nil {
				return err
			}
			if prov == nil {
				continue // replaced since: the new object's own event goes on from it
			}
		}
		ev := event.Event{
			Source: chainSource, Name: "s3:ObjectCreated:Chain", Bucket: out.Bucket, Key: out.Key,
			VersionID: out.VersionID, ETag: out.ETag, Size: out.Size, SHA256: out.SHA256, Time: prov.Written,
		}
		if _, err := p.process(ctx, ev, fns, false, ""); err != nil {
			return err
		}
	}
	return nil
}

// unrecorded returns a job for each of fns that has no activation for ev
// yet: a redelivered event (same bucket, key, version and SHA-256, same
// upload) maps to the activations already recorded and gets none. The
// same content uploaded to the key again after another one ("scan clean,
// then swap back") is not a redelivery: the key's output is then the
// other content's, so it gets an activation of its own (see sameUpload).
//
// It also returns the activations found recorded, from which the
// pipeline goes on (nextStage).
func (p *Pipeline) unrecorded(ctx context.Context, ev event.Event, fns []registry.Function, start time.Time, l link) (pending []*job, found []activation.Record, err error) {
	for _, fn := range fns {
		j := newJob(ev, fn, start)
		rec, ok, err := p.activation(ctx, j.rec.ID)
		if err != nil {
			return nil, nil, err
		}
		if ok && !sameUpload(ev, rec) {
			again := ev
			again.Nonce = "at:" + ev.Time.UTC().Format(time.RFC3339Nano)
			j = newJob(again, fn, start)
			j.ev = ev
			if rec, ok, err = p.activation(ctx, j.rec.ID); err != nil {
				return nil, nil, err
			}
		}
		if ok {
			found = append(found, rec)
			continue
		}
		j.link(l)
		pending = append(pending, j)
	}
	return pending, found, nil
}

// activation reads the activation record id, if there is one.
func (p *Pipeline) activation(ctx context.Context, id string) (activation.Record, bool, error) {
	actx, cancel := p.callCtx(ctx)
	defer cancel()
	rec, err := p.cfg.Index.GetActivation(actx, id)
	switch {
	case errors.Is(err, index.ErrNotFound):
		return rec, false, nil
	case err != nil:
		return rec, false, fmt.Errorf("pipeline: look up activation: %w", err)
	}
	return rec, true, nil
}

// listingSlack is how much earlier than an object's modification time a
// listing (reconciler, backfill) accepts the recorded event of its upload:
// the store stamps the two apart.
const listingSlack = 2 * time.Second

// sameUpload reports whether ev, whose content at its key already has
// activation rec, is the upload rec recorded: a redelivery (the same
// payload, so the same event time, to the precision an index keeps), the
// object found again by a listing (its modification time is not after
// the recorded event's), or the upload's own event, late, after a listing
// recorded it (the event is not after the modification time it saw). Otherwise it is the same content uploaded
// there again later. An event without a time of its own cannot be told
// apart: it counts as the same.
func sameUpload(ev event.Event, rec activation.Record) bool {
	switch {
	case !ev.HasTime() || rec.EventTime.IsZero():
		return true
	case listed(ev.Source):
		return !rec.EventTime.Before(ev.Time.Add(-listingSlack))
	case listed(rec.EventSource): // the upload's own event, late after a listing found it
		return !ev.Time.After(rec.EventTime.Add(listingSlack))
	default:
		return rec.EventTime.Sub(ev.Time).Abs() <= time.Millisecond
	}
}

// listed reports whether events of source come from listing a bucket,
// with the object's modification time as their time.
func listed(source string) bool {
	return source == reconcileSource || source == backfillSource
}

// inputFailed records on j an input that cannot be had, and reports
// whether it did: a deleted object is skipped; a permanent store error
// (access denied, invalid key, archived object) is a dead letter, since
// retrying cannot help. Other errors are for the source to retry.
func (p *Pipeline) inputFailed(j *job, err error) bool {
	switch {
	case errors.Is(err, objects.ErrNotFound):
		j.rec.Decision = activation.Skipped
		j.rec.Error = "object not found: deleted or overwritten since the event"
	case errors.Is(err, objects.ErrPermanent):
		p.fail(j, &runtime.Error{Class: runtime.ClassStore, Err: err}, max(j.rec.Attempts, 1), true)
	default:
		return false
	}
	return true
}

// runRecovered is run, turning a panic into the job's platform error (with
// the stack in its logs) so that one bad event cannot stop the others.
func (p *Pipeline) runRecovered(ctx context.Context, j *job, in *input, force bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p.metrics.panics.Inc()
			p.log(ctx).Error("panic while processing an event", "panic", r)
			err = p.fail(j, runtime.Errorf(runtime.ClassPlatform, "panic: %v", r), max(j.rec.Attempts, 1), true)
			j.rec.Logs = string(debug.Stack())
		}
	}()
	return p.run(ctx, j, in, force)
}

// recordPanic records a panic outside any function's job as a dead-lettered
// platform error of the event.
func (p *Pipeline) recordPanic(ctx context.Context, ev event.Event, r any) error {
	p.metrics.panics.Inc()
	stack := string(debug.Stack())
	j := newJob(ev, registry.Function{}, time.Now())
	ctx = p.withJob(ctx, j)
	p.log(ctx).Error("panic while processing an event", "panic", r)
	j.rec.Decision = activation.Error
	j.rec.Error = fmt.Sprintf("panic: %v", r)
	j.rec.ErrorClass = string(runtime.ClassPlatform)
	j.rec.DeadLetter = true
	j.rec.Logs = stack
	return p.record(ctx, j)
}

// job is one (event, function) pair on its way to an activation record.
type job struct {
	ev    event.Event
	fn    registry.Function
	start time.Time
	rec   activation.Record
	// staging is where the current invocation may PUT its output through
	// a presigned URL (see invoke).
	staging string
	// background runs (a backfill's, an audit's) wait for a run slot
	// behind live events (runSlots).
	background bool
	// slot: j holds a run slot that its next invocation uses (a
	// background run claims only while holding one, see run).
	slot bool
	// prov is the provenance noted for the output j wrote, if it wrote
	// one; outVersion that output's version, where the store keeps them;
	// docs the provenance documents still to be written with j's last
	// commit (see noteOutput).
	prov       *provenance
	outVersion string
	docs       []index.Doc
}

// link places j in its pipeline: its stage, the activation that wrote its
// input and the upload its pipeline started from.
func (j *job) link(l link) {
	j.rec.Stage = l.stage()
	j.rec.Root = &activation.Object{Bucket: j.ev.Bucket, Key: j.ev.Key}
	if l.prov != nil && l.prov.Root.Bucket != "" {
		j.rec.Cause = l.prov.Activation
		j.rec.Root = &activation.Object{Bucket: l.prov.Root.Bucket, Key: l.prov.Root.Key}
	}
}

func newJob(ev event.Event, fn registry.Function, start time.Time) *job {
	return &job{ev: ev, fn: fn, start: start, background: ev.Source == backfillSource, rec: activation.Record{
		ID:          activationID(ev, fn),
		EventID:     ev.ID(),
		Tenant:      fn.Tenant,
		Function:    fn.Name,
		Version:     fn.Version,
		Event:       activation.Object{Bucket: ev.Bucket, Key: ev.Key, ETag: ev.ETag, Size: ev.Size},
		EventSource: ev.Source,
		EventTime:   ev.Time,
		Start:       start.UTC(),
		Timings:     activation.Timings{QueueMS: max(0, ms(start.Sub(ev.Time)))},
	}}
}

// activationID is derived from the event and function version so a
// redelivered event maps to the activation already recorded.
func activationID(ev event.Event, fn registry.Function) string {
	h := sha256.Sum256([]byte(ev.ID() + "\x00" + fn.Tenant + "\x00" + fn.Name + "\x00" + fn.Version))
	return hex.EncodeToString(h[:16])
}

func (p *Pipeline) record(ctx context.Context, j *job) error {
	j.rec.Timings.TotalMS = ms(time.Since(j.start))
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	if err := p.cfg.Index.AddActivation(ctx, j.rec, j.docs...); err != nil {
		return fmt.Errorf("pipeline: record activation %s: %w", j.rec.ID, err)
	}
	j.docs = nil
	p.metrics.observe(j.rec)
	p.log(ctx).Info("activation recorded", "decision", j.rec.Decision, "ms", j.rec.Timings.TotalMS, "err", j.rec.Error)
	return nil
}

// logKey is the context key of an event's logger (see withJob).
type logKey struct{}

// withJob returns ctx carrying a logger scoped to j, so that every line
// logged on the job's behalf, whichever helper logs it, names its
// activation, function, bucket and key: one event's life is one filter.
func (p *Pipeline) withJob(ctx context.Context, j *job) context.Context {
	l := p.logger.With("activation", j.rec.ID, "tenant", j.fn.Tenant, "fn", j.fn.Name, "bucket", j.ev.Bucket, "key", j.ev.Key)
	return context.WithValue(ctx, logKey{}, l)
}

// log is the logger of ctx's job (withJob), else the pipeline's.
func (p *Pipeline) log(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return p.logger
}

// recordMalformed keeps a dead-letter record of an event that can never
// be processed, so it is visible and the source can move past it.
func (p *Pipeline) recordMalformed(ctx context.Context, ev event.Event, cause error) error {
	j := newJob(ev, registry.Function{}, time.Now())
	j.rec.Decision = activation.Error
	j.rec.Error = cause.Error()
	j.rec.ErrorClass = "event"
	j.rec.DeadLetter = true
	return p.record(p.withJob(ctx, j), j)
}

// Malformed records a payload a source could not parse as a dead-lettered
// activation (the source's OnMalformed hook). The record id derives from
// the payload, so a redelivered payload is recorded once.
func (p *Pipeline) Malformed(ctx context.Context, payload []byte, cause error) {
	sum := sha256.Sum256(payload)
	ev := event.Event{Source: "malformed", Nonce: hex.EncodeToString(sum[:8]), Time: time.Now().UTC()}
	excerpt := string(payload[:min(len(payload), 200)])
	if err := p.recordMalformed(ctx, ev, fmt.Errorf("%w; payload starts %q", cause, excerpt)); err != nil {
		p.logger.Error("record malformed event", "err", err)
	}
}

// input is an event's object: its fingerprint, and once fetched its
// bytes. A fingerprint the store vouches for (the built-in endpoint hashed
// the upload; MinIO/S3 verified a full-object SHA-256) comes without the
// bytes, which only a miss then fetches: a hit never reads its input.
type input struct {
	info  objects.Info
	sp    *spool.Spool // nil until fetched
	fp    string
	fetch time.Duration
}

// dropSpooled gives back the disk (and budget) of an input that went to
// disk, keeping its fingerprint: load reads it again, and checks it.
func (in *input) dropSpooled() {
	if in.sp != nil && in.sp.Size() > int64(len(in.sp.Bytes())) {
		in.sp.Close()
		in.sp = nil
	}
}

func (in *input) close() {
	if in != nil && in.sp != nil {
		in.sp.Close()
	}
}

// statFirstMin is the size from which an object is Stat-ed for a trusted
// checksum before it is read: below it one GET costs no more than a HEAD.
const statFirstMin = 1 << 20

// open returns the event's input: its trusted fingerprint when the event
// or the store has one, else the object read and hashed.
func (p *Pipeline) open(ctx context.Context, ev event.Event) (*input, error) {
	// Only the built-in endpoint computes SHA256 on its events, and only
	// dedupfn itself on its outputs' (nextStage); any other source's is
	// not ours to trust.
	if fp, err := fingerprint.FromSHA256Hex(ev.SHA256); err == nil && (ev.Source == "embedded" || ev.Source == chainSource) {
		return &input{fp: fp, info: objects.Info{
			Bucket: ev.Bucket, Key: ev.Key, VersionID: ev.VersionID, ETag: ev.ETag,
			Size: ev.Size, ContentType: ev.ContentType, Metadata: ev.Metadata,
		}}, nil
	}
	if ev.Size >= statFirstMin && ev.VersionID == "" {
		start := time.Now()
		sctx, cancel := p.callCtx(ctx)
		st, err := p.cfg.Objects.Stat(sctx, ev.Bucket, ev.Key)
		cancel()
		if err == nil && st.SHA256 != "" && (ev.ETag == "" || st.ETag == ev.ETag) {
			if fp, err := fingerprint.FromSHA256Hex(st.SHA256); err == nil {
				return &input{fp: fp, info: st, fetch: time.Since(start)}, nil
			}
		}
	}
	return p.fetch(ctx, ev)
}

// load fetches the bytes of an input that has none: opened from a trusted
// fingerprint, or dropped while its event waited for a run slot. It
// reports whether the bytes hash to another fingerprint than the input's
// (the input then carries the one computed). waits bounds its waits for
// disk budget.
func (p *Pipeline) load(ctx, waits context.Context, ev event.Event, in *input) (mismatch bool, err error) {
	if in.sp != nil {
		return false, nil
	}
	got, err := p.fetchWaiting(ctx, waits, ev)
	if err != nil {
		return false, err
	}
	mismatch = got.fp != in.fp
	if mismatch {
		p.log(ctx).Error("object bytes do not match the fingerprint the store gave; using the bytes'", "trusted", in.fp, "computed", got.fp)
	}
	got.fetch += in.fetch
	*in = *got
	return mismatch, nil
}

// fetch reads the object at the event's version once, hashing it into a
// spool so the function later runs on exactly the fingerprinted bytes.
func (p *Pipeline) fetch(ctx context.Context, ev event.Event) (*input, error) {
	return p.fetchWaiting(ctx, ctx, ev)
}

// fetchWaiting is fetch with its waits for disk budget bounded by waits.
func (p *Pipeline) fetchWaiting(ctx, waits context.Context, ev event.Event) (*input, error) {
	start := time.Now()
	rc, info, err := p.cfg.Objects.Get(ctx, ev.Bucket, ev.Key, ev.VersionID, ev.ETag)
	if err != nil {
		return nil, fmt.Errorf("pipeline: get %s/%s: %w", ev.Bucket, ev.Key, err)
	}
	defer rc.Close()
	sp := spool.NewBudgeted(waits, p.cfg.SpoolBudget, p.cfg.SpoolDir, 0, 0)
	fp, err := fingerprint.Spool(rc, sp)
	if err != nil {
		sp.Close()
		if errors.Is(err, spool.ErrOverBudget) {
			// Larger than the whole budget: waiting cannot help.
			err = fmt.Errorf("%w: %w (raise --spool-budget)", objects.ErrPermanent, err)
		}
		return nil, fmt.Errorf("pipeline: fingerprint %s/%s: %w", ev.Bucket, ev.Key, err)
	}
	info.Size = sp.Size()
	return &input{info: info, sp: sp, fp: fp, fetch: time.Since(start)}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
