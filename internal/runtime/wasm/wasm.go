// Package wasm runs functions compiled to WebAssembly as WASI commands
// (wasip1) with wazero: the input object on stdin, the output object on
// stdout, params as JSON in the environment variable DEDUPFN_PARAMS (and
// each param as DEDUPFN_PARAM_<NAME>), the function's name as argv[0],
// stderr kept as the activation's logs. A function sees no host files, no
// network, a deterministic clock and random source, and runs under a
// memory and a time limit. Invoked directly (runtime.Invocation.Value, an
// OpenWhisk action's invocation) a module reads the parameters as JSON on
// stdin and writes its result, one JSON object, on stdout.
//
// Each invocation instantiates a fresh module instance, so nothing is
// shared between invocations; invocations may run concurrently. Compiled
// modules are cached in memory by code digest and, with Options.CacheDir,
// on disk across restarts. A module with a function over CodeLimits is
// refused before it is compiled (limits.go).
package wasm

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/dedupfn/dedupfn/internal/runtime"
)

// Defaults.
const (
	// Name is the runtime's name as used in `fn deploy`.
	Name = "wasm"
	// WazeroVersion is the wazero release this runtime is built with; it
	// is part of Version, so upgrading wazero invalidates cached results.
	// A test checks it against go.mod.
	WazeroVersion = "1.12.0"
	// ABIVersion is the version of the contract between dedupfn and a
	// module (stdin/stdout/env layout, clock and random source). Bump it
	// when that contract changes.
	ABIVersion = "1"
	// DefaultMaxLogBytes bounds the stderr kept per invocation when
	// Limits.MaxLogBytes is 0.
	DefaultMaxLogBytes = 64 << 10
	// MaxResultBytes bounds a direct invocation's result (its stdout),
	// as the process runtime bounds a result line.
	MaxResultBytes = 64 << 20
	// DefaultMaxCachedModules is how many compiled modules are kept in
	// memory when Options.MaxCachedModules is 0.
	DefaultMaxCachedModules = 32
	// maxMemoryBytes is the most a 32-bit wasm memory can hold (65536
	// pages); it is the limit when Limits.MemoryBytes is 0.
	maxMemoryBytes = 65536 * pageSize
	pageSize       = 65536

	// compileWorkers is how many functions of one module are compiled at
	// once. Why not 1, wazero's default: only its parallel path checks
	// the context (between functions), so with one worker a compile
	// could not be cancelled at all.
	compileWorkers = 2

	// The default CodeLimits on one function of a module (limits.go),
	// from measurements on wazero 1.12, amd64 (docs/security.md): the
	// largest functions of real modules (Go 1.26, TinyGo, Rust, Zig) have
	// 50,636 bytes, 2,783 blocks and branches, 549 levels of nesting, 813
	// locals and 113,820 branches × values; a function at the limits
	// compiles in at most about 4 s and 250 MB.
	DefaultMaxFunctionBytes        = 512 << 10
	DefaultMaxFunctionBranches     = 8192
	DefaultMaxFunctionNesting      = 4096
	DefaultMaxFunctionLocals       = 50_000
	DefaultMaxFunctionBranchValues = 500_000
)

// Env names the module sees.
const (
	// EnvParams holds the function's params as a JSON object of strings.
	EnvParams = "DEDUPFN_PARAMS"
	// EnvParamPrefix prefixes one variable per param; the param name is
	// upper-cased and every byte outside [A-Z0-9_] becomes '_'.
	EnvParamPrefix = "DEDUPFN_PARAM_"
)

// Options configure a Runtime.
type Options struct {
	// CacheDir, if set, keeps compiled modules on disk (wazero's
	// compilation cache) so a restart does not compile them again.
	CacheDir string
	// Logger receives debug logs of compilations; nil discards them.
	Logger *slog.Logger
	// MaxCachedModules bounds the compiled modules kept in memory
	// (least recently used are dropped); 0 means DefaultMaxCachedModules.
	MaxCachedModules int
	// CodeLimits bound each function of a module; a module over them is
	// refused before it is compiled (limits.go).
	CodeLimits CodeLimits
}

