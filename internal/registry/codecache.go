package registry

import (
	"container/list"
	"context"
	"fmt"
	"sync"
)

// DefaultCodeCacheBytes bounds the function code a registry keeps in
// memory; the least recently used versions are evicted and read back
// from the index when needed again.
const DefaultCodeCacheBytes = 256 << 20

// codeCache is a least-recently-used cache of function code by digest,
// bounded by its total size in bytes.
type codeCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *list.List               // front = most recently used; values are *codeEntry
	byKey map[string]*list.Element // digest → element of order
}

func newCodeCache(maxBytes int64) codeCache {
	return codeCache{max: maxBytes, order: list.New(), byKey: map[string]*list.Element{}}
}

type codeEntry struct {
	digest string
	code   []byte
}

func (c *codeCache) get(digest string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[digest]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*codeEntry).code, true
}

// add caches code, evicting the least recently used entries to stay
// within max; code larger than max is not cached at all.
func (c *codeCache) add(digest string, code []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[digest]; ok || int64(len(code)) > c.max {
		return
	}
	c.byKey[digest] = c.order.PushFront(&codeEntry{digest: digest, code: code})
	c.size += int64(len(code))
	c.evict()
}

func (c *codeCache) evict() {
	for c.size > c.max {
		e := c.order.Back()
		ce := e.Value.(*codeEntry)
		c.order.Remove(e)
		delete(c.byKey, ce.digest)
		c.size -= int64(len(ce.code))
	}
}

// SetCodeCacheBytes bounds the code cache to maxBytes (default
// DefaultCodeCacheBytes), evicting at once if it holds more.
func (r *Registry) SetCodeCacheBytes(maxBytes int64) {
	r.code.mu.Lock()
	defer r.code.mu.Unlock()
	r.code.max = maxBytes
	r.code.evict()
}

// CodeCacheBytes is the size of the code the cache holds.
func (r *Registry) CodeCacheBytes() int64 {
	r.code.mu.Lock()
	defer r.code.mu.Unlock()
	return r.code.size
}

// Code returns a function's code by digest, from a bounded cache of
// recently used versions or else read from the index.
func (r *Registry) Code(ctx context.Context, digest string) ([]byte, error) {
	if digest == "" {
		return nil, nil
	}
	if c, ok := r.code.get(digest); ok {
		return c, nil
	}
	c, err := r.idx.GetBlob(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("registry: code %s: %w", digest, err)
	}
	r.code.add(digest, c)
	return c, nil
}
