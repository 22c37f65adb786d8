package backfill

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	_ "github.com/dedupfn/dedupfn/internal/index/bolt"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// The watermark advances only over a run of finished objects from the
// oldest listed, whatever order they finish in, and counts each once.
func TestWatermark_OutOfOrder(t *testing.T) {
	r := &runner{pending: map[uint64]*slot{}}
	a, b, c, d := r.add("a"), r.add("b"), r.add("c"), r.add("d")
	one := Counters{Objects: 1, Bytes: 10, Runs: 1}
	for _, step := range []struct {
		done    uint64
		cursor  string
		objects int64
	}{
		{c, "", 0},  // a and b still in flight
		{b, "", 0},  // a still in flight
		{a, "c", 3}, // a, b, c finished
		{d, "d", 4},
	} {
		r.done(step.done, one)
		if r.d.Cursor != step.cursor || r.d.Objects != step.objects || r.d.Runs != step.objects || r.d.Bytes != 10*step.objects {
			t.Fatalf("after %d done: cursor %q, counters %+v; want cursor %q and %d objects", step.done, r.d.Cursor, r.d.Counters, step.cursor, step.objects)
		}
	}
	if len(r.pending) != 0 {
		t.Errorf("%d objects still pending after all finished", len(r.pending))
	}
}

// listStore lists fixed keys, in order, and does nothing else.
type listStore struct {
	objects.Store
	keys []string
}

func (s listStore) List(ctx context.Context, bucket, prefix, after string, fn func(objects.Info) error) error {
	for _, k := range s.keys {
		if strings.HasPrefix(k, prefix) && k > after {
			if err := fn(objects.Info{Bucket: bucket, Key: k, Size: 1}); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// recordingSender records the keys sent and records nothing.
type recordingSender struct {
	mu   sync.Mutex
	keys []string
}

func (s *recordingSender) Backfill(_ context.Context, _ registry.Function, o objects.Info) (*activation.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, o.Key)
	return nil, nil
}

func (s *recordingSender) sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys)
}

// A job whose replica died (no release, heartbeat left behind) is left
// alone while its heartbeat is fresh, then resumed after its watermark.
func TestAdopt_StaleOwner(t *testing.T) {
	idx := testutil.BoltIndex(t)
	reg := registry.New(idx, nil)
	fn, err := reg.Deploy(t.Context(), registry.Function{Name: "f", Runtime: "test",
		Trigger: registry.Trigger{Bucket: "in"}, Output: registry.Output{Bucket: "out"}}, []byte("code"))
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	send := &recordingSender{}
	m, err := New(Config{Index: idx, Objects: listStore{keys: keys}, Registry: reg, Pipeline: send, Owner: "me",
		Heartbeat: 20 * time.Millisecond, StaleAfter: 400 * time.Millisecond, Scan: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	ghost := doc{
		Job: Job{ID: "job1", Tenant: fn.Tenant, Function: "f", Version: fn.Version, Bucket: "in", State: Running,
			Concurrency: 2, Counters: Counters{Objects: 5, Bytes: 5, Skipped: 5}, Created: now, Updated: now},
		Cursor: "k4", Owner: "ghost", Heartbeat: now,
	}
	if err := m.put(t.Context(), ghost); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	time.Sleep(200 * time.Millisecond) // ten scans, half the stale-after
	if got, _ := m.get(t.Context(), "", "job1"); got.Owner != "ghost" || len(send.sent()) != 0 {
		t.Fatalf("a job with a fresh heartbeat was taken: owner %q, sent %v", got.Owner, send.sent())
	}
	var end doc
	testutil.Eventually(t, 10*time.Second, "the stale job to be resumed and done", func() bool {
		end, err = m.get(t.Context(), "", "job1")
		return err == nil && end.State == Done
	})
	got := send.sent()
	slices.Sort(got) // two workers
	if !slices.Equal(got, []string{"k5", "k6", "k7"}) {
		t.Errorf("resumed job sent %v, want the keys after its watermark k4, once each", got)
	}
	if end.Owner != "me" || end.Objects != 8 || end.Skipped != 8 || end.TotalObjects != 8 || end.Cursor != "k7" {
		t.Errorf("resumed job ended %+v; want owner me, 8 objects all skipped, total 8, cursor k7", end)
	}
}

// panicSender panics on one key.
type panicSender struct{ recordingSender }

func (s *panicSender) Backfill(ctx context.Context, fn registry.Function, o objects.Info) (*activation.Record, error) {
	if o.Key == "k1" {
		panic("a bug on the event path")
	}
	return s.recordingSender.Backfill(ctx, fn, o)
}

// A panic on one object fails the job, with the watermark before it; the
// manager (and the server) go on.
func TestRun_PanicFailsJob(t *testing.T) {
	idx := testutil.BoltIndex(t)
	reg := registry.New(idx, nil)
	if _, err := reg.Deploy(t.Context(), registry.Function{Name: "f", Runtime: "test",
		Trigger: registry.Trigger{Bucket: "in"}, Output: registry.Output{Bucket: "out"}}, []byte("code")); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Index: idx, Objects: listStore{keys: []string{"k0", "k1", "k2"}}, Registry: reg, Pipeline: &panicSender{},
		Owner: "me", Heartbeat: 20 * time.Millisecond, StaleAfter: time.Second, Scan: 20 * time.Millisecond, Attempts: 2,
		RetryBase: time.Millisecond, RetryMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	job, err := m.Start(t.Context(), Request{Function: "f", Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	var end doc
	testutil.Eventually(t, 10*time.Second, "the job to fail", func() bool {
		end, err = m.get(t.Context(), "", job.ID)
		return err == nil && end.State != Running
	})
	if end.State != Failed || !strings.Contains(end.Error, "panic: a bug on the event path") || end.Cursor != "k0" || end.Objects != 1 {
		t.Fatalf("job ended %s %q at cursor %q with %d objects; want failed naming the panic, watermark k0, 1 object", end.State, end.Error, end.Cursor, end.Objects)
	}
}
