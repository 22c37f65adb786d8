package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// Defaults of `dedupfn bench`: the workload of the hot-path issue.
const (
	defaultBenchObjects   = 2000
	defaultBenchSize      = 4096
	defaultBenchUploaders = 16
	defaultBenchWasm      = "bin/copy.wasm"
	// benchTimeout bounds each phase's wait for its activations.
	benchTimeout = 10 * time.Minute
	// benchStall fails a phase in which no activation was recorded for
	// this long (events retried forever: see the serve log).
	benchStall = time.Minute
	// benchPoll is how often the end of a phase is polled: the measured
	// wall time is at most this much late.
	benchPoll = 20 * time.Millisecond
)

// Buckets and functions of a bench run, all in a fresh data dir.
const (
	// S3 bucket names are at least 3 characters: "in" cannot be one.
	benchRawBucket     = "bench-raw"  // untriggered: the store alone
	benchInBucket      = "bench-in"   // triggers benchFn
	benchOutBucket     = "bench-out"  // benchFn's outputs
	benchBaseBucket    = "bench-base" // triggers benchBaseFn (--no-dedup)
	benchBaseOutBucket = "bench-base-out"
	benchFn            = "copy"
	benchBaseFn        = "copy-nodedup"
	benchWarmupPrefix  = "warmup/"
)

// envBenchCPUProfile, set by bench on the serve it starts, makes that
// serve write a CPU profile of the end-to-end phase (bench_unix.go).
const envBenchCPUProfile = "DEDUPFN_BENCH_CPUPROFILE"

type benchOptions struct {
	objects, size, uploaders int
	wasm                     string
	json                     bool
	serveArgs                []string
	cpuProfile               string
}

// benchReport is what `dedupfn bench --json` prints. The first keys are
// the figures of the hot-path targets (BENCHMARKS.md).
type benchReport struct {
	RawPutsPerS       float64 `json:"raw_puts_per_s"`
	EventsPerS        float64 `json:"events_per_s"`
	Ratio             float64 `json:"ratio"`
	HitP50MS          float64 `json:"hit_p50_ms"`
	HitP99MS          float64 `json:"hit_p99_ms"`
	MissOverheadP50MS float64 `json:"miss_overhead_p50_ms"`
	Runs              int64   `json:"runs"`
	Distinct          int     `json:"distinct"`

	// FunctionAloneS is the wall time of one run per distinct content in
	// the bench process, nothing else running. CeilingRatio is raw time /
	// (raw time + FunctionAloneS): the ratio of a pipeline that added
	// nothing to the PUTs but the runs, and could not overlap the two.
	FunctionAloneS float64 `json:"function_alone_s"`
	CeilingRatio   float64 `json:"ceiling_ratio"`
	// CPUCeilingRatio is the ratio of an e2e phase that kept every core
	// busy and spent no CPU beyond the raw and alone phases' (0 where CPU
	// is not measured): the bound no pipeline can beat on this machine.
	CPUCeilingRatio float64 `json:"cpu_ceiling_ratio"`
	// CPUBusy is, per phase, the share of the machine's cores that serve
	// and bench kept busy (Linux; 0 elsewhere). Below 1, the runs could
	// use idle cores, so CeilingRatio is not a bound but CPUCeilingRatio is.
	CPUBusy struct {
		Raw   float64 `json:"raw"`
		Alone float64 `json:"alone"`
		E2E   float64 `json:"e2e"`
	} `json:"cpu_busy"`

	Objects   int      `json:"objects"`
	Size      int      `json:"size"`
	Uploaders int      `json:"uploaders"`
	ServeArgs []string `json:"serve_args"`
	// TriggeredPutsPerS is the upload rate into the triggered bucket,
	// while the pipeline works alongside.
	TriggeredPutsPerS float64 `json:"triggered_puts_per_s"`
	Hits              int64   `json:"hits"`
	Waits             int64   `json:"waits"`
	Errors            int64   `json:"errors"`
	// Stage p50s of hits (and waits), and of misses' invoke: where the
	// time goes.
	HitFetchHashP50MS float64 `json:"hit_fetch_hash_p50_ms"`
	HitLookupP50MS    float64 `json:"hit_lookup_p50_ms"`
	HitStoreP50MS     float64 `json:"hit_store_p50_ms"`
	// The same stages' p99s: which one a slow hit is slow in.
	HitLookupP99MS float64 `json:"hit_lookup_p99_ms"`
	HitStoreP99MS  float64 `json:"hit_store_p99_ms"`
	// Waits are duplicates that arrived while their content's run was
	// still going: they end when that run does, so they are not in the
	// hit figures.
	WaitP50MS float64 `json:"wait_p50_ms"`
	WaitP99MS float64 `json:"wait_p99_ms"`
	// Stage p50s of misses (lookup: the claim; store: the output and the
	// completion). MissRestP50MS is what no stage accounts for.
	MissInvokeP50MS float64 `json:"miss_invoke_p50_ms"`
	MissLookupP50MS float64 `json:"miss_lookup_p50_ms"`
	MissStoreP50MS  float64 `json:"miss_store_p50_ms"`
	MissRestP50MS   float64 `json:"miss_rest_p50_ms"`
	QueueP50MS      float64 `json:"queue_p50_ms"`
	QueueMaxMS      float64 `json:"queue_max_ms"`

	Baseline benchComparison `json:"baseline"`
}

