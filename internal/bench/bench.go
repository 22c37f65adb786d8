// Package bench is the harness of `dedupfn bench`: it starts `dedupfn
// serve` on embedded defaults in a temporary data dir, measures the raw
// PUT rate of its S3 endpoint, the function alone, the store work alone
// (in this process, on an embedded store of its own), the end-to-end event
// rate with 50% duplicates and the same uploads through a --no-dedup
// function, and reports them (Report). The cluster bench of test/e2e
// computes its percentiles as this package does (Percentile).
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
)

// Defaults of `dedupfn bench`: the workload of the hot-path issue.
const (
	// DefaultObjects is the number of uploads per phase.
	DefaultObjects = 2000
	// DefaultSize is the size of each upload, in bytes.
	DefaultSize = 4096
	// DefaultUploaders is how many uploads are made at once.
	DefaultUploaders = 16
	// phaseTimeout bounds each phase's wait for its activations.
	phaseTimeout = 10 * time.Minute
	// stall fails a phase in which no activation was recorded for
	// this long (events retried forever: see the serve log).
	stall = time.Minute
	// poll is how often the end of a phase is polled: the measured
	// wall time is at most this much late.
	poll = 20 * time.Millisecond
)

// Buckets and functions of a bench run, all in a fresh data dir.
const (
	// S3 bucket names are at least 3 characters: "in" cannot be one.
	rawBucket     = "bench-raw"  // untriggered: the store alone
	inBucket      = "bench-in"   // triggers fnName
	outBucket     = "bench-out"  // fnName's outputs
	baseBucket    = "bench-base" // triggers baseFnName (--no-dedup)
	baseOutBucket = "bench-base-out"
	fnName        = "copy"
	baseFnName    = "copy-nodedup"
	warmupPrefix  = "warmup/"
)

// Options are a bench run's workload and the serve it starts. Zero
// Objects, Size and Uploaders take the defaults above.
type Options struct {
	// Objects is the number of uploads per phase (half of them
	// duplicates in the e2e and baseline phases), at least 2.
	Objects int
	// Size is the size of each upload in bytes, at least 16.
	Size int
	// Uploaders is how many uploads are made at once, at least 1.
	Uploaders int
	// Code is the copy function (examples/copy built for GOOS=wasip1
	// GOARCH=wasm).
	Code []byte
	// Serve is the dedupfn binary whose serve is started (default: this
	// executable).
	Serve string
	// ServeArgs are extra arguments of the serve started.
	ServeArgs []string
	// AccessKey and SecretKey are the credentials of the serve's built-in
	// S3 endpoint (set in its environment).
	AccessKey, SecretKey string
	// CPUProfile, if set, is where the serve writes a CPU profile of the
	// e2e phase, and its block and mutex profiles to CPUProfile.block and
	// CPUProfile.mutex (CPUProfileSupported systems only); and this
	// process a CPU profile of the store-alone phase (the same store code,
	// in-process here) to CPUProfile.store-alone, to set beside it.
	CPUProfile string
	// Log receives the serve's last log lines when a run fails after the
	// serve started (nil: nowhere).
	Log io.Writer
}

// Step is one report of a run's progress. A stage (a phase's uploads, or
// its activations being recorded) reports Done of Total as it goes, from
// 0; Line, when set, is a line for people that ends the stage under way
// (or says what was done between stages).
type Step struct {
	Stage       string
	Done, Total int64
	Line        string
}

// reporter serializes a run's steps to its callback (uploaders report
// from many goroutines).
type reporter struct {
	mu sync.Mutex
	f  func(Step)
}

func (p *reporter) report(s Step) {
	if p.f == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.f(s)
}

func (p *reporter) line(format string, args ...any) {
	p.report(Step{Line: fmt.Sprintf(format, args...)})
}

// Run starts a serve, runs every phase and stops the serve. progress (may
// be nil) is called with each step, one call at a time.
func Run(ctx context.Context, o Options, progress func(Step)) (Report, error) {
	prog := &reporter{f: progress}
	o.Objects = cmp.Or(o.Objects, DefaultObjects)
	o.Size = cmp.Or(o.Size, DefaultSize)
	o.Uploaders = cmp.Or(o.Uploaders, DefaultUploaders)
	if o.CPUProfile != "" {
		if !CPUProfileSupported {
			return Report{}, errors.New("a CPU profile of serve is not supported on this system")
		}
		var err error
		if o.CPUProfile, err = filepath.Abs(o.CPUProfile); err != nil {
			return Report{}, err
		}
	}
	s, err := startServer(ctx, o, prog)
	if err != nil {
		return Report{}, err
	}
	defer s.stop()
	rep, err := s.run(ctx, o, prog)
	if err != nil && o.Log != nil {
		fmt.Fprintln(o.Log, s.logTail())
	}
	return rep, err
}

