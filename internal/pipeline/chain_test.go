package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// stageRuntime wraps its input in its function's name, "thumbnail(a)",
// and counts executions per function: a pure function per stage.
type stageRuntime struct {
	mu    sync.Mutex
	calls map[string]int
}

func (r *stageRuntime) Name() string                { return "stage" }
func (r *stageRuntime) Version() string             { return "stage/1" }
func (r *stageRuntime) Close(context.Context) error { return nil }

func (r *stageRuntime) Invoke(_ context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	r.mu.Lock()
	r.calls[inv.Function.Name]++
	r.mu.Unlock()
	data, err := io.ReadAll(inv.Input)
	if err != nil {
		return runtime.Result{}, err
	}
	if string(data) == "json" { // a JSON result, stored at KEY.json
		return runtime.Result{Result: []byte(`{"json":true}`), Duration: time.Millisecond}, nil
	}
	fmt.Fprintf(inv.Output, "%s(%s)", inv.Function.Name, data)
	return runtime.Result{OutputWritten: true, Duration: time.Millisecond}, nil
}

func (r *stageRuntime) ran(fn string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[fn]
}

// bucketReads counts the reads of each bucket's objects.
type bucketReads struct {
	objects.Store
	mu   sync.Mutex
	gets map[string]int
}

func (s *bucketReads) Get(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, objects.Info, error) {
	s.mu.Lock()
	s.gets[bucket]++
	s.mu.Unlock()
	return s.Store.Get(ctx, bucket, key, versionID, etag)
}

func (s *bucketReads) got(bucket string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[bucket]
}

// chainEnv is images → thumbnail → thumbs → classify → labels.
type chainEnv struct {
	t                      *testing.T
	idx                    index.Index
	reg                    *registry.Registry
	rt                     *stageRuntime
	objs                   *bucketReads
	pipe                   *pipeline.Pipeline
	images, thumbs, labels string
}

