package pipeline_test

// Tests of the guarantee under faults: each is named after a defect found
// on 6bc1a8c and failed there. "Runs once" is proven by counting the test
// runtime's executions (testRuntime.calls, .done, .maxRunning), not only by
// counting activation records.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/s3"
	"github.com/dedupfn/dedupfn/internal/objects/s3server"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// faultIndex injects failures into chosen index calls.
type faultIndex struct {
	index.Index
	renew    func(n int64) error // n counts calls from 1; nil error = do the real renew
	complete func(n int64) error
	claim    func(ctx context.Context) error

	renews, completes atomic.Int64
}

func (f *faultIndex) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	n := f.renews.Add(1)
	if f.renew != nil {
		if err := f.renew(n); err != nil {
			return err
		}
	}
	return f.Index.Renew(ctx, key, token, lease)
}

func (f *faultIndex) Complete(ctx context.Context, key, token string, c index.Completion) error {
	n := f.completes.Add(1)
	if f.complete != nil {
		if err := f.complete(n); err != nil {
			return err
		}
	}
	return f.Index.Complete(ctx, key, token, c)
}

func (f *faultIndex) Claim(ctx context.Context, key string, parts index.Parts, owner string, lease time.Duration) (index.Claimed, error) {
	if f.claim != nil {
		if err := f.claim(ctx); err != nil {
			return index.Claimed{}, err
		}
	}
	return f.Index.Claim(ctx, key, parts, owner, lease)
}

// slowStore delays writes of outputs and counts reads per key.
type slowStore struct {
	objects.Store
	putDelay time.Duration
	mu       sync.Mutex
	gets     map[string]int
}

func (s *slowStore) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts objects.PutOptions) (objects.Info, error) {
	select {
	case <-time.After(s.putDelay):
	case <-ctx.Done():
		return objects.Info{}, ctx.Err()
	}
	return s.Store.Put(ctx, bucket, key, r, size, opts)
}

func (s *slowStore) Get(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, objects.Info, error) {
	s.mu.Lock()
	if s.gets == nil {
		s.gets = map[string]int{}
	}
	s.gets[key]++
	s.mu.Unlock()
	return s.Store.Get(ctx, bucket, key, versionID, etag)
}

func (s *slowStore) getsOf(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[key]
}

