package pipeline_test

// Tests of issue 17's part B, "nothing hangs, nothing starves": each is
// named after its item and failed (or hung, until its deadline) on
// f13dda0. Executions are counted by the runtime, not by activations.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/spool"
)

const mib = 1 << 20

// sizedRuntime sleeps param "ms" milliseconds, then writes param "bytes"
// bytes of output in one Write, as a
// guest's fd_write would: it does not watch its context, so a Write that
// blocks blocks the run. It counts executions.
type sizedRuntime struct{ calls atomic.Int64 }

func (r *sizedRuntime) Name() string                { return "sized" }
func (r *sizedRuntime) Version() string             { return "sized/1" }
func (r *sizedRuntime) Close(context.Context) error { return nil }

func (r *sizedRuntime) Invoke(_ context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	r.calls.Add(1)
	ms, _ := strconv.Atoi(inv.Params["ms"])
	time.Sleep(time.Duration(ms) * time.Millisecond)
	n, _ := strconv.Atoi(inv.Params["bytes"])
	if _, err := inv.Output.Write(bytes.Repeat([]byte("o"), n)); err != nil {
		return runtime.Result{}, runtime.Errorf(runtime.ClassPlatform, "write output: %v", err)
	}
	return runtime.Result{OutputWritten: true}, nil
}

// budgetEnv is a pipeline with a disk budget and the sized runtime; opts
// change its config.
func budgetEnv(t *testing.T, budget *spool.Budget, opts ...func(*pipeline.Config)) (*env, *sizedRuntime) {
	t.Helper()
	e := newEnv(t)
	rt := &sizedRuntime{}
	cfg := pipeline.Config{
		Index: e.idx, Objects: store, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"sized": rt},
		Owner: "budget", SpoolDir: t.TempDir(), SpoolBudget: budget, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	var err error
	if e.pipe, err = pipeline.New(cfg); err != nil {
		t.Fatal(err)
	}
	return e, rt
}

// holdBudget has another holder keep n bytes of budget, not waiting,
// until the test ends.
func holdBudget(t *testing.T, budget *spool.Budget, n int) {
	t.Helper()
	other := spool.NewBudgeted(t.Context(), budget, t.TempDir(), 1, 0)
	t.Cleanup(func() { other.Close() })
	if _, err := other.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
}

// wantBudgetFree fails t unless every spool gave its budget back.
func wantBudgetFree(t *testing.T, budget *spool.Budget) {
	t.Helper()
	if got := budget.Used(); got != 0 {
		t.Errorf("budget Used = %d after the events ended, want 0", got)
	}
}

// handleWithin handles ev and fails the test if Handle has not returned
// within d: an event that neither completes nor fails is the defect.
func handleWithin(t *testing.T, d time.Duration, p *pipeline.Pipeline, ev event.Event) time.Duration {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- p.Handle(t.Context(), ev) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Handle(%s): %v", ev.Key, err)
		}
	case <-time.After(d):
		t.Fatalf("Handle(%s) still running after %s: the event neither completed nor failed", ev.Key, d)
	}
	return time.Since(start)
}