// benchComparison is the same uploads through a --no-dedup function
// (the plain notification → function setup) and through dedup.
type benchComparison struct {
	Runs              int64   `json:"runs"`
	Errors            int64   `json:"errors"`
	FunctionMS        float64 `json:"function_ms"`
	WallS             float64 `json:"wall_s"`
	DedupRuns         int64   `json:"dedup_runs"`
	DedupFunctionMS   float64 `json:"dedup_function_ms"`
	DedupWallS        float64 `json:"dedup_wall_s"`
	RunsRatio         float64 `json:"runs_ratio"`          // baseline / dedup
	FunctionTimeRatio float64 `json:"function_time_ratio"` // baseline / dedup
	WallTimeRatio     float64 `json:"wall_time_ratio"`     // baseline / dedup
}

func newBenchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the hot path: a fresh serve, raw PUT rate vs end-to-end events",
		Long: `Start 'dedupfn serve' (this binary) on embedded defaults in a temporary data
dir on free loopback ports and, in one run, side by side:

  raw       N PUTs of --size bytes to an untriggered bucket (--uploaders at once)
  alone     the function run once on each distinct content in this process,
            GOMAXPROCS at once: with raw, the least any pipeline must spend here
  e2e       the copy function (--wasm) on bucket "bench-in"; N PUTs with 50% duplicates
            (N/2 distinct contents, each uploaded twice, shuffled), timed from
            the first upload until every activation is recorded
  baseline  the same uploads to the same code deployed with --no-dedup

It prints the raw PUT rate, events/s and their ratio, the ceiling ratio (raw
time / (raw time + alone time)), hit latency (p50/p99 of activation total_ms of
hits; waits, which end with the run they wait for, apart), the platform overhead of misses
(total_ms - invoke_ms - run_wait_ms, p50), runs vs distinct contents and the dedup vs
no-dedup comparison. It fails if runs != distinct contents. Progress goes
to stderr when it is a terminal. Figures depend on the machine: compare
runs made side by side (--serve-arg to compare serve settings).`,
		Example: `  make bench    # builds bin/dedupfn and bin/copy.wasm, then runs this
  dedupfn bench --wasm bin/copy.wasm --objects 2000 --json
  dedupfn bench --serve-arg=--concurrency=16`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.objects, "objects", defaultBenchObjects, "uploads per phase (half of them duplicates in the e2e and baseline phases)")
	fl.IntVar(&o.size, "size", defaultBenchSize, "bytes per object")
	fl.IntVar(&o.uploaders, "uploaders", defaultBenchUploaders, "concurrent uploaders")
	fl.StringVar(&o.wasm, "wasm", defaultBenchWasm, "the copy function (examples/copy built for GOOS=wasip1 GOARCH=wasm)")
	fl.BoolVar(&o.json, "json", false, "print one JSON object")
	fl.StringArrayVar(&o.serveArgs, "serve-arg", nil, "extra argument for the serve started (repeatable), e.g. --serve-arg=--concurrency=16")
	fl.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of serve during the e2e phase to this file (for go tool pprof)")
	return cmd
}

func (o benchOptions) validate() error {
	switch {
	case o.objects < 2:
		return fmt.Errorf("--objects must be >= 2, got %d", o.objects)
	case o.size < 16:
		return fmt.Errorf("--size must be >= 16 bytes, got %d", o.size)
	case o.uploaders < 1:
		return fmt.Errorf("--uploaders must be >= 1, got %d", o.uploaders)
	}
	return nil
}

