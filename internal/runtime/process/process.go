package process

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/actionio"
)

// Defaults.
const (
	// DefaultMaxWarm is how many processes may run per function version.
	DefaultMaxWarm = 2
	// DefaultIdleTimeout is how long an idle warm process is kept.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultAckTimeout is how long a new process has to write its ack.
	DefaultAckTimeout = 10 * time.Second
	// DefaultInlineLimit is the largest input passed inline as "body".
	DefaultInlineLimit = actionio.DefaultInlineLimit
	// DefaultTimeout applies when Limits.Timeout is zero (OpenWhisk's
	// default action time limit).
	DefaultTimeout = time.Minute
	// DefaultMaxLogBytes applies when Limits.MaxLogBytes is zero.
	DefaultMaxLogBytes = 1 << 20
	// DefaultMaxResultBytes bounds a result line on fd 3.
	DefaultMaxResultBytes = 64 << 20
	// DefaultMaxUnzipBytes bounds the total size a zip may extract to.
	DefaultMaxUnzipBytes = 1 << 30
	// DefaultMaxUnzipFiles bounds the number of entries in a zip.
	DefaultMaxUnzipFiles = 10000
	// SentinelWait is how long to wait for the end-of-activation sentinel
	// from a process that has printed it before.
	SentinelWait = 2 * time.Second
	// FirstSentinelWait is how long to wait for the sentinel on a
	// process's first activation, before it is known whether it prints
	// one.
	FirstSentinelWait = 100 * time.Millisecond
	// LogSentinel ends an activation's output on stdout and stderr.
	LogSentinel = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
	// Version is the runtime's version, part of every dedup key.
	Version = "process/actionloop/1"
)

// Options configure a Runtime. The zero value is usable.
type Options struct {
	// WorkDir holds unpacked code, one directory per code digest.
	// Default: a "dedupfn-process" directory under os.TempDir().
	WorkDir string
	// MaxWarm is the number of processes per function version
	// (concurrency per version); activations beyond it wait.
	MaxWarm int
	// IdleTimeout: idle processes are stopped after this long.
	IdleTimeout time.Duration
	// AckTimeout bounds the wait for a new process's ack.
	AckTimeout time.Duration
	// InlineLimit: inputs up to this size are passed as "body"; negative
	// disables inlining.
	InlineLimit int64
	// APIHost, if set, is exported as __OW_API_HOST.
	APIHost string
	// Logger receives process lifecycle events.
	Logger *slog.Logger
	// ExecUser, if set, is the user (name or uid) actions run as, with
	// its primary group and no supplementary groups. It requires the
	// server to run as root, and WorkDir to be reachable by that user.
	// Without it actions run as the server's user and can read the
	// server's environment (its secrets) through /proc/<server pid>/environ.
	ExecUser string
	// MaxResultBytes bounds one result line on fd 3 (a larger one fails
	// the activation with runtime.ClassFunction). Default
	// DefaultMaxResultBytes.
	MaxResultBytes int
	// MaxUnzipBytes and MaxUnzipFiles bound what a zip may extract.
	// Defaults DefaultMaxUnzipBytes and DefaultMaxUnzipFiles.
	MaxUnzipBytes int64
	MaxUnzipFiles int
	// Node and Python are the absolute paths of the node and python3
	// interpreters that run the nodejs and python kinds' launchers
	// (launchers.go). New finds them on the server's PATH
	// (exec.LookPath) when empty; a kind whose interpreter is not found
	// cannot be deployed (Prepare) or run.
	Node, Python string
}

// Runtime is the process runtime. It is safe for concurrent use.
type Runtime struct {
	opts Options
	log  *slog.Logger

	uid, gid int // of ExecUser; -1 without it

	unpackMu sync.Mutex

	mu     sync.Mutex
	closed bool
	pools  map[string]*pool
	live   map[*proc]struct{}
}

var (
	_ runtime.Runtime   = (*Runtime)(nil)
	_ runtime.Forgetter = (*Runtime)(nil)
	_ runtime.Preparer  = (*Runtime)(nil)
)