// Issue 17 item 5: budget 12 MiB, an 8 MiB input held during the run, the
// function writes 8 MiB. On f13dda0 the event never completed or failed
// (the output spool held nothing yet, so its wait was never counted, and
// it waited on the pipeline's context, past the function's timeout).
func TestSpoolBudget_OutputThatCannotFitFailsNotWaits(t *testing.T) {
	t.Run("InputPlusOutputOverBudget", func(t *testing.T) {
		budget := spool.NewBudget(12 * mib)
		e, rt := budgetEnv(t, budget)
		e.deploy("big", func(f *registry.Function) {
			f.Runtime = "sized"
			f.Params = map[string]string{"bytes": strconv.Itoa(8 * mib)}
		})
		handleWithin(t, 10*time.Second, e.pipe, e.put("in.bin", strings.Repeat("i", 8*mib)))
		recs := e.activations()
		if len(recs) != 1 {
			t.Fatalf("%d activations, want 1", len(recs))
		}
		r := recs[0]
		if r.Decision != activation.Error || !r.DeadLetter || r.ErrorClass != string(runtime.ClassConfig) || !strings.Contains(r.Error, "--spool-budget") {
			t.Fatalf("activation %s dead_letter=%v class=%q error=%q; want a config dead letter naming --spool-budget", r.Decision, r.DeadLetter, r.ErrorClass, r.Error)
		}
		if got := rt.calls.Load(); got != 1 {
			t.Errorf("function ran %d times, want 1 (a budget that can never fit is not retried)", got)
		}
		wantBudgetFree(t, budget)
	})
	t.Run("WaitEndsWithTheTimeout", func(t *testing.T) {
		budget := spool.NewBudget(12 * mib)
		e, rt := budgetEnv(t, budget)
		// Another event's input holds 8 MiB and is not waiting: the output
		// fits the budget alone, so it waits, but no longer than the timeout.
		holdBudget(t, budget, 8*mib)
		e.deploy("big", func(f *registry.Function) {
			f.Runtime = "sized"
			f.Params = map[string]string{"bytes": strconv.Itoa(6 * mib)}
			f.Limits.Timeout = time.Second
			f.MaxAttempts = 1
		})
		took := handleWithin(t, 10*time.Second, e.pipe, e.put("small.txt", "small"))
		r := e.activations()[0]
		if r.Decision != activation.Error || !r.DeadLetter || r.ErrorClass != string(runtime.ClassTimeout) || !strings.Contains(r.Error, "--spool-budget") {
			t.Fatalf("activation %s dead_letter=%v class=%q error=%q; want a timeout dead letter naming --spool-budget", r.Decision, r.DeadLetter, r.ErrorClass, r.Error)
		}
		if took > 5*time.Second {
			t.Errorf("the event took %s with a 1s timeout", took)
		}
		if got := rt.calls.Load(); got != 1 {
			t.Errorf("function ran %d times, want 1", got)
		}
	})
}

// slowGetStore delays every read of an object, as a slow store or a
// large object would.
type slowGetStore struct {
	objects.Store
	delay time.Duration
}

func (s *slowGetStore) Get(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, objects.Info, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, objects.Info{}, ctx.Err()
	}
	return s.Store.Get(ctx, bucket, key, versionID, etag)
}

// trusted makes ev an event of the built-in endpoint, whose SHA-256 is
// trusted: a miss then downloads the bytes after claiming.
func trusted(ev event.Event, body string) event.Event {
	sum := sha256.Sum256([]byte(body))
	ev.SHA256, ev.Source = hex.EncodeToString(sum[:]), "embedded"
	return ev
}

// Issue 17 item 8: on a miss with a trusted fingerprint the object is
// downloaded after the claim; the lease must be renewed during that
// download. Replica A's download (1.2 s) outlasts the lease (400 ms);
// replica B's duplicate arrives after the lease would have passed. On
// f13dda0 B took the claim over and ran the function itself ("two.txt:
// miss, want wait"); A's download was wasted.
func TestLease_RenewedDuringTrustedInputDownload(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", func(f *registry.Function) { f.Limits.Lease = 400 * time.Millisecond })
	a := e.replica("a", e.idx, &slowGetStore{Store: store, delay: 1200 * time.Millisecond})
	b := e.replica("b", e.idx, store)
	evA, evB := trusted(e.put("one.txt", "same bytes"), "same bytes"), trusted(e.put("two.txt", "same bytes"), "same bytes")
	done := make(chan error, 1)
	go func() { done <- a.Handle(t.Context(), evA) }()
	time.Sleep(700 * time.Millisecond) // A is still downloading; its lease would have passed unrenewed
	handleWithin(t, 20*time.Second, b, evB)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	d := e.decisions()
	if d["one.txt"] != activation.Miss || d["two.txt"] != activation.Wait {
		t.Errorf("one.txt: %s, want miss; two.txt: %s, want wait (the claim was taken over during the download)", d["one.txt"], d["two.txt"])
	}
	if got := e.rt.calls.Load(); got != 1 {
		t.Errorf("function ran %d times, want 1", got)
	}
	if got := e.output("two.txt"); got != "SAME BYTES" {
		t.Errorf("two.txt output %q", got)
	}
}