// Report is what `dedupfn bench --json` prints. The first keys are
// the figures of the hot-path targets (BENCHMARKS.md).
type Report struct {
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
		Raw        float64 `json:"raw"`
		Alone      float64 `json:"alone"`
		StoreAlone float64 `json:"store_alone"`
		E2E        float64 `json:"e2e"`
	} `json:"cpu_busy"`

	// StoreAloneS is the wall time of the e2e phase's store work alone
	// (runStoreAlone): each upload and the output write its miss (a Put)
	// or hit (a Copy) makes, in-process on an embedded store, no dedupfn.
	// StoreCeilingRatio is (StoreAloneS + FunctionAloneS) / E2ES: the e2e
	// rate as a share of the rate of a pipeline that added nothing to the
	// store work and the runs and could not overlap them (target ≥ 0.9).
	StoreAloneS       float64 `json:"store_alone_s"`
	StoreCeilingRatio float64 `json:"store_ceiling_ratio"`
	E2ES              float64 `json:"e2e_s"`
	// The store-alone phase's output writes, p50 and p99: what a hit's
	// and a miss's store stage cannot go below.
	StoreAloneHitWriteP50MS  float64 `json:"store_alone_hit_write_p50_ms"`
	StoreAloneHitWriteP99MS  float64 `json:"store_alone_hit_write_p99_ms"`
	StoreAloneMissWriteP50MS float64 `json:"store_alone_miss_write_p50_ms"`

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

	Baseline Comparison `json:"baseline"`
}

