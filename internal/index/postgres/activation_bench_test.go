package postgres_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// BenchmarkAddActivation: the latency of recording one activation (one
// statement: the row and its totals), one caller at a time ("serial", with
// p50 and p99), and from 16 callers at once on 4 functions of one tenant
// ("parallel": the totals' shards are what they contend on).
//
//	go test -run '^$' -bench AddActivation -benchtime 2000x ./internal/index/postgres
func BenchmarkAddActivation(b *testing.B) {
	pg := peers.StartPostgres(b)
	idx := open(b, newDB(b, pg))
	var next atomic.Int64
	rec := func() activation.Record {
		i := next.Add(1)
		return activation.Record{
			ID: fmt.Sprintf("a%d", i), Tenant: "t", Function: fmt.Sprintf("f%d", i%4), Decision: activation.Hit, SavedMS: 3,
			Start: time.Now(), Event: activation.Object{Bucket: "in", Key: fmt.Sprintf("o%d", i), ETag: "e"},
		}
	}
	b.Run("serial", func(b *testing.B) {
		latencies(b, func(int) error { return idx.AddActivation(b.Context(), rec()) })
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := idx.AddActivation(b.Context(), rec()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