func runBench(ctx context.Context, o benchOptions, stdout, stderr io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	code, err := os.ReadFile(o.wasm)
	if err != nil {
		return fmt.Errorf("read --wasm: %w (build it with `make bench` or `GOOS=wasip1 GOARCH=wasm go build -o %s ./examples/copy`)", err, defaultBenchWasm)
	}
	if o.cpuProfile != "" {
		if o.cpuProfile, err = filepath.Abs(o.cpuProfile); err != nil {
			return err
		}
	}
	prog := newBenchProgress(stderr)
	s, err := startBenchServer(ctx, o, prog)
	if err != nil {
		return err
	}
	defer s.stop()
	rep, err := s.run(ctx, o, code, prog)
	if err != nil {
		s.dumpLog(stderr)
		return err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printBenchReport(stdout, rep)
	}
	switch {
	case rep.Errors != 0:
		return fmt.Errorf("bench: %d activations were errors (see `dedupfn activations` on a serve of your own)", rep.Errors)
	case rep.Runs != int64(rep.Distinct):
		return fmt.Errorf("bench: %d runs for %d distinct contents: dedup must run each content exactly once", rep.Runs, rep.Distinct)
	case rep.Baseline.Errors != 0:
		return fmt.Errorf("bench: baseline (--no-dedup): %d activations were errors", rep.Baseline.Errors)
	case rep.Baseline.Runs != int64(o.objects):
		return fmt.Errorf("bench: baseline (--no-dedup) made %d runs for %d uploads, want one per upload", rep.Baseline.Runs, o.objects)
	}
	return nil
}

// benchServer is the `dedupfn serve` subprocess of a bench run.
type benchServer struct {
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	s3, api string
	client  *api.Client
	mc      *minio.Client
	profile string
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startBenchServer(ctx context.Context, o benchOptions, prog *benchProgress) (_ *benchServer, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this binary: %w", err)
	}
	dir, err := os.MkdirTemp("", "dedupfn-bench-*")
	if err != nil {
		return nil, err
	}
	s := &benchServer{dir: dir, logPath: filepath.Join(dir, "serve.log"), exited: make(chan struct{}), profile: o.cpuProfile}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.s3, err = freeLoopbackAddr(); err != nil {
		return nil, err
	}
	if s.api, err = freeLoopbackAddr(); err != nil {
		return nil, err
	}
	args := []string{"serve", "--data", filepath.Join(dir, "data"), "--s3-addr", s.s3, "--api-addr", s.api}
	for _, b := range []string{benchRawBucket, benchInBucket, benchOutBucket, benchBaseBucket, benchBaseOutBucket} {
		args = append(args, "--create-bucket", b)
	}
	args = append(args, o.serveArgs...)
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.cmd = exec.Command(exe, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// A hermetic serve: the quickstart credentials on loopback, no
	// token, tenants or faults from this shell's environment.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEDUPFN_") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	s.cmd.Env = append(s.cmd.Env, "DEDUPFN_ACCESS_KEY="+quickstartAccessKey, "DEDUPFN_SECRET_KEY="+quickstartSecretKey)
	if s.profile != "" {
		if !cpuProfileSupported {
			return nil, errors.New("--cpuprofile is not supported on this system")
		}
		s.cmd.Env = append(s.cmd.Env, envBenchCPUProfile+"="+s.profile)
	}
	prog.line("starting %s (data in %s)", strings.Join(append([]string{filepath.Base(exe)}, args...), " "), dir)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start serve: %w", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	s.client = &api.Client{BaseURL: "http://" + s.api}
	s.mc, err = minio.New(s.s3, &minio.Options{
		Creds: credentials.NewStaticV4(quickstartAccessKey, quickstartSecretKey, ""), Region: "us-east-1",
	})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.api + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("serve exited at start: %s", s.logTail())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("serve not ready after 30s: %s", s.logTail())
		}
	}
}

// stop ends serve (it drains first) and removes the data dir. Safe twice.
func (s *benchServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.exited:
		case <-time.After(45 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
		s.cmd = nil
	}
	os.RemoveAll(s.dir)
}

