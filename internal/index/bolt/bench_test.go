package bolt_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/index/bolt"
)

// benchGoroutines is how many goroutines the parallel benchmarks run
// (b.SetParallelism multiplies GOMAXPROCS, so round up).
const benchGoroutines = 16

func openBench(b *testing.B) *bolt.DB {
	b.Helper()
	db, err := bolt.OpenFile(filepath.Join(b.TempDir(), "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// parallel runs op from benchGoroutines goroutines with a distinct i per
// call, and reports write transactions (commits) per op.
func parallel(b *testing.B, db *bolt.DB, op func(i int64) error) {
	b.Helper()
	var n atomic.Int64
	b.SetParallelism(max(1, benchGoroutines/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := db.CommitsForTest(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(n.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(db.CommitsForTest(b)-start)/float64(b.N), "commits/op")
}

// BenchmarkClaimParallel: concurrent claims of new keys (misses, each a write).
func BenchmarkClaimParallel(b *testing.B) {
	db := openBench(b)
	parallel(b, db, func(i int64) error {
		c, err := db.Claim(b.Context(), fmt.Sprintf("k%d", i), index.Parts{Function: "f"}, "o", time.Minute)
		if err == nil && c.Outcome != index.Miss {
			err = fmt.Errorf("claim %d = %v, want miss", i, c.Outcome)
		}
		return err
	})
}

// BenchmarkClaimHitParallel: concurrent claims of completed keys (hits).
func BenchmarkClaimHitParallel(b *testing.B) {
	db := openBench(b)
	const keys = 1000
	for i := range keys {
		k := fmt.Sprintf("k%d", i)
		c, err := db.Claim(b.Context(), k, index.Parts{Function: "f"}, "o", time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Complete(b.Context(), k, c.Record.Token, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
			b.Fatal(err)
		}
	}
	parallel(b, db, func(i int64) error {
		c, err := db.Claim(b.Context(), fmt.Sprintf("k%d", i%keys), index.Parts{Function: "f"}, "o", time.Minute)
		if err == nil && c.Outcome != index.Hit {
			err = fmt.Errorf("claim %d = %v, want hit", i, c.Outcome)
		}
		return err
	})
}

// BenchmarkClaimCompleteParallel: a miss's two writes, claim then complete.
func BenchmarkClaimCompleteParallel(b *testing.B) {
	db := openBench(b)
	parallel(b, db, func(i int64) error {
		k := fmt.Sprintf("k%d", i)
		c, err := db.Claim(b.Context(), k, index.Parts{Function: "f"}, "o", time.Minute)
		if err != nil {
			return err
		}
		return db.Complete(b.Context(), k, c.Record.Token, index.Completion{Output: &index.Output{Key: "o"}})
	})
}

// BenchmarkAddActivationParallel: concurrent activation records.
func BenchmarkAddActivationParallel(b *testing.B) {
	db := openBench(b)
	base := time.Now()
	parallel(b, db, func(i int64) error {
		return db.AddActivation(b.Context(), activation.Record{
			ID: fmt.Sprintf("a%d", i), Tenant: "t", Function: "f", Decision: activation.Hit,
			Start: base.Add(time.Duration(i)), Event: activation.Object{Bucket: "in", Key: fmt.Sprintf("o%d", i), ETag: "e"},
		})
	})
}

// BenchmarkAddActivationSerial: one writer at a time, the latency of a
// lone write (group commit must not delay it).
func BenchmarkAddActivationSerial(b *testing.B) {
	db := openBench(b)
	base := time.Now()
	start := db.CommitsForTest(b)
	for i := range b.N {
		err := db.AddActivation(b.Context(), activation.Record{ID: fmt.Sprintf("a%d", i), Tenant: "t", Function: "f", Decision: activation.Hit, Start: base.Add(time.Duration(i))})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(db.CommitsForTest(b)-start)/float64(b.N), "commits/op")
}

// BenchmarkAddActivationNoSync: one writer at a time without fsync, the
// CPU cost of an activation's write transaction (its record, listing
// entries and totals), which fsync hides above.
func BenchmarkAddActivationNoSync(b *testing.B) {
	db := openBench(b)
	db.NoSyncForTest(b)
	base := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	writes := db.PageWritesForTest()
	for i := range b.N {
		err := db.AddActivation(b.Context(), activation.Record{
			ID: fmt.Sprintf("a%d", i), Tenant: "t", Function: fmt.Sprintf("f%d", i%8), Decision: activation.Hit, SavedMS: 3,
			Start: base.Add(time.Duration(i)), Event: activation.Object{Bucket: "in", Key: fmt.Sprintf("o%d", i), ETag: "e"},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(db.PageWritesForTest()-writes)/float64(b.N), "pwrites/op")
}