// New validates opts and returns a Runtime. It starts nothing: processes
// start on first use.
func New(opts Options) (*Runtime, error) {
	if opts.MaxWarm < 0 || opts.IdleTimeout < 0 || opts.AckTimeout < 0 {
		return nil, fmt.Errorf("process: max warm, idle timeout and ack timeout must be >= 0, got %d, %s, %s",
			opts.MaxWarm, opts.IdleTimeout, opts.AckTimeout)
	}
	if opts.MaxResultBytes < 0 || opts.MaxUnzipBytes < 0 || opts.MaxUnzipFiles < 0 {
		return nil, fmt.Errorf("process: max result, max unzip bytes and max unzip files must be >= 0, got %d, %d, %d",
			opts.MaxResultBytes, opts.MaxUnzipBytes, opts.MaxUnzipFiles)
	}
	if opts.WorkDir == "" {
		opts.WorkDir = filepath.Join(os.TempDir(), "dedupfn-process")
	}
	opts.MaxResultBytes = cmp.Or(opts.MaxResultBytes, DefaultMaxResultBytes)
	opts.MaxUnzipBytes = cmp.Or(opts.MaxUnzipBytes, DefaultMaxUnzipBytes)
	opts.MaxUnzipFiles = cmp.Or(opts.MaxUnzipFiles, DefaultMaxUnzipFiles)
	uid, gid := -1, -1
	if opts.ExecUser != "" {
		var err error
		if uid, gid, err = lookupUser(opts.ExecUser); err != nil {
			return nil, err
		}
		if err := reachable(opts.WorkDir, uid, gid); err != nil {
			return nil, err
		}
	}
	for _, l := range languages {
		if err := l.find(&opts); err != nil {
			return nil, err
		}
	}
	opts.MaxWarm = cmp.Or(opts.MaxWarm, DefaultMaxWarm)
	opts.IdleTimeout = cmp.Or(opts.IdleTimeout, DefaultIdleTimeout)
	opts.AckTimeout = cmp.Or(opts.AckTimeout, DefaultAckTimeout)
	opts.InlineLimit = cmp.Or(opts.InlineLimit, DefaultInlineLimit)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runtime{
		opts:  opts,
		uid:   uid,
		gid:   gid,
		log:   opts.Logger.With("component", "runtime.process"),
		pools: map[string]*pool{},
		live:  map[*proc]struct{}{},
	}, nil
}

// Name returns "process".
func (r *Runtime) Name() string { return "process" }

// Version returns Version.
func (r *Runtime) Version() string { return Version }

// Close kills every process the runtime started (their whole process
// groups) and waits for them. Invocations in flight fail with
// runtime.ClassPlatform. Safe to call more than once.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	procs := make([]*proc, 0, len(r.live))
	for p := range r.live {
		procs = append(procs, p)
	}
	for _, pl := range r.pools {
		pl.drain() // the idle are in r.live too
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); r.discard(p) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("process: close: %w", ctx.Err())
	}
}

// discard kills p and forgets it.
func (r *Runtime) discard(p *proc) {
	p.kill()
	r.mu.Lock()
	delete(r.live, p)
	r.mu.Unlock()
}

// Invoke runs one activation on a warm (or new) process of inv.Function.
func (r *Runtime) Invoke(ctx context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	fn := inv.Function
	path, dir, err := r.unpack(fn)
	if err != nil {
		return runtime.Result{}, &runtime.Error{Class: runtime.ClassInit, Err: err}
	}
	cmd, err := r.command(path, inv.Limits.MemoryBytes)
	if err != nil {
		return runtime.Result{}, &runtime.Error{Class: runtime.ClassInit, Err: err}
	}
	env, err := r.env(fn)
	if err != nil {
		return runtime.Result{}, &runtime.Error{Class: runtime.ClassInit, Err: err}
	}
	var value any = inv.Value // a direct invocation: the parameters are the value
	if inv.Value == nil {
		if value, err = actionio.Params(inv, r.opts.InlineLimit); err != nil {
			return runtime.Result{}, &runtime.Error{Class: runtime.ClassPlatform, Err: fmt.Errorf("process: %w", err)}
		}
	}
	key := poolKey(fn, env, inv.Limits.MemoryBytes)
	pl, err := r.pool(key, fn, filepath.Base(dir))
	if err != nil {
		return runtime.Result{}, err
	}
	for tries := 1; ; tries++ {
		p, err := pl.acquire(ctx, func() (*proc, error) {
			return r.start(cmd, dir, env, inv.Limits.MemoryBytes)
		})
		if err != nil {
			return runtime.Result{}, err
		}
		res, healthy, err := r.activate(ctx, p, inv, value)
		pl.release(p, healthy)
		if errors.Is(err, errDiedIdle) && tries < 3 {
			continue // nothing was sent to it: take another process
		}
		return res, err
	}
}