func (s *benchServer) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "serve log:\n" + strings.Join(lines, "\n")
}

func (s *benchServer) dumpLog(w io.Writer) { fmt.Fprintln(w, s.logTail()) }

// benchUpload is one PUT of a workload.
type benchUpload struct {
	key     string
	content int // index into the distinct contents
}

// benchWorkload returns n uploads over ceil(n/2) distinct contents of
// size bytes: each content twice (the last once when n is odd), shuffled.
func benchWorkload(n, size int) (uploads []benchUpload, contents [][]byte) {
	distinct := (n + 1) / 2
	r := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	contents = make([][]byte, distinct)
	for i := range contents {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		copy(b, fmt.Sprintf("dedupfn-bench %d\n", i)) // distinct whatever the PRNG
		contents[i] = b
	}
	for i := range n {
		uploads = append(uploads, benchUpload{key: fmt.Sprintf("obj/%06d", i), content: i % distinct})
	}
	r.Shuffle(len(uploads), func(i, j int) { uploads[i], uploads[j] = uploads[j], uploads[i] })
	return uploads, contents
}

// put uploads every upload to bucket with o.uploaders at once.
func (s *benchServer) put(ctx context.Context, o benchOptions, bucket string, uploads []benchUpload, contents [][]byte, bar *benchBar) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan benchUpload)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range o.uploaders {
		wg.Go(func() {
			for u := range work {
				body := contents[u.content]
				_, err := s.mc.PutObject(ctx, bucket, u.key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
				if err != nil {
					errOnce.Do(func() {
						firstErr = fmt.Errorf("put %s/%s: %w", bucket, u.key, err)
						cancel()
					})
					continue
				}
				bar.add(1)
			}
		})
	}
feed:
	for _, u := range uploads {
		select {
		case work <- u:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// waitEvents polls the API until the events total reaches want.
func (s *benchServer) waitEvents(ctx context.Context, want int64, bar *benchBar, base int64) (activation.Stats, error) {
	deadline := time.Now().Add(benchTimeout)
	last, lastChange := int64(-1), time.Now()
	for {
		st, err := s.client.Stats(ctx)
		if err != nil {
			return st, err
		}
		bar.set(st.Events - base)
		if st.Events >= want {
			return st, nil
		}
		if st.Events != last {
			last, lastChange = st.Events, time.Now()
		}
		if time.Since(lastChange) > benchStall {
			return st, fmt.Errorf("no activation recorded for %s: %d of %d recorded", benchStall, st.Events-base, want-base)
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("timed out after %s: %d of %d activations recorded", benchTimeout, st.Events-base, want-base)
		}
		select {
		case <-s.exited:
			return st, errors.New("serve exited during the run")
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(benchPoll):
		}
	}
}

func (s *benchServer) deploy(ctx context.Context, name, bucket, out string, noDedup bool, code []byte) error {
	fn := registry.Function{
		Name: name, Runtime: "wasm", NoDedup: noDedup,
		Trigger: registry.Trigger{Bucket: bucket}, Output: registry.Output{Bucket: out, KeyTemplate: "{key}"},
		Limits:      registry.Limits{Timeout: registry.DefaultTimeout, Lease: registry.DefaultLease, MemoryMB: registry.DefaultMemoryMB},
		MaxAttempts: registry.DefaultMaxAttempts,
	}
	if _, err := s.client.Deploy(ctx, api.DeployRequest{Function: fn, Code: code}); err != nil {
		return fmt.Errorf("deploy %s: %w", name, err)
	}
	return nil
}

// phase uploads the workload to a bucket and, when triggered, waits until
// every upload has its activation. It returns the upload time, the time
// until the last activation and the stats totals added meanwhile.
func (s *benchServer) phase(ctx context.Context, o benchOptions, prog *benchProgress, name, bucket string, triggered bool,
	uploads []benchUpload, contents [][]byte) (upload, wall time.Duration, delta activation.Stats, err error) {
	before, err := s.client.Stats(ctx)
	if err != nil {
		return 0, 0, delta, err
	}
	bar := prog.bar(len(uploads), name+": PUT")
	start := time.Now()
	if err := s.put(ctx, o, bucket, uploads, contents, bar); err != nil {
		return 0, 0, delta, fmt.Errorf("%s: %w", name, err)
	}
	upload = time.Since(start)
	bar.done("%s: %d PUTs in %s (%.0f/s)", name, len(uploads), upload.Round(time.Millisecond), float64(len(uploads))/upload.Seconds())
	if !triggered {
		return upload, upload, delta, nil
	}
	bar = prog.bar(len(uploads), name+": recorded")
	after, err := s.waitEvents(ctx, before.Events+int64(len(uploads)), bar, before.Events)
	if err != nil {
		return 0, 0, delta, fmt.Errorf("%s: %w", name, err)
	}
	wall = time.Since(start)
	bar.done("%s: %d activations recorded %s after the first upload (%.0f/s)", name, len(uploads), wall.Round(time.Millisecond), float64(len(uploads))/wall.Seconds())
	delta = activation.Stats{
		Events: after.Events - before.Events, Runs: after.Runs - before.Runs, Hits: after.Hits - before.Hits,
		Waits: after.Waits - before.Waits, Errors: after.Errors - before.Errors, FunctionMS: after.FunctionMS - before.FunctionMS,
	}
	return upload, wall, delta, nil
}

func (s *benchServer) run(ctx context.Context, o benchOptions, code []byte, prog *benchProgress) (benchReport, error) {
	rep := benchReport{Objects: o.objects, Size: o.size, Uploaders: o.uploaders, ServeArgs: o.serveArgs}
	if rep.ServeArgs == nil {
		rep.ServeArgs = []string{}
	}
	if err := s.deploy(ctx, benchFn, benchInBucket, benchOutBucket, false, code); err != nil {
		return rep, err
	}
	if err := s.deploy(ctx, benchBaseFn, benchBaseBucket, benchBaseOutBucket, true, code); err != nil {
		return rep, err
	}
	// Warm up: one run compiles the module (both functions share the
	// code, so the compiled module), so that the phases measure the
	// steady state rather than one compile.
	warm := [][]byte{[]byte(fmt.Sprintf("dedupfn-bench warm-up %d", time.Now().UnixNano()))}
	if _, _, _, err := s.phase(ctx, o, prog, "warm-up", benchInBucket, true, []benchUpload{{key: benchWarmupPrefix + "0"}}, warm); err != nil {
		return rep, err
	}

	uploads, contents := benchWorkload(o.objects, o.size)
	rep.Distinct = len(contents)

	pids := []int{s.cmd.Process.Pid, os.Getpid()}
	busy := startBusyMeter(pids...)
	raw, _, _, err := s.phase(ctx, o, prog, "raw", benchRawBucket, false, uploads, contents)
	if err != nil {
		return rep, err
	}
	rep.CPUBusy.Raw = busy.busy()
	rep.RawPutsPerS = float64(o.objects) / raw.Seconds()
	busy = startBusyMeter(pids...)
	alone, err := functionAlone(ctx, code, contents)
	if err != nil {
		return rep, err
	}
	rep.CPUBusy.Alone = busy.busy()
	prog.line("function alone: %d runs in %s", len(contents), alone.Round(time.Millisecond))
	rep.FunctionAloneS = alone.Seconds()
	rep.CeilingRatio = raw.Seconds() / (raw.Seconds() + alone.Seconds())
	if rep.CPUBusy.Raw > 0 && rep.CPUBusy.Alone > 0 {
		rep.CPUCeilingRatio = 1 / (rep.CPUBusy.Raw + rep.CPUBusy.Alone*alone.Seconds()/raw.Seconds())
	}

	if err := s.startProfile(); err != nil {
		return rep, err
	}
	busy = startBusyMeter(pids...)
	up, wall, st, err := s.phase(ctx, o, prog, "e2e", benchInBucket, true, uploads, contents)
	if err != nil {
		return rep, err
	}
	rep.CPUBusy.E2E = busy.busy()
	if err := s.stopProfile(ctx); err != nil {
		return rep, err
	}
	rep.TriggeredPutsPerS = float64(o.objects) / up.Seconds()
	rep.EventsPerS = float64(o.objects) / wall.Seconds()
	rep.Ratio = rep.EventsPerS / rep.RawPutsPerS
	rep.Runs, rep.Hits, rep.Waits, rep.Errors = st.Runs, st.Hits, st.Waits, st.Errors
	rep.Baseline.DedupRuns, rep.Baseline.DedupFunctionMS, rep.Baseline.DedupWallS = st.Runs, st.FunctionMS, wall.Seconds()

	recs, err := s.client.Activations(ctx, benchFn, o.objects+100)
	if err != nil {
		return rep, err
	}
	rep.addLatencies(recs)

	_, wall, st, err = s.phase(ctx, o, prog, "baseline", benchBaseBucket, true, uploads, contents)
	if err != nil {
		return rep, err
	}
	b := &rep.Baseline
	b.Runs, b.Errors, b.FunctionMS, b.WallS = st.Runs, st.Errors, st.FunctionMS, wall.Seconds()
	b.RunsRatio = ratio(float64(b.Runs), float64(b.DedupRuns))
	b.FunctionTimeRatio = ratio(b.FunctionMS, b.DedupFunctionMS)
	b.WallTimeRatio = ratio(b.WallS, b.DedupWallS)
	return rep, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// addLatencies fills the latency figures from the e2e phase's
// activation records (the warm-up's excluded).
func (rep *benchReport) addLatencies(recs []activation.Record) {
	var hit, wait, fetch, lookup, store, queue []float64
	var overhead, invoke, missLookup, missStore, missRest []float64
	for _, r := range recs {
		if strings.HasPrefix(r.Event.Key, benchWarmupPrefix) {
			continue
		}
		t := r.Timings
		queue = append(queue, t.QueueMS)
		switch r.Decision {
		case activation.Hit:
			hit = append(hit, t.TotalMS)
			fetch, lookup, store = append(fetch, t.FetchMS), append(lookup, t.LookupMS), append(store, t.StoreMS)
		case activation.Wait:
			wait = append(wait, t.TotalMS)
		case activation.Miss:
			overhead = append(overhead, t.TotalMS-t.InvokeMS-t.RunWaitMS)
			invoke, missLookup, missStore = append(invoke, t.InvokeMS), append(missLookup, t.LookupMS), append(missStore, t.StoreMS)
			missRest = append(missRest, t.TotalMS-t.FetchMS-t.LookupMS-t.RunWaitMS-t.InvokeMS-t.StoreMS)
		}
	}
	rep.HitP50MS, rep.HitP99MS = percentile(hit, 50), percentile(hit, 99)
	rep.WaitP50MS, rep.WaitP99MS = percentile(wait, 50), percentile(wait, 99)
	rep.HitFetchHashP50MS, rep.HitLookupP50MS, rep.HitStoreP50MS = percentile(fetch, 50), percentile(lookup, 50), percentile(store, 50)
	rep.HitLookupP99MS, rep.HitStoreP99MS = percentile(lookup, 99), percentile(store, 99)
	rep.MissOverheadP50MS, rep.MissInvokeP50MS = percentile(overhead, 50), percentile(invoke, 50)
	rep.MissLookupP50MS, rep.MissStoreP50MS, rep.MissRestP50MS = percentile(missLookup, 50), percentile(missStore, 50), percentile(missRest, 50)
	rep.QueueP50MS, rep.QueueMaxMS = percentile(queue, 50), percentile(queue, 100)
}

// percentile returns the nearest-rank p-th percentile of xs (0 if empty),
// rounded to microseconds.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(int64(s[i]*1000+0.5)) / 1000
}

func (s *benchServer) startProfile() error {
	if s.profile == "" {
		return nil
	}
	os.Remove(s.profile)
	return s.cmd.Process.Signal(cpuProfileStart)
}

// stopProfile asks serve to write the profile and waits until it has.
func (s *benchServer) stopProfile(ctx context.Context) error {
	if s.profile == "" {
		return nil
	}
	if err := s.cmd.Process.Signal(cpuProfileStop); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(s.profile); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serve wrote no CPU profile to %s in 30s", s.profile)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func printBenchReport(w io.Writer, r benchReport) {
	serveArgs := "none"
	if len(r.ServeArgs) > 0 {
		serveArgs = strings.Join(r.ServeArgs, " ")
	}
	fmt.Fprintf(w, "dedupfn bench: %d objects of %d bytes (%d distinct), %d uploaders, extra serve args: %s\n\n",
		r.Objects, r.Size, r.Distinct, r.Uploaders, serveArgs)
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "raw PUT/s (untriggered bucket)\t%.0f\t\n", r.RawPutsPerS)
	fmt.Fprintf(tw, "end-to-end events/s\t%.0f\tratio %.2f× the raw PUT rate (PUT/s while triggered: %.0f)\n", r.EventsPerS, r.Ratio, r.TriggeredPutsPerS)
	fmt.Fprintf(tw, "ceiling ratio\t%.2f×\traw time ÷ (raw time + %d runs of the function alone, %.2f s)\n", r.CeilingRatio, r.Distinct, r.FunctionAloneS)
	if r.CPUBusy.Raw > 0 {
		fmt.Fprintf(tw, "cores busy\t\traw %.0f%%, alone %.0f%%, e2e %.0f%% (serve + bench)\n", 100*r.CPUBusy.Raw, 100*r.CPUBusy.Alone, 100*r.CPUBusy.E2E)
		fmt.Fprintf(tw, "CPU ceiling ratio\t%.2f×\tif the e2e phase kept every core busy and added no CPU to the PUTs' and the runs'\n", r.CPUCeilingRatio)
	}
	fmt.Fprintf(tw, "hit total_ms p50 / p99\t%.2f / %.2f\tp50 fetch+hash %.2f, lookup %.2f, store %.2f; p99 lookup %.2f, store %.2f\n",
		r.HitP50MS, r.HitP99MS, r.HitFetchHashP50MS, r.HitLookupP50MS, r.HitStoreP50MS, r.HitLookupP99MS, r.HitStoreP99MS)
	fmt.Fprintf(tw, "wait total_ms p50 / p99\t%.2f / %.2f\t%d duplicates that came while their content ran\n", r.WaitP50MS, r.WaitP99MS, r.Waits)
	fmt.Fprintf(tw, "miss total−invoke p50 ms\t%.2f\tp50 invoke %.2f, lookup %.2f, store %.2f, rest %.2f\n",
		r.MissOverheadP50MS, r.MissInvokeP50MS, r.MissLookupP50MS, r.MissStoreP50MS, r.MissRestP50MS)
	fmt.Fprintf(tw, "queue_ms p50 / max\t%.1f / %.1f\t\n", r.QueueP50MS, r.QueueMaxMS)
	fmt.Fprintf(tw, "runs / distinct\t%d / %d\thits %d (waits %d), errors %d\n", r.Runs, r.Distinct, r.Hits, r.Waits, r.Errors)
	tw.Flush()
	b := r.Baseline
	fmt.Fprintf(w, "\nsame uploads, dedup vs --no-dedup baseline:\n")
	tw = tabwriter.NewWriter(w, 0, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tno-dedup\tdedup\tno-dedup/dedup\t\n")
	fmt.Fprintf(tw, "runs\t%d\t%d\t%.2f×\t\n", b.Runs, b.DedupRuns, b.RunsRatio)
	fmt.Fprintf(tw, "errors\t%d\t%d\t\t\n", b.Errors, r.Errors)
	fmt.Fprintf(tw, "function ms\t%.0f\t%.0f\t%.2f×\t\n", b.FunctionMS, b.DedupFunctionMS, b.FunctionTimeRatio)
	fmt.Fprintf(tw, "wall s\t%.2f\t%.2f\t%.2f×\t\n", b.WallS, b.DedupWallS, b.WallTimeRatio)
	tw.Flush()
}

// benchProgress shows progress bars on a terminal and plain lines
// otherwise.
type benchProgress struct {
	w   io.Writer
	tty bool
	mu  sync.Mutex
}

func newBenchProgress(w io.Writer) *benchProgress {
	p := &benchProgress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *benchProgress) line(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "bench: "+format+"\n", args...)
}

// benchBar is one stage's progress: a bar on a terminal, else nothing
// until its closing line.
type benchBar struct {
	p   *benchProgress
	bar *progressbar.ProgressBar
}

func (p *benchProgress) bar(max int, desc string) *benchBar {
	b := &benchBar{p: p}
	if p.tty {
		b.bar = progressbar.NewOptions(max, progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(), progressbar.OptionSetWidth(30), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	return b
}

func (b *benchBar) add(n int) {
	if b.bar != nil {
		b.bar.Add(n)
	}
}

func (b *benchBar) set(n int64) {
	if b.bar != nil {
		b.bar.Set64(n)
	}
}

// done ends the bar and prints its result line.
func (b *benchBar) done(format string, args ...any) {
	if b.bar != nil {
		b.bar.Finish() // clears the bar (OptionClearOnFinish)
	}
	b.p.line(format, args...)
}
