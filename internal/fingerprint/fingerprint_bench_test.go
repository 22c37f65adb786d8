package fingerprint_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/fingerprint"
	"github.com/dedupfn/dedupfn/internal/spool"
)

// benchSizes are the object sizes of the fingerprint benchmarks: the
// hot-path workload's 4 KiB objects and larger ones.
var benchSizes = []int{4 << 10, 64 << 10, 1 << 20, 16 << 20}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("size=%dMiB", n>>20)
	default:
		return fmt.Sprintf("size=%dKiB", n>>10)
	}
}

// streamReader hides bytes.Reader's WriterTo, so the object arrives as
// a network body does: through Read calls into io.Copy's buffer.
type streamReader struct{ r *bytes.Reader }

func (s streamReader) Read(p []byte) (int, error) { return s.r.Read(p) }

// BenchmarkFingerprint is fingerprint.Sum of an object streamed in; compare
// its MB/s with BenchmarkSHA256's at the same size (the target is ≥ 90%).
func BenchmarkFingerprint(b *testing.B) {
	for _, size := range benchSizes {
		buf := bytes.Repeat([]byte("dedupfn!"), size/8)
		b.Run(sizeName(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := fingerprint.Sum(streamReader{bytes.NewReader(buf)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSHA256 is the baseline: crypto/sha256 over the same buffer in
// one Write, with no reader in between.
func BenchmarkSHA256(b *testing.B) {
	for _, size := range benchSizes {
		buf := bytes.Repeat([]byte("dedupfn!"), size/8)
		b.Run(sizeName(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var sum []byte
			for b.Loop() {
				h := sha256.New()
				h.Write(buf)
				sum = h.Sum(sum[:0])
			}
		})
	}
}

// BenchmarkFingerprintSpool is fingerprint.Spool, what a miss does: hash
// while keeping the bytes for the function (in memory up to 1 MiB here,
// then a temp file).
func BenchmarkFingerprintSpool(b *testing.B) {
	dir := b.TempDir()
	for _, size := range benchSizes {
		buf := bytes.Repeat([]byte("dedupfn!"), size/8)
		b.Run(sizeName(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				sp := spool.New(dir, 1<<20, 0)
				if _, err := fingerprint.Spool(streamReader{bytes.NewReader(buf)}, sp); err != nil {
					b.Fatal(err)
				}
				sp.Close()
			}
		})
	}
}

// patternReader yields n bytes of a repeating pattern without holding
// them: a large object that is never stored.
type patternReader struct{ left int64 }

var pattern = bytes.Repeat([]byte("0123456789abcdef"), 4096)

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.left)]
	n := 0
	for n < len(p) {
		n += copy(p[n:], pattern)
	}
	r.left -= int64(n)
	return n, nil
}

// rssBytes is this process's resident set size, from /proc (0 where
// there is none).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// Fingerprinting a 1 GiB stream (generated, never stored) grows neither
// the heap nor the RSS by more than 64 MiB: the object is hashed as it
// streams, never held. The target is a 5 GiB object; memory does
// not depend on the size, so 1 GiB keeps the test short.
func TestSum_BoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 1 GiB")
	}
	const (
		size  = 1 << 30
		bound = 64 << 20
	)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore := rssBytes()
	fp, n, err := fingerprint.Sum(&patternReader{left: size})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	rssAfter := rssBytes()
	if n != size || !strings.HasPrefix(fp, "sha256:") {
		t.Fatalf("Sum = %s, %d bytes; want a sha256 fingerprint of %d bytes", fp, n, size)
	}
	// HeapSys is the most the heap has held from the OS: it grows with the
	// peak, not with what is live after the call.
	if grew := int64(after.HeapSys) - int64(before.HeapSys); grew > bound {
		t.Errorf("heap grew by %d MiB hashing 1 GiB, want <= %d MiB", grew>>20, bound>>20)
	}
	if rssBefore > 0 {
		if grew := rssAfter - rssBefore; grew > bound {
			t.Errorf("RSS grew by %d MiB hashing 1 GiB, want <= %d MiB", grew>>20, bound>>20)
		}
	}
	t.Logf("1 GiB: heap sys %+d KiB, RSS %+d KiB, %d MiB allocated in total",
		(int64(after.HeapSys)-int64(before.HeapSys))>>10, (rssAfter-rssBefore)>>10, (after.TotalAlloc-before.TotalAlloc)>>20)
}
