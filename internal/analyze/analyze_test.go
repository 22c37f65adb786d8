package analyze_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dedupfn/dedupfn/internal/analyze"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/objectstest"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// store is the built-in S3 endpoint, one per test process (the embedded
// gateway allows only one); each test uses its own buckets.
var store objects.Store

func TestMain(m *testing.M) { testutil.MainWithStore(m, &store) }

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// MustPut writes body to bucket/key.
func MustPut(tb testing.TB, s objects.Store, bucket, key string, body []byte) {
	tb.Helper()
	if _, err := s.Put(tb.Context(), bucket, key, bytes.NewReader(body), int64(len(body)), objects.PutOptions{}); err != nil {
		tb.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

// The fixture: 10 objects under "data/", 4 distinct contents.
var (
	contentA = bytes.Repeat([]byte("a"), 100) // 4 copies: wastes 300
	contentB = bytes.Repeat([]byte("b"), 500) // 2 copies: wastes 500
	contentC = bytes.Repeat([]byte("c"), 50)  // 3 copies: wastes 100
	contentD = []byte("single")               // 1 copy
)

// NewFixture makes a bucket holding the fixture, plus one object outside
// the prefix that must not be counted.
func NewFixture(tb testing.TB) string {
	tb.Helper()
	b := objectstest.NewBucket(tb, store)
	for key, body := range map[string][]byte{
		"data/a4": contentA, "data/a1": contentA, "data/x/a3": contentA, "data/a2": contentA,
		"data/b2": contentB, "data/b1": contentB,
		"data/c1": contentC, "data/c3": contentC, "data/c2": contentC,
		"data/d":  contentD,
		"other/a": contentA,
	} {
		MustPut(tb, store, b, key, body)
	}
	return b
}

func TestRun(t *testing.T) {
	b := NewFixture(t)
	want := &analyze.Report{
		Target:              "s3://" + b + "/data/",
		Objects:             10,
		Bytes:               4*100 + 2*500 + 3*50 + 6,
		Distinct:            4,
		DistinctBytes:       100 + 500 + 50 + 6,
		DuplicateObjects:    6,
		DuplicateBytes:      300 + 500 + 100,
		DuplicateShare:      0.6,
		DuplicateBytesShare: 900.0 / 1556,
		DuplicateGroups:     3,
		Groups: []analyze.Group{
			{SHA256: hexSum(contentB), Count: 2, Bytes: 500, WastedBytes: 500, Keys: []string{"data/b1", "data/b2"}},
			{SHA256: hexSum(contentA), Count: 4, Bytes: 100, WastedBytes: 300, Keys: []string{"data/a1", "data/a2", "data/a4"}},
			{SHA256: hexSum(contentC), Count: 3, Bytes: 50, WastedBytes: 100, Keys: []string{"data/c1", "data/c2", "data/c3"}},
		},
		ZeroRead: 10, // the built-in store vouches for every SHA-256: nothing is read
	}
	for _, conc := range []int{1, 3, 16} {
		t.Run(fmt.Sprintf("Concurrency%d", conc), func(t *testing.T) {
			var listed, done, doneBytes atomic.Int64
			got, err := analyze.Run(t.Context(), store, analyze.Target{Bucket: b, Prefix: "data/"}, analyze.Options{
				Concurrency:   conc,
				Listed:        func(n, bytes int64) { listed.Store(n*1e6 + bytes) },
				Fingerprinted: func(size int64, read bool) { done.Add(1); doneBytes.Add(size) },
			})
			if err != nil {
				t.Fatal(err)
			}
			got.ElapsedSeconds = 0
			if !reflect.DeepEqual(got, want) {
				t.Errorf("report:\n got %+v\nwant %+v", got, want)
			}
			if listed.Load() != 10*1e6+1556 || done.Load() != 10 || doneBytes.Load() != 1556 {
				t.Errorf("progress: listed %d, fingerprinted %d objects, %d bytes", listed.Load(), done.Load(), doneBytes.Load())
			}
		})
	}
	t.Run("TopAndFnSeconds", func(t *testing.T) {
		got, err := analyze.Run(t.Context(), store, analyze.Target{Bucket: b, Prefix: "data/"},
			analyze.Options{Top: 1, Keys: 1, FnSeconds: 1.5})
		if err != nil {
			t.Fatal(err)
		}
		if got.DuplicateGroups != 3 || len(got.Groups) != 1 || got.Groups[0].SHA256 != hexSum(contentB) ||
			!reflect.DeepEqual(got.Groups[0].Keys, []string{"data/b1"}) {
			t.Errorf("top 1, 1 key: %d groups, %+v", got.DuplicateGroups, got.Groups)
		}
		if got.FnSeconds != 1.5 || got.SavedSeconds == nil || *got.SavedSeconds != 9 {
			t.Errorf("fn seconds %g, saved %v, want 1.5 and 6 × 1.5 = 9", got.FnSeconds, got.SavedSeconds)
		}
	})
	t.Run("WholeBucket", func(t *testing.T) {
		got, err := analyze.Run(t.Context(), store, analyze.Target{Bucket: b}, analyze.Options{Top: -1})
		if err != nil {
			t.Fatal(err)
		}
		if got.Objects != 11 || got.Distinct != 4 || got.DuplicateObjects != 7 || len(got.Groups) != 0 || got.SavedSeconds != nil {
			t.Errorf("whole bucket: %+v", got)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		got, err := analyze.Run(t.Context(), store, analyze.Target{Bucket: b, Prefix: "none/"}, analyze.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Objects != 0 || got.Distinct != 0 || got.DuplicateShare != 0 || got.Groups == nil {
			t.Errorf("empty prefix: %+v", got)
		}
	})
}

// countingStore counts reads, and can hide the store's SHA-256 or make
// some keys vanish.
type countingStore struct {
	objects.Store
	gets, stats atomic.Int64
	hideSHA256  bool
	vanished    string // Get and Stat of this key say not found
}

func (s *countingStore) Get(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, objects.Info, error) {
	s.gets.Add(1)
	if key == s.vanished {
		return nil, objects.Info{}, fmt.Errorf("test: get %s: %w", key, objects.ErrNotFound)
	}
	return s.Store.Get(ctx, bucket, key, versionID, etag)
}

func (s *countingStore) Stat(ctx context.Context, bucket, key string) (objects.Info, error) {
	s.stats.Add(1)
	if key == s.vanished {
		return objects.Info{}, fmt.Errorf("test: stat %s: %w", key, objects.ErrNotFound)
	}
	info, err := s.Store.Stat(ctx, bucket, key)
	if s.hideSHA256 {
		info.SHA256 = ""
	}
	return info, err
}

func TestRun_ZeroRead(t *testing.T) {
	b := objectstest.NewBucket(t, store)
	big := bytes.Repeat([]byte("0123456789abcdef"), (analyze.DefaultStatAbove+1024)/16) // > 1 MiB
	MustPut(t, store, b, "big1", big)
	MustPut(t, store, b, "big2", big)
	MustPut(t, store, b, "small", []byte("small"))
	bytesAll := int64(2*len(big) + 5)
	for _, tc := range []struct {
		name                   string
		hideSHA256             bool
		wantGets, wantStats    int64
		wantZeroRead, wantRead int64
	}{
		// Issue 22 item 7: what the store vouches for is never read, small
		// objects included (on f13dda0: 1 get, 2 stats, 5 bytes read).
		{name: "StoreChecksum", wantGets: 0, wantStats: 3, wantZeroRead: 3, wantRead: 0},
		{name: "NoChecksum", hideSHA256: true, wantGets: 3, wantStats: 3, wantRead: bytesAll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := &countingStore{Store: store, hideSHA256: tc.hideSHA256}
			got, err := analyze.Run(t.Context(), cs, analyze.Target{Bucket: b}, analyze.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if cs.gets.Load() != tc.wantGets || cs.stats.Load() != tc.wantStats {
				t.Errorf("%d gets, %d stats, want %d and %d", cs.gets.Load(), cs.stats.Load(), tc.wantGets, tc.wantStats)
			}
			if got.ZeroRead != tc.wantZeroRead || got.ReadBytes != tc.wantRead {
				t.Errorf("zero read %d, read bytes %d, want %d and %d", got.ZeroRead, got.ReadBytes, tc.wantZeroRead, tc.wantRead)
			}
			// Either way the figures are the same.
			if got.Objects != 3 || got.Bytes != bytesAll || got.Distinct != 2 || got.DuplicateBytes != int64(len(big)) ||
				len(got.Groups) != 1 || got.Groups[0].SHA256 != hexSum(big) || got.Groups[0].Count != 2 {
				t.Errorf("report: %+v", got)
			}
		})
	}
}

// A store that keeps no checksums costs small objects a stat each only
// until it has shown it: then they are read without one.
func TestRun_SmallObjectsReadOnceTheStoreVouchesForNone(t *testing.T) {
	b := objectstest.NewBucket(t, store)
	const n = 40
	for i := range n {
		MustPut(t, store, b, fmt.Sprintf("o%02d", i), []byte(fmt.Sprint("object ", i)))
	}
	cs := &countingStore{Store: store, hideSHA256: true}
	got, err := analyze.Run(t.Context(), cs, analyze.Target{Bucket: b}, analyze.Options{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if cs.gets.Load() != n || cs.stats.Load() > 8 {
		t.Errorf("%d gets, %d stats for %d small objects of a store without checksums; want %d gets, at most 8 stats", cs.gets.Load(), cs.stats.Load(), n, n)
	}
	if got.Objects != n || got.ZeroRead != 0 {
		t.Errorf("report: %+v", got)
	}
}

func TestRun_Vanished(t *testing.T) {
	b := NewFixture(t)
	cs := &countingStore{Store: store, vanished: "data/a1"}
	got, err := analyze.Run(t.Context(), cs, analyze.Target{Bucket: b, Prefix: "data/"}, analyze.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Vanished != 1 || got.Objects != 9 || got.Distinct != 4 || got.Groups[1].Count != 3 ||
		!reflect.DeepEqual(got.Groups[1].Keys, []string{"data/a2", "data/a4", "data/x/a3"}) {
		t.Errorf("one object vanished: %+v", got)
	}
}

func TestRun_Errors(t *testing.T) {
	t.Run("MissingBucket", func(t *testing.T) {
		_, err := analyze.Run(t.Context(), store, analyze.Target{Bucket: "no-such-bucket-here"}, analyze.Options{})
		if err == nil || !strings.Contains(err.Error(), "analyze: list s3://no-such-bucket-here") {
			t.Fatalf("missing bucket: %v", err)
		}
	})
	t.Run("BadOptions", func(t *testing.T) {
		_, err := analyze.Run(t.Context(), store, analyze.Target{Bucket: "x"}, analyze.Options{Concurrency: -1})
		if err == nil || err.Error() != "concurrency must be > 0, got -1" {
			t.Fatalf("concurrency -1: %v", err)
		}
	})
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    analyze.Target
		wantErr string
	}{
		{in: "s3://photos", want: analyze.Target{Bucket: "photos"}},
		{in: "s3://photos/", want: analyze.Target{Bucket: "photos"}},
		{in: "s3://photos/2024/jan", want: analyze.Target{Bucket: "photos", Prefix: "2024/jan"}},
		{in: "photos", wantErr: `target must be s3://BUCKET[/PREFIX], got "photos"`},
		{in: "s3:///x", wantErr: `target must name a bucket (s3://BUCKET[/PREFIX]), got "s3:///x"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := analyze.ParseTarget(tc.in)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v, want %+v", got, err, tc.want)
			}
		})
	}
}