// replica is a second pipeline on the same registry and runtime, with its
// own owner id and the given index and store.
func (e *env) replica(owner string, idx index.Index, objs objects.Store) *pipeline.Pipeline {
	e.t.Helper()
	p, err := pipeline.New(pipeline.Config{
		Index: idx, Objects: objs, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"test": e.rt},
		Owner: owner, SpoolDir: e.t.TempDir(), RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// handleAll handles one event on each pipeline at once and waits. An
// event whose Handle fails is delivered again, as every source does.
func handleAll(t *testing.T, pipes []*pipeline.Pipeline, evs []event.Event, stagger time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	for i, p := range pipes {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * stagger)
			for delivery := 1; ; delivery++ {
				err := p.Handle(t.Context(), evs[i])
				if err == nil {
					return
				}
				if delivery == 10 {
					t.Errorf("replica %d: Handle failed %d times: %v", i, delivery, err)
					return
				}
				t.Logf("replica %d: Handle: %v (delivering again)", i, err)
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	wg.Wait()
}

// Item 1: the lease must be renewed until the result is committed, not
// only while the function runs: an output upload slower than the lease
// let another replica take over and run the function again.
func TestLease_RenewedUntilOutputStored(t *testing.T) {
	e := newEnv(t)
	// The output's store takes 4 leases; the lease is long enough that a
	// scheduling stall under -race on 2 busy cores does not outlast the
	// renewals (a 150 ms lease did: a takeover and a second run, now and
	// then, on f13dda0 as since).
	e.deploy("upper", func(f *registry.Function) { f.Limits.Lease = 600 * time.Millisecond })
	slow := &slowStore{Store: store, putDelay: 2400 * time.Millisecond}
	a, b := e.replica("a", e.idx, slow), e.replica("b", e.idx, slow)
	evs := []event.Event{e.put("one.txt", "same"), e.put("two.txt", "same")}
	handleAll(t, []*pipeline.Pipeline{a, b}, evs, 50*time.Millisecond)

	if got := e.rt.calls.Load(); got != 1 {
		t.Fatalf("function executed %d times for one content, want 1", got)
	}
	d := e.decisions()
	if d["one.txt"] != activation.Miss || (d["two.txt"] != activation.Wait && d["two.txt"] != activation.Hit) {
		t.Fatalf("decisions %v, want one miss and one wait", d)
	}
}

// Item 2: a replica whose renewals fail must stop its run before its lease
// can have passed, so a successor never runs alongside it, and must not
// commit as if it still owned the claim.
func TestLease_FailingRenewalAbandonsRun(t *testing.T) {
	e := newEnv(t)
	e.rt.delay = 600 * time.Millisecond
	e.deploy("upper", func(f *registry.Function) { f.Limits.Lease = 150 * time.Millisecond })
	broken := &faultIndex{Index: e.idx, renew: func(int64) error { return errors.New("couchdb: 503 service unavailable") }}
	a, b := e.replica("a", broken, store), e.replica("b", e.idx, store)
	evs := []event.Event{e.put("one.txt", "same"), e.put("two.txt", "same")}
	handleAll(t, []*pipeline.Pipeline{a, b}, evs, 30*time.Millisecond)

	if got := e.rt.maxRunning.Load(); got != 1 {
		t.Fatalf("%d executions of one content ran at the same time, want 1", got)
	}
	if got := e.rt.done.Load(); got != 1 {
		t.Fatalf("%d executions ran to completion, want 1", got)
	}
	for _, r := range e.activations() {
		if r.Decision == activation.Error || r.Output == nil {
			t.Errorf("%s: decision %s, error %q: want every upload delivered", r.Event.Key, r.Decision, r.Error)
		}
	}
}

// Item 4: a transient index error on Complete is retried within the lease,
// not turned into a failed run that executes the function again.
func TestComplete_RetriedOnTransientIndexError(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	flaky := &faultIndex{Index: e.idx, complete: func(n int64) error {
		if n <= 2 {
			return errors.New("couchdb: connection reset by peer")
		}
		return nil
	}}
	p := e.replica("a", flaky, store)
	if err := p.Handle(t.Context(), e.put("a.txt", "data")); err != nil {
		t.Fatal(err)
	}
	if got := e.rt.calls.Load(); got != 1 {
		t.Fatalf("function executed %d times, want 1 (the commit should have been retried)", got)
	}
	if d := e.decisions()["a.txt"]; d != activation.Miss {
		t.Fatalf("decision %s, want miss", d)
	}
	if got := e.output("a.txt"); got != "DATA" {
		t.Fatalf("output %q", got)
	}
}

// Item 5: losing the lease on the last attempt must not dead-letter the
// event while a successor completes it: the activation follows the
// successor's result.
func TestLease_LostOnLastAttemptFollowsSuccessor(t *testing.T) {
	e := newEnv(t)
	e.rt.delay = 500 * time.Millisecond
	e.deploy("upper", func(f *registry.Function) { f.Limits.Lease = 150 * time.Millisecond; f.MaxAttempts = 1 })
	// a's first renewals fail, so its lease runs out and b takes over;
	// later renewals reach the index (and find the claim taken).
	broken := &faultIndex{Index: e.idx, renew: func(n int64) error {
		if n <= 4 {
			return errors.New("couchdb: timeout")
		}
		return nil
	}}
	a, b := e.replica("a", broken, store), e.replica("b", e.idx, store)
	evs := []event.Event{e.put("one.txt", "same"), e.put("two.txt", "same")}
	handleAll(t, []*pipeline.Pipeline{a, b}, evs, 30*time.Millisecond)

	for _, r := range e.activations() {
		if r.DeadLetter || r.Decision == activation.Error {
			t.Errorf("%s: dead-lettered (%s) although the content was processed by a successor", r.Event.Key, r.Error)
		}
		if r.Output == nil {
			t.Errorf("%s: no output delivered", r.Event.Key)
		}
	}
	if got := e.rt.done.Load(); got != 1 {
		t.Fatalf("%d executions ran to completion, want 1", got)
	}
}

// Item 6: a hung index is an error within the call timeout, never a stuck
// worker; a renewal that hangs does not block the run's end.
func TestIndexCalls_HaveDeadlines(t *testing.T) {
	e := newEnv(t)
	e.rt.delay = 100 * time.Millisecond
	e.deploy("upper", func(f *registry.Function) { f.Limits.Lease = 60 * time.Millisecond })
	hangRenew := &hangingRenewIndex{Index: e.idx}
	p := e.replica("a", hangRenew, store)
	done := make(chan error, 1)
	go func() { done <- p.Handle(t.Context(), e.put("a.txt", "data")) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Handle still blocked 10s after its lease: a renewal that hangs blocks the worker")
	}

	hungClaim := &faultIndex{Index: e.idx, claim: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	p2, err := pipeline.New(pipeline.Config{
		Index: hungClaim, Objects: store, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"test": e.rt},
		Owner: "b", SpoolDir: t.TempDir(), CallTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- p2.Handle(t.Context(), e.put("b.txt", "other")) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Handle with a hung index returned nil: the event would be acked unprocessed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Handle blocked on a hung index claim")
	}
}

// hangingRenewIndex's Renew blocks until its context ends.
type hangingRenewIndex struct{ index.Index }

func (h *hangingRenewIndex) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}

// Item 3: an output PUT through the presigned URL must never trigger the
// function on its own output, even with output bucket = input bucket.
func TestPresignedOutput_NeverTriggers(t *testing.T) {
	e := newEnv(t)
	testutil.DeployUnchecked(t, e.idx, e.reg, registry.Function{Name: "upper", Runtime: "test", Params: map[string]string{"mode": "presign"},
		Trigger: registry.Trigger{Bucket: e.in}, Output: registry.Output{Bucket: e.in, KeyTemplate: "out/{key}"}}, []byte("code of upper"))
	e.handle(e.put("x.txt", "data"))
	// Deliver an event for every object now in the bucket, as a
	// notification source would (plain S3 events carry no metadata).
	for range 2 {
		var objs []objects.Info
		if err := store.List(t.Context(), e.in, "", "", func(o objects.Info) error { objs = append(objs, o); return nil }); err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			e.handle(event.Event{Source: "test", Name: "s3:ObjectCreated:Put", Bucket: o.Bucket, Key: o.Key, ETag: o.ETag, Size: o.Size})
		}
	}
	if got := e.rt.calls.Load(); got != 1 {
		t.Fatalf("function executed %d times, want 1: it ran on its own output", got)
	}
	var keys []string
	store.List(t.Context(), e.in, "", "", func(o objects.Info) error { keys = append(keys, o.Key); return nil })
	if strings.Join(keys, ",") != "out/x.txt,x.txt" {
		t.Fatalf("bucket holds %v, want [out/x.txt x.txt]", keys)
	}
	rc, info, err := store.Get(t.Context(), e.in, "out/x.txt", "", "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "DATA" || info.Metadata[event.MetaOutputOf] == "" {
		t.Fatalf("out/x.txt = %q, metadata %v: want DATA, marked as an output", b, info.Metadata)
	}
}

// Item 8: a panic on the event path is recorded as a platform error with
// its stack, and the pipeline keeps serving.
func TestHandle_PanicRecordedNotCrashed(t *testing.T) {
	e := newEnv(t)
	e.deploy("buggy", func(f *registry.Function) { f.Params = map[string]string{"mode": "panic"}; f.Trigger.Prefix = "bug/" })
	e.deploy("upper", func(f *registry.Function) { f.Trigger.Prefix = "ok/" })
	e.handle(e.put("bug/a.txt", "data"))
	e.handle(e.put("ok/b.txt", "data"))
	var bug *activation.Record
	for _, r := range e.activations() {
		if r.Event.Key == "bug/a.txt" {
			bug = &r
		}
	}
	if bug == nil || bug.Decision != activation.Error || bug.ErrorClass != "platform" || !bug.DeadLetter ||
		!strings.Contains(bug.Error, "panic") || !strings.Contains(bug.Logs, "goroutine") {
		t.Fatalf("panic activation %+v: want a dead-lettered platform error with the stack in its logs", bug)
	}
	if got := e.output("ok/b.txt"); got != "DATA" {
		t.Fatalf("the next event was not processed: output %q", got)
	}
}

// Item 11: the reconciler must skip dedupfn's own outputs without reading
// them, and not count them as missed events.
func TestReconcile_SkipsOwnOutputsWithoutReading(t *testing.T) {
	e := newEnv(t)
	e.deployLoop("upper")
	e.handle(e.put("x.txt", "data"))
	counting := &slowStore{Store: store}
	p := e.replica("r", e.idx, counting)
	for pass := range 2 {
		n, err := p.Reconcile(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("pass %d: reconciler counted %d missed events, want 0 (the only other object is our output)", pass, n)
		}
	}
	if got := counting.getsOf("out/x.txt"); got != 0 {
		t.Fatalf("reconciler read our own output %d times, want 0", got)
	}
}

// Item 12: an event that arrives after the reconciler processed its object
// gets no second activation, and a --no-dedup function does not run twice.
func TestReconcile_LateEventGetsNoSecondActivation(t *testing.T) {
	e := newEnv(t)
	e.deploy("always", func(f *registry.Function) { f.NoDedup = true })
	ev := e.put("late.txt", "data")
	n, err := e.pipe.Reconcile(t.Context(), 0)
	if err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want 1 missed", n, err)
	}
	ev.Sequencer = "0000018F2A6B3C4D" // the notification, late, with MinIO's sequencer
	e.handle(ev)
	if got := e.rt.calls.Load(); got != 1 {
		t.Fatalf("no-dedup function executed %d times for one upload, want 1", got)
	}
	if got := len(e.activations()); got != 1 {
		t.Fatalf("%d activations for one upload, want 1", got)
	}
}

// Item 13: an output key that already holds another input's output (or
// data dedupfn did not write) is an error on the activation, and the
// existing object is left as it was. Deploy now refuses a template such
// as {base}.out (issue 19 item 2); a definition stored before that still
// runs, and is what this test stores.
func TestOutputKey_CollisionRecordedNotOverwritten(t *testing.T) {
	e := newEnv(t)
	f := e.deploy("upper", func(f *registry.Function) { f.Output.KeyTemplate = "{key}.out" })
	f.Output.KeyTemplate = "{base}.out"
	doc, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.idx.PutDoc(t.Context(), "function", f.Tenant+"/"+f.Name, doc); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.handle(e.put("x/cat.jpg", "first"))
	e.handle(e.put("y/cat.jpg", "second"))
	if got := e.output("cat.out"); got != "FIRST" {
		t.Fatalf("cat.out = %q: the second input overwrote the first's output", got)
	}
	var rec activation.Record
	for _, r := range e.activations() {
		if r.Event.Key == "y/cat.jpg" {
			rec = r
		}
	}
	if rec.Decision != activation.Error || !strings.Contains(rec.Error, "x/cat.jpg") {
		t.Fatalf("y/cat.jpg: decision %s error %q, want an error naming x/cat.jpg", rec.Decision, rec.Error)
	}

	// The user's own object at an output key is never overwritten.
	if _, err := store.Put(t.Context(), e.out, "mine.out", strings.NewReader("precious"), 8, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	e.handle(e.put("z/mine.jpg", "third"))
	if got := e.output("mine.out"); got != "precious" {
		t.Fatalf("mine.out = %q: user data overwritten", got)
	}
}

// Item 14: a folder marker (key ending in "/", 0 bytes) triggers nothing.
func TestHandle_FolderMarkerSkipped(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	e.handle(e.put("dir/", ""))
	if got := len(e.activations()); got != 0 || e.rt.calls.Load() != 0 {
		t.Fatalf("folder marker: %d activations, %d runs; want none", got, e.rt.calls.Load())
	}
}

// Item 7: a permanent store error (here: credentials the store refuses) is
// recorded and dead-lettered; the event is acked instead of retried forever.
func TestHandle_PermanentStoreErrorDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	ev := e.put("a.txt", "data")
	srv := store.(*s3server.Store).Server
	denied, err := s3.New(srv.Endpoint(), false, "test-access", "not-the-secret", "us-east-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := e.replica("denied", e.idx, denied)
	if err := p.Handle(t.Context(), ev); err != nil {
		t.Fatalf("Handle = %v: a permanent error would be redelivered forever", err)
	}
	recs := e.activations()
	if len(recs) != 1 || recs[0].Decision != activation.Error || !recs[0].DeadLetter {
		t.Fatalf("records %+v, want one dead-lettered error", recs)
	}
	if e.rt.calls.Load() != 0 {
		t.Fatal("function ran without its input")
	}
}

// A hit with a trusted fingerprint on its event (the built-in endpoint
// hashes uploads) never reads its input; a missing or tampered one falls
// back to reading the bytes, and a result is never recorded under a
// fingerprint its input did not have.
func TestZeroReadHits(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	counting := &slowStore{Store: store}
	p := e.replica("r", e.idx, counting)
	withSum := func(ev event.Event, body string) event.Event {
		sum := sha256.Sum256([]byte(body))
		ev.SHA256 = hex.EncodeToString(sum[:])
		ev.Source = "embedded" // only the built-in endpoint's events are trusted
		return ev
	}
	handle := func(ev event.Event) {
		t.Helper()
		if err := p.Handle(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	handle(withSum(e.put("first.txt", "same bytes"), "same bytes"))
	handle(withSum(e.put("second.txt", "same bytes"), "same bytes"))
	if got := counting.getsOf("second.txt"); got != 0 {
		t.Errorf("a hit read its input %d times, want 0", got)
	}
	// No checksum: the bytes are read.
	handle(e.put("third.txt", "same bytes"))
	if got := counting.getsOf("third.txt"); got != 1 {
		t.Errorf("without a trusted checksum the input was read %d times, want 1", got)
	}
	// A checksum from a source that is not the built-in endpoint is not trusted.
	forged := withSum(e.put("forged.txt", "forged bytes"), "same bytes")
	forged.Source = "webhook"
	handle(forged)
	if got := e.output("forged.txt"); got != "FORGED BYTES" || counting.getsOf("forged.txt") != 1 {
		t.Fatalf("untrusted checksum: output %q after %d reads, want the bytes read and run", got, counting.getsOf("forged.txt"))
	}
	// A trusted checksum that does not match the bytes is found out on the
	// miss that reads them: the function runs, recorded under the real key.
	handle(withSum(e.put("liar.txt", "other bytes"), "never seen"))
	if got := e.output("liar.txt"); got != "OTHER BYTES" {
		t.Fatalf("mismatched checksum: output %q, want the function run on the real bytes", got)
	}
	handle(e.put("liar-copy.txt", "other bytes"))
	if got := e.rt.calls.Load(); got != 3 {
		t.Fatalf("function ran %d times, want 3 (one per real content)", got)
	}
	e.rt.calls.Store(0)
	// A large object whose store holds a trusted full-object SHA-256 (the
	// built-in endpoint's, or MinIO's verified checksum) is Stat-ed, not read.
	big := strings.Repeat("b", 1<<20)
	handle(e.put("big1.bin", big))
	handle(e.put("big2.bin", big))
	if got := counting.getsOf("big2.bin"); got != 0 {
		t.Errorf("a hit on a large object with a stored checksum read it %d times, want 0", got)
	}
	d := e.decisions()
	if d["big2.bin"] != activation.Hit {
		t.Errorf("big2.bin: %s, want hit", d["big2.bin"])
	}
	if d["first.txt"] != activation.Miss || d["second.txt"] != activation.Hit || d["third.txt"] != activation.Hit ||
		d["forged.txt"] != activation.Miss || d["liar.txt"] != activation.Miss || d["liar-copy.txt"] != activation.Hit {
		t.Fatalf("decisions %v", d)
	}
}

// A waiter learns of the owner's result from the index (index.Waiter), not
// by polling with backoff: it finishes right after the owner.
func TestWait_WokenByOwnersCommit(t *testing.T) {
	e := newEnv(t)
	e.rt.delay = 400 * time.Millisecond
	e.deploy("upper", nil)
	a, b := e.replica("a", e.idx, store), e.replica("b", e.idx, store)
	evA, evB := e.put("one.txt", "same"), e.put("two.txt", "same")
	var aDone, bDone time.Time
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.Handle(t.Context(), evA); err != nil {
			t.Error(err)
		}
		aDone = time.Now()
	})
	time.Sleep(50 * time.Millisecond)
	if err := b.Handle(t.Context(), evB); err != nil {
		t.Fatal(err)
	}
	bDone = time.Now()
	wg.Wait()
	if late := bDone.Sub(aDone); late > 100*time.Millisecond {
		t.Fatalf("the waiter finished %s after the owner: it polled instead of being woken", late)
	}
	if d := e.decisions(); d["two.txt"] != activation.Wait {
		t.Fatalf("decisions %v, want two.txt to wait", d)
	}
	t.Logf("waiter finished %s after the owner", bDone.Sub(aDone))
}

// A --no-dedup function always runs, so an event that came with a trusted
// fingerprint and no bytes must have them read first.
func TestNoDedup_TrustedFingerprintReadsInput(t *testing.T) {
	e := newEnv(t)
	e.deploy("always", func(f *registry.Function) { f.NoDedup = true })
	ev := e.put("a.txt", "bytes")
	sum := sha256.Sum256([]byte("bytes"))
	ev.SHA256, ev.Source = hex.EncodeToString(sum[:]), "embedded"
	e.handle(ev)
	if got := e.output("a.txt"); got != "BYTES" {
		t.Fatalf("output %q, want BYTES (activations %+v)", got, e.activations())
	}
}
