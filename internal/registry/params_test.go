package registry_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// bigParams is about n bytes of params.
func bigParams(n int) map[string]string {
	return map[string]string{"size": "128", "blob": strings.Repeat("p", n)}
}

// TestParams_RecordSizeIndependentOfParams (issue 17 item 12): a dedup
// record stays the same size however large the function's params are: on
// f13dda0 each record carried a copy of them in its key parts, so every
// upload grew the index by the params' size. The params are stored once
// per version, under the digest the record names.
func TestParams_RecordSizeIndependentOfParams(t *testing.T) {
	idx := testutil.BoltIndex(t)
	reg := registry.New(idx, nil)
	ctx := t.Context()
	size := map[int]int{}
	for _, n := range []int{10, 60 << 10} {
		f := validFn()
		f.Name = "p" + strings.Repeat("x", len(size)) // same name length
		f.Params = bigParams(n)
		fn, err := reg.Deploy(ctx, f, nil)
		if err != nil {
			t.Fatal(err)
		}
		key, parts := fn.Key(fn.CodeDigest, "wasm/1", "sha256:"+strings.Repeat("0", 64))
		c, err := idx.Claim(ctx, key, parts, "r", time.Minute)
		if err != nil || c.Outcome != index.Miss {
			t.Fatalf("claim = %v, %v", c.Outcome, err)
		}
		if err := idx.Complete(ctx, key, c.Record.Token, index.Completion{Output: &index.Output{Bucket: "o", Key: "k"}}); err != nil {
			t.Fatal(err)
		}
		rec, err := idx.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Parts != parts || registry.PartsKey(rec.Parts) != key {
			t.Fatalf("record parts %+v do not hash to their key", rec.Parts)
		}
		b, _ := json.Marshal(rec)
		size[n] = len(b)
		if n > 1000 {
			stored, err := registry.ParamsOf(ctx, idx, rec.Parts)
			if err != nil || !strings.Contains(stored, strings.Repeat("p", n)) {
				t.Fatalf("the params the record names are not stored (%d bytes, %v)", len(stored), err)
			}
		}
	}
	t.Logf("record bytes: %v", size)
	if grow := size[60<<10] - size[10]; grow > 100 {
		t.Fatalf("a record with 60 KiB of params is %d bytes larger than one with 10 bytes (%v): the params are copied into it", grow, size)
	}
}

// TestParams_CapRefused (issue 17 item 12): params over the cap are
// refused with an error naming it.
func TestParams_CapRefused(t *testing.T) {
	f := validFn()
	f.Params = bigParams(registry.DefaultMaxParamsBytes)
	err := f.CheckParams(registry.DefaultMaxParamsBytes)
	if err == nil || !strings.Contains(err.Error(), "64 KiB") || !strings.Contains(err.Error(), "--max-params") {
		t.Fatalf("CheckParams with %d bytes of params = %v, want an error naming the 64 KiB limit", registry.DefaultMaxParamsBytes, err)
	}
	if err := f.CheckParams(2 * registry.DefaultMaxParamsBytes); err != nil {
		t.Fatalf("CheckParams under a raised limit = %v", err)
	}
	f = validFn()
	f.Config = map[string]string{"env.X": strings.Repeat("c", 100)}
	if err := f.CheckParams(64); err == nil || !strings.Contains(err.Error(), "config") {
		t.Fatalf("CheckParams with a config over the limit = %v, want an error about config", err)
	}
}

// docReadCounter counts the reads of function definitions.
type docReadCounter struct {
	index.Index
	reads atomic.Int64
}

func (c *docReadCounter) GetDoc(ctx context.Context, kind, id string) ([]byte, error) {
	c.reads.Add(1)
	return c.Index.GetDoc(ctx, kind, id)
}

func (c *docReadCounter) Docs(ctx context.Context, kind string, fn func(id string, doc []byte) error) error {
	c.reads.Add(1)
	return c.Index.Docs(ctx, kind, fn)
}

// DocsRevision passes the revisions of the bolt index through.
func (c *docReadCounter) DocsRevision(ctx context.Context, kind string) (uint64, error) {
	return c.Index.(index.DocRevisions).DocsRevision(ctx, kind)
}

// TestRun_IdleRefreshReadsNothing (issue 17 item 12): with nothing
// changed, the registry's refresh loop reads no definition: on f13dda0 it
// re-read every definition (and mark) every interval, 500 ms by default.
// A change made through another registry on the same index is still
// picked up within a few intervals.
func TestRun_IdleRefreshReadsNothing(t *testing.T) {
	idx := &docReadCounter{Index: testutil.BoltIndex(t)}
	reg := registry.New(idx, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := validFn()
	f.Params = bigParams(60 << 10)
	if _, err := reg.Deploy(ctx, f, nil); err != nil {
		t.Fatal(err)
	}
	const interval = 20 * time.Millisecond
	done := make(chan struct{})
	go func() { defer close(done); reg.Run(ctx, interval) }()
	defer func() { cancel(); <-done }()
	idx.reads.Store(0)
	time.Sleep(15 * interval)
	if n := idx.reads.Load(); n != 0 {
		t.Fatalf("over 15 idle refresh intervals the registry read definitions %d times, want 0", n)
	}
	other := registry.New(idx, nil)
	g := validFn()
	g.Name = "second"
	if _, err := other.Deploy(ctx, g, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(50 * interval)
	for len(reg.List("")) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("a function deployed through another registry is not listed after %s", 50*interval)
		}
		time.Sleep(interval)
	}
}
