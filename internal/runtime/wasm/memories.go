package wasm

import "sync"

// Why reuse linear memories?
//
// A Go guest's linear memory grows to megabytes in every run, and a run
// is a fresh instance: allocating that memory (zeroed) and copying it as
// it grows was 18% of serve's CPU in `dedupfn bench`, and most of its
// garbage. A run's memory is zeroed and kept for the next run instead.
//
// A memory is recycled only by the run that owns it, after its guest has
// returned and its instance is closed (allocator.recycle): wazero frees a
// memory when the module closes, which can happen from another goroutine
// while the guest still runs (the runtime closing), so a freed memory is
// not known to be out of use until then. Only the bytes ever handed to
// the guest (the buffer's length: memory never shrinks) can be non-zero;
// they are cleared before the buffer is pooled, so a run never sees
// another run's data.

// Bounds of the pool of zeroed memories.
const (
	maxPooledMemory   = 64 << 20  // a larger memory is left to the GC
	maxPooledMemories = 128 << 20 // bytes kept in all
)

// memories holds zeroed buffers (length 0, every byte up to capacity 0).
var memories memoryPool

type memoryPool struct {
	mu    sync.Mutex
	bufs  [][]byte
	bytes int
}

// get returns a zeroed buffer of capacity >= size, or nil.
func (p *memoryPool) get(size uint64) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.bufs) - 1; i >= 0; i-- {
		if b := p.bufs[i]; uint64(cap(b)) >= size {
			p.bufs = append(p.bufs[:i], p.bufs[i+1:]...)
			p.bytes -= cap(b)
			return b[:size]
		}
	}
	return nil
}

// put clears buf's length and keeps it, unless that would hold too much.
func (p *memoryPool) put(buf []byte) {
	if cap(buf) > maxPooledMemory {
		return
	}
	clear(buf)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bytes+cap(buf) > maxPooledMemories {
		return
	}
	p.bufs = append(p.bufs, buf[:0])
	p.bytes += cap(buf)
}
