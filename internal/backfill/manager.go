package backfill

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// Sender sends one listed object through the dedup path for one
// function: *pipeline.Pipeline. It returns the activation recorded, or
// nil when there was nothing to do; an error means nothing final was
// recorded, and the object is sent again.
type Sender interface {
	Backfill(ctx context.Context, fn registry.Function, o objects.Info) (*activation.Record, error)
}

// Config wires a Manager.
type Config struct {
	Index    index.Docs
	Objects  objects.Store
	Registry *registry.Registry
	Pipeline Sender
	// Owner names this replica on the jobs it runs (default host-pid).
	Owner  string
	Logger *slog.Logger
	// Heartbeat, StaleAfter, Scan, Drain, Attempts and CallTimeout
	// default to the Default constants; tests shorten them.
	Heartbeat   time.Duration
	StaleAfter  time.Duration
	Scan        time.Duration
	Drain       time.Duration
	Attempts    int
	CallTimeout time.Duration
	// RetryBase and RetryMax bound the backoff between attempts of one
	// object (default 200ms, 10s).
	RetryBase, RetryMax time.Duration
}

// Manager creates, lists and cancels backfill jobs, and runs them: its
// own, and those of replicas that stopped. It is safe for concurrent use.
type Manager struct {
	cfg    Config
	logger *slog.Logger
	poke   chan struct{} // wakes Run to look for jobs now

	mu     sync.Mutex
	active map[string]bool // jobs running here
	quit   chan struct{}   // closed by Close
	closed bool
	done   chan struct{} // closed when Run returns; nil until Run starts
}

// New validates cfg and returns a Manager; it starts nothing (see Run).
func New(cfg Config) (*Manager, error) {
	switch {
	case cfg.Index == nil:
		return nil, errors.New("backfill: index is required")
	case cfg.Objects == nil:
		return nil, errors.New("backfill: object store is required")
	case cfg.Registry == nil:
		return nil, errors.New("backfill: registry is required")
	case cfg.Pipeline == nil:
		return nil, errors.New("backfill: pipeline is required")
	case cfg.Heartbeat < 0, cfg.StaleAfter < 0, cfg.Scan < 0, cfg.Drain < 0, cfg.Attempts < 0, cfg.CallTimeout < 0:
		return nil, errors.New("backfill: intervals and attempts must be >= 0 (0 = default)")
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Heartbeat = cmp.Or(cfg.Heartbeat, DefaultHeartbeat)
	cfg.StaleAfter = cmp.Or(cfg.StaleAfter, DefaultStaleAfter)
	cfg.Scan = cmp.Or(cfg.Scan, DefaultScan)
	cfg.Drain = cmp.Or(cfg.Drain, DefaultDrain)
	cfg.Attempts = cmp.Or(cfg.Attempts, DefaultAttempts)
	cfg.CallTimeout = cmp.Or(cfg.CallTimeout, DefaultCallTimeout)
	cfg.RetryBase = cmp.Or(cfg.RetryBase, 200*time.Millisecond)
	cfg.RetryMax = cmp.Or(cfg.RetryMax, 10*time.Second)
	if cfg.StaleAfter <= cfg.Heartbeat {
		return nil, fmt.Errorf("backfill: stale-after must be longer than the heartbeat (%s), got %s", cfg.Heartbeat, cfg.StaleAfter)
	}
	return &Manager{
		cfg: cfg, logger: cfg.Logger.With("component", "backfill"),
		poke: make(chan struct{}, 1), active: map[string]bool{}, quit: make(chan struct{}),
	}, nil
}

// Run runs jobs until ctx ends or Close is called: every Scan it looks
// for running jobs that no live replica runs (new ones, ones released at
// a shutdown, ones whose heartbeat is older than StaleAfter) and runs
// them from their watermark. On the way out its jobs stop taking objects,
// let those in flight finish (up to Drain), persist their progress and
// release themselves for any replica to resume. Run may be called once.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.closed || m.done != nil {
		m.mu.Unlock()
		return errors.New("backfill: Run called twice, or after Close")
	}
	done := make(chan struct{})
	m.done = done
	m.mu.Unlock()
	defer close(done)

	var jobs sync.WaitGroup
	defer jobs.Wait() // after the cancel below: jobs stop when ctx ends
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := time.NewTicker(m.cfg.Scan)
	defer t.Stop()
	var warned time.Time
	for {
		if err := m.adopt(ctx, &jobs); err != nil && ctx.Err() == nil && time.Since(warned) > time.Minute {
			warned = time.Now() // an index that is down fails every scan: say so once a minute
			m.logger.Warn("look for backfill jobs to run", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.quit:
			return nil // the deferred cancel stops the jobs
		case <-t.C:
		case <-m.poke:
		}
	}
}

