package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/backfill"
	"github.com/dedupfn/dedupfn/internal/bench"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/httpserve"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/inputurl"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/owapi"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/plugin"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
	"github.com/dedupfn/dedupfn/internal/source"
	"github.com/dedupfn/dedupfn/internal/spool"
)

// Quickstart credentials: accepted only while every listener is on loopback.
const (
	quickstartAccessKey = "dedupfn"
	quickstartSecretKey = "dedupfn-secret"
	defaultDrainTimeout = 30 * time.Second
)

type serveOptions struct {
	dataDir, s3Addr, apiAddr, configFile string
	publicURL                            string
	objectsURL, eventsURL, indexURL      string
	replicaID, logLevel, logFormat       string
	concurrency, runs                    int
	spoolBudget                          int64
	inlineLimit                          int64
	describeTTL                          time.Duration
	reconcile, reconcileGrace            time.Duration
	activationRetention                  time.Duration
	buckets                              []string
	profileSignals                       string          // bench.ProfileSignalsFlag
	sec                                  securityOptions // tenants.go
	proc                                 processFlags    // runtimes.go
	conn                                 connFlags       // conn.go
	wasm                                 wasmFlags       // runtimes.go
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the pipeline: S3 endpoint or event source, index, runtimes and API",
		Long: `Run the pipeline. With no flags everything is embedded: the built-in S3
endpoint (SigV4, data on disk), its durable event queue, a bbolt index and the
WebAssembly runtime, all under --data.

Credentials of the built-in S3 endpoint come from DEDUPFN_ACCESS_KEY and
DEDUPFN_SECRET_KEY; the quickstart defaults are accepted only on loopback.
The API requires DEDUPFN_API_TOKEN (bearer) when it listens beyond loopback.
Tenant tokens (DEDUPFN_TENANT_TOKENS=tenant=token:bucket1,bucket2;tenant2=...
or --tenants FILE) require it too. Who may do what: docs/security.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfigFile(cmd.Flags(), o.configFile); err != nil {
				return err
			}
			return serve(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.dataDir, "data", "./data", "directory for embedded data (objects, queue, index, caches)")
	fl.StringVar(&o.s3Addr, "s3-addr", "127.0.0.1:9000", "listen address of the built-in S3 endpoint")
	fl.StringVar(&o.apiAddr, "api-addr", "127.0.0.1:8080", "listen address of the API, dashboard and /metrics")
	fl.StringVar(&o.publicURL, "public-url", "", "base URL at which --exec and OpenWhisk actions reach this API for their input (get_url); a remote OpenWhisk needs one it can reach (default http://--api-addr)")
	fl.StringVar(&o.configFile, "config", "", "YAML file whose keys are these flags' names; flags given on the command line win")
	fl.StringVar(&o.objectsURL, "objects", "embedded:", "object store: embedded: | s3://KEY:SECRET@host:9000?tls=false")
	fl.StringVar(&o.eventsURL, "events", "embedded:", "event source: embedded: | kafka://host:9092/topic?group=dedupfn | webhook:")
	fl.StringVar(&o.indexURL, "index", "", "dedup index: bolt:PATH | couchdb://user:pass@host:5984/db (default bolt:DATA/index.db)")
	fl.StringVar(&o.replicaID, "replica-id", "", "this replica's name on claims (default host-pid)")
	fl.IntVar(&o.concurrency, "concurrency", 64, "events in flight at once (hits, waits and runs)")
	fl.IntVar(&o.runs, "runs", goruntime.GOMAXPROCS(0), "function executions at once, within --concurrency")
	fl.DurationVar(&o.reconcile, "reconcile", 0, "list triggered buckets this often and process objects without an activation (0 = off)")
	fl.DurationVar(&o.reconcileGrace, "reconcile-grace", time.Minute, "the reconciler leaves objects younger than this to their events")
	fl.DurationVar(&o.activationRetention, "activation-retention", index.DefaultActivationRetention, "delete activation records older than this, hourly; totals keep counting them (0 = keep forever)")
	sizeVar(fl, &o.spoolBudget, "spool-budget", pipeline.DefaultSpoolBudget, 1, 1, "disk that inputs and outputs being processed may use under --data/tmp, such as 16GiB or 512MiB (a bare number is bytes); beyond it events wait (0 = unbounded)")
	fl.StringSliceVar(&o.buckets, "create-bucket", nil, "buckets to create at start (repeatable)")
	sizeVar(fl, &o.inlineLimit, "inline-limit", process.DefaultInlineLimit, 1, 1, "process and OpenWhisk actions get inputs up to this size inline as base64 \"body\", such as 1MiB (a bare number is bytes; -1 = never)").never = true
	fl.DurationVar(&o.describeTTL, "describe-ttl", pipeline.DefaultDescribeTTL, "how often a remote OpenWhisk action's version is re-read for the dedup key")
	fl.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&o.logFormat, "log-format", "", "json or text (default: text when stderr is a terminal, else json)")
	fl.StringVar(&o.profileSignals, bench.ProfileSignalsFlag, "", "write a CPU profile to this file between SIGUSR1 and SIGUSR2 (for `dedupfn bench --cpuprofile`)")
	fl.MarkHidden(bench.ProfileSignalsFlag)
	o.sec.register(fl)
	o.proc.register(fl)
	o.conn.register(fl)
	o.wasm.register(fl)
	return cmd
}

// applyConfigFile sets every flag named in a YAML file that was not given
// on the command line.
func applyConfigFile(fs *pflag.FlagSet, file string) error {
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("parse config %s: %w", file, err)
	}
	for k, v := range m {
		f := fs.Lookup(k)
		if f == nil {
			return fmt.Errorf("config %s: unknown key %q (keys are serve's flag names)", file, k)
		}
		if f.Changed {
			continue
		}
		vals := []any{v}
		if list, ok := v.([]any); ok {
			vals = list
		}
		for _, v := range vals {
			if err := f.Value.Set(fmt.Sprint(v)); err != nil {
				return fmt.Errorf("config %s: %s: %w", file, k, err)
			}
		}
	}
	return nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// minSecretLen is the shortest token or secret accepted on a listener
// beyond loopback, where it is all that stands between the network and
// the data.
const minSecretLen = 16

// checkSecret refuses a token or secret (named by its environment variable
// in the error) shorter than minSecretLen when it guards a listener on addr
// beyond loopback. The error never contains the secret.
func checkSecret(name, secret, addr string) error {
	if isLoopback(addr) || len(secret) >= minSecretLen {
		return nil
	}
	return fmt.Errorf("%s must be at least %d characters to serve on %s, got %d: use a random value such as `openssl rand -hex 16`",
		name, minSecretLen, addr, len(secret))
}

// openInputs returns the server of the activations' inputs (get_url) at
// --public-url, by default the API's own address. It warns when that is
// an address only this machine reaches while remote OpenWhisk actions
// are configured: their deploys are refused (Pipeline.Prepare).
func openInputs(o serveOptions, owAPI string, logger *slog.Logger) (*inputurl.Server, error) {
	public := o.publicURL
	if public == "" {
		host, port, err := net.SplitHostPort(o.apiAddr)
		if err != nil {
			return nil, fmt.Errorf("--api-addr %q: %w", o.apiAddr, err)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1" // listening everywhere: this machine's actions use loopback
		}
		public = "http://" + net.JoinHostPort(host, port)
	}
	inputs, err := inputurl.New(public)
	if err != nil {
		return nil, fmt.Errorf("--public-url: %w", err)
	}
	if u, err := url.Parse(owAPI); err == nil && owAPI != "" && inputs.Local() && !inputurl.LocalHost(u.Hostname()) {
		logger.Warn("a remote OpenWhisk cannot fetch inputs from a loopback --public-url: its functions are refused at deploy until --public-url is set",
			"public_url", inputs.Base(), "openwhisk_api", owAPI)
	}
	return inputs, nil
}

// publicHost is the host name of the inputs' public URL.
func publicHost(inputs *inputurl.Server) string {
	u, _ := url.Parse(inputs.Base()) // parsed already by inputurl.New
	return u.Hostname()
}

// serve runs the pipeline until ctx ends, then drains it; it logs to
// stderr.
func serve(ctx context.Context, o serveOptions, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level must be debug, info, warn or error, got %q", o.logLevel)
	}
	logger, err := newLogger(stderr, o.logFormat, level)
	if err != nil {
		return err
	}
	if o.profileSignals != "" {
		if err := bench.ProfileOnSignals(o.profileSignals); err != nil {
			return err
		}
	}

	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "tmp"), 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	sec, err := checkSecrets(o)
	if err != nil {
		return err
	}
	if o.indexURL == "" {
		o.indexURL = "bolt:" + filepath.Join(dataDir, "index.db")
	}

	// Everything opened is closed in reverse order on the way out.
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	c, err := openComponents(ctx, o, dataDir, sec, logger, &closers)
	if err != nil {
		return err
	}
	return c.runAndDrain(ctx, o, dataDir, logger)
}

// serveSecrets are serve's credentials, checked against the addresses
// they guard.
type serveSecrets struct {
	access, secret string // the built-in S3 endpoint's
	embeddedS3     bool   // --objects embedded:
	adminToken     string
	tenants        []api.Tenant
	owOpts         openwhisk.Options
	// owNamespaces are the OpenWhisk API's namespaces; none: /api/v1 is
	// not served.
	owNamespaces []owapi.Namespace
}

// checkSecrets reads serve's credentials from the environment (and
// --tenants) and refuses weak or missing ones on a listener beyond
// loopback.
func checkSecrets(o serveOptions) (serveSecrets, error) {
	var sec serveSecrets
	sec.access = cmp.Or(os.Getenv("DEDUPFN_ACCESS_KEY"), quickstartAccessKey)
	sec.secret = cmp.Or(os.Getenv("DEDUPFN_SECRET_KEY"), quickstartSecretKey)
	sec.embeddedS3 = strings.HasPrefix(o.objectsURL, "embedded:")
	if sec.embeddedS3 && !isLoopback(o.s3Addr) && (sec.access == quickstartAccessKey || sec.secret == quickstartSecretKey) {
		return sec, fmt.Errorf("refusing to serve S3 on %s with the quickstart credentials: set DEDUPFN_ACCESS_KEY and DEDUPFN_SECRET_KEY", o.s3Addr)
	}
	if sec.embeddedS3 {
		if err := checkSecret("DEDUPFN_SECRET_KEY", sec.secret, o.s3Addr); err != nil {
			return sec, err
		}
	}
	sec.adminToken = os.Getenv("DEDUPFN_API_TOKEN")
	if !isLoopback(o.apiAddr) && sec.adminToken == "" {
		return sec, fmt.Errorf("refusing to serve the API on %s without a token: set DEDUPFN_API_TOKEN", o.apiAddr)
	}
	// The API token also guards the webhook source, mounted on the API.
	if err := checkSecret("DEDUPFN_API_TOKEN", sec.adminToken, o.apiAddr); err != nil {
		return sec, err
	}
	var err error
	if sec.tenants, err = loadTenants(sec.adminToken, os.Getenv("DEDUPFN_TENANT_TOKENS"), o.sec.tenantsFile); err != nil {
		return sec, err
	}
	if sec.owOpts, err = o.sec.openWhiskOptions(sec.tenants); err != nil {
		return sec, err
	}
	if sec.owNamespaces, err = openWhiskNamespaces(os.Getenv("DEDUPFN_OPENWHISK_KEYS"), o.sec.owAdminNS, sec.tenants); err != nil {
		return sec, err
	}
	return sec, nil
}

// serveComponents are what serve opened: run by runAndDrain.
type serveComponents struct {
	idx       index.Index
	src       source.Source
	reg       *registry.Registry
	pipe      *pipeline.Pipeline
	backfills *backfill.Manager
	httpSrv   *http.Server
	ln        net.Listener
	// instanceID tells this process apart on /healthz (api.InstanceHeader).
	instanceID string
}

// openComponents opens the index, event source, object store, runtimes,
// registry, pipeline, backfills and API, and listens on the API's
// address. Each opened is added to closers, to be closed in reverse order.
func openComponents(ctx context.Context, o serveOptions, dataDir string, sec serveSecrets, logger *slog.Logger, closers *[]func()) (*serveComponents, error) {
	c := &serveComponents{}
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	idx, err := index.Open(ctx, o.indexURL, index.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", plugin.Redact(o.indexURL), err)
	}
	*closers = append(*closers, func() { idx.Close() })
	promReg.MustRegister(newStatsCollector(idx))

	mux := http.NewServeMux()
	var pipe *pipeline.Pipeline // set below; sources call OnMalformed only from Run
	src, err := source.Open(ctx, o.eventsURL, source.Options{
		Logger: logger, DataDir: dataDir, Concurrency: o.concurrency, Mux: mux, Token: sec.adminToken,
		OnMalformed: func(ctx context.Context, payload []byte, err error) { pipe.Malformed(ctx, payload, err) },
	})
	if err != nil {
		return nil, fmt.Errorf("open events %s: %w", plugin.Redact(o.eventsURL), err)
	}
	*closers = append(*closers, func() { src.Close() })

	objOpts := objects.Options{Logger: logger, DataDir: dataDir, Addr: o.s3Addr}
	objOpts.Limits = o.conn.limits
	if sec.embeddedS3 {
		// The built-in endpoint's own credentials; an external S3 takes
		// its credentials from its URL or DEDUPFN_S3_ACCESS_KEY/SECRET_KEY.
		objOpts.AccessKey, objOpts.SecretKey = sec.access, sec.secret
	}
	if pub, ok := src.(source.Publisher); ok {
		objOpts.Publish = pub.Publish
	} else if sec.embeddedS3 {
		logger.Warn("the built-in S3 endpoint's uploads trigger nothing with --events " + plugin.Redact(o.eventsURL))
	}
	store, err := objects.Open(ctx, o.objectsURL, objOpts)
	if err != nil {
		return nil, fmt.Errorf("open objects %s: %w", plugin.Redact(o.objectsURL), err)
	}
	*closers = append(*closers, func() { store.Close() })
	if idx, store, err = injectFaults(idx, store, logger); err != nil {
		return nil, err
	}
	for _, b := range o.buckets {
		if err := store.MakeBucket(ctx, b); err != nil {
			return nil, fmt.Errorf("create bucket %s: %w", b, err)
		}
	}

	runtimes, closeRuntimes, err := openRuntimes(dataDir, o.inlineLimit, sec.owOpts, o.proc, o.wasm, logger)
	if err != nil {
		return nil, err
	}
	*closers = append(*closers, closeRuntimes)
	runtimes[owapi.BuiltinRuntime] = owapi.Builtins{} // /whisk.system/utils of the OpenWhisk API

	inputs, err := openInputs(o, sec.owOpts.API, logger)
	if err != nil {
		return nil, err
	}
	mux.Handle(inputurl.Route, inputs) // the URL is the capability: no API token

	reg := registry.New(idx, logger)
	if err := reg.Refresh(ctx); err != nil {
		return nil, err
	}
	pipe, err = pipeline.New(pipeline.Config{
		Index: idx, Objects: store, Registry: reg, Runtimes: runtimes, Owner: o.replicaID,
		SpoolDir: filepath.Join(dataDir, "tmp"), Logger: logger, Metrics: promReg, DescribeTTL: o.describeTTL,
		SpoolBudget: spool.NewBudget(o.spoolBudget), ActivationRetention: o.activationRetention, MaxRuns: o.runs,
		Inputs: inputs, TenantBuckets: tenantBuckets(sec.tenants),
	})
	if err != nil {
		return nil, err
	}
	// Backfill jobs live in the index: this replica runs its own and
	// resumes those of replicas that stopped.
	backfills, err := backfill.New(backfill.Config{
		Index: idx, Objects: store, Registry: reg, Pipeline: pipe, Owner: o.replicaID, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	// The instance id tells this process apart on /healthz:
	// scripts/quickstart.sh chooses it, to be sure the server answering is
	// the one it started; otherwise it is random.
	c.instanceID = os.Getenv("DEDUPFN_INSTANCE_ID")
	if c.instanceID == "" {
		c.instanceID = rand.Text()
	}
	apiCfg := o.sec.apiConfig(api.Config{
		Pipeline: pipe, Registry: reg, Index: idx, AdminToken: sec.adminToken, Tenants: sec.tenants,
		Gatherer: promReg, Logger: logger, Mux: mux, ListenAddr: o.apiAddr, Backfills: backfills,
		InstanceID: c.instanceID,
	})
	if len(sec.owNamespaces) > 0 {
		owSrv, err := owapi.New(owapi.Config{
			Namespaces: sec.owNamespaces, Registry: reg, Index: idx, Invoker: pipe, Deployer: pipe,
			ActionCode: process.ActionCode, TenantRuntimes: api.DefaultTenantRuntimes, MaxCodeBytes: o.sec.maxCodeBytes,
			MaxMemoryMB: o.sec.maxMemoryMB, MaxParamsBytes: o.sec.maxParamsBytes, Logger: logger,
		})
		if err != nil {
			return nil, err
		}
		*closers = append(*closers, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			owSrv.Close(ctx)
		})
		apiCfg.OpenWhisk = owSrv.Handler()
	}
	// Actions fetch get_url by the public URL's name: the operator's, as
	// an --api-host is.
	apiCfg.ExtraHosts = append(apiCfg.ExtraHosts, publicHost(inputs))
	apiSrv, err := api.New(apiCfg)
	if err != nil {
		return nil, err
	}
	httpSrv, err := httpserve.NewServer(apiSrv.Handler(), o.conn.limits, logger.With("component", "api.http"))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.apiAddr)
	if err != nil {
		return nil, fmt.Errorf("listen API: %w", err)
	}
	c.idx, c.src, c.reg, c.pipe, c.backfills, c.httpSrv, c.ln = idx, src, reg, pipe, backfills, httpSrv, ln
	return c, nil
}

// runAndDrain serves the API, the registry's refresh, the pruner, the
// reconciler, backfills and the event source until ctx ends or one of
// them fails; then it stops intake and lets in-flight events finish for
// up to defaultDrainTimeout.
func (c *serveComponents) runAndDrain(ctx context.Context, o serveOptions, dataDir string, logger *slog.Logger) error {
	// Requests end when the server stops: a deploy's compile is
	// cancelled rather than hold the shutdown.
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()
	c.httpSrv.BaseContext = func(net.Listener) context.Context { return reqCtx }
	c.httpSrv.RegisterOnShutdown(cancelReqs)

	// runCtx stops intake; workCtx, cancelled only after the drain timeout,
	// lets in-flight events finish and be recorded.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() {
		if err := c.httpSrv.Serve(c.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("API server: %w", err)
		}
	})
	wg.Go(func() { c.reg.Run(ctx, registry.DefaultRefresh) })
	wg.Go(func() { index.RunPruner(ctx, c.idx, o.activationRetention, index.DefaultPruneInterval, logger) })
	if o.reconcile > 0 {
		wg.Go(func() { c.pipe.RunReconciler(ctx, o.reconcile, o.reconcileGrace) })
	}
	wg.Go(func() { c.backfills.Run(ctx) })
	var drain drainCount
	handle := drain.wrap(func(_ context.Context, ev event.Event) error { return c.pipe.Handle(workCtx, ev) })
	wg.Go(func() {
		if err := c.src.Run(ctx, handle); err != nil {
			errc <- fmt.Errorf("event source: %w", err)
		}
	})
	logger.Info("dedupfn serving", "instance", c.instanceID, "api", "http://"+c.ln.Addr().String(), "objects", plugin.Redact(o.objectsURL),
		"s3", o.s3Addr, "events", plugin.Redact(o.eventsURL), "index", plugin.Redact(o.indexURL), "data", dataDir)

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("draining: finishing in-flight events (signal again to abort)", "events_in_flight", drain.inFlight.Load())
	case runErr = <-errc:
		logger.Error("stopping", "err", runErr)
	}
	drainStart, inFlight := time.Now(), drain.begin()
	timer := time.AfterFunc(defaultDrainTimeout, cancelWork)
	defer timer.Stop()
	shutCtx, cancelShut := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelShut()
	c.httpSrv.Shutdown(shutCtx)
	c.src.Close()
	c.backfills.Close(shutCtx) // its jobs finish their objects in flight, persist and release themselves
	wg.Wait()
	if err := c.pipe.Close(shutCtx); err != nil { // audits in flight: cancelled, they write nothing
		logger.Warn("stop determinism audits", "err", err)
	}
	// An event not finished (cut off by the drain timeout) has nothing
	// final recorded: its source delivers it again at the next start.
	logger.Info("stopped", "events_in_flight", inFlight, "events_finished", drain.finished.Load(),
		"events_unfinished", drain.unfinished.Load(), "took", time.Since(drainStart).Round(time.Millisecond))
	return runErr
}

// drainCount counts the events a shutdown drains: those in flight when
// it begins, and how many of them then finish, or end unfinished (cut
// off by the drain timeout).
type drainCount struct {
	inFlight             atomic.Int64
	draining             atomic.Bool
	finished, unfinished atomic.Int64
}

// wrap counts handle's events.
func (d *drainCount) wrap(handle func(context.Context, event.Event) error) func(context.Context, event.Event) error {
	return func(ctx context.Context, ev event.Event) error {
		d.inFlight.Add(1)
		defer d.inFlight.Add(-1)
		err := handle(ctx, ev)
		if d.draining.Load() {
			if err != nil { // nothing final recorded: delivered again at the next start
				d.unfinished.Add(1)
			} else {
				d.finished.Add(1)
			}
		}
		return err
	}
}

// begin marks the drain's start and returns the events then in flight.
func (d *drainCount) begin() int64 {
	d.draining.Store(true)
	return d.inFlight.Load()
}