// Issue 17 item 6: a backfill must not claim a key and then wait for a
// run slot behind live events while a live duplicate waits behind its
// claim. MaxRuns 1, a live miss every 100 ms (runs of 120 ms, so a live
// event always waits for the slot): a live duplicate of the backfilled
// object must finish promptly. On f13dda0 it waited for the whole live
// stream ("the live duplicate took 3.9s").
func TestBackfill_DoesNotHoldClaimWhileWaitingForSlot(t *testing.T) {
	e := newEnv(t)
	fn := e.deploy("upper", nil)
	e.rt.delay = 120 * time.Millisecond
	p, err := pipeline.New(pipeline.Config{
		Index: e.idx, Objects: store, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"test": e.rt},
		Owner: "one-slot", SpoolDir: t.TempDir(), MaxRuns: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.put("old/x.txt", "backfilled content")
	info, err := store.Stat(t.Context(), e.in, "old/x.txt")
	if err != nil {
		t.Fatal(err)
	}
	const live = 30
	var wg sync.WaitGroup
	wg.Go(func() { // the live stream
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var each sync.WaitGroup
		for i := range live {
			ev := e.put(fmt.Sprintf("live/%02d.txt", i), fmt.Sprintf("live content %d", i))
			each.Go(func() {
				if err := p.Handle(t.Context(), ev); err != nil {
					t.Error(err)
				}
			})
			<-tick.C
		}
		each.Wait()
	})
	time.Sleep(250 * time.Millisecond) // live events are waiting for the slot
	wg.Go(func() {
		if _, err := p.Backfill(t.Context(), fn, info); err != nil {
			t.Error(err)
		}
	})
	time.Sleep(250 * time.Millisecond) // the backfill is queued (on f13dda0: holding x's claim)
	took := handleWithin(t, 60*time.Second, p, e.put("new/x-copy.txt", "backfilled content"))
	wg.Wait()
	if took > 2*time.Second {
		t.Errorf("the live duplicate took %s behind a backfill waiting for a run slot, want < 2s", took)
	}
	if got := e.rt.calls.Load(); got != live+1 {
		t.Errorf("%d executions for %d contents, want %d", got, live+1, live+1)
	}
	d := e.decisions()
	if bf := d["old/x.txt"]; d["new/x-copy.txt"] != activation.Miss || (bf != activation.Hit && bf != activation.Wait) {
		t.Errorf("live duplicate %s, want miss; backfill %s, want hit or wait (it runs after the live events)", d["new/x-copy.txt"], bf)
	}
	t.Logf("the live duplicate took %s", took)
}

// Issue 17 item 5, with defaults' shape: events waiting for a run slot
// must not hold disk budget the running events' outputs need. MaxRuns 1,
// budget 16 MiB, three 5 MiB inputs with trusted checksums, each function
// writing 6 MiB. On f13dda0 the two waiting events downloaded their inputs
// before their slot (15 MiB held), the running one's output waited until
// its timeout ("a.bin: error ... want its output").
func TestSpoolBudget_InputsWaitingForARunSlotHoldNoBudget(t *testing.T) {
	budget := spool.NewBudget(16 * mib)
	e, rt := budgetEnv(t, budget)
	e.pipe, _ = pipeline.New(pipeline.Config{
		Index: e.idx, Objects: store, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"sized": rt},
		Owner: "budget", SpoolDir: t.TempDir(), SpoolBudget: budget, MaxRuns: 1,
	})
	e.deploy("six", func(f *registry.Function) {
		f.Runtime = "sized"
		f.Params = map[string]string{"bytes": strconv.Itoa(6 * mib), "ms": "300"}
		f.Limits.Timeout = 2 * time.Second
		f.MaxAttempts = 1
	})
	var evs []event.Event
	for _, k := range []string{"a.bin", "b.bin", "c.bin"} {
		body := strings.Repeat(k[:1], 5*mib)
		evs = append(evs, trusted(e.put(k, body), body))
	}
	var wg sync.WaitGroup
	for i, ev := range evs {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 50 * time.Millisecond) // a runs first
			handleWithin(t, 30*time.Second, e.pipe, ev)
		})
	}
	wg.Wait()
	for _, r := range e.activations() {
		if r.Decision != activation.Miss || r.Output == nil || r.Output.Size != 6*mib {
			t.Errorf("%s: %s, error %q (%s), output %+v; want its output", r.Event.Key, r.Decision, r.Error, r.ErrorClass, r.Output)
		}
	}
	for _, r := range e.activations() {
		t.Logf("%s %s attempts=%d timings=%+v", r.Event.Key, r.Decision, r.Attempts, r.Timings)
	}
	if got := rt.calls.Load(); got != 3 {
		t.Errorf("function ran %d times, want 3", got)
	}
}

