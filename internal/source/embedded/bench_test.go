package embedded_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/source/embedded"
)

// benchGoroutines is how many concurrent publishers (and handlers) the
// benchmarks run: the 16 concurrent uploaders.
const benchGoroutines = 16

// BenchmarkPublishParallel: concurrent durable publishes (one per upload).
func BenchmarkPublishParallel(b *testing.B) {
	q, err := embedded.OpenQueue(filepath.Join(b.TempDir(), embedded.FileName), benchGoroutines, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	var n atomic.Int64
	b.SetParallelism(max(1, benchGoroutines/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := q.CommitsForTest(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := q.Publish(b.Context(), ev(fmt.Sprintf("k%d", n.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(q.CommitsForTest(b)-start)/float64(b.N), "commits/op")
}

// BenchmarkDeliverAck: b.N queued events delivered to a handler that
// returns at once, benchGoroutines at a time; each ack is a delete.
func BenchmarkDeliverAck(b *testing.B) {
	q, err := embedded.OpenQueue(filepath.Join(b.TempDir(), embedded.FileName), benchGoroutines, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	for i := range b.N {
		if err := q.Publish(b.Context(), ev(fmt.Sprintf("k%d", i))); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(b.Context())
	var left atomic.Int64
	left.Store(int64(b.N))
	b.ResetTimer()
	start := q.CommitsForTest(b)
	done := make(chan error, 1)
	go func() {
		done <- q.Run(ctx, func(context.Context, event.Event) error {
			if left.Add(-1) == 0 {
				cancel() // wait for the last ack in Run's return
			}
			return nil
		})
	}()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cancel()
	if n, _ := q.Len(); n != 0 {
		// The last handler's ack may be cut short by the cancel: at most
		// the events in flight stay queued.
		if n > benchGoroutines {
			b.Fatalf("%d events still queued", n)
		}
	}
	b.ReportMetric(float64(q.CommitsForTest(b)-start)/float64(b.N), "commits/op")
}
