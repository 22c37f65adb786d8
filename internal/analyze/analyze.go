// Package analyze measures how much of a bucket is duplicate content, before
// any function is deployed: it lists every object under a prefix,
// fingerprints each one (from the store's trusted SHA-256 when it has one,
// else by streaming the bytes through internal/fingerprint) and groups
// equal contents. It is what `dedupfn analyze` prints.
package analyze

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dedupfn/dedupfn/internal/backoff"
	"github.com/dedupfn/dedupfn/internal/fingerprint"
	"github.com/dedupfn/dedupfn/internal/objects"
)

// Defaults.
const (
	// DefaultConcurrency is how many objects are fingerprinted at once.
	DefaultConcurrency = 8
	// DefaultTop is how many duplicate groups a report lists.
	DefaultTop = 10
	// DefaultKeys is how many keys each listed group shows.
	DefaultKeys = 3
	// DefaultStatAbove is the size above which an object is statted
	// before it is read: a Stat costs a round trip, which only pays off
	// when it may save reading a large object. Smaller objects are read
	// and hashed directly.
	DefaultStatAbove = 1 << 20
	// attempts is how many times a transient store error is tried per
	// object before the analysis fails.
	attempts = 4
	// retryBase and retryMax bound the delay between attempts.
	retryBase = 100 * time.Millisecond
	retryMax  = 2 * time.Second
)

// Target is what to analyze: every object under Prefix in Bucket.
type Target struct {
	Bucket string
	Prefix string
}

// String returns the target as s3://BUCKET[/PREFIX].
func (t Target) String() string {
	if t.Prefix == "" {
		return "s3://" + t.Bucket
	}
	return "s3://" + t.Bucket + "/" + t.Prefix
}

// ParseTarget parses s3://BUCKET[/PREFIX]. The prefix is taken as is (a
// plain key prefix, not a folder: "s3://b/img" also matches "img2/x").
func ParseTarget(s string) (Target, error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return Target{}, fmt.Errorf("target must be s3://BUCKET[/PREFIX], got %q", s)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return Target{}, fmt.Errorf("target must name a bucket (s3://BUCKET[/PREFIX]), got %q", s)
	}
	return Target{Bucket: bucket, Prefix: prefix}, nil
}

// Options tune Run. Zero values take the defaults above.
type Options struct {
	// Concurrency is how many objects are fingerprinted at once.
	Concurrency int
	// Top is how many duplicate groups the report lists (largest waste
	// first); negative lists none.
	Top int
	// Keys is how many keys each listed group shows (the first in key
	// order).
	Keys int
	// StatAbove: objects larger than this many bytes are statted first,
	// and not read when the store holds their SHA-256. Smaller ones are
	// statted too while the store vouches for contents (see vouching).
	StatAbove int64
	// FnSeconds, when > 0, is a function's run time: the report then says
	// how much compute dedup would save. FnSource, if set, says where it
	// came from ("the median of 5 recent runs of thumb").
	FnSeconds float64
	FnSource  string
	// Listed is called once after listing, with the totals to fingerprint.
	Listed func(objects int64, bytes int64)
	// Fingerprinted is called after each object, from any goroutine, with
	// its size and whether its bytes were read.
	Fingerprinted func(size int64, read bool)
}

func (o Options) withDefaults() (Options, error) {
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Concurrency < 0 {
		return o, fmt.Errorf("concurrency must be > 0, got %d", o.Concurrency)
	}
	if o.Top == 0 {
		o.Top = DefaultTop
	}
	if o.Keys == 0 {
		o.Keys = DefaultKeys
	}
	if o.Keys < 0 {
		return o, fmt.Errorf("keys per group must be > 0, got %d", o.Keys)
	}
	if o.StatAbove == 0 {
		o.StatAbove = DefaultStatAbove
	}
	if o.FnSeconds < 0 {
		return o, fmt.Errorf("function seconds must be >= 0, got %g", o.FnSeconds)
	}
	return o, nil
}