// Runtime runs WebAssembly functions. It is safe for concurrent use.
type Runtime struct {
	log       *slog.Logger
	wz        wazero.Runtime
	cache     wazero.CompilationCache
	maxCached int
	limits    CodeLimits

	// closing ends when Close is called: running invocations and
	// compiles are stopped.
	closing context.Context
	stop    context.CancelFunc

	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
	mods    map[string]*list.Element // digest → element of lru holding *compiled
	lru     *list.List               // front = most recently used
}

var (
	_ runtime.Runtime  = (*Runtime)(nil)
	_ runtime.Preparer = (*Runtime)(nil)
	_ runtime.Loader   = (*Runtime)(nil)
)

// compiled is one cache entry; ready is closed once mod or err is set.
type compiled struct {
	digest string
	ready  chan struct{}
	mod    wazero.CompiledModule
	err    error
	// cancelled: err is the compile's context ending, not the module's
	// fault; a waiter whose own context is alive compiles again.
	cancelled bool
	// pins counts Loads not yet released: a pinned module is not evicted.
	pins int
}

var (
	errTimeout     = errors.New("function exceeded its time limit")
	errOutputLimit = errors.New("output limit exceeded")
	errClosed      = errors.New("runtime closed")
)

// New returns a Runtime. It compiles nothing until the first Invoke.
func New(opts Options) (*Runtime, error) {
	if opts.MaxCachedModules < 0 {
		return nil, fmt.Errorf("wasm: max cached modules must be >= 0, got %d", opts.MaxCachedModules)
	}
	if err := opts.CodeLimits.validate(); err != nil {
		return nil, err
	}
	maxCached := opts.MaxCachedModules
	if maxCached == 0 {
		maxCached = DefaultMaxCachedModules
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "runtime.wasm")

	cache := wazero.NewCompilationCache()
	if opts.CacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(opts.CacheDir); err != nil {
			return nil, fmt.Errorf("wasm: open compilation cache %s: %w", opts.CacheDir, err)
		}
	}
	ctx := context.Background()
	// Why CloseOnContextDone: it is how wazero interrupts a guest stuck in
	// a loop; without it a timeout could not stop the function.
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithCloseOnContextDone(true)
	wz := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, wz); err != nil {
		_ = wz.Close(ctx)
		_ = cache.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiate wasi: %w", err)
	}
	closing, stop := context.WithCancel(context.Background())
	return &Runtime{
		log:       log,
		wz:        wz,
		cache:     cache,
		maxCached: maxCached,
		limits:    opts.CodeLimits.withDefaults(),
		closing:   closing,
		stop:      stop,
		mods:      map[string]*list.Element{},
		lru:       list.New(),
	}, nil
}

// Name returns "wasm".
func (r *Runtime) Name() string { return Name }

// Version returns "wasm/wazero-<version>/<abi>".
func (r *Runtime) Version() string {
	return Name + "/wazero-" + WazeroVersion + "/" + ABIVersion
}

// Close stops running invocations, waits for them up to ctx, and releases
// compiled code. It is safe to call twice.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.stop()
	r.mu.Unlock()

	waited := make(chan struct{})
	go func() {
		r.running.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		// A compile stops only between two functions, and closing wazero
		// under it crashes the process: leave the runtime to the
		// process's exit.
		return fmt.Errorf("wasm: wait for running invocations: %w", ctx.Err())
	}
	var errs []error
	cctx := context.WithoutCancel(ctx)
	if err := r.wz.Close(cctx); err != nil {
		errs = append(errs, fmt.Errorf("wasm: close runtime: %w", err))
	}
	if err := r.cache.Close(cctx); err != nil {
		errs = append(errs, fmt.Errorf("wasm: close compilation cache: %w", err))
	}
	return errors.Join(errs...)
}