// errDiedIdle: a warm process was found dead before an activation was
// sent to it (killed, or out of memory while idle).
var errDiedIdle = errors.New("exited while idle")

// pipeBuf is PIPE_BUF on Linux: a write of at most this many bytes to a
// pipe is atomic, written whole or not at all.
const pipeBuf = 4096

// start starts and acks one process of c, tracking it for Close.
func (r *Runtime) start(c command, dir string, env []string, mem uint64) (*proc, error) {
	path := c.argv[len(c.argv)-1] // the executable, or the launcher script its interpreter runs
	p, err := startProc(c, dir, env, mem, r.uid, r.gid, r.opts.MaxResultBytes)
	if err != nil {
		return nil, &runtime.Error{Class: runtime.ClassInit, Err: err}
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		p.kill()
		return nil, runtime.Errorf(runtime.ClassPlatform, "process: runtime closed")
	}
	r.live[p] = struct{}{}
	r.mu.Unlock()
	if err := p.ack(r.opts.AckTimeout); err != nil {
		r.discard(p)
		errs, _ := p.errs.cut(0, 0)
		return nil, &runtime.Error{Class: runtime.ClassInit,
			Err:    fmt.Errorf("process: start %s: %w", filepath.Base(path), err),
			Stderr: stderrText(errs, DefaultMaxLogBytes)}
	}
	r.log.Debug("process started", "pid", p.pid, "exec", path)
	return p, nil
}

// activate runs one activation on p. healthy reports whether p may serve
// another one.
func (r *Runtime) activate(ctx context.Context, p *proc, inv *runtime.Invocation, value any) (runtime.Result, bool, error) {
	maxLog := inv.Limits.MaxLogBytes
	if maxLog <= 0 {
		maxLog = DefaultMaxLogBytes
	}
	// A line already waiting on fd 3 is a protocol violation (two
	// results for one activation): it would be taken for this one.
	select {
	case l, ok := <-p.results:
		r.discard(p)
		if !ok {
			return runtime.Result{}, false, &runtime.Error{Class: runtime.ClassPlatform, Err: fmt.Errorf("process: pid %d %w (%s)", p.pid, errDiedIdle, p.exitInfo())}
		}
		return runtime.Result{}, false, runtime.Errorf(runtime.ClassPlatform, "process: pid %d wrote %.100q on fd 3 between activations", p.pid, l.b)
	default:
	}
	if p.dead() {
		r.discard(p)
		return runtime.Result{}, false, &runtime.Error{Class: runtime.ClassPlatform, Err: fmt.Errorf("process: pid %d %w (%s)", p.pid, errDiedIdle, p.exitInfo())}
	}

	p.out.setLimit(maxLog)
	p.errs.setLimit(maxLog)

	timeout := inv.Limits.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	start := time.Now()
	deadline := start.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ns, name := names(inv.Function)
	msg, err := json.Marshal(map[string]any{
		"value":         value,
		"namespace":     ns,
		"action_name":   name,
		"activation_id": inv.ActivationID,
		"deadline":      strconv.FormatInt(deadline.UnixMilli(), 10),
	})
	if err != nil {
		return runtime.Result{}, true, runtime.Errorf(runtime.ClassPlatform, "process: encode activation: %w", err)
	}
	_ = p.stdin.SetWriteDeadline(deadline)
	msg = append(msg, '\n')
	if _, err := p.stdin.Write(msg); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return r.failed(p, runtime.ClassTimeout, start, maxLog, fmt.Errorf("process: action did not read its input within %s", timeout))
		}
		if errors.Is(err, syscall.EPIPE) && len(msg) <= pipeBuf {
			// A pipe write this small is all or nothing: refused, it
			// reached no one, so the process was gone before this
			// activation (killed while idle, and not yet reaped when
			// dead() looked), and another process may take it.
			r.discard(p)
			return runtime.Result{}, false, &runtime.Error{Class: runtime.ClassPlatform, Err: fmt.Errorf("process: pid %d %w (it refused the activation: %v)", p.pid, errDiedIdle, err)}
		}
		return r.died(p, start, maxLog, fmt.Errorf("process: write activation to pid %d: %w", p.pid, err))
	}

	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var l line
	select {
	case got, ok := <-p.results:
		if !ok {
			return r.died(p, start, maxLog, fmt.Errorf("process: pid %d closed fd 3 without a result", p.pid))
		}
		l = got
	case <-p.exited:
		// It may have written its result and then exited.
		select {
		case got, ok := <-p.results:
			if ok && got.err == nil {
				l = got
				break
			}
			return r.died(p, start, maxLog, fmt.Errorf("process: pid %d exited during activation", p.pid))
		default:
			return r.died(p, start, maxLog, fmt.Errorf("process: pid %d exited during activation", p.pid))
		}
	case <-timer.C:
		return r.failed(p, runtime.ClassTimeout, start, maxLog, fmt.Errorf("process: action exceeded its deadline of %s", timeout))
	case <-ctx.Done():
		return r.failed(p, runtime.ClassOf(ctx.Err()), start, maxLog, fmt.Errorf("process: %w", ctx.Err()))
	}
	dur := time.Since(start)
	if l.err != nil {
		return r.failed(p, runtime.ClassFunction, start, maxLog, fmt.Errorf("process: %w", l.err))
	}
	out, errs, dropped := r.logs(p, maxLog)
	logs := formatLogs(out, errs, dropped, maxLog)
	res, err := result(l.b, inv)
	if err != nil {
		var re *runtime.Error
		if errors.As(err, &re) {
			re.Stderr = stderrText(errs, maxLog)
		}
		// A malformed result means the process is out of step with the
		// protocol: replace it. An {"error":...} result keeps it warm.
		healthy := !errors.Is(err, errNotJSON)
		if !healthy {
			r.discard(p)
		}
		// An {"error":...} result is kept: it goes on the activation record.
		return runtime.Result{Result: res.Result, Logs: logs, Duration: dur}, healthy, err
	}
	res.Logs = logs
	res.Duration = dur
	return res, true, nil
}