// noChecksumStore is a store without trusted checksums (MinIO without a
// SHA-256 on upload, plain S3): every input is read to be hashed.
type noChecksumStore struct{ objects.Store }

func (s noChecksumStore) Stat(ctx context.Context, bucket, key string) (objects.Info, error) {
	info, err := s.Store.Stat(ctx, bucket, key)
	info.SHA256 = ""
	return info, err
}

// The same with inputs read before the claim to be hashed: an event
// waiting for a run slot drops an input that went to disk and reads it
// again once it may run. On the parent commit the running event's output
// waited until its timeout ("a.bin: error ... want its output").
func TestSpoolBudget_HashedInputsWaitingForARunSlotHoldNoBudget(t *testing.T) {
	budget := spool.NewBudget(16 * mib)
	e, rt := budgetEnv(t, budget)
	objs := &slowStore{Store: noChecksumStore{store}}
	e.pipe, _ = pipeline.New(pipeline.Config{
		Index: e.idx, Objects: objs, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"sized": rt},
		Owner: "budget", SpoolDir: t.TempDir(), SpoolBudget: budget, MaxRuns: 1,
	})
	e.deploy("six", func(f *registry.Function) {
		f.Runtime = "sized"
		f.Params = map[string]string{"bytes": strconv.Itoa(6 * mib), "ms": "300"}
		f.Limits.Timeout = 2 * time.Second
		f.MaxAttempts = 1
	})
	var evs []event.Event
	for _, k := range []string{"a.bin", "b.bin", "c.bin"} {
		evs = append(evs, e.put(k, strings.Repeat(k[:1], 5*mib)))
	}
	var wg sync.WaitGroup
	for i, ev := range evs {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 50 * time.Millisecond) // a runs first
			handleWithin(t, 30*time.Second, e.pipe, ev)
		})
	}
	wg.Wait()
	for _, r := range e.activations() {
		if r.Decision != activation.Miss || r.Output == nil || r.Output.Size != 6*mib || r.Fingerprint == "" {
			t.Errorf("%s: %s, error %q (%s), output %+v; want its output", r.Event.Key, r.Decision, r.Error, r.ErrorClass, r.Output)
		}
	}
	for _, r := range e.activations() {
		t.Logf("%s %s attempts=%d timings=%+v", r.Event.Key, r.Decision, r.Attempts, r.Timings)
	}
	if got := rt.calls.Load(); got != 3 {
		t.Errorf("function ran %d times, want 3", got)
	}
	if got := objs.getsOf("a.bin"); got != 1 {
		t.Errorf("a.bin, which found a free slot, was read %d times, want 1", got)
	}
}

// Two events whose input and output each fit the budget alone, but not
// both at once: when every holder waits, the one refused is retried once
// the other is done, not dead-lettered (a contended budget says nothing
// about the event).
func TestSpoolBudget_ContendedIsRetriedNotDeadLettered(t *testing.T) {
	budget := spool.NewBudget(16 * mib)
	e, rt := budgetEnv(t, budget, func(c *pipeline.Config) {
		c.MaxRuns, c.RetryBase, c.RetryMax = 2, 50*time.Millisecond, 100*time.Millisecond
	})
	e.deploy("big", func(f *registry.Function) {
		f.Runtime = "sized"
		// Both inputs are on disk (10 MiB) when both outputs want 7 MiB more.
		f.Params = map[string]string{"bytes": strconv.Itoa(7 * mib), "ms": "300"}
	})
	evs := []event.Event{e.put("x.bin", strings.Repeat("x", 5*mib)), e.put("y.bin", strings.Repeat("y", 5*mib))}
	var wg sync.WaitGroup
	for _, ev := range evs {
		wg.Go(func() { handleWithin(t, 20*time.Second, e.pipe, ev) })
	}
	wg.Wait()
	for _, r := range e.activations() {
		if r.Decision != activation.Miss || r.DeadLetter {
			t.Errorf("%s: %s dead_letter=%v class=%q error=%q; want a miss (retried after the contention)", r.Event.Key, r.Decision, r.DeadLetter, r.ErrorClass, r.Error)
		}
	}
	if got := rt.calls.Load(); got != 3 {
		t.Errorf("function ran %d times, want 3 (both, and the refused one again)", got)
	}
	wantBudgetFree(t, budget)
}