// Comparison is the same uploads through a --no-dedup function
// (the plain notification → function setup) and through dedup.
type Comparison struct {
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

// Check fails a report whose runs are wrong: errors, a run count that is
// not one per distinct content with dedup, or not one per upload without.
func (r Report) Check() error {
	switch {
	case r.Errors != 0:
		return fmt.Errorf("bench: %d activations were errors (see `dedupfn activations` on a serve of your own)", r.Errors)
	case r.Runs != int64(r.Distinct):
		return fmt.Errorf("bench: %d runs for %d distinct contents: dedup must run each content exactly once", r.Runs, r.Distinct)
	case r.Baseline.Errors != 0:
		return fmt.Errorf("bench: baseline (--no-dedup): %d activations were errors", r.Baseline.Errors)
	case r.Baseline.Runs != int64(r.Objects):
		return fmt.Errorf("bench: baseline (--no-dedup) made %d runs for %d uploads, want one per upload", r.Baseline.Runs, r.Objects)
	}
	return nil
}

// run deploys the two functions, warms up and runs every phase.
func (s *server) run(ctx context.Context, o Options, prog *reporter) (Report, error) {
	code := o.Code
	rep := Report{Objects: o.Objects, Size: o.Size, Uploaders: o.Uploaders, ServeArgs: o.ServeArgs}
	if rep.ServeArgs == nil {
		rep.ServeArgs = []string{}
	}
	if err := s.deploy(ctx, fnName, inBucket, outBucket, false, code); err != nil {
		return rep, err
	}
	if err := s.deploy(ctx, baseFnName, baseBucket, baseOutBucket, true, code); err != nil {
		return rep, err
	}
	// Warm up: one run compiles the module (both functions share the
	// code, so the compiled module), so that the phases measure the
	// steady state rather than one compile.
	warm := [][]byte{[]byte(fmt.Sprintf("dedupfn-bench warm-up %d", time.Now().UnixNano()))}
	if _, _, _, err := s.phase(ctx, o, prog, "warm-up", inBucket, true, []upload{{key: warmupPrefix + "0"}}, warm); err != nil {
		return rep, err
	}

	uploads, contents := workload(o.Objects, o.Size)
	rep.Distinct = len(contents)

	pids := []int{s.cmd.Process.Pid, os.Getpid()}
	busy := startBusyMeter(pids...)
	raw, _, _, err := s.phase(ctx, o, prog, "raw", rawBucket, false, uploads, contents)
	if err != nil {
		return rep, err
	}
	rep.CPUBusy.Raw = busy.busy()
	rep.RawPutsPerS = float64(o.Objects) / raw.Seconds()
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

	sdir, err := storeAloneDir(s.dir)
	if err != nil {
		return rep, err
	}
	stopProfile, err := profileThisProcess(o.CPUProfile, ".store-alone")
	if err != nil {
		return rep, err
	}
	busy = startBusyMeter(pids...)
	sa, err := runStoreAlone(ctx, o, sdir, uploads, contents, prog)
	stopProfile()
	if err != nil {
		return rep, err
	}
	rep.CPUBusy.StoreAlone = busy.busy()
	os.RemoveAll(sdir)
	rep.StoreAloneS = sa.wall.Seconds()
	rep.StoreAloneHitWriteP50MS, rep.StoreAloneHitWriteP99MS = Percentile(sa.hitWrite, 50), Percentile(sa.hitWrite, 99)
	rep.StoreAloneMissWriteP50MS = Percentile(sa.missWrite, 50)
	prog.line("store alone: %d PUTs and their output writes in %s (%.0f/s)", len(uploads), sa.wall.Round(time.Millisecond), float64(len(uploads))/sa.wall.Seconds())

	if err := s.startProfile(); err != nil {
		return rep, err
	}
	busy = startBusyMeter(pids...)
	up, wall, st, err := s.phase(ctx, o, prog, "e2e", inBucket, true, uploads, contents)
	if err != nil {
		return rep, err
	}
	rep.CPUBusy.E2E = busy.busy()
	if err := s.stopProfile(ctx); err != nil {
		return rep, err
	}
	rep.TriggeredPutsPerS = float64(o.Objects) / up.Seconds()
	rep.EventsPerS = float64(o.Objects) / wall.Seconds()
	rep.E2ES = wall.Seconds()
	rep.StoreCeilingRatio = (rep.StoreAloneS + rep.FunctionAloneS) / wall.Seconds()
	rep.Ratio = rep.EventsPerS / rep.RawPutsPerS
	rep.Runs, rep.Hits, rep.Waits, rep.Errors = st.Runs, st.Hits, st.Waits, st.Errors
	rep.Baseline.DedupRuns, rep.Baseline.DedupFunctionMS, rep.Baseline.DedupWallS = st.Runs, st.FunctionMS, wall.Seconds()

	recs, err := s.client.Activations(ctx, fnName, o.Objects+100)
	if err != nil {
		return rep, err
	}
	rep.addLatencies(recs)

	_, wall, st, err = s.phase(ctx, o, prog, "baseline", baseBucket, true, uploads, contents)
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
func (rep *Report) addLatencies(recs []activation.Record) {
	var hit, wait, fetch, lookup, store, queue []float64
	var overhead, invoke, missLookup, missStore, missRest []float64
	for _, r := range recs {
		if strings.HasPrefix(r.Event.Key, warmupPrefix) {
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
	rep.HitP50MS, rep.HitP99MS = Percentile(hit, 50), Percentile(hit, 99)
	rep.WaitP50MS, rep.WaitP99MS = Percentile(wait, 50), Percentile(wait, 99)
	rep.HitFetchHashP50MS, rep.HitLookupP50MS, rep.HitStoreP50MS = Percentile(fetch, 50), Percentile(lookup, 50), Percentile(store, 50)
	rep.HitLookupP99MS, rep.HitStoreP99MS = Percentile(lookup, 99), Percentile(store, 99)
	rep.MissOverheadP50MS, rep.MissInvokeP50MS = Percentile(overhead, 50), Percentile(invoke, 50)
	rep.MissLookupP50MS, rep.MissStoreP50MS, rep.MissRestP50MS = Percentile(missLookup, 50), Percentile(missStore, 50), Percentile(missRest, 50)
	rep.QueueP50MS, rep.QueueMaxMS = Percentile(queue, 50), Percentile(queue, 100)
}

// Percentile returns the nearest-rank p-th percentile of xs (0 if empty),
// rounded to microseconds.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(int64(s[i]*1000+0.5)) / 1000
}

// upload is one PUT of a workload.
type upload struct {
	key     string
	content int // index into the distinct contents
}

// workload returns n uploads over ceil(n/2) distinct contents of
// size bytes: each content twice (the last once when n is odd), shuffled.
func workload(n, size int) (uploads []upload, contents [][]byte) {
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
		uploads = append(uploads, upload{key: fmt.Sprintf("obj/%06d", i), content: i % distinct})
	}
	r.Shuffle(len(uploads), func(i, j int) { uploads[i], uploads[j] = uploads[j], uploads[i] })
	return uploads, contents
}

// ProfileSignalsFlag is the hidden serve flag (its value a file path) by
// which Run asks the serve it starts to write a CPU profile of the e2e
// phase (ProfileOnSignals). Release builds carry no profiler otherwise.
const ProfileSignalsFlag = "debug-profile-signals"