// logs drains and cuts both streams for the activation that just ended.
func (r *Runtime) logs(p *proc, maxLog int) (out, errs []logLine, dropped int) {
	var d1, d2 int
	var wg sync.WaitGroup
	wg.Go(func() {
		p.out.drain()
		out, d1 = p.out.cut(SentinelWait, maxLog)
	})
	p.errs.drain()
	errs, d2 = p.errs.cut(SentinelWait, maxLog)
	wg.Wait()
	return out, errs, d1 + d2
}

// failed kills p (a timeout, cancellation or bad result) and returns an
// error of class c with the logs it printed.
func (r *Runtime) failed(p *proc, c runtime.Class, start time.Time, maxLog int, err error) (runtime.Result, bool, error) {
	r.discard(p)
	out, d1 := p.out.cut(0, maxLog)
	errs, d2 := p.errs.cut(0, maxLog)
	res := runtime.Result{Logs: formatLogs(out, errs, d1+d2, maxLog), Duration: time.Since(start)}
	return res, false, &runtime.Error{Class: c, Err: err, Stderr: stderrText(errs, maxLog)}
}

// died handles a process that ended during an activation: ClassOOM when
// it ran under a memory limit and died of it (SIGKILL it did not get from
// us, or an allocation failure on stderr), else ClassPlatform.
func (r *Runtime) died(p *proc, start time.Time, maxLog int, err error) (runtime.Result, bool, error) {
	<-p.exited
	external := p.sigkilled() && !p.killed.Load()
	r.discard(p)
	out, d1 := p.out.cut(0, maxLog)
	errs, d2 := p.errs.cut(0, maxLog)
	stderr := stderrText(errs, maxLog)
	c := runtime.ClassPlatform
	if p.memLimit > 0 && (external || looksOOM(stderr)) {
		c = runtime.ClassOOM
		err = fmt.Errorf("%w: out of memory (limit %d bytes)", err, p.memLimit)
	}
	err = fmt.Errorf("%w (%s)", err, p.exitInfo())
	res := runtime.Result{Logs: formatLogs(out, errs, d1+d2, maxLog), Duration: time.Since(start)}
	return res, false, &runtime.Error{Class: c, Err: err, Stderr: stderr}
}