// Invoke runs inv.Function's module once on inv.Input. Failures are
// *runtime.Error: ClassInit for a module that does not compile or
// instantiate, ClassTimeout past Limits.Timeout, ClassOOM when the module
// asked for more memory than Limits.MemoryBytes, ClassFunction for a
// non-zero exit, a trap or too much output, ClassPlatform when ctx ends,
// the runtime closes, or reading input or writing output fails.
//
// A direct invocation (inv.Value set) gets the parameters on stdin; its
// stdout is the result (runtime.DirectResult: one JSON object, an
// "error" field a ClassFunction failure), at most MaxResultBytes (and
// Limits.MaxOutputBytes), else a ClassFunction failure.
func (r *Runtime) Invoke(ctx context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	if inv == nil || (inv.Output == nil && inv.Value == nil) {
		return runtime.Result{}, runtime.Errorf(runtime.ClassPlatform, "wasm: invocation without output writer")
	}
	if err := r.enter(); err != nil {
		return runtime.Result{}, err
	}
	defer r.running.Done()

	c, err := r.module(ctx, inv.Function, true) // pinned: not closed before instantiation
	if err != nil {
		return runtime.Result{}, err
	}
	defer r.unpin(c)
	return r.run(ctx, c.mod, inv)
}

// Load compiles fn's module, or finds it compiled, and keeps it compiled
// until release is called, so that an Invoke of fn in between does not
// compile: the pipeline loads before it takes a run slot. Errors are
// those of Invoke's compile. It implements runtime.Loader.
func (r *Runtime) Load(ctx context.Context, fn runtime.Function) (release func(), err error) {
	if err := r.enter(); err != nil {
		return nil, err
	}
	defer r.running.Done()
	c, err := r.module(ctx, fn, true)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { r.unpin(c) }) }, nil
}

// module is compile with its failures as *runtime.Error: the class of
// ctx's end when ctx ended, else ClassInit.
func (r *Runtime) module(ctx context.Context, fn runtime.Function, pin bool) (*compiled, error) {
	c, err := r.compile(ctx, fn, pin)
	switch {
	case err == nil:
		return c, nil
	case ctx.Err() != nil:
		return nil, &runtime.Error{Class: runtime.ClassOf(ctx.Err()), Err: fmt.Errorf("wasm: compile %s: %w", fn.Name, ctx.Err())}
	case r.closing.Err() != nil:
		return nil, &runtime.Error{Class: runtime.ClassPlatform, Err: fmt.Errorf("wasm: %w", errClosed)}
	}
	return nil, &runtime.Error{Class: runtime.ClassInit, Err: err}
}

// enter counts a call that uses the wazero runtime, so Close waits for it;
// the caller must call r.running.Done.
func (r *Runtime) enter() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return &runtime.Error{Class: runtime.ClassPlatform, Err: fmt.Errorf("wasm: %w", errClosed)}
	}
	r.running.Add(1)
	return nil
}

