package wasm

import (
	"bytes"
	"context"
	"testing"
)

// A run's memory, written all over, comes back to the next run zeroed,
// however far that run grows it; and it is only recycled once freed.
func TestMemories_RecycledZeroed(t *testing.T) {
	const page = 65536
	newAlloc := func() *allocator {
		_, cancel := context.WithCancelCause(t.Context())
		t.Cleanup(func() { cancel(nil) })
		return &allocator{limit: 1 << 30, cancel: cancel}
	}
	first := newAlloc()
	m := first.Allocate(0, 1<<30).(*linearMemory)
	buf := m.Reallocate(4 * page)
	buf = m.Reallocate(16 * page) // grown: a new buffer
	for i := range buf {
		buf[i] = 0xAA
	}
	first.recycle() // not freed yet: the guest may still run
	if m.buf == nil {
		t.Fatal("a memory wazero has not freed was recycled")
	}
	m.Free()
	first.recycle()

	second := newAlloc()
	m2 := second.Allocate(0, 1<<30).(*linearMemory)
	got := m2.Reallocate(8 * page)
	if cap(got) < 16*page {
		t.Fatalf("capacity %d: the freed memory was not reused", cap(got))
	}
	got = m2.Reallocate(16 * page) // grows within the reused buffer
	if i := bytes.IndexFunc(got, func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("byte %d of a recycled memory is not zero: another run's data", i)
	}
	if &got[0] != &buf[0] {
		t.Fatal("the second run did not get the first run's buffer back")
	}
	m2.Free()
	second.recycle()
}
