package pipeline_test

import (
	"context"
	"io"
	"sync"
	"testing"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/objects"
)

// countingStore counts the store calls the pipeline makes, by method.
type countingStore struct {
	objects.Store
	mu    sync.Mutex
	calls map[string]int
}

func (s *countingStore) count(m string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[m]++
}

func (s *countingStore) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

func (s *countingStore) Get(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, objects.Info, error) {
	s.count("Get")
	return s.Store.Get(ctx, bucket, key, versionID, etag)
}

func (s *countingStore) Stat(ctx context.Context, bucket, key string) (objects.Info, error) {
	s.count("Stat")
	return s.Store.Stat(ctx, bucket, key)
}

func (s *countingStore) Copy(ctx context.Context, src objects.Info, dstBucket, dstKey string, opts objects.PutOptions) (objects.Info, error) {
	s.count("Copy")
	return s.Store.Copy(ctx, src, dstBucket, dstKey, opts)
}

func (s *countingStore) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts objects.PutOptions) (objects.Info, error) {
	s.count("Put")
	return s.Store.Put(ctx, bucket, key, r, size, opts)
}

// A hit delivers the recorded output with one Stat (of its own output key,
// which must not hold someone else's object) and one conditional Copy: no
// Stat of the recorded output before the copy, no read-back after it.
func TestHit_DeliversInTwoStoreCalls(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	counting := &countingStore{Store: store}
	p := e.replica("counting", e.idx, counting)
	if err := p.Handle(t.Context(), e.put("a.txt", "data")); err != nil {
		t.Fatal(err)
	}
	before := counting.snapshot()
	if err := p.Handle(t.Context(), e.put("b.txt", "data")); err != nil {
		t.Fatal(err)
	}
	if d := e.decisions()["b.txt"]; d != activation.Hit {
		t.Fatalf("decision %s, want hit", d)
	}
	after := counting.snapshot()
	delivery := map[string]int{"Stat": after["Stat"] - before["Stat"], "Copy": after["Copy"] - before["Copy"], "Put": after["Put"] - before["Put"]}
	if delivery["Stat"] != 1 || delivery["Copy"] != 1 || delivery["Put"] != 0 {
		t.Fatalf("a hit made store calls %v; want 1 Stat (the target) and 1 Copy", delivery)
	}
	if got := e.output("b.txt"); got != "DATA" {
		t.Fatalf("delivered output %q, want DATA", got)
	}
}