// run instantiates mod and calls its _start under inv's limits.
func (r *Runtime) run(ctx context.Context, mod wazero.CompiledModule, inv *runtime.Invocation) (runtime.Result, error) {
	lim := inv.Limits
	memLimit := uint64(maxMemoryBytes)
	if lim.MemoryBytes > 0 && lim.MemoryBytes < memLimit {
		memLimit = lim.MemoryBytes
	}
	maxLog := lim.MaxLogBytes
	if maxLog <= 0 {
		maxLog = DefaultMaxLogBytes
	}
	for name, m := range mod.ExportedMemories() {
		if need := uint64(m.Min()) * pageSize; need > memLimit {
			return runtime.Result{}, &runtime.Error{Class: runtime.ClassOOM,
				Err: fmt.Errorf("wasm: memory %q needs %d bytes at start, over the limit of %d bytes", name, need, memLimit)}
		}
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if lim.Timeout > 0 {
		var cancelT context.CancelFunc
		runCtx, cancelT = context.WithTimeoutCause(runCtx, lim.Timeout, errTimeout)
		defer cancelT()
	}
	watched := make(chan struct{})
	defer func() { cancel(nil); <-watched }()
	go func() { // stops the run when the runtime closes; ends with the run
		defer close(watched)
		select {
		case <-r.closing.Done():
			cancel(errClosed)
		case <-runCtx.Done():
		}
	}()

	alloc := &allocator{limit: memLimit, cancel: cancel}
	input := &inputReader{r: inv.Input}
	output := &outputWriter{w: inv.Output, max: lim.MaxOutputBytes, cancel: cancel}
	var result *bytes.Buffer // a direct invocation's stdout
	if inv.Value != nil {
		result = new(bytes.Buffer)
		input.r = bytes.NewReader(inv.Value)
		output.w, output.max = result, MaxResultBytes
		if m := lim.MaxOutputBytes; m > 0 && m < MaxResultBytes {
			output.max = m
		}
	}
	stderr := &logBuffer{max: maxLog}

	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: concurrent instances must not clash
		WithStartFunctions().
		WithArgs(inv.Function.Name).
		WithStdin(input).
		WithStdout(output).
		WithStderr(stderr).
		// Real clocks: without them wazero's clock is fake and a sleep
		// returns at once. A function that reads the time is not pure;
		// that is its author's choice (--no-dedup), as on any platform.
		WithSysWalltime().WithSysNanotime().WithSysNanosleep()
	env, err := paramsEnv(inv.Params)
	if err != nil {
		return runtime.Result{}, &runtime.Error{Class: runtime.ClassInit, Err: err}
	}
	for _, kv := range env {
		cfg = cfg.WithEnv(kv[0], kv[1])
	}

	start := time.Now()
	instCtx := experimental.WithMemoryAllocator(runCtx, alloc)
	inst, err := r.wz.InstantiateModule(instCtx, mod, cfg)
	if err != nil {
		if cerr := r.classify(ctx, runCtx, alloc, input, output, stderr, nil); cerr != nil {
			return runtime.Result{}, cerr
		}
		return runtime.Result{}, &runtime.Error{Class: runtime.ClassInit,
			Err: fmt.Errorf("wasm: instantiate %s: %w", inv.Function.Name, err), Stderr: stderr.String()}
	}
	defer alloc.recycle() // after the Close below, which runs first
	defer inst.Close(context.WithoutCancel(ctx))
	entry := inst.ExportedFunction("_start")
	if entry == nil {
		return runtime.Result{}, &runtime.Error{Class: runtime.ClassInit,
			Err: fmt.Errorf("wasm: %s exports no _start: not a WASI command", inv.Function.Name)}
	}
	_, err = entry.Call(instCtx)
	dur := time.Since(start)
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 0 {
		err = nil
	}
	if cerr := r.classify(ctx, runCtx, alloc, input, output, stderr, err); cerr != nil {
		return runtime.Result{Logs: stderr.String(), Duration: dur}, cerr
	}
	if result != nil {
		res, err := runtime.DirectResult(result.Bytes())
		if re := (*runtime.Error)(nil); errors.As(err, &re) {
			re.Err, re.Stderr = fmt.Errorf("wasm: %w", re.Err), stderr.String()
			return runtime.Result{Result: res, Logs: stderr.String(), Duration: dur}, re
		}
		return runtime.Result{Result: res, Logs: stderr.String(), Duration: dur}, nil
	}
	return runtime.Result{OutputWritten: true, Logs: stderr.String(), Duration: dur}, nil
}

// classify turns the outcome of a run into an *runtime.Error, or nil for
// success. Failures that are not the function's fault come first, so a
// function that reacts to a broken input stream or a refused memory grow
// is never blamed (and cached) for it.
func (r *Runtime) classify(ctx, runCtx context.Context, alloc *allocator, in *inputReader, out *outputWriter, stderr *logBuffer, err error) *runtime.Error {
	fail := func(c runtime.Class, e error) *runtime.Error {
		return &runtime.Error{Class: c, Err: e, Stderr: stderr.String()}
	}
	cause := context.Cause(runCtx)
	switch {
	case errors.Is(cause, errClosed):
		return fail(runtime.ClassPlatform, fmt.Errorf("wasm: %w", errClosed))
	case ctx.Err() != nil:
		return fail(runtime.ClassOf(ctx.Err()), fmt.Errorf("wasm: invocation stopped: %w", ctx.Err()))
	case in.err != nil:
		return fail(runtime.ClassPlatform, fmt.Errorf("wasm: read input: %w", in.err))
	case out.err != nil:
		return fail(runtime.ClassPlatform, fmt.Errorf("wasm: write output: %w", out.err))
	case out.overflow:
		return fail(runtime.ClassFunction, fmt.Errorf("wasm: output exceeds %d bytes", out.max))
	case err == nil:
		if alloc.initOver {
			// The module's memory minimum was over the limit and it was
			// stopped before running (see allocator.Reallocate).
			return fail(runtime.ClassOOM, fmt.Errorf("wasm: memory limit of %d bytes exceeded at start", alloc.limit))
		}
		return nil
	case alloc.refused > 0:
		return fail(runtime.ClassOOM, fmt.Errorf("wasm: memory limit of %d bytes exceeded: grow to %d bytes refused: %w",
			alloc.limit, alloc.refused, err))
	case errors.Is(cause, errTimeout):
		return fail(runtime.ClassTimeout, fmt.Errorf("wasm: %w: %w", errTimeout, err))
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return fail(runtime.ClassFunction, fmt.Errorf("wasm: exit code %d", exit.ExitCode()))
	}
	return fail(runtime.ClassFunction, fmt.Errorf("wasm: trap: %w", err))
}

// Prepare compiles fn's module into the caches and checks that it is a
// WASI command, so a bad module is refused at deploy. It implements
// runtime.Preparer.
func (r *Runtime) Prepare(ctx context.Context, fn runtime.Function) error {
	if err := r.enter(); err != nil {
		return err
	}
	defer r.running.Done()
	c, err := r.module(ctx, fn, false)
	if err != nil {
		return err
	}
	if _, ok := c.mod.ExportedFunctions()["_start"]; !ok {
		return runtime.Errorf(runtime.ClassInit, "wasm: module of %s exports no _start: build it as a WASI command (GOOS=wasip1 GOARCH=wasm)", fn.Name)
	}
	return nil
}

// compile returns the compiled module for fn, from the in-memory cache or
// by compiling it (once, however many invocations ask at the same time).
// With pin, the module is pinned (see Load) unless an error is returned.
func (r *Runtime) compile(ctx context.Context, fn runtime.Function, pin bool) (*compiled, error) {
	if len(fn.Code) == 0 {
		return nil, fmt.Errorf("wasm: function %s has no module", fn.Name)
	}
	digest := fn.CodeDigest
	if digest == "" {
		sum := sha256.Sum256(fn.Code)
		digest = hex.EncodeToString(sum[:])
	}
	for {
		r.mu.Lock()
		el, found := r.mods[digest]
		var c *compiled
		if found {
			r.lru.MoveToFront(el)
			c = el.Value.(*compiled)
		} else {
			c = &compiled{digest: digest, ready: make(chan struct{})}
			r.mods[digest] = r.lru.PushFront(c)
		}
		if pin {
			c.pins++
		}
		r.mu.Unlock()

		if !found {
			r.build(ctx, fn, c)
		}
		select {
		case <-c.ready:
		case <-ctx.Done():
			r.unpinIf(c, pin)
			return nil, ctx.Err()
		}
		if c.err == nil {
			return c, nil
		}
		r.unpinIf(c, pin)
		if !c.cancelled || ctx.Err() != nil || r.closing.Err() != nil {
			return nil, c.err
		}
		// The compile was cancelled by the context of the caller that
		// started it, not ours: compile it for ourselves.
	}
}

// build compiles fn's module into c and closes c.ready. A module over the
// runtime's CodeLimits is refused before wazero sees it. The compile ends
// with ctx or Close, at the next function boundary.
func (r *Runtime) build(ctx context.Context, fn runtime.Function, c *compiled) {
	start := time.Now()
	c.err = checkFunctions(fn.Code, func(i int, s funcStats) error { return s.check(i, r.limits) })
	if c.err == nil {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(r.closing, cancel)()
		c.mod, c.err = r.wz.CompileModule(experimental.WithCompilationWorkers(cctx, compileWorkers), mergeDataSegments(fn.Code))
		c.cancelled = c.err != nil && cctx.Err() != nil
	}
	if c.err != nil {
		c.err = fmt.Errorf("wasm: compile module of %s (%s): %w", fn.Name, short(c.digest), c.err)
	}
	close(c.ready)
	r.log.Debug("compiled module", "function", fn.Name, "digest", short(c.digest),
		"bytes", len(fn.Code), "took", time.Since(start), "err", c.err)

	r.mu.Lock()
	defer r.mu.Unlock()
	if c.err != nil {
		// Do not keep failures: a later deploy of the same digest retries.
		if el, ok := r.mods[c.digest]; ok && el.Value == c {
			r.lru.Remove(el)
			delete(r.mods, c.digest)
		}
		return
	}
	r.evictLocked()
}

// unpinIf releases a pin taken by compile (when pin is set).
func (r *Runtime) unpinIf(c *compiled, pin bool) {
	if pin {
		r.unpin(c)
	}
}

// unpin releases one Load of c; an unpinned module beyond the cap is
// evicted now.
func (r *Runtime) unpin(c *compiled) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.pins--
	if !r.closed {
		r.evictLocked()
	}
}