// Close stops Run and waits for it (its jobs persisted and released)
// until ctx ends. Safe to call twice, and without Run.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.quit)
	}
	done := m.done
	m.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Manager) wake() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// adopt starts every running job that no live replica runs.
func (m *Manager) adopt(ctx context.Context, jobs *sync.WaitGroup) error {
	all, err := m.docs(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, d := range all {
		m.mu.Lock()
		mine := m.active[d.ID]
		m.mu.Unlock()
		free := d.Owner == "" || d.Owner == m.cfg.Owner || now.Sub(d.Heartbeat) > m.cfg.StaleAfter
		if d.State != Running || mine || !free {
			continue
		}
		// Two replicas may take the same job at once (PutDoc is not a
		// compare-and-swap): the one whose write lands last keeps it, the
		// other sees a foreign owner at its next heartbeat and stops.
		// Meanwhile both send the same objects: claims keep each content
		// to one run, but an output may be delivered twice, and in a
		// pipeline its next stage then sees two events (two hits). Start
		// makes a new job its starter's, so only a stale job can race.
		prev := d.Owner
		d.Owner, d.Heartbeat, d.Updated = m.cfg.Owner, time.Now().UTC(), time.Now().UTC()
		if err := m.put(ctx, d); err != nil {
			return err
		}
		m.mu.Lock()
		m.active[d.ID] = true
		m.mu.Unlock()
		log := m.logger.With("backfill", d.ID, "tenant", d.Tenant, "fn", d.Function)
		if d.Cursor == "" && d.Objects == 0 && (prev == "" || prev == m.cfg.Owner) {
			log.Info("backfill started", "bucket", d.Bucket, "prefix", d.Prefix, "rate", d.Rate, "concurrency", d.Concurrency)
		} else {
			log.Info("backfill resumed", "after", d.Cursor, "objects", d.Objects, "previous_owner", prev)
		}
		jobs.Go(func() {
			defer func() {
				m.mu.Lock()
				delete(m.active, d.ID)
				m.mu.Unlock()
			}()
			m.runJob(ctx, d, log)
		})
	}
	return nil
}

// Start validates req and creates a running job, which this replica's Run
// (or another's) picks up at once. It returns the job as created.
func (m *Manager) Start(ctx context.Context, req Request) (Job, error) {
	req.Tenant = cmp.Or(req.Tenant, registry.DefaultTenant)
	switch {
	case req.Function == "":
		return Job{}, fmt.Errorf("%w: function must be set", ErrInvalid)
	case req.Rate < 0 || math.IsNaN(req.Rate) || math.IsInf(req.Rate, 0):
		return Job{}, fmt.Errorf("%w: rate must be >= 0 objects/s (0 = no limit), got %v", ErrInvalid, req.Rate)
	case req.Concurrency < 0 || req.Concurrency > MaxConcurrency:
		return Job{}, fmt.Errorf("%w: concurrency must be 1 to %d (0 = %d), got %d", ErrInvalid, MaxConcurrency, DefaultConcurrency, req.Concurrency)
	}
	fn, err := m.cfg.Registry.Get(ctx, req.Tenant, req.Function)
	if err != nil {
		return Job{}, err
	}
	bucket, prefix, err := Scope(fn, req.Bucket, req.Prefix)
	if err != nil {
		return Job{}, err
	}
	all, err := m.docs(ctx)
	if err != nil {
		return Job{}, err
	}
	for _, d := range all {
		if d.State == Running && d.Tenant == fn.Tenant && d.Function == fn.Name {
			return Job{}, fmt.Errorf("%w: function %s already has a running backfill, %s: wait for it or cancel it", ErrConflict, fn.Name, d.ID)
		}
	}
	now := time.Now().UTC()
	d := doc{Job: Job{
		ID: newID(now), Tenant: fn.Tenant, Function: fn.Name, Version: fn.Version,
		Bucket: bucket, Prefix: prefix, State: Running,
		Rate: req.Rate, Concurrency: cmp.Or(req.Concurrency, DefaultConcurrency),
		Created: now, Updated: now,
	},
		// Ours from the start: another replica adopts it only once this
		// heartbeat is stale, not between its creation and our scan.
		Owner: m.cfg.Owner, Heartbeat: now,
	}
	if err := m.put(ctx, d); err != nil {
		return Job{}, err
	}
	m.wake()
	return d.Job, nil
}

// Scope returns the bucket and prefix a backfill of fn lists, from those
// asked for ("" = the function's trigger's): the trigger bucket only (a
// function runs on nothing else, and a tenant's functions trigger on its
// own buckets only), and a prefix within the trigger's (one that contains
// it narrows to it).
func Scope(fn registry.Function, bucket, prefix string) (string, string, error) {
	t := fn.Trigger
	if bucket == "" {
		bucket = t.Bucket
	}
	if bucket != t.Bucket {
		return "", "", fmt.Errorf("%w: bucket must be function %s's trigger bucket %q, got %q", ErrInvalid, fn.Name, t.Bucket, bucket)
	}
	switch {
	case strings.HasPrefix(t.Prefix, prefix):
		prefix = t.Prefix
	case !strings.HasPrefix(prefix, t.Prefix):
		return "", "", fmt.Errorf("%w: prefix must lie within function %s's trigger prefix %q, got %q", ErrInvalid, fn.Name, t.Prefix, prefix)
	}
	return bucket, prefix, nil
}

// Get returns a job. tenant "" may see every tenant's; any other sees its
// own only (ErrNotFound otherwise).
func (m *Manager) Get(ctx context.Context, tenant, id string) (Job, error) {
	d, err := m.get(ctx, tenant, id)
	return d.Job, err
}

// List returns the jobs of tenant ("" = all), newest first.
func (m *Manager) List(ctx context.Context, tenant string) ([]Job, error) {
	all, err := m.docs(ctx)
	if err != nil {
		return nil, err
	}
	out := []Job{}
	for _, d := range all {
		if tenant == "" || d.Tenant == tenant {
			out = append(out, d.Job)
		}
	}
	slices.SortFunc(out, func(a, b Job) int {
		return cmp.Or(b.Created.Compare(a.Created), strings.Compare(b.ID, a.ID))
	})
	return out, nil
}

// Cancel asks a running job to stop, and waits a few heartbeats for its
// runner to say it did; the job returned may still be running (its
// objects in flight draining) and is canceled soon after. Canceling a
// canceled job changes nothing; canceling a done or failed one is
// ErrConflict.
func (m *Manager) Cancel(ctx context.Context, tenant, id string) (Job, error) {
	d, err := m.get(ctx, tenant, id)
	if err != nil {
		return Job{}, err
	}
	switch d.State {
	case Canceled:
		return d.Job, nil
	case Done, Failed:
		return d.Job, fmt.Errorf("%w: backfill %s has already finished (%s)", ErrConflict, id, d.State)
	}
	cctx, cancel := m.callCtx(ctx)
	err = m.cfg.Index.PutDoc(cctx, cancelKind, id, []byte(`{"at":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"}`))
	cancel()
	if err != nil {
		return Job{}, fmt.Errorf("backfill: request cancel of %s: %w", id, err)
	}
	m.wake() // a job nobody runs is adopted, and then sees the request at once
	deadline := time.Now().Add(3 * m.cfg.Heartbeat)
	for d.State == Running && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return d.Job, ctx.Err()
		case <-time.After(m.cfg.Heartbeat / 10):
		}
		if d, err = m.get(ctx, tenant, id); err != nil {
			return Job{}, err
		}
	}
	return d.Job, nil
}