// looksOOM reports whether stderr shows an allocation failure, as
// printed by bash, python, Go, C++ and glibc when RLIMIT_AS is hit.
func looksOOM(stderr string) bool {
	s := strings.ToLower(stderr)
	for _, m := range []string{"cannot allocate memory", "out of memory", "memoryerror", "xmalloc", "bad_alloc", "cannot allocate"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

var errNotJSON = errors.New("result is not a JSON object or array")

// result interprets the action's result line: for a direct invocation
// (Invocation.Value) the result itself (runtime.DirectResult), else an
// object or array, under the output convention.
func result(b []byte, inv *runtime.Invocation) (runtime.Result, error) {
	b = bytes.TrimSpace(b)
	if !json.Valid(b) || (b[0] != '{' && b[0] != '[') {
		return runtime.Result{}, &runtime.Error{Class: runtime.ClassFunction,
			Err: fmt.Errorf("process: %w: %.200q", errNotJSON, b)}
	}
	if b[0] == '[' && inv.Value == nil {
		return runtime.Result{Result: json.RawMessage(b)}, nil
	}
	res, err := runtime.DirectResult(b)
	if re := (*runtime.Error)(nil); errors.As(err, &re) {
		re.Err = fmt.Errorf("process: %w", re.Err)
		return runtime.Result{Result: res}, re
	}
	if inv.Value != nil {
		return runtime.Result{Result: res}, nil
	}
	return actionio.Output(runtime.Result{Result: res}, inv)
}

// names returns the OpenWhisk namespace (the tenant, or "_") and the fully
// qualified action name "/ns/name".
func names(fn runtime.Function) (ns, name string) {
	ns = fn.Tenant
	if ns == "" {
		ns = "_"
	}
	return ns, "/" + ns + "/" + fn.Name
}

// env builds the action's environment from scratch (no inherited PATH).
func (r *Runtime) env(fn runtime.Function) ([]string, error) {
	ns, name := names(fn)
	vars := map[string]string{
		"__OW_WAIT_FOR_ACK": "1",
		"__OW_ACTION_NAME":  name,
		"__OW_NAMESPACE":    ns,
	}
	if r.opts.APIHost != "" {
		vars["__OW_API_HOST"] = r.opts.APIHost
	}
	for k, v := range fn.Config {
		n, ok := strings.CutPrefix(k, "env.")
		if !ok {
			continue
		}
		if n == "" || strings.ContainsAny(n, "=\x00") || strings.Contains(v, "\x00") {
			return nil, fmt.Errorf("process: invalid environment variable %q", k)
		}
		if strings.HasPrefix(n, "__OW_") {
			return nil, fmt.Errorf("process: environment variable %s is reserved", n)
		}
		vars[n] = v
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env, nil
}

// poolKey identifies a process pool: same code, identity, environment
// and memory limit.
func poolKey(fn runtime.Function, env []string, mem uint64) string {
	h := sha256.New()
	for _, s := range append([]string{fn.CodeDigest, fn.Tenant, fn.Name, fn.Version, strconv.FormatUint(mem, 10)}, env...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (r *Runtime) pool(key string, fn runtime.Function, digest string) (*pool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, runtime.Errorf(runtime.ClassPlatform, "process: runtime closed")
	}
	pl, ok := r.pools[key]
	if !ok {
		pl = &pool{r: r, sem: make(chan struct{}, r.opts.MaxWarm), tenant: fn.Tenant, name: fn.Name, digest: digest}
		r.pools[key] = pl
	}
	return pl, nil
}

// Forget implements runtime.Forgetter for a deleted function: it stops
// the warm processes of every version of fn (same tenant and name) and
// removes their unpacked code, except code that another function's
// processes still use. An activation of fn still running keeps its
// process until it ends. Idempotent; a later Invoke unpacks again.
func (r *Runtime) Forget(ctx context.Context, fn runtime.Function) error {
	digests := map[string]bool{}
	if d := strings.ToLower(fn.CodeDigest); d != "" {
		digests[d] = true
	}
	if len(fn.Code) > 0 {
		digests[codeDigest(fn.Code)] = true
	}
	var procs []*proc
	r.mu.Lock()
	for key, pl := range r.pools {
		if pl.tenant != fn.Tenant || pl.name != fn.Name {
			continue
		}
		delete(r.pools, key)
		digests[pl.digest] = true
		procs = append(procs, pl.drain()...)
	}
	for _, pl := range r.pools {
		delete(digests, pl.digest) // still in use by another function
	}
	r.mu.Unlock()
	for _, p := range procs {
		r.discard(p)
	}
	r.unpackMu.Lock()
	defer r.unpackMu.Unlock()
	for d := range digests {
		if len(d) != sha256.Size*2 || strings.Trim(d, "0123456789abcdef") != "" {
			return fmt.Errorf("process: forget %s: code digest %q is not a SHA-256 hex digest", fn.Name, d)
		}
		if err := os.RemoveAll(filepath.Join(r.opts.WorkDir, d)); err != nil {
			return fmt.Errorf("process: forget %s: %w", fn.Name, err)
		}
	}
	return nil
}