// evictLocked drops least recently used compiled modules beyond the cap,
// except the most recent (its caller is about to use it) and those still
// compiling or pinned by Load or Invoke. Closing a compiled module is
// safe while its instances still run.
func (r *Runtime) evictLocked() {
	for el := r.lru.Back(); el != nil && el != r.lru.Front() && r.lru.Len() > r.maxCached; {
		prev := el.Prev()
		c := el.Value.(*compiled)
		select {
		case <-c.ready:
			if c.pins > 0 { // a Load holds it for a run about to start
				break
			}
			r.lru.Remove(el)
			delete(r.mods, c.digest)
			if c.mod != nil {
				_ = c.mod.Close(context.Background())
			}
			r.log.Debug("evicted compiled module", "digest", short(c.digest))
		default: // still compiling
		}
		el = prev
	}
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// paramsEnv returns the environment for params, sorted by name.
func paramsEnv(params map[string]string) ([][2]string, error) {
	if params == nil {
		params = map[string]string{}
	}
	js, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("wasm: encode params: %w", err)
	}
	env := [][2]string{{EnvParams, string(js)}}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if strings.ContainsRune(params[k], 0) {
			return nil, fmt.Errorf("wasm: param %q contains a NUL byte", k)
		}
		env = append(env, [2]string{EnvParamPrefix + envName(k), params[k]})
	}
	return env, nil
}