func (m *Manager) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.cfg.CallTimeout)
}

func (m *Manager) get(ctx context.Context, tenant, id string) (doc, error) {
	var d doc
	cctx, cancel := m.callCtx(ctx)
	b, err := m.cfg.Index.GetDoc(cctx, docKind, id)
	cancel()
	if errors.Is(err, index.ErrNotFound) {
		return d, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return d, fmt.Errorf("backfill: get %s: %w", id, err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("backfill: decode %s: %w", id, err)
	}
	if tenant != "" && d.Tenant != tenant {
		return doc{}, fmt.Errorf("%w: %s", ErrNotFound, id) // another tenant's jobs do not exist for you
	}
	return d, nil
}

func (m *Manager) docs(ctx context.Context) ([]doc, error) {
	var out []doc
	cctx, cancel := m.callCtx(ctx)
	defer cancel()
	err := m.cfg.Index.Docs(cctx, docKind, func(id string, b []byte) error {
		var d doc
		if err := json.Unmarshal(b, &d); err != nil {
			m.logger.Warn("skip an undecodable backfill job", "backfill", id, "err", err)
			return nil
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backfill: list jobs: %w", err)
	}
	return out, nil
}

func (m *Manager) put(ctx context.Context, d doc) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	cctx, cancel := m.callCtx(ctx)
	defer cancel()
	if err := m.cfg.Index.PutDoc(cctx, docKind, d.ID, b); err != nil {
		return fmt.Errorf("backfill: put %s: %w", d.ID, err)
	}
	return nil
}

// canceled reports whether a cancel of job id was requested.
func (m *Manager) canceled(ctx context.Context, id string) (bool, error) {
	cctx, cancel := m.callCtx(ctx)
	defer cancel()
	_, err := m.cfg.Index.GetDoc(cctx, cancelKind, id)
	if errors.Is(err, index.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
