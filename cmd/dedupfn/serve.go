package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/plugin"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
	"github.com/dedupfn/dedupfn/internal/source"
)

// Quickstart credentials: accepted only while every listener is on loopback.
const (
	quickstartAccessKey = "dedupfn"
	quickstartSecretKey = "dedupfn-secret"
	defaultDrainTimeout = 30 * time.Second
)

type serveOptions struct {
	dataDir, s3Addr, apiAddr, configFile string
	objectsURL, eventsURL, indexURL      string
	replicaID, logLevel                  string
	concurrency                          int
	inlineLimit                          int64
	describeTTL                          time.Duration
	reconcile, reconcileGrace            time.Duration
	buckets                              []string
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
The API requires DEDUPFN_API_TOKEN (bearer) when it listens beyond loopback.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfigFile(cmd.Flags(), o.configFile); err != nil {
				return err
			}
			return serve(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.dataDir, "data", "./data", "directory for embedded data (objects, queue, index, caches)")
	fl.StringVar(&o.s3Addr, "s3-addr", "127.0.0.1:9000", "listen address of the built-in S3 endpoint")
	fl.StringVar(&o.apiAddr, "api-addr", "127.0.0.1:8080", "listen address of the API, dashboard and /metrics")
	fl.StringVar(&o.configFile, "config", "", "YAML file whose keys are these flags' names; flags given on the command line win")
	fl.StringVar(&o.objectsURL, "objects", "embedded:", "object store: embedded: | s3://KEY:SECRET@host:9000?tls=false")
	fl.StringVar(&o.eventsURL, "events", "embedded:", "event source: embedded: | kafka://host:9092/topic?group=dedupfn | webhook:")
	fl.StringVar(&o.indexURL, "index", "", "dedup index: bolt:PATH | couchdb://user:pass@host:5984/db (default bolt:DATA/index.db)")
	fl.StringVar(&o.replicaID, "replica-id", "", "this replica's name on claims (default host-pid)")
	fl.IntVar(&o.concurrency, "concurrency", 4, "events processed at once")
	fl.DurationVar(&o.reconcile, "reconcile", 0, "list triggered buckets this often and process objects without an activation (0 = off)")
	fl.DurationVar(&o.reconcileGrace, "reconcile-grace", time.Minute, "the reconciler leaves objects younger than this to their events")
	fl.StringSliceVar(&o.buckets, "create-bucket", nil, "buckets to create at start (repeatable)")
	fl.Int64Var(&o.inlineLimit, "inline-limit", process.DefaultInlineLimit, "process and OpenWhisk actions get inputs up to this many bytes inline as base64 \"body\" (-1 = never)")
	fl.DurationVar(&o.describeTTL, "describe-ttl", pipeline.DefaultDescribeTTL, "how often a remote OpenWhisk action's version is re-read for the dedup key")
	fl.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
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

func serve(ctx context.Context, o serveOptions) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level must be debug, info, warn or error, got %q", o.logLevel)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "tmp"), 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	access := cmp.Or(os.Getenv("DEDUPFN_ACCESS_KEY"), quickstartAccessKey)
	secret := cmp.Or(os.Getenv("DEDUPFN_SECRET_KEY"), quickstartSecretKey)
	embeddedS3 := strings.HasPrefix(o.objectsURL, "embedded:")
	if embeddedS3 && !isLoopback(o.s3Addr) && (access == quickstartAccessKey || secret == quickstartSecretKey) {
		return fmt.Errorf("refusing to serve S3 on %s with the quickstart credentials: set DEDUPFN_ACCESS_KEY and DEDUPFN_SECRET_KEY", o.s3Addr)
	}
	adminToken := os.Getenv("DEDUPFN_API_TOKEN")
	if !isLoopback(o.apiAddr) && adminToken == "" {
		return fmt.Errorf("refusing to serve the API on %s without a token: set DEDUPFN_API_TOKEN", o.apiAddr)
	}
	tenantTokens, err := parseTenantTokens(os.Getenv("DEDUPFN_TENANT_TOKENS"))
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

	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	idx, err := index.Open(ctx, o.indexURL, index.Options{Logger: logger})
	if err != nil {
		return fmt.Errorf("open index %s: %w", plugin.Redact(o.indexURL), err)
	}
	closers = append(closers, func() { idx.Close() })
	promReg.MustRegister(newStatsCollector(idx))

	mux := http.NewServeMux()
	var pipe *pipeline.Pipeline // set below; sources call OnMalformed only from Run
	src, err := source.Open(ctx, o.eventsURL, source.Options{
		Logger: logger, DataDir: dataDir, Concurrency: o.concurrency, Mux: mux, Token: adminToken,
		OnMalformed: func(ctx context.Context, payload []byte, err error) { pipe.Malformed(ctx, payload, err) },
	})
	if err != nil {
		return fmt.Errorf("open events %s: %w", plugin.Redact(o.eventsURL), err)
	}
	closers = append(closers, func() { src.Close() })

	objOpts := objects.Options{Logger: logger, DataDir: dataDir, Addr: o.s3Addr}
	if embeddedS3 {
		// The built-in endpoint's own credentials; an external S3 takes
		// its credentials from its URL or DEDUPFN_S3_ACCESS_KEY/SECRET_KEY.
		objOpts.AccessKey, objOpts.SecretKey = access, secret
	}
	if pub, ok := src.(source.Publisher); ok {
		objOpts.Publish = pub.Publish
	} else if embeddedS3 {
		logger.Warn("the built-in S3 endpoint's uploads trigger nothing with --events " + plugin.Redact(o.eventsURL))
	}
	store, err := objects.Open(ctx, o.objectsURL, objOpts)
	if err != nil {
		return fmt.Errorf("open objects %s: %w", plugin.Redact(o.objectsURL), err)
	}
	closers = append(closers, func() { store.Close() })
	for _, b := range o.buckets {
		if err := store.MakeBucket(ctx, b); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}

	runtimes, closeRuntimes, err := openRuntimes(dataDir, o.inlineLimit, logger)
	if err != nil {
		return err
	}
	closers = append(closers, closeRuntimes)

	reg := registry.New(idx, logger)
	if err := reg.Refresh(ctx); err != nil {
		return err
	}
	pipe, err = pipeline.New(pipeline.Config{
		Index: idx, Objects: store, Registry: reg, Runtimes: runtimes, Owner: o.replicaID,
		SpoolDir: filepath.Join(dataDir, "tmp"), Logger: logger, Metrics: promReg, DescribeTTL: o.describeTTL,
	})
	if err != nil {
		return err
	}
	apiSrv, err := api.New(api.Config{
		Pipeline: pipe, Registry: reg, Index: idx, AdminToken: adminToken, TenantTokens: tenantTokens,
		Gatherer: promReg, Logger: logger, Mux: mux,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.apiAddr)
	if err != nil {
		return fmt.Errorf("listen API: %w", err)
	}
	httpSrv := &http.Server{Handler: apiSrv.Handler(), ReadHeaderTimeout: 10 * time.Second}

	// runCtx stops intake; workCtx, cancelled only after the drain timeout,
	// lets in-flight events finish and be recorded.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() {
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("API server: %w", err)
		}
	})
	wg.Go(func() { reg.Run(ctx, registry.DefaultRefresh) })
	if o.reconcile > 0 {
		wg.Go(func() { pipe.RunReconciler(ctx, o.reconcile, o.reconcileGrace) })
	}
	wg.Go(func() {
		if err := src.Run(ctx, func(_ context.Context, ev event.Event) error { return pipe.Handle(workCtx, ev) }); err != nil {
			errc <- fmt.Errorf("event source: %w", err)
		}
	})
	logger.Info("dedupfn serving", "api", "http://"+ln.Addr().String(), "objects", plugin.Redact(o.objectsURL),
		"s3", o.s3Addr, "events", plugin.Redact(o.eventsURL), "index", plugin.Redact(o.indexURL), "data", dataDir)

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("draining: finishing in-flight events (signal again to abort)")
	case runErr = <-errc:
		logger.Error("stopping", "err", runErr)
	}
	timer := time.AfterFunc(defaultDrainTimeout, cancelWork)
	defer timer.Stop()
	shutCtx, cancelShut := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelShut()
	httpSrv.Shutdown(shutCtx)
	src.Close()
	wg.Wait()
	return runErr
}

func parseTenantTokens(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		tenant, token, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || tenant == "" || len(token) < 16 {
			return nil, fmt.Errorf("DEDUPFN_TENANT_TOKENS must be tenant=token,... with tokens of 16+ characters")
		}
		m[token] = tenant
	}
	return m, nil
}
