package bolt_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/index/bolt"
)

// The index sizes of BenchmarkBoltClaim and BenchmarkBoltLookup. The 10M
// index takes minutes and about 10 GB of disk to build, so it runs only
// with DEDUPFN_BENCH_10M set: to 1 (the file is kept, and reused, at
// $TMPDIR/dedupfn-bench-10M.db) or to the file's path. Delete the file
// to reclaim the space.
const (
	smallKeys = 10_000
	largeKeys = 10_000_000
	envLarge  = "DEDUPFN_BENCH_10M"
	// buildBatch is how many records one write transaction of a build
	// puts: one fsync per batch, not per key.
	buildBatch = 200_000
)

// benchKey is the dedup key of the i-th of n records: 64 hex digits
// spread evenly over the key space (as SHA-256 keys are), ascending in i
// so that a build appends instead of rewriting pages all over the file.
func benchKey(i, n int) string {
	var b [32]byte
	binary.BigEndian.PutUint64(b[:8], uint64(i)*(^uint64(0)/uint64(n)))
	sum := sha256.Sum256(b[:8])
	copy(b[8:], sum[:24])
	return hex.EncodeToString(b[:])
}

// benchRecord is a completed run's record as the pipeline stores it.
func benchRecord(key string, now time.Time) index.Record {
	return index.Record{
		Key: key, State: index.Done, Attempt: 1, Created: now, Updated: now,
		Parts: index.Parts{
			Tenant: "default", Function: "copy", CodeDigest: key[:64], Params: "{}",
			RuntimeVersion: "wasm/wazero-1.12.0/1", Fingerprint: "sha256:" + key[:64],
		},
		Output:     &index.Output{Bucket: "out", Key: "obj/" + key[:12], ETag: `"` + key[:32] + `"`, Size: 4096},
		FunctionMS: 11.6,
	}
}

// buildIndex writes n Done records into a new index file at path, in
// large transactions straight into the file's "claims" bucket (the
// Index API commits one claim at a time), then checks through the API
// that they read back as the backend's own.
func buildIndex(tb testing.TB, path string, n int) {
	tb.Helper()
	start := time.Now()
	tmp := path + ".tmp"
	os.Remove(tmp)
	db, err := bbolt.Open(tmp, 0o600, &bbolt.Options{NoFreelistSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC()
	for lo := 0; lo < n; lo += buildBatch {
		err := db.Update(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("claims"))
			if err != nil {
				return err
			}
			b.FillPercent = 0.7 // about what random inserts leave
			for i := lo; i < min(lo+buildBatch, n); i++ {
				k := benchKey(i, n)
				v, err := json.Marshal(benchRecord(k, now))
				if err != nil {
					return err
				}
				if err := b.Put([]byte(k), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			tb.Fatal(err)
		}
		if n >= largeKeys && (lo/buildBatch)%10 == 0 {
			tb.Logf("built %d of %d keys in %s", lo+buildBatch, n, time.Since(start).Round(time.Second))
		}
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	d, err := bolt.OpenFile(tmp) // adds the other buckets
	if err != nil {
		tb.Fatal(err)
	}
	r, err := d.Get(tb.Context(), benchKey(n/2, n))
	d.Close()
	if err != nil || r.State != index.Done {
		tb.Fatalf("built index: Get of a built key = %v, %v; want a Done record (has the file format changed?)", r.State, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
	if fi, err := os.Stat(path); err == nil {
		tb.Logf("built %d keys in %s: %s, %d MiB", n, time.Since(start).Round(time.Millisecond), path, fi.Size()>>20)
	}
}

// benchIndex opens an index of n keys: the 10k one built in b's temp
// dir (a fraction of a second), the 10M one built once and kept (see
// envLarge).
func benchIndex(b *testing.B, n int) *bolt.DB {
	b.Helper()
	var path string
	switch n {
	case smallKeys:
		path = filepath.Join(b.TempDir(), "index.db")
		buildIndex(b, path, n)
	case largeKeys:
		switch v := os.Getenv(envLarge); v {
		case "", "0":
			b.Skipf("the 10M-key index takes minutes and ~10 GB to build: set %s=1 (or a file path) to run it", envLarge)
		case "1":
			path = filepath.Join(os.TempDir(), "dedupfn-bench-10M.db")
		default:
			path = v
		}
		if _, err := os.Stat(path); err != nil {
			b.Logf("building %d keys into %s (minutes; the file is kept for the next run)", n, path)
			buildIndex(b, path, n)
		}
	}
	db, err := bolt.OpenFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func keysName(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("keys=%dM", n/1_000_000)
	}
	return fmt.Sprintf("keys=%dk", n/1000)
}

// reportLatency reports the p50 and p99 of per-op latencies: the target
// compares lookup p50 at 10M keys with that at 10k.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkBoltLookup is Get of a random existing key: one read
// transaction and a decode, as a hit's lookup.
func BenchmarkBoltLookup(b *testing.B) {
	for _, n := range []int{smallKeys, largeKeys} {
		b.Run(keysName(n), func(b *testing.B) {
			db := benchIndex(b, n)
			ctx := b.Context()
			r := rand.New(rand.NewPCG(1, 2))
			lat := []time.Duration(nil)
			b.ReportAllocs()
			for b.Loop() {
				t := time.Now()
				if _, err := db.Get(ctx, benchKey(r.IntN(n), n)); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
			b.StopTimer()
			reportLatency(b, lat)
		})
	}
}

// BenchmarkBoltClaim is Claim, one at a time: "hit" claims an existing
// Done key (what every duplicate does), "miss" a new key (a new content:
// a write). Each is one write transaction today.
func BenchmarkBoltClaim(b *testing.B) {
	for _, n := range []int{smallKeys, largeKeys} {
		b.Run(keysName(n), func(b *testing.B) {
			db := benchIndex(b, n)
			ctx := b.Context()
			b.Run("hit", func(b *testing.B) {
				r := rand.New(rand.NewPCG(3, 4))
				lat := []time.Duration(nil)
				b.ReportAllocs()
				for b.Loop() {
					key := benchKey(r.IntN(n), n)
					t := time.Now()
					c, err := db.Claim(ctx, key, index.Parts{}, "bench", time.Minute)
					if err != nil || c.Outcome != index.Hit {
						b.Fatalf("Claim of a done key: %v, %v; want a hit", c.Outcome, err)
					}
					lat = append(lat, time.Since(t))
				}
				b.StopTimer()
				reportLatency(b, lat)
			})
			b.Run("miss", func(b *testing.B) {
				// New random keys; on the kept 10M file they stay, a few
				// thousand more among millions.
				prefix := fmt.Sprintf("%016x", rand.Uint64())
				lat := []time.Duration(nil)
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					i++
					sum := sha256.Sum256([]byte(prefix + strconv.Itoa(i)))
					key := hex.EncodeToString(sum[:])
					t := time.Now()
					c, err := db.Claim(ctx, key, index.Parts{Function: "copy"}, "bench", time.Minute)
					if err != nil || c.Outcome != index.Miss {
						b.Fatalf("Claim of a new key: %v, %v; want a miss", c.Outcome, err)
					}
					lat = append(lat, time.Since(t))
				}
				b.StopTimer()
				reportLatency(b, lat)
			})
		})
	}
}
