package embedded_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/source"
	"github.com/dedupfn/dedupfn/internal/source/embedded"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

func open(t *testing.T, dir string, concurrency int) *embedded.Queue {
	t.Helper()
	src, err := source.Open(t.Context(), "embedded:", source.Options{DataDir: dir, Concurrency: concurrency})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src.(*embedded.Queue)
}

func ev(key string) event.Event {
	return event.Event{Source: "embedded", Name: "s3:ObjectCreated:Put", Bucket: "in", Key: key, Size: 1}
}

// run starts q.Run(h) and returns a stop func that cancels it and waits.
func run(t *testing.T, q *embedded.Queue, h source.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run returned %v, want nil on cancel", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func queued(t *testing.T, q *embedded.Queue) int {
	t.Helper()
	n, err := q.Len()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPublishDeliverAck(t *testing.T) {
	q := open(t, t.TempDir(), 2)
	for i := range 3 {
		if err := q.Publish(t.Context(), ev(fmt.Sprint("k", i))); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	got := map[string]string{}
	run(t, q, func(_ context.Context, e event.Event) error {
		mu.Lock()
		got[e.Key] = e.Sequencer
		mu.Unlock()
		return nil
	})
	testutil.Eventually(t, 5*time.Second, "3 deliveries and an empty queue", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 3 && queued(t, q) == 0
	})
	want := map[string]string{"k0": "00000000000000000001", "k1": "00000000000000000002", "k2": "00000000000000000003"}
	mu.Lock()
	defer mu.Unlock()
	for k, seq := range want {
		if got[k] != seq {
			t.Errorf("event %s sequencer = %q, want %q", k, got[k], seq)
		}
	}
}

func TestPublishWhileRunningIsPrompt(t *testing.T) {
	q := open(t, t.TempDir(), 1)
	delivered := make(chan time.Time, 1)
	run(t, q, func(context.Context, event.Event) error { delivered <- time.Now(); return nil })
	time.Sleep(100 * time.Millisecond) // the dispatcher is now idle, waiting
	start := time.Now()
	if err := q.Publish(t.Context(), ev("late")); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-delivered:
		if d := at.Sub(start); d > time.Second {
			t.Errorf("delivery took %s, want prompt", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("event published during Run was not delivered")
	}
}

func TestHandlerErrorRedelivers(t *testing.T) {
	q := open(t, t.TempDir(), 1)
	if err := q.Publish(t.Context(), ev("flaky")); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var seqs sync.Map
	run(t, q, func(_ context.Context, e event.Event) error {
		seqs.Store(e.Sequencer, true)
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	testutil.Eventually(t, 10*time.Second, "third delivery to succeed", func() bool {
		return calls.Load() == 3 && queued(t, q) == 0
	})
	time.Sleep(300 * time.Millisecond)
	if n := calls.Load(); n != 3 {
		t.Errorf("handler called %d times, want 3 (no delivery after success)", n)
	}
	n := 0
	seqs.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("redeliveries carried %d different sequencers, want the same one", n)
	}
}

func TestFailingEventStaysQueued(t *testing.T) {
	q := open(t, t.TempDir(), 2)
	if err := q.Publish(t.Context(), ev("bad")); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	stop := run(t, q, func(context.Context, event.Event) error { calls.Add(1); return errors.New("always") })
	testutil.Eventually(t, 10*time.Second, "two failed attempts", func() bool { return calls.Load() >= 2 })
	stop()
	if n := queued(t, q); n != 1 {
		t.Errorf("queue holds %d events after failures, want 1", n)
	}
}

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, 1)
	if err := q.Publish(t.Context(), ev("survivor")); err != nil {
		t.Fatal(err)
	}
	inHandler := make(chan struct{})
	release := make(chan struct{})
	run(t, q, func(ctx context.Context, e event.Event) error {
		close(inHandler)
		select { // a handler that never finishes: the process "dies" mid-delivery
		case <-release:
		case <-ctx.Done():
		}
		return ctx.Err()
	})
	<-inHandler
	if err := q.Close(); err != nil { // stops Run without an ack
		t.Fatalf("close: %v", err)
	}
	close(release)

	q2 := open(t, dir, 1)
	got := make(chan event.Event, 1)
	run(t, q2, func(_ context.Context, e event.Event) error { got <- e; return nil })
	select {
	case e := <-got:
		if e.Key != "survivor" || e.Sequencer != "00000000000000000001" {
			t.Errorf("redelivered %+v, want survivor with sequencer 1", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("event not delivered after reopen")
	}
	// Sequence numbers keep increasing across reopen.
	var seq string
	q2.Publish(t.Context(), ev("next"))
	select {
	case e := <-got:
		seq = e.Sequencer
	case <-time.After(5 * time.Second):
		t.Fatal("second event not delivered")
	}
	if seq != "00000000000000000002" {
		t.Errorf("sequencer after reopen = %s, want 2", seq)
	}
}

func TestConcurrencyBound(t *testing.T) {
	const limit, events = 3, 20
	q := open(t, t.TempDir(), limit)
	for i := range events {
		if err := q.Publish(t.Context(), ev(fmt.Sprint("k", i))); err != nil {
			t.Fatal(err)
		}
	}
	var cur, peak, done atomic.Int32
	run(t, q, func(context.Context, event.Event) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		cur.Add(-1)
		done.Add(1)
		return nil
	})
	testutil.Eventually(t, 10*time.Second, "all events handled", func() bool { return done.Load() == events })
	if p := peak.Load(); p != limit {
		t.Errorf("peak concurrency = %d, want %d", p, limit)
	}
}

func TestCloseTwiceAndAfterClose(t *testing.T) {
	q, err := embedded.OpenQueue(filepath.Join(t.TempDir(), "q.db"), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := q.Publish(t.Context(), ev("late")); err == nil {
		t.Error("publish after close succeeded")
	}
	if err := q.Run(t.Context(), func(context.Context, event.Event) error { return nil }); err == nil {
		t.Error("run after close succeeded")
	}
}

func TestOpenNeedsDataDir(t *testing.T) {
	_, err := source.Open(t.Context(), "embedded:", source.Options{})
	if err == nil || err.Error() != "embedded: data dir must be set" {
		t.Errorf("open without data dir = %v, want data dir error", err)
	}
}

func TestBackoff(t *testing.T) {
	for attempts := 1; attempts < 100; attempts++ {
		d := embedded.Backoff(attempts)
		if d < embedded.MinBackoff/2 || d > embedded.MaxBackoff {
			t.Fatalf("Backoff(%d) = %s, want within [%s, %s]", attempts, d, embedded.MinBackoff/2, embedded.MaxBackoff)
		}
	}
	if d := embedded.Backoff(50); d < embedded.MaxBackoff/2 {
		t.Errorf("Backoff(50) = %s, want capped near %s", d, embedded.MaxBackoff)
	}
}

// TestKillDuringDelivery publishes from a child process that is killed
// (SIGKILL, no Close) while its handler holds the event; the event must
// come back when the parent opens the same file.
func TestKillDuringDelivery(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0])
	cmd.Env = append(os.Environ(), "EMBEDDED_CRASH_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "IN HANDLER" {
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	q := open(t, dir, 1)
	got := make(chan event.Event, 2)
	run(t, q, func(_ context.Context, e event.Event) error { got <- e; return nil })
	select {
	case e := <-got:
		if e.Key != "crashed" {
			t.Errorf("redelivered %+v, want key crashed", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("event published before the kill was not delivered after reopen")
	}
}

// TestMain runs the crash child of TestKillDuringDelivery when asked to.
func TestMain(m *testing.M) {
	if dir := os.Getenv("EMBEDDED_CRASH_CHILD_DIR"); dir != "" {
		crashChild(dir)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// crashChild publishes one event and blocks in its handler until killed.
func crashChild(dir string) {
	q, err := embedded.OpenQueue(filepath.Join(dir, embedded.FileName), 1, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := q.Publish(context.Background(), ev("crashed")); err != nil {
		fmt.Println(err)
		return
	}
	q.Run(context.Background(), func(context.Context, event.Event) error {
		fmt.Println("IN HANDLER")
		select {} // killed here
	})
}

// Issue 20: the built-in endpoint's deletes go through the queue like its
// uploads; the stored record keeps the name (and version, time) so the
// handler, after a restart too, sees an object-removed event.
func TestRemovedEventDelivered(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	removed := event.Event{Source: "embedded", Name: "s3:ObjectRemoved:Delete", Bucket: "in", Key: "gone.jpg", VersionID: "v1", Time: at}
	q := open(t, dir, 1)
	if err := q.Publish(t.Context(), removed); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := open(t, dir, 1)
	got := make(chan event.Event, 1)
	run(t, q2, func(_ context.Context, e event.Event) error { got <- e; return nil })
	select {
	case e := <-got:
		if !e.Removed() || e.Name != removed.Name || e.Key != "gone.jpg" || e.VersionID != "v1" || !e.Time.Equal(at) || e.Source != "embedded" {
			t.Errorf("delivered %+v, want the removed event %+v", e, removed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("removed event not delivered")
	}
	testutil.Eventually(t, 5*time.Second, "an empty queue", func() bool { return queued(t, q2) == 0 })
}