// Report is the result of an analysis; `dedupfn analyze --json` prints it.
type Report struct {
	Target string `json:"target"`
	// Objects and Bytes count every object fingerprinted.
	Objects int64 `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// Distinct is the number of distinct contents, DistinctBytes their
	// total size (what a deduplicated bucket would hold).
	Distinct      int64 `json:"distinct"`
	DistinctBytes int64 `json:"distinct_bytes"`
	// DuplicateObjects is Objects - Distinct: the objects a dedup
	// function would not run on. DuplicateBytes is Bytes - DistinctBytes.
	DuplicateObjects int64 `json:"duplicate_objects"`
	DuplicateBytes   int64 `json:"duplicate_bytes"`
	// DuplicateShare and DuplicateBytesShare are the duplicate fractions
	// (0..1) of objects and of bytes.
	DuplicateShare      float64 `json:"duplicate_share"`
	DuplicateBytesShare float64 `json:"duplicate_bytes_share"`
	// DuplicateGroups counts the contents held by more than one object;
	// Groups lists the largest of them.
	DuplicateGroups int64   `json:"duplicate_groups"`
	Groups          []Group `json:"groups"`
	// ZeroRead counts objects fingerprinted from the store's SHA-256
	// without reading them; ReadBytes is what was read to hash the rest.
	ZeroRead  int64 `json:"zero_read"`
	ReadBytes int64 `json:"read_bytes"`
	// Vanished counts objects listed but deleted before they were read;
	// they are in no other figure.
	Vanished int64 `json:"vanished"`
	// FnSeconds and SavedSeconds, when a function's run time is known:
	// SavedSeconds = DuplicateObjects × FnSeconds.
	FnSeconds    float64  `json:"fn_seconds,omitempty"`
	FnSource     string   `json:"fn_seconds_source,omitempty"`
	SavedSeconds *float64 `json:"saved_seconds,omitempty"`
	// ElapsedSeconds is how long the analysis took.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
}

// Group is one content held by more than one object.
type Group struct {
	SHA256 string `json:"sha256"` // lower-case hex
	Count  int64  `json:"count"`
	// Bytes is the size of one copy; WastedBytes is (Count-1) × Bytes.
	Bytes       int64 `json:"bytes"`
	WastedBytes int64 `json:"wasted_bytes"`
	// Keys are the first keys holding it, in key order.
	Keys []string `json:"keys"`
}

// item is one listed object: only what fingerprinting needs, so a listing
// of millions stays small.
type item struct {
	key  string
	size int64
}

// content is what is known of one distinct content.
type content struct {
	count int64
	size  int64
	keys  []string // sorted, at most Options.Keys
}

// Run lists every object of t in store, fingerprints each and reports the
// duplicates. An object deleted between the listing and its read is
// counted as vanished; any other error, after retries of transient ones,
// ends the analysis.
func Run(ctx context.Context, store objects.Store, t Target, o Options) (*Report, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var (
		items []item
		total int64
	)
	err = store.List(ctx, t.Bucket, t.Prefix, "", func(info objects.Info) error {
		items = append(items, item{key: info.Key, size: info.Size})
		total += info.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("analyze: list %s: %w", t, err)
	}
	if o.Listed != nil {
		o.Listed(int64(len(items)), total)
	}

	a := &aggregate{keys: o.Keys, contents: map[[32]byte]*content{}}
	v := &vouching{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for _, it := range items {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			res, err := fingerprintObject(gctx, store, t.Bucket, it, o.StatAbove, v)
			if err != nil {
				return err
			}
			a.add(it, res)
			if o.Fingerprinted != nil && !res.vanished {
				o.Fingerprinted(res.size, !res.zeroRead)
			}
			return nil
		})
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return nil, context.Cause(ctx) // stopped from outside: say so, not what it failed
	}
	if err != nil {
		return nil, err
	}
	rep := a.report(o)
	rep.Target = t.String()
	rep.ElapsedSeconds = time.Since(start).Seconds()
	return rep, nil
}

// result is the fingerprint of one object.
type result struct {
	sum      [32]byte
	size     int64
	zeroRead bool
	vanished bool
	read     int64
}

// fingerprintObject fingerprints one object, retrying transient errors.
func fingerprintObject(ctx context.Context, store objects.Store, bucket string, it item, statAbove int64, v *vouching) (result, error) {
	for n := 1; ; n++ {
		res, err := fingerprintOnce(ctx, store, bucket, it, statAbove, v)
		switch {
		case err == nil:
			return res, nil
		case errors.Is(err, objects.ErrNotFound):
			return result{vanished: true}, nil
		case errors.Is(err, objects.ErrPermanent) || n == attempts || ctx.Err() != nil:
			return result{}, fmt.Errorf("analyze: fingerprint %s/%s: %w", bucket, it.key, err)
		}
		if err := backoff.Sleep(ctx, backoff.Delay(n, retryBase, retryMax)); err != nil {
			return result{}, err
		}
	}
}

// vouching tells whether a store keeps objects' SHA-256s (the built-in
// endpoint hashes every write; MinIO/S3 where uploads carried a
// full-object checksum): while it does, even small objects are statted,
// so that nothing it vouches for is read. Once its stats gave no checksum
// unvouchedLimit times and never one, small objects are read directly,
// which costs no more than the stat.
type vouching struct{ vouched, unvouched atomic.Int64 }

// unvouchedLimit is how many checksum-less stats end statting small objects.
const unvouchedLimit = 8

func (v *vouching) worthStat() bool {
	return v.vouched.Load() > 0 || v.unvouched.Load() < unvouchedLimit
}

func (v *vouching) note(vouched bool) {
	if vouched {
		v.vouched.Add(1)
	} else {
		v.unvouched.Add(1)
	}
}

func fingerprintOnce(ctx context.Context, store objects.Store, bucket string, it item, statAbove int64, v *vouching) (result, error) {
	if it.size > statAbove || v.worthStat() {
		info, err := store.Stat(ctx, bucket, it.key)
		if err != nil {
			return result{}, err
		}
		sum, ok := decodeSHA256(info.SHA256)
		v.note(ok)
		if ok {
			return result{sum: sum, size: info.Size, zeroRead: true}, nil
		}
	}
	rc, _, err := store.Get(ctx, bucket, it.key, "", "")
	if err != nil {
		return result{}, err
	}
	defer rc.Close()
	fp, n, err := fingerprint.Sum(rc)
	if err != nil {
		return result{}, err
	}
	sum, ok := decodeSHA256(fingerprint.Hex(fp))
	if !ok {
		return result{}, fmt.Errorf("unexpected fingerprint %q", fp)
	}
	// The size counted is what was hashed, not what was listed: an object
	// replaced since the listing still adds up.
	return result{sum: sum, size: n, read: n}, nil
}

// decodeSHA256 decodes a hex SHA-256 (objects.Info.SHA256); an empty or
// malformed value means unknown.
func decodeSHA256(s string) (sum [32]byte, ok bool) {
	if len(s) != hex.EncodedLen(len(sum)) {
		return sum, false
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, false
	}
	return sum, true
}

// aggregate collects results from the workers.
type aggregate struct {
	mu       sync.Mutex
	keys     int
	contents map[[32]byte]*content
	objects  int64
	bytes    int64
	zeroRead int64
	read     int64
	vanished int64
}

func (a *aggregate) add(it item, r result) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.vanished {
		a.vanished++
		return
	}
	a.objects++
	a.bytes += r.size
	a.read += r.read
	if r.zeroRead {
		a.zeroRead++
	}
	c := a.contents[r.sum]
	if c == nil {
		c = &content{size: r.size}
		a.contents[r.sum] = c
	}
	c.count++
	// Keep the first keys in key order, whatever order workers finish in.
	i, _ := slices.BinarySearch(c.keys, it.key)
	if i < a.keys {
		c.keys = slices.Insert(c.keys, i, it.key)
		if len(c.keys) > a.keys {
			c.keys = c.keys[:a.keys]
		}
	}
}

func (a *aggregate) report(o Options) *Report {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := &Report{
		Objects:   a.objects,
		Bytes:     a.bytes,
		Distinct:  int64(len(a.contents)),
		ZeroRead:  a.zeroRead,
		ReadBytes: a.read,
		Vanished:  a.vanished,
		Groups:    []Group{},
	}
	var groups []Group
	for sum, c := range a.contents {
		r.DistinctBytes += c.size
		if c.count < 2 {
			continue
		}
		r.DuplicateGroups++
		groups = append(groups, Group{
			SHA256: hex.EncodeToString(sum[:]), Count: c.count, Bytes: c.size,
			WastedBytes: (c.count - 1) * c.size, Keys: c.keys,
		})
	}
	r.DuplicateObjects = r.Objects - r.Distinct
	r.DuplicateBytes = r.Bytes - r.DistinctBytes
	if r.Objects > 0 {
		r.DuplicateShare = float64(r.DuplicateObjects) / float64(r.Objects)
	}
	if r.Bytes > 0 {
		r.DuplicateBytesShare = float64(r.DuplicateBytes) / float64(r.Bytes)
	}
	slices.SortFunc(groups, func(x, y Group) int {
		return cmp.Or(
			cmp.Compare(y.WastedBytes, x.WastedBytes),
			cmp.Compare(y.Count, x.Count),
			strings.Compare(x.SHA256, y.SHA256))
	})
	if o.Top > 0 {
		r.Groups = append(r.Groups, groups[:min(o.Top, len(groups))]...)
	}
	if o.FnSeconds > 0 {
		saved := float64(r.DuplicateObjects) * o.FnSeconds
		r.FnSeconds, r.FnSource, r.SavedSeconds = o.FnSeconds, o.FnSource, &saved
	}
	return r
}
