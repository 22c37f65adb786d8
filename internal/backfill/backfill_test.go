package backfill_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/backfill"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/index"
	_ "github.com/dedupfn/dedupfn/internal/index/bolt"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// store is the built-in S3 endpoint, one per test process; each test
// uses its own buckets.
var store objects.Store

func TestMain(m *testing.M) { testutil.MainWithStore(m, &store) }

// sideFileRuntime is the function: it appends a line with its input's
// SHA-256 to a side file each time it starts, then writes its input
// upper-cased. Executions are counted from that file, not from records.
type sideFileRuntime struct {
	path  string
	delay atomic.Int64 // nanoseconds each execution takes
	mu    sync.Mutex
}

func (r *sideFileRuntime) Name() string                { return "test" }
func (r *sideFileRuntime) Version() string             { return "test/1" }
func (r *sideFileRuntime) Close(context.Context) error { return nil }

func (r *sideFileRuntime) Invoke(ctx context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	data, err := io.ReadAll(inv.Input)
	if err != nil {
		return runtime.Result{}, err
	}
	sum := sha256.Sum256(data)
	r.mu.Lock()
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err == nil {
		_, err = fmt.Fprintln(f, hex.EncodeToString(sum[:8]))
		f.Close()
	}
	r.mu.Unlock()
	if err != nil {
		return runtime.Result{}, runtime.Errorf(runtime.ClassPlatform, "side file: %v", err)
	}
	select {
	case <-time.After(time.Duration(r.delay.Load())):
	case <-ctx.Done():
		return runtime.Result{}, ctx.Err()
	}
	inv.Output.Write(bytes.ToUpper(data))
	return runtime.Result{OutputWritten: true}, nil
}

// executions returns how often each content (by hash) ran, and the total.
func (r *sideFileRuntime) executions(t *testing.T) (map[string]int, int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := os.Open(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int{}, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	by, n := map[string]int{}, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		by[sc.Text()]++
		n++
	}
	return by, n
}

type env struct {
	t       *testing.T
	idx     index.Index
	reg     *registry.Registry
	rt      *sideFileRuntime
	in, out string
	fn      registry.Function
	sizes   int64 // bytes of the objects put under the function's trigger
}

var bucketSeq atomic.Int64

