package postgres_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/index/bolt"
	_ "github.com/dedupfn/dedupfn/internal/index/couchdb"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// BenchmarkClaimLatency compares one claim's latency, one caller at a
// time, on the embedded bolt index, PostgreSQL and pouchdb-server (the
// CouchDB API), each on this machine: a miss (a new key) and a hit (a
// completed key). It reports p50 and p99 besides the mean.
//
//	go test -run '^$' -bench ClaimLatency -benchtime 2000x ./internal/index/postgres
func BenchmarkClaimLatency(b *testing.B) {
	backends := []struct {
		name string
		open func(b *testing.B) index.Index
	}{
		{"bolt", func(b *testing.B) index.Index {
			db, err := bolt.OpenFile(filepath.Join(b.TempDir(), "index.db"))
			if err != nil {
				b.Fatal(err)
			}
			return db
		}},
		{"postgres", func(b *testing.B) index.Index {
			pg := peers.StartPostgres(b)
			return openIndex(b, newDB(b, pg))
		}},
		{"pouchdb", func(b *testing.B) index.Index {
			return openIndex(b, peers.StartCouchDB(b).URL("bench"))
		}},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			idx := be.open(b)
			b.Cleanup(func() { idx.Close() })
			next := 0 // miss keys stay new across the runs of the sub-benchmark
			b.Run("miss", func(b *testing.B) {
				latencies(b, func(int) error {
					next++
					c, err := idx.Claim(b.Context(), fmt.Sprintf("miss-%d", next), index.Parts{Function: "f"}, "o", time.Minute)
					if err == nil && c.Outcome != index.Miss {
						err = fmt.Errorf("claim = %v, want miss", c.Outcome)
					}
					return err
				})
			})
			b.Run("hit", func(b *testing.B) {
				const keys = 100
				for i := range keys {
					k := fmt.Sprintf("hit-%d", i)
					c, err := idx.Claim(b.Context(), k, index.Parts{Function: "f"}, "o", time.Minute)
					if err == nil && c.Outcome == index.Miss {
						err = idx.Complete(b.Context(), k, c.Record.Token, index.Completion{Output: &index.Output{Key: "o"}})
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				latencies(b, func(i int) error {
					c, err := idx.Claim(b.Context(), fmt.Sprintf("hit-%d", i%keys), index.Parts{Function: "f"}, "o", time.Minute)
					if err == nil && c.Outcome != index.Hit {
						err = fmt.Errorf("claim = %v, want hit", c.Outcome)
					}
					return err
				})
			})
		})
	}
}

func openIndex(b *testing.B, raw string) index.Index {
	b.Helper()
	idx, err := index.Open(b.Context(), raw, index.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return idx
}

// latencies runs op b.N times and reports the p50 and p99 of its latency.
func latencies(b *testing.B, op func(i int) error) {
	b.Helper()
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if err := op(i); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}