// Review of issue 17 (B): no wait inside a held run slot is unbounded.
// MaxRuns 1, budget 12 MiB. "block" holds the slot for a while; x.bin
// (8 MiB, hashed before the claim) claims and drops its input to wait for
// the slot; its duplicate dup.bin reads 8 MiB and waits on x's claim.
// When x gets the slot it reads its input again, but the budget is held
// by dup.bin, which was not counted as waiting (it waits on a claim, not
// on budget): on the parent commit nothing ever ended ("still running").
func TestSpoolBudget_NoUnboundedWaitInsideARunSlot(t *testing.T) {
	t.Run("DuplicateWaitingOnAClaimHoldsNoBudget", func(t *testing.T) {
		budget := spool.NewBudget(12 * mib)
		e, rt := budgetEnv(t, budget)
		e.pipe, _ = pipeline.New(pipeline.Config{
			Index: e.idx, Objects: noChecksumStore{store}, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"sized": rt},
			Owner: "budget", SpoolDir: t.TempDir(), SpoolBudget: budget, MaxRuns: 1,
		})
		e.deploy("slow", func(f *registry.Function) {
			f.Runtime = "sized"
			f.Params = map[string]string{"bytes": "1", "ms": "600"}
			f.Limits.Timeout = 5 * time.Second
		})
		body := strings.Repeat("x", 8*mib)
		evs := []event.Event{e.put("block.txt", "block"), e.put("x.bin", body), e.put("dup.bin", body)}
		var wg sync.WaitGroup
		for i, ev := range evs {
			wg.Go(func() {
				time.Sleep(time.Duration(i) * 150 * time.Millisecond)
				handleWithin(t, 15*time.Second, e.pipe, ev)
			})
		}
		wg.Wait()
		d := e.decisions()
		if d["block.txt"] != activation.Miss || d["x.bin"] != activation.Miss || d["dup.bin"] != activation.Wait {
			t.Errorf("decisions %v; want block.txt and x.bin miss, dup.bin wait", d)
		}
		if got := rt.calls.Load(); got != 2 {
			t.Errorf("function ran %d times, want 2", got)
		}
		wantBudgetFree(t, budget)
	})
	t.Run("InputWaitEndsWithTheTimeout", func(t *testing.T) {
		// Another holder keeps 8 MiB and never waits: an input of 8 MiB
		// read inside the slot waits for budget no longer than the
		// function's timeout, and fails as a platform error.
		budget := spool.NewBudget(12 * mib)
		e, rt := budgetEnv(t, budget)
		holdBudget(t, budget, 8*mib)
		e.deploy("big", func(f *registry.Function) {
			f.Runtime = "sized"
			f.Params = map[string]string{"bytes": "1"}
			f.Limits.Timeout = time.Second
			f.MaxAttempts = 1
		})
		body := strings.Repeat("t", 8*mib)
		took := handleWithin(t, 10*time.Second, e.pipe, trusted(e.put("t.bin", body), body))
		r := e.activations()[0]
		if r.Decision != activation.Error || r.ErrorClass != string(runtime.ClassPlatform) || !strings.Contains(r.Error, "--spool-budget") {
			t.Fatalf("activation %s class=%q error=%q; want a platform error naming --spool-budget", r.Decision, r.ErrorClass, r.Error)
		}
		if took > 5*time.Second {
			t.Errorf("the event took %s with a 1s timeout", took)
		}
		if got := rt.calls.Load(); got != 0 {
			t.Errorf("function ran %d times, want 0 (its input never fit)", got)
		}
	})
}