// envName upper-cases name and maps bytes outside [A-Z0-9_] to '_'.
func envName(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// allocator backs a module's linear memory and refuses to grow it past
// limit.
//
// Why a custom allocator rather than RuntimeConfig.WithMemoryLimitPages:
// the limit is per invocation while compiled code belongs to one wazero
// runtime, so a runtime limit would need a runtime (and a compile) per
// distinct limit; and a refused grow is seen here exactly, so a memory
// limit breach is classified OOM without guessing from the guest's
// stderr, whatever language the guest is written in.
type allocator struct {
	limit  uint64
	cancel context.CancelCauseFunc
	// refused is the size of the first grow refused; initOver is set when
	// the initial size was already over the limit. Both are only written
	// on the guest's goroutine and read after it returned.
	refused  uint64
	initOver bool
	// mem is the module's memory, recycled once the run is over.
	mem *linearMemory
}

// Allocate implements experimental.MemoryAllocator.
func (a *allocator) Allocate(capacity, max uint64) experimental.LinearMemory {
	a.mem = &linearMemory{a: a, max: min(max, a.limit), hint: capacity}
	return a.mem
}

// recycle zeroes the module's memory and pools it for the next run. The
// run calls it after its guest returned and its instance was closed, so
// the memory is certainly out of use (see memories.go).
func (a *allocator) recycle() {
	m := a.mem
	if m == nil || !m.freed || m.buf == nil || a.initOver {
		return
	}
	memories.put(m.buf)
	m.buf = nil
}

// linearMemory is a growable []byte bounded by its allocator's limit.
type linearMemory struct {
	a     *allocator
	buf   []byte
	max   uint64
	hint  uint64
	freed bool // by wazero: the module closed; the run recycles buf
}

// Reallocate implements experimental.LinearMemory.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.a.limit {
		if m.buf == nil {
			// wazero cannot take a refusal of the initial size; give the
			// memory and stop the module before it runs. Run checks
			// exported memories first, so this is a safety net.
			m.a.initOver = true
			m.a.cancel(errors.New("memory minimum over limit"))
			m.buf = make([]byte, size)
			return m.buf
		}
		if m.a.refused == 0 {
			m.a.refused = size
		}
		return nil
	}
	if m.buf == nil {
		if b := memories.get(size); b != nil {
			m.buf = b
			return m.buf
		}
	}
	if m.buf != nil && size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	// Grow geometrically (bounded by max) so repeated small grows copy
	// O(n) bytes in total.
	newCap := max(size, min(2*uint64(cap(m.buf)), m.max), min(m.hint, m.max))
	buf := make([]byte, size, newCap)
	copy(buf, m.buf)
	m.buf = buf
	return m.buf
}

