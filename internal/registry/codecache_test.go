package registry_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/index/bolt"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// countingIndex counts GetBlob calls: each one is a code cache miss.
type countingIndex struct {
	index.Index
	gets atomic.Int64
}

func (c *countingIndex) GetBlob(ctx context.Context, digest string) ([]byte, error) {
	c.gets.Add(1)
	return c.Index.GetBlob(ctx, digest)
}

// TestCodeCache_BoundedLRU: the code cache holds at most its byte limit,
// evicts the least recently used version first, and reads evicted code
// back from the index.
func TestCodeCache_BoundedLRU(t *testing.T) {
	db, err := bolt.OpenFile(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	idx := &countingIndex{Index: db}
	ctx := t.Context()
	code := map[string][]byte{}
	for _, c := range []byte("abc") {
		b := bytes.Repeat([]byte{c}, 100)
		code[string(c)] = b
		if err := db.PutBlob(ctx, registry.Digest(b), b); err != nil {
			t.Fatal(err)
		}
	}
	r := registry.New(idx, nil)
	r.SetCodeCacheBytes(250) // room for two of the three 100-byte versions
	get := func(name string, wantReads int64) {
		t.Helper()
		before := idx.gets.Load()
		got, err := r.Code(ctx, registry.Digest(code[name]))
		if err != nil || !bytes.Equal(got, code[name]) {
			t.Fatalf("Code(%s) = %d bytes, %v", name, len(got), err)
		}
		if n := idx.gets.Load() - before; n != wantReads {
			t.Fatalf("Code(%s) read the index %d times, want %d", name, n, wantReads)
		}
	}
	get("a", 1)
	get("b", 1)
	get("a", 0) // cached; now b is the least recently used
	get("c", 1) // evicts b
	if got := r.CodeCacheBytes(); got > 250 {
		t.Fatalf("code cache holds %d bytes, limit 250", got)
	}
	get("a", 0)
	get("c", 0)
	get("b", 1) // evicted: read back from the index
	if got := registry.DefaultCodeCacheBytes; got != 256<<20 {
		t.Fatalf("DefaultCodeCacheBytes = %d", got)
	}
}