// newEnv makes two buckets and deploys function "upper" on the first
// (keys "in/...txt") writing to the second.
func newEnv(t *testing.T, mutate func(*registry.Function)) *env {
	t.Helper()
	idx := testutil.BoltIndex(t)
	n := bucketSeq.Add(1)
	e := &env{t: t, idx: idx, reg: registry.New(idx, nil), rt: &sideFileRuntime{path: filepath.Join(t.TempDir(), "executions")},
		in: fmt.Sprintf("bf-in-%d-%d", time.Now().UnixNano()%1e6, n), out: fmt.Sprintf("bf-out-%d-%d", time.Now().UnixNano()%1e6, n)}
	for _, b := range []string{e.in, e.out} {
		if err := store.MakeBucket(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	e.fn = e.deploy(func(f *registry.Function) {
		if mutate != nil {
			mutate(f)
		}
	})
	return e
}

func (e *env) deploy(mutate func(*registry.Function)) registry.Function {
	e.t.Helper()
	f := registry.Function{Name: "upper", Runtime: "test",
		Trigger: registry.Trigger{Bucket: e.in, Prefix: "in/", Suffixes: []string{".txt"}}, Output: registry.Output{Bucket: e.out}}
	mutate(&f)
	if f.Output.Bucket == f.Trigger.Bucket { // a loop Deploy refuses: the pipeline's own guard is under test
		return testutil.DeployUnchecked(e.t, e.idx, e.reg, f, []byte("code"))
	}
	f, err := e.reg.Deploy(e.t.Context(), f, []byte("code"))
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// pipeline returns a pipeline of one replica over the env's index.
func (e *env) pipeline(owner string) *pipeline.Pipeline {
	e.t.Helper()
	p, err := pipeline.New(pipeline.Config{
		Index: e.idx, Objects: store, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"test": e.rt},
		Owner: owner, SpoolDir: e.t.TempDir(), RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// manager returns a manager with short intervals, not yet running.
func (e *env) manager(owner string, send backfill.Sender) *backfill.Manager {
	e.t.Helper()
	if send == nil {
		send = e.pipeline(owner)
	}
	m, err := backfill.New(backfill.Config{
		Index: e.idx, Objects: store, Registry: e.reg, Pipeline: send, Owner: owner,
		Heartbeat: 50 * time.Millisecond, StaleAfter: 500 * time.Millisecond, Scan: 50 * time.Millisecond,
		Drain: 5 * time.Second, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// run runs m until the returned stop is called (or the test ends); stop
// returns once Run has.
func (e *env) run(m *backfill.Manager) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) put(key, body string) objects.Info {
	e.t.Helper()
	info, err := store.Put(e.t.Context(), e.in, key, strings.NewReader(body), int64(len(body)), objects.PutOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if e.fn.Matches(e.in, key) {
		e.sizes += int64(len(body))
	}
	return info
}

// putCopies puts copies of distinct contents under in/ (in/NNN/cC.txt:
// a content's copies are next to each other in key order), plus objects
// the function does not take, and returns the number it takes.
func (e *env) putCopies(distinct, copies int) int {
	e.t.Helper()
	for i := range distinct {
		for c := range copies {
			e.put(fmt.Sprintf("in/%03d/c%d.txt", i, c), fmt.Sprintf("content %d", i))
		}
	}
	e.put("in/not-a-text.bin", "no suffix match")
	e.put("elsewhere/x.txt", "outside the prefix")
	return distinct * copies
}

// wait polls job id until it leaves running.
func (e *env) wait(m *backfill.Manager, id string) backfill.Job {
	e.t.Helper()
	var j backfill.Job
	testutil.Eventually(e.t, 60*time.Second, "backfill "+id+" to end", func() bool {
		var err error
		if j, err = m.Get(e.t.Context(), "", id); err != nil {
			e.t.Fatal(err)
		}
		return j.State != backfill.Running
	})
	return j
}

// startOneAtATime starts a backfill of every object, one at a time, and
// returns it once it has done at least n objects.
func (e *env) startOneAtATime(m *backfill.Manager, n int64) backfill.Job {
	e.t.Helper()
	job, err := m.Start(e.t.Context(), backfill.Request{Function: "upper", Concurrency: 1})
	if err != nil {
		e.t.Fatal(err)
	}
	testutil.Eventually(e.t, 30*time.Second, "some progress", func() bool {
		j, err := m.Get(e.t.Context(), "", job.ID)
		return err == nil && j.Objects >= n
	})
	return job
}

func (e *env) activations() []activation.Record {
	e.t.Helper()
	recs, err := e.idx.Activations(e.t.Context(), activation.Filter{Function: "upper", Limit: 10000})
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

func (e *env) output(key string) string {
	e.t.Helper()
	rc, _, err := store.Get(e.t.Context(), e.out, key, "", "")
	if err != nil {
		e.t.Fatalf("output %s: %v", key, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// checkConsistent fails unless the counters add up to the objects.
func checkConsistent(t *testing.T, j backfill.Job) {
	t.Helper()
	if sum := j.Runs + j.Hits + j.Waits + j.Skipped + j.Errors; sum != j.Objects {
		t.Errorf("job %s: runs+hits+waits+skipped+errors = %d, objects = %d: %+v", j.ID, sum, j.Objects, j)
	}
}

// checkOncePerContent fails unless every content ran exactly once.
func (e *env) checkOncePerContent(distinct int) {
	e.t.Helper()
	by, n := e.rt.executions(e.t)
	if n != distinct || len(by) != distinct {
		e.t.Errorf("%d executions of %d contents, want each of %d contents once", n, len(by), distinct)
	}
	for h, c := range by {
		if c != 1 {
			e.t.Errorf("content %s executed %d times", h, c)
		}
	}
}

// A backfill runs each distinct content once and records one activation
// per object; a second backfill runs nothing; an event arriving later
// for a backfilled object maps to the activation the backfill recorded.
func TestBackfill_RunsOncePerContent(t *testing.T) {
	e := newEnv(t, nil)
	const distinct, copies = 10, 3
	want := e.putCopies(distinct, copies)
	m := e.manager("replica-1", nil)
	e.run(m)

	job, err := m.Start(t.Context(), backfill.Request{Function: "upper"})
	if err != nil {
		t.Fatal(err)
	}
	if job.State != backfill.Running || job.Bucket != e.in || job.Prefix != "in/" || job.Version != e.fn.Version || job.Concurrency != backfill.DefaultConcurrency {
		t.Fatalf("started job %+v: want running on %s/in/ at version %s with the default concurrency", job, e.in, e.fn.Version)
	}
	job = e.wait(m, job.ID)
	if job.State != backfill.Done || job.Error != "" || job.Finished.IsZero() {
		t.Fatalf("job ended %s (%q), finished %v; want done", job.State, job.Error, job.Finished)
	}
	if job.Objects != int64(want) || job.TotalObjects != int64(want) || job.Bytes != e.sizes || job.TotalBytes != e.sizes {
		t.Errorf("objects %d/%d, bytes %d/%d; want %d objects, %d bytes", job.Objects, job.TotalObjects, job.Bytes, job.TotalBytes, want, e.sizes)
	}
	if job.Runs != distinct || job.Hits+job.Waits != int64(want-distinct) || job.Skipped != 0 || job.Errors != 0 {
		t.Errorf("runs %d, hits %d, waits %d, skipped %d, errors %d; want %d runs and %d hits or waits",
			job.Runs, job.Hits, job.Waits, job.Skipped, job.Errors, distinct, want-distinct)
	}
	checkConsistent(t, job)
	e.checkOncePerContent(distinct)
	recs := e.activations()
	keys := map[string]bool{}
	for _, r := range recs {
		keys[r.Event.Key] = true
		if r.EventSource != "backfill" || r.Version != e.fn.Version {
			t.Errorf("activation of %s: source %q version %q, want backfill %s", r.Event.Key, r.EventSource, r.Version, e.fn.Version)
		}
	}
	if len(recs) != want || len(keys) != want {
		t.Fatalf("%d activations of %d objects, want one per object (%d)", len(recs), len(keys), want)
	}
	if got := e.output("in/007/c2.txt"); got != "CONTENT 7" {
		t.Errorf("output of a copy = %q, want CONTENT 7", got)
	}

	// Again: everything has its activation, nothing runs.
	again, err := m.Start(t.Context(), backfill.Request{Function: "upper"})
	if err != nil {
		t.Fatal(err)
	}
	again = e.wait(m, again.ID)
	if again.State != backfill.Done || again.Objects != int64(want) || again.Skipped != int64(want) || again.Runs != 0 {
		t.Errorf("second backfill: %s, %d objects, %d skipped, %d runs; want done with all %d skipped", again.State, again.Objects, again.Skipped, again.Runs, want)
	}
	e.checkOncePerContent(distinct)

	// The object's event, late (as the built-in endpoint would deliver it).
	info, err := store.Stat(t.Context(), e.in, "in/004/c1.txt")
	if err != nil {
		t.Fatal(err)
	}
	ev := event.Event{Source: "embedded", Name: "s3:ObjectCreated:Put", Bucket: e.in, Key: info.Key, ETag: info.ETag,
		Size: info.Size, SHA256: info.SHA256, Sequencer: "0000018F2A6B3C4D", Time: time.Now()}
	if err := e.pipeline("replica-2").Handle(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	if got := len(e.activations()); got != want {
		t.Errorf("%d activations after the late event, want still %d: the event got an id of its own", got, want)
	}
	e.checkOncePerContent(distinct)

	jobs, err := m.List(t.Context(), "")
	if err != nil || len(jobs) != 2 || jobs[0].ID != again.ID || jobs[1].ID != job.ID {
		t.Errorf("List = %v, %v; want the two jobs newest first", jobs, err)
	}
}

// countingSender counts the objects sent.
type countingSender struct {
	backfill.Sender
	n atomic.Int64
}

func (c *countingSender) Backfill(ctx context.Context, fn registry.Function, o objects.Info) (*activation.Record, error) {
	c.n.Add(1)
	return c.Sender.Backfill(ctx, fn, o)
}

// A replica that stops mid-job persists its watermark and releases the
// job; another replica on the same index resumes it after the watermark,
// and no content runs twice.
func TestBackfill_ResumesOnAnotherReplica(t *testing.T) {
	e := newEnv(t, nil)
	const distinct, copies = 8, 3
	want := e.putCopies(distinct, copies)
	e.rt.delay.Store(int64(20 * time.Millisecond))

	a := e.manager("replica-a", nil)
	stopA := e.run(a)
	job, err := a.Start(t.Context(), backfill.Request{Function: "upper", Rate: 30, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "some progress persisted", func() bool {
		j, err := a.Get(t.Context(), "", job.ID)
		return err == nil && j.Objects >= 6
	})
	stopA()
	mid, err := a.Get(t.Context(), "", job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if mid.State != backfill.Running || mid.Objects >= int64(want) {
		t.Fatalf("after replica a stopped: %s with %d of %d objects; want still running, part done", mid.State, mid.Objects, want)
	}
	checkConsistent(t, mid)
	_, ranA := e.rt.executions(t)

	sendB := &countingSender{Sender: e.pipeline("replica-b")}
	b := e.manager("replica-b", sendB)
	e.run(b)
	end := e.wait(b, job.ID)
	if end.State != backfill.Done || end.Objects != int64(want) || end.TotalObjects != int64(want) || end.Bytes != e.sizes {
		t.Fatalf("resumed job: %s, %d/%d objects, %d bytes; want done with %d objects, %d bytes", end.State, end.Objects, end.TotalObjects, end.Bytes, want, e.sizes)
	}
	checkConsistent(t, end)
	e.checkOncePerContent(distinct)
	if got, wantSent := sendB.n.Load(), int64(want)-mid.Objects; got != wantSent {
		t.Errorf("replica b sent %d objects; want %d: those after the watermark of %d done", got, wantSent, mid.Objects)
	}
	if len(e.activations()) != want {
		t.Errorf("%d activations, want %d", len(e.activations()), want)
	}
	t.Logf("replica a: %d objects under its watermark, %d executions; b sent %d", mid.Objects, ranA, sendB.n.Load())
}

// Cancel stops a job within a heartbeat or so; its objects in flight
// finish, nothing more runs, and the job says canceled.
func TestBackfill_Cancel(t *testing.T) {
	e := newEnv(t, nil)
	want := e.putCopies(20, 1)
	e.rt.delay.Store(int64(50 * time.Millisecond))
	m := e.manager("replica-1", nil)
	e.run(m)
	job := e.startOneAtATime(m, 2)
	if _, err := m.Cancel(t.Context(), "", job.ID); err != nil {
		t.Fatal(err)
	}
	end := e.wait(m, job.ID)
	if end.State != backfill.Canceled || end.Finished.IsZero() || end.Objects >= int64(want) {
		t.Fatalf("after cancel: %s with %d of %d objects, finished %v; want canceled part way", end.State, end.Objects, want, end.Finished)
	}
	checkConsistent(t, end)
	_, n := e.rt.executions(t)
	time.Sleep(300 * time.Millisecond) // several heartbeats
	if _, later := e.rt.executions(t); later != n || int64(n) > end.Objects+1 {
		t.Errorf("%d executions at cancel, %d later, %d objects done: the job went on", n, later, end.Objects)
	}
	if again, err := m.Cancel(t.Context(), "", job.ID); err != nil || again.State != backfill.Canceled {
		t.Errorf("second cancel: %s, %v; want canceled, no error", again.State, err)
	}

	done, err := m.Start(t.Context(), backfill.Request{Function: "upper", Prefix: "in/00"})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(m, done.ID)
	if _, err := m.Cancel(t.Context(), "", done.ID); !errors.Is(err, backfill.ErrConflict) {
		t.Errorf("cancel of a done job: %v, want ErrConflict", err)
	}
}

// --rate bounds the objects sent a second, whatever the concurrency.
func TestBackfill_Rate(t *testing.T) {
	e := newEnv(t, nil)
	want := e.putCopies(1, 10) // one content: one run, the rest hits
	m := e.manager("replica-1", nil)
	e.run(m)
	job, err := m.Start(t.Context(), backfill.Request{Function: "upper", Rate: 20, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	job = e.wait(m, job.ID)
	took := job.Finished.Sub(job.Created)
	// 10 objects at 20/s: the first at once, then one every 50 ms.
	if minimum := time.Duration(want-1) * time.Second / 20 * 8 / 10; job.State != backfill.Done || took < minimum {
		t.Fatalf("job %s took %s for %d objects at 20/s; want done in at least %s", job.State, took, want, minimum)
	}
	e.checkOncePerContent(1)
}

// A redeploy mid-job (a new version) fails the job: its objects were to
// go to the version it started with.
func TestBackfill_RedeployFailsJob(t *testing.T) {
	e := newEnv(t, nil)
	e.putCopies(10, 1)
	e.rt.delay.Store(int64(50 * time.Millisecond))
	m := e.manager("replica-1", nil)
	e.run(m)
	job := e.startOneAtATime(m, 1)
	e.deploy(func(f *registry.Function) { f.Params = map[string]string{"size": "2"} })
	end := e.wait(m, job.ID)
	if end.State != backfill.Failed || !strings.Contains(end.Error, "redeployed") || end.Objects >= 10 {
		t.Fatalf("after a redeploy: %s %q with %d objects; want failed naming the redeploy", end.State, end.Error, end.Objects)
	}
}

// dedupfn's own outputs in the triggered bucket are no inputs: they are
// noted in the index when written and skipped without a read. Metadata
// alone, which any uploader to MinIO/S3 can set, decides nothing (issue 17
// item 20): an object that only claims to be an output is an input.
func TestBackfill_SkipsOwnOutputs(t *testing.T) {
	e := newEnv(t, func(f *registry.Function) {
		f.Trigger = registry.Trigger{Bucket: f.Trigger.Bucket}
		f.Output = registry.Output{Bucket: f.Trigger.Bucket, KeyTemplate: "out/{key}"}
	})
	p := e.pipeline("replica-1")
	for _, k := range []string{"a.txt", "b.txt"} {
		info := e.put(k, "data "+k)
		ev := event.Event{Source: "test", Name: "s3:ObjectCreated:Put", Bucket: e.in, Key: k, ETag: info.ETag, Size: info.Size, Time: time.Now()}
		if err := p.Handle(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	// An upload that only claims, by metadata, to be an output.
	_, err := store.Put(t.Context(), e.in, "claims-output.txt", strings.NewReader("CLAIM"), 5, objects.PutOptions{
		Metadata: map[string]string{event.MetaOutputOf: "upper@v0"}})
	if err != nil {
		t.Fatal(err)
	}
	m := e.manager("replica-1", p)
	e.run(m)
	job, err := m.Start(t.Context(), backfill.Request{Function: "upper"})
	if err != nil {
		t.Fatal(err)
	}
	job = e.wait(m, job.ID)
	// a.txt, b.txt (their activations exist), out/a.txt, out/b.txt
	// skipped; claims-output.txt run.
	if job.State != backfill.Done || job.Objects != 5 || job.Skipped != 4 || job.Runs != 1 {
		t.Fatalf("job %s: %d objects, %d skipped, %d runs; want done with 5 objects, 4 skipped, 1 run", job.State, job.Objects, job.Skipped, job.Runs)
	}
	if _, n := e.rt.executions(t); n != 3 {
		t.Errorf("%d executions, want the 2 of the events and claims-output.txt's", n)
	}
	if got := len(e.activations()); got != 3 {
		t.Errorf("%d activations, want 3: real outputs are no inputs", got)
	}
}

func TestStart_Validation(t *testing.T) {
	e := newEnv(t, nil)
	m := e.manager("replica-1", nil) // not running: a started job stays pending
	for _, tc := range []struct {
		name string
		req  backfill.Request
		want error
		text string
	}{
		{"UnknownFunction", backfill.Request{Function: "nope"}, registry.ErrNotFound, "nope"},
		{"OtherBucket", backfill.Request{Function: "upper", Bucket: e.out}, backfill.ErrInvalid, "trigger bucket"},
		{"PrefixOutside", backfill.Request{Function: "upper", Prefix: "elsewhere/"}, backfill.ErrInvalid, `trigger prefix "in/"`},
		{"NegativeRate", backfill.Request{Function: "upper", Rate: -1}, backfill.ErrInvalid, "rate must be >= 0"},
		{"Concurrency", backfill.Request{Function: "upper", Concurrency: backfill.MaxConcurrency + 1}, backfill.ErrInvalid, "concurrency must be 1 to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Start(t.Context(), tc.req)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Start(%+v) = %v, want %v saying %q", tc.req, err, tc.want, tc.text)
			}
		})
	}
	// A prefix within the trigger's narrows it; one containing it is the trigger's.
	job, err := m.Start(t.Context(), backfill.Request{Function: "upper", Prefix: "in/001/", Rate: 5})
	if err != nil || job.Prefix != "in/001/" || job.Rate != 5 {
		t.Fatalf("Start with a narrower prefix: %+v, %v", job, err)
	}
	if _, err := m.Start(t.Context(), backfill.Request{Function: "upper"}); !errors.Is(err, backfill.ErrConflict) || !strings.Contains(err.Error(), job.ID) {
		t.Fatalf("second Start while one runs: %v, want ErrConflict naming %s", err, job.ID)
	}
	if _, p, err := backfill.Scope(e.fn, "", "i"); err != nil || p != "in/" {
		t.Errorf("Scope with prefix i = %q, %v; want the trigger's in/", p, err)
	}
	if _, err := m.Get(t.Context(), "other-tenant", job.ID); !errors.Is(err, backfill.ErrNotFound) {
		t.Errorf("another tenant's Get: %v, want ErrNotFound", err)
	}
	if jobs, err := m.List(t.Context(), "other-tenant"); err != nil || len(jobs) != 0 {
		t.Errorf("another tenant's List: %v, %v; want none", jobs, err)
	}
	if _, err := m.Cancel(t.Context(), "other-tenant", job.ID); !errors.Is(err, backfill.ErrNotFound) {
		t.Errorf("another tenant's Cancel: %v, want ErrNotFound", err)
	}
}

// A job belongs to the replica that started it from the start: another
// replica's scan adopts it only once its heartbeat is stale, never the
// moment it is created (it did: an ownerless new job was free, and two
// replicas ran it at once for a heartbeat or so, which in a pipeline
// records an output twice and its next stage's events twice).
func TestBackfill_NewJobNotAdoptedByAnotherReplica(t *testing.T) {
	e := newEnv(t, nil)
	want := e.putCopies(4, 1)
	a := e.manager("replica-a", nil) // not running: as if it had just been asked, between scans
	sendB := &countingSender{Sender: e.pipeline("replica-b")}
	b := e.manager("replica-b", sendB)
	e.run(b)
	job, err := a.Start(t.Context(), backfill.Request{Function: "upper"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond) // five of b's scans, half of StaleAfter
	if n := sendB.n.Load(); n != 0 {
		t.Fatalf("replica b sent %d objects of a job replica a started %s ago: it adopted a live job", n, 250*time.Millisecond)
	}
	// a never runs it: once a's heartbeat is stale, b resumes it.
	if end := e.wait(b, job.ID); end.State != backfill.Done || end.Objects != int64(want) {
		t.Fatalf("job after a's heartbeat went stale: %s, %d of %d objects", end.State, end.Objects, want)
	}
}