// Free implements experimental.LinearMemory. The buffer is kept for
// allocator.recycle: wazero may free a memory whose guest still runs.
func (m *linearMemory) Free() { m.freed = true }

// inputReader records the first read error other than EOF: that is the
// platform's failure (a broken object stream), not the function's.
type inputReader struct {
	r   io.Reader
	err error
}

func (in *inputReader) Read(p []byte) (int, error) {
	if in.r == nil {
		return 0, io.EOF
	}
	n, err := in.r.Read(p)
	if err != nil && err != io.EOF && in.err == nil {
		in.err = err
	}
	return n, err
}

// outputWriter passes output on until max bytes (0 = no bound); past it
// the invocation is stopped and failed.
type outputWriter struct {
	w        io.Writer
	max      int64
	n        int64
	overflow bool
	err      error
	cancel   context.CancelCauseFunc
}

func (o *outputWriter) Write(p []byte) (int, error) {
	if o.overflow {
		return 0, errOutputLimit
	}
	if o.err != nil {
		return 0, o.err
	}
	if o.max > 0 && o.n+int64(len(p)) > o.max {
		o.overflow = true
		o.cancel(errOutputLimit)
		return 0, errOutputLimit
	}
	n, err := o.w.Write(p)
	o.n += int64(n)
	if err != nil {
		o.err = err
		o.cancel(err)
	}
	return n, err
}

// logBuffer keeps the first max bytes written and counts the rest. It
// never fails a write: logging must not change what the function does.
type logBuffer struct {
	max     int
	buf     []byte
	dropped int64
}

func (l *logBuffer) Write(p []byte) (int, error) {
	keep := min(len(p), l.max-len(l.buf))
	l.buf = append(l.buf, p[:keep]...)
	l.dropped += int64(len(p) - keep)
	return len(p), nil
}

// String returns the kept bytes, noting how many were dropped.
func (l *logBuffer) String() string {
	if l.dropped > 0 {
		return fmt.Sprintf("%s\n[%d more bytes of stderr dropped]", l.buf, l.dropped)
	}
	return string(l.buf)
}