func newChainEnv(t *testing.T) *chainEnv {
	t.Helper()
	idx := testutil.BoltIndex(t)
	n := bucketSeq.Add(1)
	c := &chainEnv{t: t, idx: idx, reg: registry.New(idx, nil), rt: &stageRuntime{calls: map[string]int{}},
		objs: &bucketReads{Store: store, gets: map[string]int{}}}
	for _, b := range []*string{&c.images, &c.thumbs, &c.labels} {
		*b = fmt.Sprintf("chain%d-%d-%d", len(c.images+c.thumbs+c.labels), time.Now().UnixNano()%1e6, n)
		if err := store.MakeBucket(t.Context(), *b); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	c.pipe, err = pipeline.New(pipeline.Config{
		Index: idx, Objects: c.objs, Registry: c.reg, Runtimes: map[string]runtime.Runtime{"stage": c.rt},
		Owner: "chain", SpoolDir: t.TempDir(), RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deploy deploys thumbnail (images → thumbs) and classify (thumbs →
// labels), each mutated by mutate.
func (c *chainEnv) deploy(mutate func(*registry.Function)) {
	c.t.Helper()
	for _, f := range []registry.Function{
		{Name: "thumbnail", Runtime: "stage", Trigger: registry.Trigger{Bucket: c.images}, Output: registry.Output{Bucket: c.thumbs}},
		{Name: "classify", Runtime: "stage", Trigger: registry.Trigger{Bucket: c.thumbs}, Output: registry.Output{Bucket: c.labels, KeyTemplate: "{key}.label"}},
	} {
		if mutate != nil {
			mutate(&f)
		}
		if _, err := c.reg.Deploy(c.t.Context(), f, []byte("code of "+f.Name)); err != nil {
			c.t.Fatal(err)
		}
	}
}

// upload puts an image and handles its event as the built-in endpoint
// delivers it: with the SHA-256 it computed.
func (c *chainEnv) upload(key, body string) {
	c.t.Helper()
	info, err := store.Put(c.t.Context(), c.images, key, strings.NewReader(body), int64(len(body)), objects.PutOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	ev := event.Event{Source: "embedded", Name: "s3:ObjectCreated:Put", Bucket: c.images, Key: key, ETag: info.ETag,
		Size: info.Size, SHA256: info.SHA256, Time: info.Modified}
	if err := c.pipe.Handle(c.t.Context(), ev); err != nil {
		c.t.Fatalf("Handle(%s): %v", key, err)
	}
}

func (c *chainEnv) read(bucket, key string) (string, error) {
	rc, _, err := store.Get(c.t.Context(), bucket, key, "", "")
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

func (c *chainEnv) want(bucket, key, body string) {
	c.t.Helper()
	got, err := c.read(bucket, key)
	if err != nil || got != body {
		c.t.Errorf("%s/%s = %q, %v; want %q", bucket, key, got, err, body)
	}
}

func (c *chainEnv) wantGone(bucket, key string) {
	c.t.Helper()
	if got, err := c.read(bucket, key); !errors.Is(err, objects.ErrNotFound) {
		c.t.Errorf("%s/%s = %q, %v; want it deleted", bucket, key, got, err)
	}
}

func (c *chainEnv) runs(thumbnail, classify int) {
	c.t.Helper()
	if a, b := c.rt.ran("thumbnail"), c.rt.ran("classify"); a != thumbnail || b != classify {
		c.t.Fatalf("executions: thumbnail %d, classify %d; want %d and %d", a, b, thumbnail, classify)
	}
}

func (c *chainEnv) activations(fn string) []activation.Record {
	c.t.Helper()
	recs, err := c.idx.Activations(c.t.Context(), activation.Filter{Function: fn, Limit: 1000})
	if err != nil {
		c.t.Fatal(err)
	}
	return recs
}

// forgetActivations deletes fn's activation records, as a delivery cut
// short before it recorded them would have left them: in a fresh index
// holding everything else.
func (c *chainEnv) forgetActivations(fn string) {
	c.forget(func(r activation.Record) bool { return r.Function == fn })
}

// forget deletes the activation records drop picks (forgetActivations).
func (c *chainEnv) forget(drop func(activation.Record) bool) {
	c.t.Helper()
	keep := []activation.Record{}
	for _, r := range c.activations("") {
		if !drop(r) {
			keep = append(keep, r)
		}
	}
	if _, err := c.idx.PruneActivations(c.t.Context(), time.Now().Add(time.Hour)); err != nil {
		c.t.Fatal(err)
	}
	for _, r := range keep {
		if err := c.idx.AddActivation(c.t.Context(), r); err != nil {
			c.t.Fatal(err)
		}
	}
}

func TestChain_EachStageDeduplicated(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(nil)
	c.upload("a.jpg", "A")
	c.upload("b.jpg", "B")
	c.upload("c.jpg", "A")
	c.runs(2, 2)
	read := c.objs.got(c.thumbs) // by classify's two runs
	for key, body := range map[string]string{"a": "A", "b": "B", "c": "A"} {
		c.want(c.thumbs, key+".jpg", "thumbnail("+body+")")
		c.want(c.labels, key+".jpg.label", "classify(thumbnail("+body+"))")
	}
	// A duplicate of the first under another key: no run in either
	// stage, and its label is there.
	c.upload("d.jpg", "A")
	c.runs(2, 2)
	c.want(c.labels, "d.jpg.label", "classify(thumbnail(A))")
	if n := c.objs.got(c.thumbs) - read; n != 0 {
		t.Errorf("a duplicate's walk read %d intermediate objects, want 0 (the next stage decides from the recorded SHA-256)", n)
	}

	// Each classify activation names its cause (the thumbnail activation
	// that wrote its input), its root and its stage.
	thumbs := map[string]activation.Record{}
	for _, r := range c.activations("thumbnail") {
		if r.Stage != 1 || r.Cause != "" || r.Root == nil || r.Root.Key != r.Event.Key {
			t.Errorf("thumbnail activation of %s: stage %d, cause %q, root %+v; want stage 1, no cause, root itself", r.Event.Key, r.Stage, r.Cause, r.Root)
		}
		thumbs[r.ID] = r
	}
	labels := c.activations("classify")
	if len(labels) != 4 {
		t.Fatalf("%d classify activations, want 4", len(labels))
	}
	for _, r := range labels {
		cause, ok := thumbs[r.Cause]
		switch {
		case !ok:
			t.Errorf("classify activation of %s: cause %q is no thumbnail activation", r.Event.Key, r.Cause)
		case r.Stage != 2 || r.Root == nil || r.Root.Bucket != c.images || r.Root.Key != cause.Event.Key || cause.Output.Key != r.Event.Key:
			t.Errorf("classify activation of %s: stage %d, root %+v, cause's output %+v; want stage 2, root the upload", r.Event.Key, r.Stage, r.Root, cause.Output)
		}
	}
}

func TestChain_RedeliveryGoesOnFromRecordedOutputs(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(nil)
	c.upload("a.jpg", "A")
	// As if the first delivery was cut short after stage 1 recorded its
	// activation, while classify was running: its activation is lost.
	c.forgetActivations("classify")
	info, err := store.Stat(t.Context(), c.images, "a.jpg")
	if err != nil {
		t.Fatal(err)
	}
	ev := event.Event{Source: "embedded", Name: "s3:ObjectCreated:Put", Bucket: c.images, Key: "a.jpg", ETag: info.ETag, Size: info.Size, SHA256: info.SHA256, Time: info.Modified}
	if err := c.pipe.Handle(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	c.runs(1, 1) // classify hit its recorded result
	c.want(c.labels, "a.jpg.label", "classify(thumbnail(A))")
	if n := len(c.activations("thumbnail")); n != 1 {
		t.Errorf("%d thumbnail activations after a redelivery, want 1", n)
	}
}

func TestChain_EarlyCutoffOnRedeploy(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(nil)
	c.upload("a.jpg", "A")
	c.upload("b.jpg", "B")
	c.runs(2, 2)
	// A new version of thumbnail whose outputs are byte-identical.
	f, err := c.reg.Get(t.Context(), registry.DefaultTenant, "thumbnail")
	if err != nil {
		t.Fatal(err)
	}
	f.Params = map[string]string{"unused": "v2"}
	if f, err = c.reg.Deploy(t.Context(), f, []byte("code of thumbnail")); err != nil {
		t.Fatal(err)
	}
	err = store.List(t.Context(), c.images, "", "", func(o objects.Info) error {
		_, err := c.pipe.Backfill(t.Context(), f, o)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c.runs(4, 2) // thumbnail ran again for its new version; classify did not
	c.want(c.labels, "b.jpg.label", "classify(thumbnail(B))")
}

func TestChain_OutputNeverTriggersItsWriter(t *testing.T) {
	c := newChainEnv(t)
	// Output into its own trigger bucket, under a key its trigger matches.
	f := registry.Function{Name: "thumbnail", Runtime: "stage", Trigger: registry.Trigger{Bucket: c.images}, Output: registry.Output{Bucket: c.images, KeyTemplate: "{dir}{base}.small{ext}"}}
	if _, err := c.reg.Deploy(t.Context(), f, []byte("code")); err != nil {
		t.Skipf("deploy refused (the graph check): %v", err) // nothing can loop then either
	}
	c.upload("a.jpg", "A")
	c.runs(1, 0)
	c.want(c.images, "a.small.jpg", "thumbnail(A)")
}

func TestLineage_ChainBackToTheUploadAndDerived(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(nil)
	c.upload("a.jpg", "A")
	all := func(string) bool { return true }
	l, err := c.pipe.Lineage(t.Context(), c.labels, "a.jpg.label", all)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(l.Chain)
	thumb, label := c.activations("thumbnail")[0], c.activations("classify")[0]
	want := fmt.Sprint([]pipeline.LineageStep{
		{Bucket: c.images, Key: "a.jpg"},
		{Bucket: c.thumbs, Key: "a.jpg", Function: "thumbnail", Version: thumb.Version, Activation: thumb.ID, Stage: 1},
		{Bucket: c.labels, Key: "a.jpg.label", Function: "classify", Version: label.Version, Activation: label.ID, Stage: 2},
	})
	if got != want {
		t.Errorf("chain\n got %s\nwant %s", got, want)
	}
	d, err := c.pipe.Lineage(t.Context(), c.images, "a.jpg", all)
	if err != nil {
		t.Fatal(err)
	}
	wantD := fmt.Sprint([]pipeline.Derived{{Bucket: c.thumbs, Key: "a.jpg", Function: "thumbnail", Stage: 1}, {Bucket: c.labels, Key: "a.jpg.label", Function: "classify", Stage: 2}})
	if fmt.Sprint(d.Derived) != wantD || len(d.Chain) != 1 {
		t.Errorf("derived %v (chain %v), want %s and the upload alone", d.Derived, d.Chain, wantD)
	}
	// Invisible buckets are left out; an unknown object is ErrNoLineage.
	hidden, err := c.pipe.Lineage(t.Context(), c.images, "a.jpg", func(b string) bool { return b != c.labels })
	if err != nil || len(hidden.Derived) != 1 {
		t.Errorf("derived without labels: %v, %v; want the thumb alone", hidden.Derived, err)
	}
	if _, err := c.pipe.Lineage(t.Context(), c.images, "nothing.jpg", all); !errors.Is(err, pipeline.ErrNoLineage) {
		t.Errorf("lineage of an unknown object: %v, want ErrNoLineage", err)
	}
	// Provenance outlives the activations (pruning does not cut it).
	if _, err := c.idx.PruneActivations(t.Context(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if again, err := c.pipe.Lineage(t.Context(), c.labels, "a.jpg.label", all); err != nil || fmt.Sprint(again.Chain) != want {
		t.Errorf("chain after the activations were pruned: %v, %v", again.Chain, err)
	}
}

// remove deletes an image and handles its removed event.
func (c *chainEnv) remove(key string) {
	c.t.Helper()
	if err := store.Delete(c.t.Context(), c.images, key); err != nil {
		c.t.Fatal(err)
	}
	ev := event.Event{Source: "embedded", Name: "s3:ObjectRemoved:Delete", Bucket: c.images, Key: key, Time: time.Now().UTC()}
	if err := c.pipe.Handle(c.t.Context(), ev); err != nil {
		c.t.Fatalf("Handle(delete %s): %v", key, err)
	}
}

func onDelete(policy string) func(*registry.Function) {
	return func(f *registry.Function) { f.OnInputDelete = policy }
}

func TestDelete_RemovesOutputsDownstream(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(onDelete(registry.OnInputDeleteDelete))
	c.upload("a.jpg", "A")
	c.upload("b.jpg", "B")
	c.remove("a.jpg")
	c.wantGone(c.thumbs, "a.jpg")
	c.wantGone(c.labels, "a.jpg.label")
	c.want(c.thumbs, "b.jpg", "thumbnail(B)") // nothing else
	c.want(c.labels, "b.jpg.label", "classify(thumbnail(B))")
	st, err := c.idx.Stats(t.Context(), "")
	if err != nil || st.Deletes != 2 || st.Runs != 4 {
		t.Errorf("stats %+v, %v; want 2 deletes apart from 4 runs", st, err)
	}
	for _, fn := range []string{"thumbnail", "classify"} {
		n := 0
		for _, r := range c.activations(fn) {
			if r.Decision == activation.Delete {
				n++
				if r.Event.Key != map[string]string{"thumbnail": "a.jpg", "classify": "a.jpg"}[fn] || r.Output == nil {
					t.Errorf("%s's delete activation: event %+v, output %+v", fn, r.Event, r.Output)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s: %d delete activations, want 1", fn, n)
		}
	}
	// Its lineage is gone with it; b's stays.
	if _, err := c.pipe.Lineage(t.Context(), c.labels, "a.jpg.label", func(string) bool { return true }); !errors.Is(err, pipeline.ErrNoLineage) {
		t.Errorf("lineage of a deleted output: %v, want ErrNoLineage", err)
	}
	// Uploaded again, it runs again (its record was dropped with its
	// only output).
	c.upload("a.jpg", "A")
	c.runs(3, 3)
	c.want(c.labels, "a.jpg.label", "classify(thumbnail(A))")
}

func TestDelete_KeepRemovesNothing(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(nil) // keep, the default
	c.upload("a.jpg", "A")
	c.remove("a.jpg")
	c.want(c.thumbs, "a.jpg", "thumbnail(A)")
	c.want(c.labels, "a.jpg.label", "classify(thumbnail(A))")
}

func TestDelete_OnlyStagesThatDelete(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(func(f *registry.Function) {
		if f.Name == "thumbnail" {
			f.OnInputDelete = registry.OnInputDeleteDelete
		}
	})
	c.upload("a.jpg", "A")
	c.remove("a.jpg")
	c.wantGone(c.thumbs, "a.jpg")
	c.want(c.labels, "a.jpg.label", "classify(thumbnail(A))") // classify keeps
}

func TestDelete_RecordRepointedToALiveCopy(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(onDelete(registry.OnInputDeleteDelete))
	c.upload("a.jpg", "A") // the run: thumbs/a.jpg is the record's output
	c.upload("d.jpg", "A") // a hit: a copy at thumbs/d.jpg
	c.remove("a.jpg")
	c.wantGone(c.thumbs, "a.jpg")
	c.want(c.thumbs, "d.jpg", "thumbnail(A)")
	// The record now points to the live copy: a third upload is a hit.
	c.upload("e.jpg", "A")
	c.runs(1, 1)
	c.want(c.thumbs, "e.jpg", "thumbnail(A)")
	c.want(c.labels, "e.jpg.label", "classify(thumbnail(A))")
}

func TestDelete_UserObjectAtTheOutputKeyStays(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(onDelete(registry.OnInputDeleteDelete))
	c.upload("a.jpg", "A")
	// The user replaces the thumb with their own bytes.
	if _, err := store.Put(t.Context(), c.thumbs, "a.jpg", strings.NewReader("mine"), 4, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	c.remove("a.jpg")
	c.want(c.thumbs, "a.jpg", "mine")
}

func TestDelete_ReuploadedSinceKeepsOutputs(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(onDelete(registry.OnInputDeleteDelete))
	c.upload("a.jpg", "A")
	// The delete's event arrives after a new upload to the key.
	if _, err := store.Put(t.Context(), c.images, "a.jpg", strings.NewReader("A"), 1, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	ev := event.Event{Source: "embedded", Name: "s3:ObjectRemoved:Delete", Bucket: c.images, Key: "a.jpg", Time: time.Now().UTC()}
	if err := c.pipe.Handle(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	c.want(c.thumbs, "a.jpg", "thumbnail(A)")
}

func TestDelete_OverwrittenInputsOldOutputElsewhereRemoved(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(onDelete(registry.OnInputDeleteDelete))
	c.upload("a.jpg", "A")
	c.upload("a.jpg", "json") // its output is now thumbs/a.jpg.json
	c.want(c.thumbs, "a.jpg.json", `{"json":true}`)
	c.wantGone(c.thumbs, "a.jpg")
	c.wantGone(c.labels, "a.jpg.label")
	// With keep, the old output stays.
	k := newChainEnv(t)
	k.deploy(nil)
	k.upload("a.jpg", "A")
	k.upload("a.jpg", "json")
	k.want(k.thumbs, "a.jpg", "thumbnail(A)")
}

func TestReconcile_InputDeletedWithoutEvent(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(onDelete(registry.OnInputDeleteDelete))
	c.upload("a.jpg", "A")
	c.upload("b.jpg", "B")
	if err := store.Delete(t.Context(), c.images, "a.jpg"); err != nil { // its event lost
		t.Fatal(err)
	}
	n, err := c.pipe.Reconcile(t.Context(), 0)
	if err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want the one input found gone", n, err)
	}
	c.wantGone(c.thumbs, "a.jpg")
	c.wantGone(c.labels, "a.jpg.label")
	c.want(c.labels, "b.jpg.label", "classify(thumbnail(B))")
	if n, err := c.pipe.Reconcile(t.Context(), 0); err != nil || n != 0 {
		t.Fatalf("second Reconcile = %d, %v; want nothing left", n, err)
	}
}

func TestReconcile_FindsAStageItsEventMissed(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(nil)
	c.upload("a.jpg", "A")
	// classify's activation and record were lost: the reconciler lists
	// thumbs, finds dedupfn's output there without its next stage, and
	// runs it, as the output's event would have.
	c.forgetActivations("classify")
	if _, err := c.pipe.Purge(t.Context(), "", "classify", "", true); err != nil {
		t.Fatal(err)
	}
	n, err := c.pipe.Reconcile(t.Context(), 0)
	if err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want 1", n, err)
	}
	c.runs(1, 2)
	if n, err := c.pipe.Reconcile(t.Context(), 0); err != nil || n != 0 {
		t.Fatalf("second Reconcile = %d, %v; want 0", n, err)
	}
}

// A bucket taken from a tenant since its deploy triggers nothing of it,
// neither an upload nor another function's output, and records nothing
// (which would show the tenant an object no longer its own).
func TestTenantBuckets_RevokedBucketTriggersNothing(t *testing.T) {
	c := newChainEnv(t)
	for _, f := range []registry.Function{
		{Tenant: "globex", Name: "thumbnail", Runtime: "stage", Trigger: registry.Trigger{Bucket: c.images}, Output: registry.Output{Bucket: c.thumbs}},
		{Tenant: "acme", Name: "watch", Runtime: "stage", Trigger: registry.Trigger{Bucket: c.thumbs}, Output: registry.Output{Bucket: c.labels}},
	} {
		if _, err := c.reg.Deploy(t.Context(), f, []byte("code")); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	c.pipe, err = pipeline.New(pipeline.Config{
		Index: c.idx, Objects: c.objs, Registry: c.reg, Runtimes: map[string]runtime.Runtime{"stage": c.rt},
		Owner: "chain", SpoolDir: t.TempDir(),
		TenantBuckets: map[string][]string{"acme": {c.labels}, "globex": {c.images, c.thumbs}}, // thumbs went to globex
	})
	if err != nil {
		t.Fatal(err)
	}
	c.upload("a.jpg", "A")
	if got := c.rt.ran("watch"); got != 0 || len(c.activations("watch")) != 0 || c.rt.ran("thumbnail") != 1 {
		t.Fatalf("watch ran %d times (%d activations), thumbnail %d; want acme's watch silent on a bucket no longer acme's",
			got, len(c.activations("watch")), c.rt.ran("thumbnail"))
	}
}

// A chain deeper than registry.MaxChainStages (the deploy check refuses
// it; these are stored unchecked, as by replicas racing their deploys)
// stops at its 17th function with a clear activation error.
func TestChain_DeeperThanTheLimitStops(t *testing.T) {
	c := newChainEnv(t)
	n := registry.MaxChainStages + 1
	buckets := []string{c.images}
	for i := range n {
		b := fmt.Sprintf("deep%d-%d-%d", i, time.Now().UnixNano()%1e6, bucketSeq.Add(1))
		if err := store.MakeBucket(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		buckets = append(buckets, b)
		f := registry.Function{Name: fmt.Sprintf("s%02d", i+1), Runtime: "stage",
			Trigger: registry.Trigger{Bucket: buckets[i]}, Output: registry.Output{Bucket: b}}
		testutil.DeployUnchecked(t, c.idx, c.reg, f, []byte("code of "+f.Name))
	}
	c.upload("a.jpg", "A")
	for i := range n - 1 {
		if got := c.rt.ran(fmt.Sprintf("s%02d", i+1)); got != 1 {
			t.Fatalf("stage %d ran %d times, want 1", i+1, got)
		}
	}
	last := c.activations(fmt.Sprintf("s%02d", n))
	if c.rt.ran(fmt.Sprintf("s%02d", n)) != 0 || len(last) != 1 || last[0].Decision != activation.Error ||
		last[0].ErrorClass != string(runtime.ClassConfig) || !strings.Contains(last[0].Error, "deeper than 16 stages") || last[0].Stage != n {
		t.Fatalf("stage %d: ran %d times, activations %+v; want none run and one config error naming the limit", n, c.rt.ran(fmt.Sprintf("s%02d", n)), last)
	}
}

// A delivery of a removal cut short after it deleted an output (before
// its cascade and record) is finished by the redelivery: the output's
// downstream goes too, and the deletion is recorded.
func TestDelete_RedeliveryAfterACrashFinishesTheCascade(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(onDelete(registry.OnInputDeleteDelete))
	c.upload("a.jpg", "A")
	if err := store.Delete(t.Context(), c.thumbs, "a.jpg"); err != nil { // the first delivery got this far
		t.Fatal(err)
	}
	c.remove("a.jpg")
	c.wantGone(c.labels, "a.jpg.label")
	n := 0
	for _, r := range c.activations("thumbnail") {
		if r.Decision == activation.Delete {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d thumbnail delete activations, want 1", n)
	}
}

// A stage-1 delivery cut short after it wrote its output, whose event
// stage 2 has already handled (the store published it), and before it
// recorded its own activation: the redelivery writes the output again,
// and stage 2 gets it in-process. That is the same output event: one
// activation and one execution of stage 2, whichever way stage 1 gets
// the output again (a hit copying the recorded output to another key,
// or a run whose completion was lost too).
func TestChain_RedeliveryAfterTheOutputsEventKeepsOneActivation(t *testing.T) {
	for name, lost := range map[string]func(c *chainEnv, r activation.Record){
		"hit copy": func(*chainEnv, activation.Record) {},
		"run again": func(c *chainEnv, r activation.Record) {
			if err := c.idx.Delete(c.t.Context(), r.Key); err != nil {
				c.t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := newChainEnv(t)
			c.deploy(nil)
			c.upload("a.jpg", "A")
			c.upload("b.jpg", "A") // a hit: thumbs/b.jpg is a copy of thumbs/a.jpg
			c.runs(1, 1)
			var b activation.Record
			for _, r := range c.activations("thumbnail") {
				if r.Event.Key == "b.jpg" {
					b = r
				}
			}
			lost(c, b)
			c.forget(func(r activation.Record) bool { return r.ID == b.ID })
			time.Sleep(5 * time.Millisecond) // the rewrite is later than the first write
			info, err := store.Stat(t.Context(), c.images, "b.jpg")
			if err != nil {
				t.Fatal(err)
			}
			ev := event.Event{Source: "embedded", Name: "s3:ObjectCreated:Put", Bucket: c.images, Key: "b.jpg", ETag: info.ETag, Size: info.Size, SHA256: info.SHA256, Time: info.Modified}
			if err := c.pipe.Handle(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range c.activations("classify") {
				if r.Event.Key == "b.jpg" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d classify activations of thumbs/b.jpg after stage 1's redelivery, want 1", n)
			}
			c.want(c.labels, "b.jpg.label", "classify(thumbnail(A))")
			if got := c.rt.ran("classify"); got != 1 {
				t.Errorf("classify executed %d times, want 1", got)
			}
		})
	}
}
